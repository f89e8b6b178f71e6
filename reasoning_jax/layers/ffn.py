"""Feed-forward blocks, registered by name in `registry.FFNS`.

Every FFN is constructed as `cls(config, layer_idx, *, rngs)` and called on
`[B, T, H]` activations, returning `[B, T, H]`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from flax import nnx

from reasoning_jax import registry

if TYPE_CHECKING:
  from reasoning_jax.models.config import ModelConfig


def dense_param(rngs: nnx.Rngs, shape, config: ModelConfig) -> nnx.Param:
  """A normal(0, initializer_range) weight in the configured parameter dtype."""
  init = jax.nn.initializers.normal(config.initializer_range)
  return nnx.Param(init(rngs.params(), shape, config.params_dtype))


def bias_param(shape, config: ModelConfig) -> nnx.Param:
  return nnx.Param(jnp.zeros(shape, config.params_dtype))


@registry.FFNS.register("swiglu")
class SwiGLU(nnx.Module):
  """SwiGLU feed-forward ("GLU Variants Improve Transformer", arXiv:2002.05202).

  `down(silu(x @ gate) * (x @ up))`; kernels are stored `[in, out]`.
  """

  def __init__(self, config: ModelConfig, layer_idx: int, *, rngs: nnx.Rngs):
    del layer_idx
    h, i = config.hidden_size, config.intermediate_size
    self.dtype = config.compute_dtype
    self.gate = dense_param(rngs, (h, i), config)
    self.up = dense_param(rngs, (h, i), config)
    self.down = dense_param(rngs, (i, h), config)
    if config.mlp_bias:
      self.gate_bias = bias_param((i,), config)
      self.up_bias = bias_param((i,), config)
      self.down_bias = bias_param((h,), config)
    else:
      self.gate_bias = self.up_bias = self.down_bias = None

  def __call__(self, x: jax.Array) -> jax.Array:
    dt = self.dtype
    gate = x @ self.gate[...].astype(dt)
    up = x @ self.up[...].astype(dt)
    if self.gate_bias is not None:
      gate = gate + self.gate_bias[...].astype(dt)
      up = up + self.up_bias[...].astype(dt)
    out = (jax.nn.silu(gate) * up) @ self.down[...].astype(dt)
    if self.down_bias is not None:
      out = out + self.down_bias[...].astype(dt)
    return out
