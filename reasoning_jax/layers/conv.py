"""Short causal convolution mixer (Zoology's BaseConv) with a constant-size generation cache.

"Zoology: Measuring and Improving Recall in Efficient Language Models" (Arora, Eyuboglu,
Timalsina, Johnson, Poli, Zou, Rudra, Ré; arXiv:2312.04927), Sec. 3 / App. (BaseConv). The
Zoology MQAR models are "hybrids" whose first layer mixes tokens with this gated short
convolution and whose second layer is the mixer under test; the convolution supplies the
local (previous-token) features a recall layer binds keys to values with, which position-free
mixers such as gated linear attention or OVQ cannot build on their own. Per channel c, with
`u` the (normed) mixer input:

    conv_t = b_c + sum_{j=0}^{K-1} w_{j,c} u_{t-j}            (depthwise, causal, u_{<0} = 0)
    y_t    = conv_t * (u_t W_p + b_p) + u_t                   (Zoology: `u_conv * u_proj + u`)

Registered as mixer "base_conv" with Zoology's DESIGN CHOICE defaults: kernel size 3, conv
bias on, no activation, and the inner `+ u` term kept (the block adds its own residual as
well, as in Zoology). Variants register under new names with `make_conv_mixer`.

Cache (`ConvCache`): the last `K - 1` inputs of each row, `[B, K - 1, H]`, so decode memory is
constant in the sequence length. Padding: inputs where `attention_mask` is 0 are zeroed, and a
multi-token call keeps the `K - 1` inputs ending at each row's last unmasked token (right- or
left-padded prompt blocks both leave every row's cache at the end of its own prompt). Packed
sequences: taps never cross a `segment_ids` boundary.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.layers.ffn import bias_param, dense_param

if TYPE_CHECKING:
  from reasoning_jax.models.config import ModelConfig


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class ConvCache:
  """The last `K - 1` mixer inputs of each row, oldest first: `buffer` `[B, K - 1, H]`."""

  buffer: jax.Array


def causal_depthwise_conv(
  u: jax.Array,
  weight: jax.Array,
  bias: jax.Array | None = None,
  *,
  history: jax.Array | None = None,
  segment_ids: jax.Array | None = None,
) -> jax.Array:
  """`y_t = bias + sum_j weight[j] * u_{t-j}` per channel, causal.

  Args:
    u: `[B, T, C]`.
    weight: `[K, C]`; `weight[j]` multiplies the input `j` steps back.
    bias: `[C]` or None.
    history: `[B, K - 1, C]` inputs before `u` (oldest first) or None (zeros).
    segment_ids: `[B, T]` int or None; a tap reading another segment's token reads zero.

  Returns:
    `[B, T, C]` in `u.dtype` (accumulated in float32).
  """
  if u.ndim != 3 or weight.ndim != 2 or weight.shape[1] != u.shape[2]:
    raise ValueError(
      f"u must be [B, T, C] and weight [K, C] with the same C, got {u.shape} and {weight.shape}"
    )
  k = weight.shape[0]
  b, t, c = u.shape
  if history is None:
    history = jnp.zeros((b, k - 1, c), u.dtype)
  elif history.shape != (b, k - 1, c):
    raise ValueError(f"history must be [B, K - 1, C] = {(b, k - 1, c)}, got {history.shape}")
  full = jnp.concatenate([history.astype(u.dtype), u], axis=1).astype(jnp.float32)
  w = weight.astype(jnp.float32)
  out = jnp.zeros((b, t, c), jnp.float32)
  for j in range(k):  # Static and short (K = 3 or 4): K shifted multiply-adds.
    tap = jax.lax.dynamic_slice_in_dim(full, k - 1 - j, t, axis=1)
    if segment_ids is not None and j:
      prev = jnp.pad(segment_ids, ((0, 0), (j, 0)), constant_values=-1)[:, :t]
      tap = jnp.where((prev == segment_ids)[..., None], tap, 0.0)
    out = out + w[j] * tap
  if bias is not None:
    out = out + bias.astype(jnp.float32)
  return out.astype(u.dtype)


def _last_inputs(history: jax.Array, u: jax.Array, attention_mask: jax.Array | None):
  """The `K - 1` inputs ending at each row's last unmasked token of `concat(history, u)`."""
  keep = history.shape[1]
  full = jnp.concatenate([history, u.astype(history.dtype)], axis=1)
  if attention_mask is None:
    return full[:, full.shape[1] - keep :]
  t = u.shape[1]
  valid = attention_mask != 0
  # Index in `u` of the last valid token; -1 when a row has none (its cache is unchanged).
  last = jnp.max(jnp.where(valid, jnp.arange(t)[None, :], -1), axis=1)
  start = last + 1  # In `full` coordinates the window is [last + 1, last + keep].
  return jax.vmap(lambda row, s: jax.lax.dynamic_slice_in_dim(row, s, keep, axis=0))(full, start)


@registry.MIXERS.register("base_conv")
class BaseConv(nnx.Module):
  """Zoology's gated short convolution. Kernels: conv `[K, H]`, projection `[H, H]`.

  Class attributes (set by `make_conv_mixer`; DESIGN CHOICE defaults shown):
    kernel_size: 3 (Zoology's BaseConv default).
    inner_residual: True, Zoology's `+ u` inside the mixer.
  """

  kernel_size: int = 3
  inner_residual: bool = True

  def __init__(self, config: ModelConfig, layer_idx: int, *, rngs: nnx.Rngs):
    self.layer_idx = layer_idx
    h = config.hidden_size
    if self.kernel_size < 1:
      raise ValueError(f"{type(self).__name__}: kernel_size must be >= 1, got {self.kernel_size}")
    self.hidden_size = h
    self.dtype = config.compute_dtype
    # Depthwise taps start near an identity-plus-noise filter scale (fan-in K).
    init = nnx.initializers.normal(stddev=self.kernel_size**-0.5)
    self.conv_weight = nnx.Param(init(rngs.params(), (self.kernel_size, h), config.params_dtype))
    self.conv_bias = bias_param((h,), config)
    self.proj = dense_param(rngs, (h, h), config)
    self.proj_bias = bias_param((h,), config)

  def init_cache(self, batch_size: int, max_length: int, dtype=None) -> ConvCache:
    del max_length  # Constant size.
    dtype = self.dtype if dtype is None else dtype
    return ConvCache(buffer=jnp.zeros((batch_size, self.kernel_size - 1, self.hidden_size), dtype))

  def __call__(
    self, x, *, positions, attention_mask=None, segment_ids=None, cache=None, implementation=None
  ):
    del positions, implementation  # Position-free; one XLA implementation.
    if cache is not None and not isinstance(cache, ConvCache):
      raise TypeError(
        f"{type(self).__name__} needs a ConvCache from its init_cache, got {type(cache).__name__}"
      )
    if cache is not None and segment_ids is not None:
      raise ValueError(
        "base_conv: segment_ids (packed sequences) cannot be combined with a generation cache"
      )
    u = x.astype(self.dtype)
    if attention_mask is not None:
      u = jnp.where((attention_mask != 0)[..., None], u, 0)
    history = None if cache is None else cache.buffer
    conv = causal_depthwise_conv(
      u, self.conv_weight[...], self.conv_bias[...], history=history, segment_ids=segment_ids
    )
    gate = jnp.einsum("bth,hg->btg", u, self.proj[...].astype(self.dtype))
    y = conv * (gate + self.proj_bias[...].astype(self.dtype))
    if self.inner_residual:
      y = y + u
    new_cache = None
    if cache is not None:
      new_cache = ConvCache(buffer=_last_inputs(cache.buffer, u, attention_mask))
    return y, new_cache


def make_conv_mixer(
  name: str, *, kernel_size: int = 3, inner_residual: bool = True, override: bool = False
) -> type[BaseConv]:
  """Registers (in `registry.MIXERS`) and returns a BaseConv variant named `name`."""
  if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1:
    raise ValueError(f"kernel_size must be an int >= 1, got {kernel_size!r}")
  attrs = dict(
    kernel_size=kernel_size,
    inner_residual=bool(inner_residual),
    __doc__=f"Short convolution registered as mixer {name!r}.",
    __module__=__name__,
  )
  cls = type("BaseConv_" + "".join(c if c.isalnum() else "_" for c in name), (BaseConv,), attrs)
  return registry.MIXERS.register(name, override=override)(cls)


__all__ = ["BaseConv", "ConvCache", "causal_depthwise_conv", "make_conv_mixer"]
