"""Momentum Attention mixer (arXiv:2602.04902): registration, gamma = 0 == attention,
cached prefill / decode == full forward, `generate` == full recomputation, packing, errors."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.models import Transformer, get_preset  # First: see tests/ops/test_momentum.py.
from tests.helpers.generate_checks import assert_greedy_generate_matches_recompute
from reasoning_jax.layers.attention import KVCache
from reasoning_jax.layers.momentum import (
  MomentumAttention,
  MomentumKVCache,
  make_momentum_mixer,
  momentum_mixer_names,
)
from reasoning_jax.ops.momentum import optimal_gamma


def _register(name, **kwargs):
  if name not in registry.MIXERS:
    make_momentum_mixer(name, **kwargs)
  return name


G0 = _register("test_momentum_g0", gamma_q=0.0, gamma_k=0.0)
LEARNED = _register("test_momentum_learned", gamma_q=0.5, gamma_k=1.0, learnable_gamma=True)
LEARNED_PER_HEAD = _register(
  "test_momentum_learned_per_head",
  gamma_q=(0.0, 0.5, 1.0, 2.0),
  gamma_k=(3.0, 0.25),
  learnable_gamma=True,
  t0_rule="zero",
)
SLIDING_KEY_ONLY = _register(
  "test_momentum_sliding_key_only", gamma_q=0.0, gamma_k=2.0, sliding_window_from_config=True
)


@nnx.jit
def _apply(layer, x, positions, cache=None, segment_ids=None):
  return layer(x, positions=positions, cache=cache, segment_ids=segment_ids)


@nnx.jit
def _logits(model, ids):
  return model(ids)


def _config(mixer, **kw):
  return get_preset("tiny-qwen3", initializer_range=0.3, **kw).replace(mixer=mixer)


def _layer(mixer, **kw):
  config = _config(mixer, **kw)
  return registry.MIXERS.get(mixer)(config, 0, rngs=nnx.Rngs(0)), config


def _atol(reference):
  """1e-5 of the output's scale. Outputs reach |y| ~ 15 and float32 sums over 9 keys vs
  5 + 4 keys round differently (CI once saw 1.1e-5 on a near-zero entry), while a real leak
  across segments or chunks moves outputs by O(1)."""
  return 1e-5 * max(1.0, float(np.abs(np.asarray(reference)).max()))


def test_registration_and_default_gammas():
  assert "momentum_attention" in registry.MIXERS
  assert {"momentum_attention", G0, LEARNED} <= set(momentum_mixer_names())
  layer, config = _layer("momentum_attention")
  assert isinstance(layer, MomentumAttention) and layer.t0_rule == "repeat"
  assert layer.gamma_q == layer.gamma_k == pytest.approx(optimal_gamma(config.num_layers))
  cache = layer.init_cache(2, 8)
  assert isinstance(cache, MomentumKVCache) and isinstance(cache, KVCache)
  assert cache.q_raw.shape == (2, 8, 4, 24) and cache.k_raw.shape == cache.k.shape == (2, 8, 2, 24)
  assert cache.max_length == 8
  g0_cache = _layer(G0)[0].init_cache(2, 8)  # No raw buffers when a gamma is fixed at 0.
  assert g0_cache.q_raw is None and g0_cache.k_raw is None
  key_only = _layer(SLIDING_KEY_ONLY, sliding_window=3)[0].init_cache(1, 4)
  assert key_only.q_raw is None and key_only.k_raw is not None


def test_gamma_zero_model_equals_attention_model():
  ids = jnp.asarray(np.random.RandomState(0).randint(1, 512, (2, 9)), jnp.int32)
  plain = Transformer(_config("attention"), rngs=nnx.Rngs(0))
  g0 = Transformer(_config(G0), rngs=nnx.Rngs(0))
  np.testing.assert_array_equal(_logits(g0, ids), _logits(plain, ids))
  default = Transformer(_config("momentum_attention"), rngs=nnx.Rngs(0))
  assert np.abs(np.asarray(_logits(default, ids) - _logits(plain, ids))).max() > 1e-3


@pytest.mark.parametrize("mixer", ["momentum_attention", LEARNED_PER_HEAD, SLIDING_KEY_ONLY])
def test_cached_chunked_prefill_and_decode_equal_full_forward(mixer):
  """Spec 4.3(e) with the layer: prefill 4 tokens, a chunk of 3, then single steps == one pass."""
  layer, config = _layer(mixer, sliding_window=3)
  b, t = 2, 10
  x = jnp.asarray(np.random.RandomState(1).standard_normal((b, t, config.hidden_size)), jnp.float32)
  positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
  full, none = _apply(layer, x, positions)
  assert none is None
  cache = layer.init_cache(b, 12)
  outs, start = [], 0
  for size in (4, 3, 1, 1, 1):
    out, cache = _apply(
      layer, x[:, start : start + size], positions[:, start : start + size], cache
    )
    outs.append(out)
    start += size
  np.testing.assert_allclose(jnp.concatenate(outs, axis=1), full, rtol=1e-5, atol=_atol(full))
  # The cache holds SHEARED keys in k and raw post-RoPE keys in k_raw.
  if cache.k_raw is not None:
    assert np.abs(np.asarray(cache.k[:, :t] - cache.k_raw[:, :t])[:, 1:]).max() > 1e-3


def test_generate_greedy_matches_full_recompute(mixer="momentum_attention"):
  """Ragged, right-padded prompts: decode restarts each row at its own length, reading the
  predecessor's raw q/k from slot p - 1 (the padding written by prefill is never used)."""
  model = Transformer(_config(mixer), rngs=nnx.Rngs(0))
  assert_greedy_generate_matches_recompute(model, high=512, n_new=6)


def test_packed_segments_equal_separate_sequences():
  layer, config = _layer("momentum_attention")
  x = jnp.asarray(np.random.RandomState(2).standard_normal((1, 9, config.hidden_size)), jnp.float32)
  seg = jnp.array([[0] * 5 + [1] * 4])
  pos = jnp.array([list(range(5)) + list(range(4))])
  packed, _ = _apply(layer, x, pos, segment_ids=seg)
  first, _ = _apply(layer, x[:, :5], pos[:, :5])
  second, _ = _apply(layer, x[:, 5:], pos[:, 5:])
  separate = jnp.concatenate([first, second], axis=1)
  np.testing.assert_allclose(packed, separate, rtol=1e-5, atol=_atol(separate))


def test_learnable_gamma_is_a_param_with_gradient():
  layer, config = _layer(LEARNED)
  params = nnx.state(layer, nnx.Param)
  assert float(params["gamma_q"][...]) == 0.5 and float(params["gamma_k"][...]) == 1.0
  x = jnp.asarray(np.random.RandomState(3).standard_normal((1, 6, config.hidden_size)), jnp.float32)
  pos = jnp.arange(6, dtype=jnp.int32)[None]

  def loss(layer):
    return jnp.sum(layer(x, positions=pos)[0] ** 2)

  grads = nnx.jit(nnx.grad(loss))(layer)
  assert abs(float(grads["gamma_q"][...])) > 0 and abs(float(grads["gamma_k"][...])) > 0


def test_bad_settings_raise():
  with pytest.raises(ValueError, match="t0_rule"):
    make_momentum_mixer("test_bad_t0", t0_rule="first")
  with pytest.raises(ValueError, match="scaling_law"):
    make_momentum_mixer("test_bad_gamma", gamma_q="optimal")
  with pytest.raises(TypeError, match="gamma_k must be a float"):
    make_momentum_mixer("test_bad_gamma_type", gamma_k=None)
  with pytest.raises(ValueError, match="already registered"):
    make_momentum_mixer("momentum_attention")
  name = _register("test_momentum_three_heads", gamma_q=(1.0, 1.0, 1.0))
  with pytest.raises(ValueError, match="gamma_q has 3 per-head values but the layer has 4 heads"):
    Transformer(_config(name), rngs=nnx.Rngs(0))
  layer, config = _layer("momentum_attention")
  plain_cache = KVCache(k=jnp.zeros((1, 4, 2, 24)), v=jnp.zeros((1, 4, 2, 24)))
  with pytest.raises(TypeError, match="MomentumKVCache"):
    layer(
      jnp.zeros((1, 1, config.hidden_size)),
      positions=jnp.zeros((1, 1), jnp.int32),
      cache=plain_cache,
    )
