"""The attention mask convention and the readable reference, below every backend.

Both `reasoning_jax.ops.attention` (the dispatching op) and the Pallas flash-attention kernel
(`pallas_kernels.flash_attention`, which compares against this reference) import this
module; it imports neither, so the dependency is one-way. The mask convention is documented
in `reasoning_jax.ops.attention`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# A large finite negative number: fully masked rows give a uniform (not NaN) softmax.
_MASK_VALUE = -0.7 * float(jnp.finfo(jnp.float32).max)


def make_attention_mask(
  q_positions: jax.Array,
  kv_positions: jax.Array,
  *,
  causal: bool = True,
  sliding_window: int | None = None,
  kv_mask: jax.Array | None = None,
  q_segment_ids: jax.Array | None = None,
  kv_segment_ids: jax.Array | None = None,
) -> jax.Array:
  """Boolean mask `[B, 1, T, S]` (True = attend) following the module convention."""
  qp = q_positions[:, :, None]
  kp = kv_positions[:, None, :]
  mask = jnp.ones(jnp.broadcast_shapes(qp.shape, kp.shape), dtype=bool)
  if causal:
    mask &= kp <= qp
  if sliding_window is not None:
    mask &= (qp - kp) < sliding_window
  if kv_mask is not None:
    mask &= kv_mask.astype(bool)[:, None, :]
  if q_segment_ids is not None or kv_segment_ids is not None:
    if q_segment_ids is None or kv_segment_ids is None:
      raise ValueError("q_segment_ids and kv_segment_ids must be given together")
    mask &= q_segment_ids[:, :, None] == kv_segment_ids[:, None, :]
  return mask[:, None]


def attention_reference(q, k, v, mask, *, scale, **unused_mask_info):
  """Readable reference: fp32 scores and softmax, GQA by grouping query heads.

  Args:
    q: `[B, T, N, D]`; k, v: `[B, S, K, D]`; mask: `[B, 1, T, S]` bool.
    scale: multiplier of q.k.

  Returns:
    `[B, T, N, D]` in q's dtype.
  """
  b, t, n, d = q.shape
  kh = k.shape[2]
  qg = q.reshape(b, t, kh, n // kh, d)
  scores = jnp.einsum("btkgd,bskd->bkgts", qg, k, preferred_element_type=jnp.float32)
  scores = scores * scale
  scores = jnp.where(mask[:, :, None], scores, _MASK_VALUE)
  probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
  out = jnp.einsum("bkgts,bskd->btkgd", probs, v, preferred_element_type=jnp.float32)
  return out.reshape(b, t, n, d).astype(q.dtype)
