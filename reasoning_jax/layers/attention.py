"""Multi-head / grouped-query self-attention mixer with RoPE and an optional KV cache.

Registered as mixer "attention" (and "sliding_attention", which uses
`config.sliding_window`). Covers Llama 3 (no bias), Qwen2 (q/k/v bias) and
Qwen3 (per-head q/k RMSNorm before RoPE). The math lives in
`reasoning_jax.ops.attention`; this module only holds parameters.

Mixer interface (every registered mixer follows it):
  * `__init__(config, layer_idx, *, rngs)`;
  * `__call__(x [B, T, H], *, positions [B, T], attention_mask [B, T] | None,
    segment_ids [B, T] | None, cache | None) -> (y [B, T, H], cache)`;
  * `init_cache(batch_size, max_length, dtype) -> cache pytree`. Attention keeps
    a `KVCache`; recurrent mixers keep a constant-size state instead.
With a cache, the T new tokens of row b occupy cache slots
`positions[b, 0] ... positions[b, 0] + T - 1` (slot index == position).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.layers.ffn import bias_param, dense_param
from reasoning_jax.layers.projection import project
from reasoning_jax.layers.norms import RMSNorm
from reasoning_jax.layers.rope import apply_rope, attention_factor, inverse_frequencies, rope_tables
from reasoning_jax.ops.attention import attention as attention_op

if TYPE_CHECKING:
  from reasoning_jax.models.config import ModelConfig


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class KVCache:
  """Preallocated keys and values, `[B, S, K, D]` each (slot index == position).

  `rollback_by_length` (a class attribute, not a pytree field): every entry is indexed by
  position and attention is causal on positions, so a decoder that wrote slots past a row's
  committed length (speculative drafts that were then rejected) rolls the cache back by
  moving the row's length: the stale slots are invisible and get overwritten. Recurrent
  states (GLA, OVQ, convolution buffers) cannot be rolled back this way and lack the flag.
  """

  rollback_by_length: ClassVar[bool] = True

  k: jax.Array
  v: jax.Array

  @property
  def max_length(self) -> int:
    return self.k.shape[1]


def write_rows(buffer: jax.Array, update: jax.Array, starts: jax.Array) -> jax.Array:
  """Writes `update[b]` `[T, ...]` into `buffer[b]` `[S, ...]` at row offset `starts[b]`."""

  def one(buf, upd, start):
    index = (start,) + (0,) * (buf.ndim - 1)
    return jax.lax.dynamic_update_slice(buf, upd.astype(buf.dtype), index)

  return jax.vmap(one)(buffer, update, starts)


@registry.MIXERS.register("attention")
class Attention(nnx.Module):
  """Causal GQA self-attention with rotary embeddings.

  Kernels: q `[H, N, D]`, k/v `[H, K, D]`, o `[N, D, H]` (head axes explicit so
  partition rules can shard heads).
  """

  window_from_config = False

  def __init__(self, config: ModelConfig, layer_idx: int, *, rngs: nnx.Rngs):
    self.layer_idx = layer_idx
    h, n, kh, d = config.hidden_size, config.num_heads, config.num_kv_heads, config.head_dim
    self.num_heads, self.num_kv_heads, self.head_dim = n, kh, d
    self.dtype = config.compute_dtype
    self.sliding_window = config.sliding_window if self.window_from_config else None
    if self.window_from_config and self.sliding_window is None:
      raise ValueError(f"layer {layer_idx}: mixer 'sliding_attention' needs config.sliding_window")
    self.q_proj = dense_param(rngs, (h, n, d), config)
    self.k_proj = dense_param(rngs, (h, kh, d), config)
    self.v_proj = dense_param(rngs, (h, kh, d), config)
    self.o_proj = dense_param(rngs, (n, d, h), config)
    if config.attention_bias:
      self.q_bias = bias_param((n, d), config)
      self.k_bias = bias_param((kh, d), config)
      self.v_bias = bias_param((kh, d), config)
    else:
      self.q_bias = self.k_bias = self.v_bias = None
    self.o_bias = bias_param((h,), config) if config.attention_out_bias else None
    if config.qk_norm:
      self.q_norm = RMSNorm(d, eps=config.rms_norm_eps, param_dtype=config.params_dtype)
      self.k_norm = RMSNorm(d, eps=config.rms_norm_eps, param_dtype=config.params_dtype)
    else:
      self.q_norm = self.k_norm = None
    self.rope_theta, self.rope_scaling = config.rope_theta, config.rope_scaling

  def init_cache(self, batch_size: int, max_length: int, dtype=None) -> KVCache:
    dtype = self.dtype if dtype is None else dtype
    shape = (batch_size, max_length, self.num_kv_heads, self.head_dim)
    return KVCache(k=jnp.zeros(shape, dtype), v=jnp.zeros(shape, dtype))

  def _project(self, x, kernel, bias):
    y = project(x, kernel, self.dtype)  # [B, T, H] x [H, N, D]; LoRA-aware (layers/lora.py).
    if bias is not None:
      y = y + bias[...].astype(self.dtype)
    return y

  # Accepts `context=` (an attention context, see `__call__`); recurrent mixers do not.
  accepts_attention_context = True

  def __call__(
    self,
    x,
    *,
    positions,
    attention_mask=None,
    segment_ids=None,
    cache=None,
    implementation=None,
    context=None,
  ):
    q = self._project(x, self.q_proj, self.q_bias)
    k = self._project(x, self.k_proj, self.k_bias)
    v = self._project(x, self.v_proj, self.v_bias)
    if self.q_norm is not None:
      q, k = self.q_norm(q), self.k_norm(k)
    inv_freq = inverse_frequencies(self.head_dim, self.rope_theta, self.rope_scaling)
    cos, sin = rope_tables(positions, inv_freq, attention_factor(self.rope_scaling))
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)

    if context is not None:
      # The extension point of decode-time attention variants (sparse decoding,
      # `reasoning_jax.sparse`) and of role-learning forwards: the context computes this
      # layer's attention from the projected, rotated q/k/v (k/v: the whole cache when there
      # is one, written first) and may carry state across the layers of one forward call.
      if self.sliding_window is not None:
        raise ValueError(
          f"layer {self.layer_idx}: an attention context needs full attention, but this layer "
          f"is sliding-window (window {self.sliding_window})"
        )
      if cache is not None:
        starts = positions[:, 0]
        cache = KVCache(k=write_rows(cache.k, k, starts), v=write_rows(cache.v, v, starts))
        k, v = cache.k.astype(q.dtype), cache.v.astype(q.dtype)
      out = context.attend(self.layer_idx, q, k, v, positions)
    elif cache is None:
      out = attention_op(
        q,
        k,
        v,
        q_positions=positions,
        kv_positions=positions,
        sliding_window=self.sliding_window,
        kv_mask=attention_mask,
        q_segment_ids=segment_ids,
        kv_segment_ids=segment_ids,
        implementation=implementation,
        index_positions=True,
      )
    else:
      starts = positions[:, 0]
      cache = KVCache(k=write_rows(cache.k, k, starts), v=write_rows(cache.v, v, starts))
      b, s = cache.k.shape[:2]
      kv_positions = jnp.broadcast_to(jnp.arange(s, dtype=positions.dtype), (b, s))
      # Causality on positions hides both future slots and not-yet-written ones.
      out = attention_op(
        q,
        cache.k.astype(q.dtype),
        cache.v.astype(q.dtype),
        q_positions=positions,
        kv_positions=kv_positions,
        sliding_window=self.sliding_window,
        implementation=implementation,
      )
    y = project(out, self.o_proj, self.dtype, in_dims=2)  # [B, T, N, D] x [N, D, H].
    if self.o_bias is not None:
      y = y + self.o_bias[...].astype(self.dtype)
    return y, cache


@registry.MIXERS.register("sliding_attention")
class SlidingWindowAttention(Attention):
  """`Attention` restricted to the last `config.sliding_window` positions.

  Sliding-window (local) attention as in "Longformer: The Long-Document Transformer"
  (arXiv:2004.05150); the window convention is pinned in `reasoning_jax.ops.attention`.
  """

  window_from_config = True
