"""Causal (optionally sliding-window) grouped-query attention: the pure op.

Tensors are `[B, T, N, D]` for queries and `[B, S, K, D]` for keys/values, with
`N % K == 0` (grouped-query attention, arXiv:2305.13245). Masks are built from
*positions*, not from array indices, so the same op serves training (S == T),
prefill into a KV cache and single-token decode against a cache.

Mask convention (pinned by tests):
  * causal: query at position i sees key at position j iff j <= i;
  * sliding window w: additionally i - j < w, i.e. the query sees exactly w keys
    (itself and the w - 1 before it); the key exactly w positions back is OUT;
  * segment ids: a query only sees keys with the same segment id (packing);
  * kv_mask: keys with kv_mask == False are never seen (padding).

`implementation=None` picks the best available backend; "xla" is the readable
fp32-softmax reference that always works. An explicitly requested backend that
is not registered raises. The "pallas" backend is the flash-attention kernel of
`pallas_kernels.flash_attention`, which registers itself; `reasoning_jax.registry` imports it
on the first lookup of the name (a kernel plugin), so this module never imports it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from reasoning_jax import registry
from reasoning_jax.ops.attention_reference import attention_reference, make_attention_mask


def _check_inputs(q, k, v, q_positions, kv_positions, sliding_window):
  if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
    raise ValueError(
      f"q, k, v must be [B, T, N, D], [B, S, K, D], [B, S, K, D]; got shapes "
      f"{q.shape}, {k.shape}, {v.shape}"
    )
  if k.shape != v.shape:
    raise ValueError(f"k and v must have the same shape, got {k.shape} and {v.shape}")
  if q.shape[0] != k.shape[0] or q.shape[3] != k.shape[3]:
    raise ValueError(
      f"q {q.shape} and k {k.shape} must agree on batch (axis 0) and head_dim (axis 3)"
    )
  if q.shape[2] % k.shape[2]:
    raise ValueError(
      f"number of query heads N={q.shape[2]} must be a multiple of key/value heads "
      f"K={k.shape[2]} (grouped-query attention)"
    )
  if not (q.dtype == k.dtype == v.dtype):
    raise ValueError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
  if q_positions.shape != q.shape[:2]:
    raise ValueError(f"q_positions must be [B, T] = {q.shape[:2]}, got {q_positions.shape}")
  if kv_positions.shape != k.shape[:2]:
    raise ValueError(f"kv_positions must be [B, S] = {k.shape[:2]}, got {kv_positions.shape}")
  if sliding_window is not None and (not isinstance(sliding_window, int) or sliding_window <= 0):
    raise ValueError(f"sliding_window must be a positive int or None, got {sliding_window!r}")


registry.ATTENTION_IMPLEMENTATIONS.register("xla")(attention_reference)


def attention(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  *,
  q_positions: jax.Array | None = None,
  kv_positions: jax.Array | None = None,
  causal: bool = True,
  sliding_window: int | None = None,
  kv_mask: jax.Array | None = None,
  q_segment_ids: jax.Array | None = None,
  kv_segment_ids: jax.Array | None = None,
  scale: float | None = None,
  implementation: str | None = None,
  index_positions: bool | None = None,
) -> jax.Array:
  """Grouped-query attention with causal / sliding-window / segment / padding masks.

  Args:
    q: queries `[B, T, N, D]`.
    k: keys `[B, S, K, D]`, `N % K == 0`.
    v: values `[B, S, K, D]`.
    q_positions: `[B, T]` int positions of the queries (default `arange(T)`).
    kv_positions: `[B, S]` int positions of the keys (default `arange(S)`).
    causal: mask keys after the query.
    sliding_window: see the module docstring for the exact convention.
    kv_mask: `[B, S]` bool, False for padding keys.
    q_segment_ids, kv_segment_ids: `[B, T]`, `[B, S]` ints for packed sequences.
    scale: defaults to `D ** -0.5`.
    implementation: None (best available), "xla", or another registered backend.
    index_positions: static promise that q_positions == kv_positions == arange(T)
      up to a constant per row (and per segment when segment ids are given), so
      that blockwise kernels may mask on array indices. None: True iff both
      position arguments are None.

  Returns:
    `[B, T, N, D]` in the dtype of q.
  """
  b, t = q.shape[:2]
  s = k.shape[1] if k.ndim == 4 else None
  if index_positions is None:
    index_positions = q_positions is None and kv_positions is None
  if q_positions is None:
    q_positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
  if kv_positions is None and s is not None:
    kv_positions = jnp.broadcast_to(jnp.arange(s, dtype=jnp.int32), (b, s))
  _check_inputs(q, k, v, q_positions, kv_positions, sliding_window)
  mask_info = dict(
    causal=causal,
    sliding_window=sliding_window,
    kv_mask=kv_mask,
    q_segment_ids=q_segment_ids,
    kv_segment_ids=kv_segment_ids,
    index_positions=bool(index_positions) and s == t,
  )
  if implementation is None:
    implementation = _default_implementation(q, k, mask_info)
  fn = registry.ATTENTION_IMPLEMENTATIONS.get(
    registry.ATTENTION_IMPLEMENTATIONS.validate(implementation, argument="implementation")
  )
  mask = make_attention_mask(
    q_positions,
    kv_positions,
    causal=causal,
    sliding_window=sliding_window,
    kv_mask=kv_mask,
    q_segment_ids=q_segment_ids,
    kv_segment_ids=kv_segment_ids,
  )
  if scale is None:
    scale = q.shape[-1] ** -0.5
  return fn(q, k, v, mask, scale=scale, **mask_info)


def _default_implementation(q, k, mask_info) -> str:
  """ "pallas" on TPU/GPU when registered and able to express the mask, else "xla"."""
  if jax.default_backend() in ("tpu", "gpu") and "pallas" in registry.ATTENTION_IMPLEMENTATIONS:
    pallas = registry.ATTENTION_IMPLEMENTATIONS.get("pallas")
    if pallas.unsupported_reason(q, k, **mask_info) is None:
      return "pallas"
  return "xla"
