"""Gated linear attention mixer (arXiv:2312.06635): registration, constant-size cache,
cached prefill / step-wise decode == parallel forward, padding is a no-op on the state,
packed sequences (segment_ids) == each sequence alone (layer and model), `generate` == full
recomputation for GLA-only and hybrid models, sharding rules, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.models import Transformer, get_preset
from tests.helpers import mixer_layers
from tests.helpers.generate_checks import assert_greedy_generate_matches_recompute
from reasoning_jax.layers.gla import GLACache, GatedLinearAttention, make_gla_mixer
from reasoning_jax.ops.gla import gated_linear_attention

SMALL_CHUNK = "test_gla_chunk5"
if SMALL_CHUNK not in registry.MIXERS:
  make_gla_mixer(SMALL_CHUNK, chunk_size=5)


_apply = mixer_layers.apply_mixer
_config = mixer_layers.mixer_config
_x = mixer_layers.random_inputs
_positions = mixer_layers.positions


def _layer(mixer="gla"):
  return mixer_layers.make_mixer(mixer)


def test_registration_defaults_and_constant_cache():
  layer, config = _layer()
  assert isinstance(layer, GatedLinearAttention)
  assert (layer.gate_rank, layer.gate_normalizer, layer.chunk_size) == (16, 16.0, 64)
  small, big = layer.init_cache(2, 8), layer.init_cache(2, 4096)
  assert isinstance(small, GLACache)
  d = config.head_dim
  assert small.state.shape == big.state.shape == (2, config.num_heads, d, d)
  assert small.state.dtype == jnp.float32


def test_gates_start_slow_and_stay_in_range():
  """alpha = sigmoid(.)^(1/16): with zero gate bias the decay at init is about 0.958."""
  config = get_preset("tiny-qwen3").replace(mixer="gla")  # Default init range 0.02.
  layer = GatedLinearAttention(config, 0, rngs=nnx.Rngs(0))
  _, _, _, g = layer._inputs(_x(config, 2, 6), None)
  alpha = np.exp(np.asarray(g))
  assert np.all(alpha > 0.9) and np.all(alpha < 1.0)


@pytest.mark.parametrize("mixer", ["gla", SMALL_CHUNK])
def test_cached_prefill_and_decode_equal_full_forward(mixer):
  layer, config = _layer(mixer)
  b, t = 2, 13
  x = _x(config, b, t, seed=1)
  full, no_cache = _apply(layer, x, _positions(b, t))
  assert no_cache is None
  cache = layer.init_cache(b, t)
  head, cache = _apply(layer, x[:, :7], _positions(b, 7), cache)  # Multi-token call.
  outs = [head]
  for i in range(7, t):  # One token at a time.
    y, cache = _apply(layer, x[:, i : i + 1], _positions(b, 1, i), cache)
    outs.append(y)
  np.testing.assert_allclose(np.concatenate(outs, 1), full, atol=2e-5, rtol=1e-5)
  # The final cache state is the op's final state over the whole sequence.
  q, k, v, g = layer._inputs(x, None)
  _, final = gated_linear_attention(q, k, v, g, mode="naive")
  np.testing.assert_allclose(cache.state, final, atol=2e-5, rtol=1e-5)


def test_padding_tokens_leave_the_state_untouched():
  layer, config = _layer(SMALL_CHUNK)
  x = _x(config, 2, 9, seed=2)
  mask = jnp.array([[1] * 9, [1] * 4 + [0] * 5])
  y, cache = _apply(layer, x, _positions(2, 9), layer.init_cache(2, 9), mask)
  alone, alone_cache = _apply(layer, x[1:, :4], _positions(1, 4), layer.init_cache(1, 4))
  np.testing.assert_allclose(y[1, :4], alone[0], atol=2e-5, rtol=1e-5)
  np.testing.assert_allclose(cache.state[1], alone_cache.state[0], atol=2e-5, rtol=1e-5)
  # No-cache path: padding before the sequence (left padding) is skipped as well.
  left_mask = jnp.array([[0, 0, 0] + [1] * 6])
  y_left, _ = _apply(layer, x[:1], _positions(1, 9), None, left_mask)
  y_ref, _ = _apply(layer, x[:1, 3:], _positions(1, 6))
  np.testing.assert_allclose(y_left[0, 3:], y_ref[0], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("mixer", [("gla",) * 2, ("gla", "attention"), ("attention", SMALL_CHUNK)])
def test_generate_greedy_matches_full_recompute(mixer):
  """Ragged right-padded prompts prefilled in one block: GLA rows skip their padding (the
  mask generate passes), attention layers overwrite it; tokens and log-probs must equal a
  full forward over each row's real sequence."""
  config = _config(mixer)
  model = Transformer(config, rngs=nnx.Rngs(0))
  assert_greedy_generate_matches_recompute(model, high=config.vocab_size, n_new=6)


def test_gradients_reach_every_parameter():
  """Also on a packed batch (segment_ids, as packed SFT data feeds it): every gradient is finite."""
  config = _config("gla")
  model = Transformer(config, rngs=nnx.Rngs(0))
  ids = jnp.asarray(np.random.RandomState(3).randint(0, config.vocab_size, (2, 11)))
  seg = jnp.array([[0] * 11, [0] * 4 + [1] + [2] * 6], jnp.int32)

  def loss(m):
    return jnp.mean(jax.nn.log_softmax(m(ids, segment_ids=seg))[..., 0])

  grads = nnx.grad(loss)(model)
  mixer_grads = nnx.state(grads)["layers"][0]["mixer"]
  for path, leaf in jax.tree_util.tree_leaves_with_path(mixer_grads):
    assert float(jnp.max(jnp.abs(leaf))) > 0, jax.tree_util.keystr(path)
  assert all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree_util.tree_leaves(grads))


def test_partition_rules_cover_gla_parameters():
  from reasoning_jax import sharding
  from reasoning_jax.models.partition_rules import rules_for

  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  config = get_preset("tiny-llama").replace(mixer="gla", num_kv_heads=4)
  model = Transformer(config, rngs=nnx.Rngs(0))
  specs = sharding.param_specs(nnx.state(model, nnx.Param), rules_for(config.family), mesh)
  mixer = specs["layers"][0]["mixer"]
  assert mixer["gate_b"] == jax.sharding.PartitionSpec(None, "tensor", None)
  assert mixer["r_proj"] == jax.sharding.PartitionSpec("fsdp", "tensor", None)


@pytest.mark.parametrize("mixer", ["gla", SMALL_CHUNK])
def test_packed_segments_match_separate_sequences(mixer):
  """Two rows with different layouts (a length-1 sequence, sequences starting mid-chunk for
  chunk 5): each packed sequence's outputs equal the layer run on it alone."""
  layer, config = _layer(mixer)
  t = 12
  x = _x(config, 2, t, seed=4)
  seg = jnp.array([[0] * 3 + [1] + [2] * 8, [7] * 6 + [3] * 6], jnp.int32)
  y, cache = _apply(layer, x, _positions(2, t), None, None, seg)
  assert cache is None
  for b, bounds in enumerate([[(0, 3), (3, 4), (4, 12)], [(0, 6), (6, 12)]]):
    for start, end in bounds:
      alone, _ = _apply(layer, x[b : b + 1, start:end], _positions(1, end - start))
      np.testing.assert_allclose(y[b, start:end], alone[0], atol=2e-5, rtol=1e-5)


def test_packed_model_equals_separate_sequences():
  """A GLA-only model on a packed row: logits equal each sequence run alone."""
  config = _config("gla")
  model = Transformer(config, rngs=nnx.Rngs(0))
  ids = jnp.asarray(np.random.RandomState(5).randint(1, config.vocab_size, (1, 10)))
  seg = jnp.array([[1] * 4 + [2] * 6], jnp.int32)
  positions = jnp.array([list(range(4)) + list(range(6))], jnp.int32)
  logits = nnx.jit(lambda m, i, p, s: m(i, positions=p, segment_ids=s))(model, ids, positions, seg)
  for start, end in [(0, 4), (4, 10)]:
    alone = nnx.jit(lambda m, i: m(i))(model, ids[:, start:end])
    np.testing.assert_allclose(logits[:, start:end], alone, atol=1e-4, rtol=1e-4)


def test_segments_with_cache_and_wrong_cache_raise():
  layer, config = _layer()
  x = _x(config, 1, 4)
  with pytest.raises(ValueError, match="segment_ids"):
    layer(
      x,
      positions=_positions(1, 4),
      cache=layer.init_cache(1, 4),
      segment_ids=jnp.zeros((1, 4), jnp.int32),
    )
  with pytest.raises(TypeError, match="GLACache"):
    layer(x, positions=_positions(1, 4), cache=object())
  with pytest.raises(ValueError, match="chunk_size"):
    make_gla_mixer("test_gla_bad", chunk_size=0)
