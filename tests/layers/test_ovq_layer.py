"""OVQ attention mixer (arXiv:2602.03922): registration, constant-size cache, cached prefill /
step-wise decode == parallel forward (across chunk boundaries), padding is a no-op on the
state, packed rows (`segment_ids`) == each segment alone (layer and hybrid model), `generate`
== full recomputation for OVQ-only and hybrid (OVQ + sliding window) models, gradients,
sharding rules, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.models import Transformer, get_preset
from tests.helpers import mixer_layers
from tests.helpers.generate_checks import assert_greedy_generate_matches_recompute
from reasoning_jax.layers.ovq import OVQAttention, make_ovq_mixer
from reasoning_jax.ops.ovq import OVQState, ovq_attention

SMALL = "test_ovq_small"  # Chunk 4, 6 slots: several absorptions and a full dictionary.
if SMALL not in registry.MIXERS:
  make_ovq_mixer(SMALL, num_slots=6, chunk_size=4)


_apply = mixer_layers.apply_mixer
_config = mixer_layers.mixer_config
_x = mixer_layers.random_inputs
_positions = mixer_layers.positions


def _layer(mixer=SMALL):
  return mixer_layers.make_mixer(mixer)


def _close(a, b, atol=2e-5):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol, rtol=atol)


def test_registration_defaults_and_constant_cache():
  layer, config = _layer("ovq")
  assert isinstance(layer, OVQAttention)
  assert (layer.num_slots, layer.chunk_size, layer.schedule, layer.renormalize) == (
    1024,
    64,
    "saturating",
    False,
  )
  np.testing.assert_allclose(np.exp(layer.log_beta[...]), math.sqrt(config.head_dim), rtol=1e-6)
  small, big = layer.init_cache(2, 8), layer.init_cache(2, 1 << 16)
  assert isinstance(small, OVQState)
  for a, b in zip(jax.tree_util.tree_leaves(small), jax.tree_util.tree_leaves(big)):
    assert a.shape == b.shape
  assert small.dk.shape == (2, config.num_heads, 1024, config.head_dim)


def test_cached_prefill_and_decode_equal_full_forward():
  """Prefill 7 tokens (one absorbed chunk + 3 buffered), then 8 single steps crossing two
  more chunk boundaries: equal to the parallel forward, and the final cache equals the op's
  final state."""
  layer, config = _layer()
  b, t = 2, 15
  x = _x(config, b, t, seed=1)
  full, no_cache = _apply(layer, x, _positions(b, t))
  assert no_cache is None
  cache = layer.init_cache(b, t)
  head, cache = _apply(layer, x[:, :7], _positions(b, 7), cache)
  outs = [head]
  for i in range(7, t):
    y, cache = _apply(layer, x[:, i : i + 1], _positions(b, 1, i), cache)
    outs.append(y)
  _close(jnp.concatenate(outs, 1), full)
  assert np.all(np.asarray(cache.tokens_seen) == 12) and np.all(np.asarray(cache.buf_len) == 3)


def test_padding_tokens_are_neither_read_nor_absorbed():
  layer, config = _layer()
  x = _x(config, 2, 11, seed=2)
  mask = jnp.array([[1] * 11, [1] * 6 + [0] * 5])
  y, cache = _apply(layer, x, _positions(2, 11), layer.init_cache(2, 11), mask)
  alone, alone_cache = _apply(layer, x[1:, :6], _positions(1, 6), layer.init_cache(1, 6))
  _close(y[1, :6], alone[0])
  for a, e in zip(jax.tree_util.tree_leaves(cache), jax.tree_util.tree_leaves(alone_cache)):
    _close(a[1], e[0])


def _spans(ids, n):
  ids = np.asarray(ids)[:n]
  cuts = [0] + [i for i in range(1, n) if ids[i] != ids[i - 1]] + [n]
  return list(zip(cuts[:-1], cuts[1:]))


PACKED_IDS = jnp.array([[1] * 5 + [2] + [3] * 7, [4] * 9 + [5] * 4], jnp.int32)


def test_packed_segments_equal_each_segment_alone():
  """Row 0: segments 5 | 1 | 7 (starts mid-chunk, a one-token segment); row 1: 9 | 2 valid
  tokens, then 2 padding tokens (attention mask)."""
  layer, config = _layer()
  b, t = PACKED_IDS.shape
  x = _x(config, b, t, seed=4)
  mask = jnp.array([[1] * t, [1] * (t - 2) + [0] * 2])
  y, cache = _apply(layer, x, _positions(b, t), None, mask, PACKED_IDS)
  assert cache is None
  for row, n in ((0, t), (1, t - 2)):
    for a, e in _spans(PACKED_IDS[row], n):
      alone, _ = _apply(layer, x[row : row + 1, a:e], _positions(1, e - a))
      _close(y[row, a:e], alone[0])


def test_packed_rows_in_a_hybrid_model_equal_each_segment_alone():
  """A sliding-window + OVQ model on a packed row (positions restart per segment) gives
  each segment's logits as the segment alone: packed SFT batches work with OVQ layers."""
  config = _config(("sliding_attention", SMALL), sliding_window=4)
  model = Transformer(config, rngs=nnx.Rngs(0))
  ids = jnp.asarray(np.random.RandomState(5).randint(0, config.vocab_size, PACKED_IDS.shape))
  spans = [_spans(PACKED_IDS[row], PACKED_IDS.shape[1]) for row in range(2)]
  positions = jnp.array([np.concatenate([np.arange(e - a) for a, e in s]) for s in spans])
  run = nnx.jit(lambda m, i, p, s: m(i, positions=p, segment_ids=s))
  logits = run(model, ids, positions, PACKED_IDS)
  alone = nnx.jit(lambda m, i: m(i))
  for row in range(2):
    for a, e in spans[row]:
      _close(logits[row, a:e], alone(model, ids[row : row + 1, a:e])[0], atol=1e-4)


@pytest.mark.parametrize(
  "mixer", [(SMALL,) * 2, (SMALL, "attention"), ("sliding_attention", SMALL)]
)
def test_generate_greedy_matches_full_recompute(mixer):
  config = _config(mixer, sliding_window=4)
  model = Transformer(config, rngs=nnx.Rngs(0))
  assert_greedy_generate_matches_recompute(model, high=config.vocab_size, n_new=7)


def test_layer_is_projections_around_the_op():
  layer, config = _layer()
  x = _x(config, 1, 9, seed=3)
  y, _ = _apply(layer, x, _positions(1, 9))
  proj = lambda w: jnp.einsum("bth,hnd->btnd", x, w[...])
  o, _ = ovq_attention(
    proj(layer.q_proj),
    proj(layer.k_proj),
    proj(layer.v_proj),
    beta=jnp.exp(layer.log_beta[...]),
    num_slots=6,
    chunk_size=4,
    mode="naive",
  )
  _close(y, jnp.einsum("btnd,ndh->bth", o, layer.o_proj[...]))


FLAGS = dict(
  schedule="dirichlet",
  dirichlet_alpha=1.5,
  seeding="kmeans++",
  seed=5,
  update="constant",
  update_lr=0.5,
  readout="vq",
)
FLAGGED = "test_ovq_flagged"
if FLAGGED not in registry.MIXERS:
  make_ovq_mixer(FLAGGED, num_slots=6, chunk_size=4, **FLAGS)


def test_flags_reach_the_op():
  """make_ovq_mixer's DESIGN CHOICE flags are class attributes the layer passes to the op:
  the parallel forward equals the naive op with the same flags, and cached prefill + decode
  steps (`ovq_step` with the flags) equal the parallel forward."""
  layer, config = _layer(FLAGGED)
  assert {name: getattr(layer, name) for name in FLAGS} == FLAGS
  b, t = 2, 11
  x = _x(config, b, t, seed=4)
  y, _ = _apply(layer, x, _positions(b, t))
  proj = lambda w: jnp.einsum("bth,hnd->btnd", x, w[...])
  o, _ = ovq_attention(
    proj(layer.q_proj),
    proj(layer.k_proj),
    proj(layer.v_proj),
    beta=jnp.exp(layer.log_beta[...]),
    num_slots=6,
    chunk_size=4,
    mode="naive",
    **FLAGS,
  )
  _close(y, jnp.einsum("btnd,ndh->bth", o, layer.o_proj[...]))
  default, _ = _apply(_layer()[0], x, _positions(b, t))
  assert float(jnp.abs(default - y).max()) > 1e-3
  cache = layer.init_cache(b, t)
  head, cache = _apply(layer, x[:, :5], _positions(b, 5), cache)
  outs = [head]
  for i in range(5, t):
    step, cache = _apply(layer, x[:, i : i + 1], _positions(b, 1, i), cache)
    outs.append(step)
  _close(jnp.concatenate(outs, 1), y)


def test_bad_flags_raise_naming_the_flag():
  for flag, value in (("seeding", "spread"), ("update", "newton"), ("readout", "pure")):
    with pytest.raises(ValueError, match=f"{flag}={value!r} is not a registered"):
      make_ovq_mixer("test_ovq_bad_flag", **{flag: value})
  with pytest.raises(ValueError, match="update_lr"):
    make_ovq_mixer("test_ovq_bad_flag", update="constant", update_lr=2.0)
  assert "test_ovq_bad_flag" not in registry.MIXERS


def test_gradients_reach_every_parameter():
  config = _config(SMALL)
  model = Transformer(config, rngs=nnx.Rngs(0))
  ids = jnp.asarray(np.random.RandomState(3).randint(0, config.vocab_size, (2, 11)))

  def loss(m):
    return jnp.mean(jax.nn.log_softmax(m(ids))[..., 0])

  grads = nnx.grad(loss)(model)
  mixer_grads = nnx.state(grads)["layers"][0]["mixer"]
  for path, leaf in jax.tree_util.tree_leaves_with_path(mixer_grads):
    assert np.isfinite(np.asarray(leaf)).all(), jax.tree_util.keystr(path)
    assert float(jnp.max(jnp.abs(leaf))) > 0, jax.tree_util.keystr(path)


def test_partition_rules_cover_ovq_parameters():
  from reasoning_jax import sharding
  from reasoning_jax.models.partition_rules import rules_for

  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  config = get_preset("tiny-llama").replace(mixer="ovq")
  model = Transformer(config, rngs=nnx.Rngs(0))
  specs = sharding.param_specs(nnx.state(model, nnx.Param), rules_for(config.family), mesh)
  mixer = specs["layers"][0]["mixer"]

  def spec(name):
    leaf = mixer[name]
    return tuple(leaf.get_value() if isinstance(leaf, nnx.Variable) else leaf)

  assert spec("log_beta") in ((), (None,))  # Replicated.
  assert spec("q_proj") == ("fsdp", "tensor", None)


def test_bad_settings_and_inputs_raise():
  layer, config = _layer()
  x = _x(config, 1, 4)
  with pytest.raises(ValueError, match="segment_ids .* cannot be combined with a generation"):
    layer(
      x,
      positions=_positions(1, 4),
      segment_ids=jnp.zeros((1, 4), jnp.int32),
      cache=layer.init_cache(1, 4),
    )
  with pytest.raises(TypeError, match="OVQState"):
    layer(x, positions=_positions(1, 4), cache=object())
  with pytest.raises(ValueError, match="num_slots"):
    make_ovq_mixer("test_ovq_bad", num_slots=0)
  with pytest.raises(ValueError, match="schedule"):
    make_ovq_mixer("test_ovq_bad2", schedule="cubic")
