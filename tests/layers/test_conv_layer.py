"""Zoology's BaseConv mixer ("base_conv", arXiv:2312.04927): hand values, cache, padding,
packed segments, generate, sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.layers.conv import BaseConv, ConvCache, causal_depthwise_conv, make_conv_mixer
from reasoning_jax.models import Transformer
from tests.helpers import mixer_layers
from tests.helpers.generate_checks import assert_greedy_generate_matches_recompute

WIDE = "test_conv_k4"
if WIDE not in registry.MIXERS:
  make_conv_mixer(WIDE, kernel_size=4)


_apply = mixer_layers.apply_mixer
_config = mixer_layers.mixer_config
_x = mixer_layers.random_inputs
_positions = mixer_layers.positions


def _layer(mixer="base_conv"):
  return mixer_layers.make_mixer(mixer)


def test_conv_hand_values():
  """One channel, taps w = (1, 10, 100) (current, 1 back, 2 back), bias 0.5:
  u = 1, 2, 3, 4 -> 1.5, 12.5, 123.5, 234.5; with history (7, 8): first output 1 + 80 + 700."""
  u = jnp.array([1.0, 2.0, 3.0, 4.0])[None, :, None]
  w = jnp.array([[1.0], [10.0], [100.0]])
  y = causal_depthwise_conv(u, w, jnp.array([0.5]))
  np.testing.assert_allclose(y[0, :, 0], [1.5, 12.5, 123.5, 234.5])
  y_hist = causal_depthwise_conv(u, w, None, history=jnp.array([[[7.0], [8.0]]]))
  np.testing.assert_allclose(y_hist[0, 0, 0], 1 + 80 + 700)
  # Packed: a second segment starting at t = 2 sees zeros before it.
  y_seg = causal_depthwise_conv(u, w, None, segment_ids=jnp.array([[0, 0, 1, 1]]))
  np.testing.assert_allclose(y_seg[0, :, 0], [1.0, 12.0, 3.0, 34.0])


def test_registration_defaults_and_constant_cache():
  layer, config = _layer()
  assert isinstance(layer, BaseConv)
  assert (layer.kernel_size, layer.inner_residual) == (3, True)
  small, big = layer.init_cache(2, 8), layer.init_cache(2, 4096)
  assert isinstance(small, ConvCache)
  assert small.buffer.shape == big.buffer.shape == (2, 2, config.hidden_size)


def test_layer_matches_its_formula():
  layer, config = _layer()
  x = _x(config, 2, 6, seed=4)
  y, _ = _apply(layer, x, _positions(2, 6))
  w, b = np.asarray(layer.conv_weight[...]), np.asarray(layer.conv_bias[...])
  u = np.asarray(x)
  conv = np.zeros_like(u) + b
  for j in range(3):
    conv[:, j:] += w[j] * u[:, : u.shape[1] - j]
  gate = u @ np.asarray(layer.proj[...]) + np.asarray(layer.proj_bias[...])
  np.testing.assert_allclose(y, conv * gate + u, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mixer", ["base_conv", WIDE])
def test_cached_prefill_and_decode_equal_full_forward(mixer):
  layer, config = _layer(mixer)
  b, t = 2, 11
  x = _x(config, b, t, seed=1)
  full, no_cache = _apply(layer, x, _positions(b, t))
  assert no_cache is None
  cache = layer.init_cache(b, t, jnp.float32)
  head, cache = _apply(layer, x[:, :5], _positions(b, 5), cache)  # Multi-token call.
  outs = [head]
  for i in range(5, t):  # One token at a time.
    y, cache = _apply(layer, x[:, i : i + 1], _positions(b, 1, i), cache)
    outs.append(y)
  np.testing.assert_allclose(np.concatenate(outs, 1), full, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(cache.buffer, x[:, t - layer.kernel_size + 1 :], atol=0)


def test_padded_prefill_keeps_each_rows_last_inputs():
  layer, config = _layer(WIDE)
  x = _x(config, 3, 8, seed=2)
  right = jnp.array([[1] * 8, [1] * 2 + [0] * 6, [0] * 8])
  y, cache = _apply(layer, x, _positions(3, 8), layer.init_cache(3, 8, jnp.float32), right)
  alone, alone_cache = _apply(
    layer, x[1:2, :2], _positions(1, 2), layer.init_cache(1, 2, jnp.float32)
  )
  np.testing.assert_allclose(y[1, :2], alone[0], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(cache.buffer[1], alone_cache.buffer[0], atol=0)
  np.testing.assert_allclose(cache.buffer[0], x[0, 5:], atol=0)
  np.testing.assert_array_equal(cache.buffer[2], 0.0)  # No valid token: cache unchanged.
  # Left padding: the padded block equals the unpadded sequence.
  left = jnp.array([[0, 0, 0] + [1] * 5])
  y_left, c_left = _apply(layer, x[:1], _positions(1, 8), layer.init_cache(1, 8, jnp.float32), left)
  y_ref, c_ref = _apply(layer, x[:1, 3:], _positions(1, 5), layer.init_cache(1, 5, jnp.float32))
  np.testing.assert_allclose(y_left[0, 3:], y_ref[0], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(c_left.buffer, c_ref.buffer, atol=0)


def test_packed_segments_match_separate_sequences():
  layer, config = _layer()
  x = _x(config, 1, 7, seed=3)
  seg = jnp.array([[0, 0, 0, 1, 1, 1, 1]])
  y, _ = _apply(layer, x, _positions(1, 7), None, None, seg)
  first, _ = _apply(layer, x[:, :3], _positions(1, 3))
  second, _ = _apply(layer, x[:, 3:], _positions(1, 4))
  np.testing.assert_allclose(y, np.concatenate([first, second], 1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mixer", [("base_conv", "attention"), ("base_conv", "gla"), (WIDE, "ovq")])
def test_generate_greedy_matches_full_recompute(mixer):
  """Zoology-style hybrids (conv layer, then the recall layer) decode as they run in full."""
  config = _config(mixer)
  model = Transformer(config, rngs=nnx.Rngs(0))
  assert_greedy_generate_matches_recompute(model, high=config.vocab_size, n_new=5)


def test_gradients_reach_every_parameter_and_sharding_rules_cover_them():
  from reasoning_jax import sharding
  from reasoning_jax.models.partition_rules import rules_for

  config = _config(("base_conv", "attention"))
  model = Transformer(config, rngs=nnx.Rngs(0))
  ids = jnp.asarray(np.random.RandomState(3).randint(0, config.vocab_size, (2, 9)))
  grads = nnx.grad(lambda m: jnp.mean(jax.nn.log_softmax(m(ids))[..., 0]))(model)
  for path, leaf in jax.tree_util.tree_leaves_with_path(nnx.state(grads)["layers"][0]["mixer"]):
    assert float(jnp.max(jnp.abs(leaf))) > 0, jax.tree_util.keystr(path)
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  specs = sharding.param_specs(nnx.state(model, nnx.Param), rules_for(config.family), mesh)
  mixer = specs["layers"][0]["mixer"]
  assert set(mixer) == {"conv_weight", "conv_bias", "proj", "proj_bias"}


def test_bad_inputs_raise():
  layer, config = _layer()
  x = _x(config, 1, 4)
  with pytest.raises(TypeError, match="ConvCache"):
    layer(x, positions=_positions(1, 4), cache=object())
  with pytest.raises(ValueError, match="segment_ids"):
    layer(
      x,
      positions=_positions(1, 4),
      cache=layer.init_cache(1, 4),
      segment_ids=jnp.zeros((1, 4), jnp.int32),
    )
  with pytest.raises(ValueError, match="kernel_size"):
    make_conv_mixer("test_conv_bad", kernel_size=0)
  with pytest.raises(ValueError, match="history"):
    causal_depthwise_conv(x, jnp.ones((3, config.hidden_size)), history=jnp.zeros((1, 1, 2)))
