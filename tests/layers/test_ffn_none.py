"""The attention-only FFN "none" and the unconstrained ReLU FFN "relu" (reasoning_jax.layers.ffn)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.layers.ffn import NoFFN, ReluMLP
from reasoning_jax.models.config import ModelConfig, get_preset
from reasoning_jax.models.transformer import Transformer, count_params


def _attention_only(num_layers: int) -> ModelConfig:
  return get_preset("tiny-llama").replace(
    vocab_size=32, num_layers=num_layers, ffn="none", max_position_embeddings=64
  )


def test_none_is_registered():
  assert registry.FFNS.get("none") is NoFFN and registry.FFNS.get("relu") is ReluMLP


@pytest.mark.parametrize("num_layers", [1, 2])
def test_attention_only_model_builds_and_has_no_ffn_params(num_layers):
  config = _attention_only(num_layers)
  model = Transformer(config, rngs=nnx.Rngs(0))
  state = nnx.state(model, nnx.Param)
  paths = [
    "/".join(str(k) for k in path) for path, _ in jax.tree_util.tree_flatten_with_path(state)[0]
  ]
  assert not any("/ffn/" in p for p in paths)
  with_ffn = Transformer(config.replace(ffn="swiglu"), rngs=nnx.Rngs(0))
  h, i = config.hidden_size, config.intermediate_size
  assert count_params(with_ffn) - count_params(model) == num_layers * 3 * h * i
  logits = model(jnp.zeros((2, 5), jnp.int32))
  assert logits.shape == (2, 5, 32) and np.all(np.isfinite(logits))


def test_block_output_is_residual_plus_mixer():
  config = _attention_only(1)
  model = Transformer(config, rngs=nnx.Rngs(1))
  block = model.layers[0]
  x = jax.random.normal(jax.random.key(0), (2, 6, config.hidden_size))
  pos = jnp.broadcast_to(jnp.arange(6), (2, 6))
  out, _ = block(x, positions=pos)
  y, _ = block.mixer(block.input_norm(x), positions=pos)
  np.testing.assert_allclose(out, x + y, rtol=1e-6, atol=1e-6)


def test_mixed_per_layer_ffns():
  config = get_preset("tiny-llama").replace(num_layers=2, ffn=("none", "swiglu"))
  model = Transformer(config, rngs=nnx.Rngs(0))
  assert isinstance(model.layers[0].ffn, NoFFN)
  assert not isinstance(model.layers[1].ffn, NoFFN)


def test_relu_mlp_matches_formula_and_is_not_sign_constrained():
  config = get_preset("tiny-llama").replace(mlp_bias=True)
  ffn = ReluMLP(config, 0, rngs=nnx.Rngs(0))
  ffn.up_bias[...] = jnp.full(ffn.up_bias.shape, 0.01)
  x = jax.random.normal(jax.random.key(1), (3, config.hidden_size))
  want = jax.nn.relu(x @ ffn.up[...] + ffn.up_bias[...]) @ ffn.down[...] + ffn.down_bias[...]
  np.testing.assert_allclose(ffn(x), want, rtol=1e-6, atol=1e-6)
  assert (ffn.up[...] < 0).any() and (ffn.down[...] < 0).any()
