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
from reasoning_jax.layers.projection import project

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
    gate = project(x, self.gate, dt)
    up = project(x, self.up, dt)
    if self.gate_bias is not None:
      gate = gate + self.gate_bias[...].astype(dt)
      up = up + self.up_bias[...].astype(dt)
    out = project(jax.nn.silu(gate) * up, self.down, dt)
    if self.down_bias is not None:
      out = out + self.down_bias[...].astype(dt)
    return out


@registry.FFNS.register("relu")
class ReluMLP(nnx.Module):
  """Non-gated ReLU feed-forward `down(relu(x @ up))` (the T5 / original Transformer FFN).

  The unconstrained counterpart of the "monotone" FFN (same shapes, same activation, weights
  of either sign), so the two differ only in the non-negativity constraint. Kernels `up`
  `[H, I]` and `down` `[I, H]` keep the SwiGLU names so the partition rules apply.
  """

  def __init__(self, config: ModelConfig, layer_idx: int, *, rngs: nnx.Rngs):
    del layer_idx
    h, i = config.hidden_size, config.intermediate_size
    self.dtype = config.compute_dtype
    self.up = dense_param(rngs, (h, i), config)
    self.down = dense_param(rngs, (i, h), config)
    if config.mlp_bias:
      self.up_bias = bias_param((i,), config)
      self.down_bias = bias_param((h,), config)
    else:
      self.up_bias = self.down_bias = None

  def __call__(self, x: jax.Array) -> jax.Array:
    dt = self.dtype
    hidden = project(x, self.up, dt)
    if self.up_bias is not None:
      hidden = hidden + self.up_bias[...].astype(dt)
    out = project(jax.nn.relu(hidden), self.down, dt)
    if self.down_bias is not None:
      out = out + self.down_bias[...].astype(dt)
    return out


@registry.FFNS.register("none")
class NoFFN(nnx.Module):
  """No feed-forward block: returns zeros, so `h + ffn(norm(h)) == h` (attention-only models).

  Has no parameters. The block's `post_mixer_norm` is still built (unused: its gradient is
  zero and XLA drops the dead computation under jit). Used for the 1- and 2-layer
  attention-only models of "In-context Learning and Induction Heads" (Olsson et al. 2022,
  arXiv:2209.11895).
  """

  def __init__(self, config: ModelConfig, layer_idx: int, *, rngs: nnx.Rngs):
    del config, layer_idx, rngs

  def __call__(self, x: jax.Array) -> jax.Array:
    return jnp.zeros_like(x)
