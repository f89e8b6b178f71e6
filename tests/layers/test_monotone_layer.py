"""Monotone FFN layers (arXiv:2602.02686): registration, monotone in every input coordinate,
a model with ffn="monotone" builds / runs / trains, SwiGLU rejected, init and weight-decay
caveats (raw V excluded from decay), dense-checkpoint conversion."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.models import Transformer, get_preset  # First: see tests/ops/test_momentum.py.
from reasoning_jax.layers.ffn import SwiGLU
from reasoning_jax.layers.monotone import (
  MonotoneFFN,
  MonotoneRawParam,
  is_monotone_ffn,
  make_monotone_ffn,
  monotone_decay_penalty,
  monotone_raw_params,
  monotone_weight_decay_mask,
  require_monotone_ffns,
)
from reasoning_jax.ops.monotone import probe_monotone


def _config(ffn="monotone", **kw):
  return get_preset("tiny-qwen3", **kw).replace(ffn=ffn)


@pytest.mark.parametrize("name,bias", [("monotone", False), ("monotone_gated", True)])
def test_layer_is_monotone_in_every_input_coordinate(name, bias):
  config = _config(name, mlp_bias=bias, initializer_range=0.2)
  ffn = registry.FFNS.get(name)(config, 0, rngs=nnx.Rngs(0))
  assert isinstance(ffn.up, MonotoneRawParam) and (ffn.gate is not None) == (name != "monotone")
  assert (ffn.up_bias is not None) == bias
  fn = nnx.jit(lambda m, x: m(x))
  x = jnp.asarray(np.random.RandomState(1).standard_normal((32, config.hidden_size)), jnp.float32)
  probe = lambda **kw: probe_monotone(
    lambda z: fn(ffn, z), x, jax.random.key(2), num_pairs=2_000, **kw
  )
  assert probe() == 0 and probe(delta_scale=0.01, atol=1e-6) == 0
  jac = nnx.jit(lambda m, x: jax.vmap(jax.jacfwd(m))(x))(ffn, x[:8])
  assert jac.shape == (8, config.hidden_size, config.hidden_size)
  assert float(jac.min()) >= 0.0 and float(jac.max()) > 0.0


def test_swiglu_is_rejected():
  assert is_monotone_ffn("monotone") and is_monotone_ffn("monotone_gated")
  assert not is_monotone_ffn("swiglu")
  require_monotone_ffns(_config("monotone"))
  with pytest.raises(ValueError, match=r"ffn\[0\]='swiglu' is not a monotone FFN"):
    require_monotone_ffns(_config("swiglu"))
  with pytest.raises(ValueError, match=r"ffn\[1\]='swiglu'"):
    require_monotone_ffns(_config(("monotone", "swiglu")))
  # Empirically too: a SwiGLU with all weights made non-negative still breaks the order.
  config = _config("swiglu", initializer_range=0.5)
  swiglu = SwiGLU(config, 0, rngs=nnx.Rngs(0))
  for w in (swiglu.gate, swiglu.up, swiglu.down):
    w[...] = jnp.abs(w[...])
  x = jnp.asarray(np.random.RandomState(3).standard_normal((32, config.hidden_size)), jnp.float32)
  assert (
    probe_monotone(
      nnx.jit(lambda z: swiglu(z)), x, jax.random.key(4), num_pairs=500, delta_scale=0.01, atol=0.0
    )
    > 0
  )


def test_model_with_monotone_ffn_builds_runs_and_trains():
  config = _config("monotone")
  model = Transformer(config, rngs=nnx.Rngs(0))
  ids = jnp.asarray(np.random.RandomState(0).randint(1, 512, (2, 8)), jnp.int32)

  graphdef, params = nnx.split(model, nnx.Param)
  mask = monotone_weight_decay_mask(params)
  tx = optax.adamw(1e-2, weight_decay=0.1, mask=monotone_weight_decay_mask)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state):
    def loss(p):
      logits = nnx.merge(graphdef, p)(ids[:, :-1])
      lp = jax.nn.log_softmax(logits)
      return -jnp.mean(jnp.take_along_axis(lp, ids[:, 1:, None], axis=-1)), logits

    (value, logits), grads = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value, grads, logits

  new_params, _, loss0, grads, logits = step(params, opt_state)
  assert logits.shape == (2, 7, 512) and np.all(np.isfinite(logits)) and np.isfinite(loss0)
  assert float(jnp.abs(grads["layers"][0]["ffn"]["up"][...]).max()) > 0
  assert isinstance(new_params["layers"][0]["ffn"]["up"], MonotoneRawParam)
  flat_mask = jax.tree_util.tree_leaves(mask)
  assert flat_mask.count(False) == 2 * config.num_layers  # up and down of every layer.


def test_weight_decay_mask_keeps_raw_params_out_of_decay():
  """Decaying V would pull W = softplus(V) towards ln 2; the mask excludes V."""
  model = Transformer(_config("monotone_gated"), rngs=nnx.Rngs(0))
  _, params = nnx.split(model, nnx.Param)
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  for mask, raw_changes in ((monotone_weight_decay_mask, False), (None, True)):
    tx = optax.adamw(1.0, weight_decay=0.5, mask=mask)

    @jax.jit
    def update(params):
      updates, _ = tx.update(zeros, tx.init(params), params)
      return optax.apply_updates(params, updates)

    new = update(params)
    delta = lambda path: float(jnp.abs(path(new)[...] - path(params)[...]).max())
    assert (delta(lambda p: p["layers"][0]["ffn"]["gate"]) > 0) == raw_changes
    assert delta(lambda p: p["embed"]) > 0  # Everything else is still decayed.
  # Unmasked decay drives V -> 0, i.e. W -> ln 2 ~ 0.69, far above the ~0.016 init.
  v = params["layers"][0]["ffn"]["up"][...]
  assert float(jax.nn.softplus(v).mean()) < 0.05
  assert abs(float(jax.nn.softplus(v * 1e-3).mean()) - np.log(2)) < 0.01
  assert len(monotone_raw_params(model)) == 6
  np.testing.assert_allclose(
    monotone_decay_penalty(model),
    0.5 * sum(float(jnp.sum(jax.nn.softplus(v) ** 2)) for v in monotone_raw_params(params)),
    rtol=1e-5,
  )
  with pytest.raises(TypeError, match="nnx.Variable leaves"):
    monotone_weight_decay_mask({"w": jnp.zeros(3)})


def test_load_dense_discards_signs_and_leaves_other_params():
  config = _config("monotone")
  model = Transformer(config, rngs=nnx.Rngs(0))
  before = nnx.state(model, nnx.Param)
  ffn = model.layers[0].ffn
  rs = np.random.RandomState(9)
  up = jnp.asarray(rs.standard_normal(ffn.up.shape) * 0.05, jnp.float32)
  down = jnp.asarray(rs.standard_normal(ffn.down.shape) * 0.05, jnp.float32)
  ffn.load_dense(up=up, down=down)
  w = ffn.weights()
  np.testing.assert_allclose(w["up"], jnp.abs(up), atol=2e-4)
  np.testing.assert_allclose(w["down"], jnp.abs(down), atol=2e-4)
  after = nnx.state(model, nnx.Param)
  np.testing.assert_array_equal(
    after["layers"][0]["mixer"]["q_proj"][...], before["layers"][0]["mixer"]["q_proj"][...]
  )
  np.testing.assert_array_equal(
    after["layers"][1]["ffn"]["up"][...], before["layers"][1]["ffn"]["up"][...]
  )
  with pytest.raises(ValueError, match="gate must be given iff"):
    ffn.load_dense(up=up, down=down, gate=up)
  with pytest.raises(ValueError, match="up must have shape"):
    ffn.load_dense(up=up.T, down=down)


def test_variant_factory():
  name = "test_monotone_softplus"
  if name not in registry.FFNS:
    make_monotone_ffn(name, activation="softplus")
  cls = registry.FFNS.get(name)
  assert issubclass(cls, MonotoneFFN) and cls.activation == "softplus" and is_monotone_ffn(name)
  with pytest.raises(ValueError, match="not monotone"):
    make_monotone_ffn("test_monotone_gelu", activation="gelu")
  with pytest.raises(ValueError, match="gated product"):
    make_monotone_ffn("test_monotone_tanh_gated", activation="tanh", gated=True)
  with pytest.raises(ValueError, match="already registered"):
    make_monotone_ffn("monotone")
