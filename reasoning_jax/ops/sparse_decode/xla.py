"""The XLA decode path of the sparse heads: kernels A and B's semantics, laid out for XLA.

Same results as `reference.py` (tests compare them), written for speed on the XLA backends:
the context knows its layer's heads statically, so each head's `[B, S, D]` cache column is
read by a static index (no gathered `[B, S, R, D]` copy of the cache, which made the
reference's R-axis einsums 2x slower on CPU), and the block scores come from the same pass over
the keys as the softmax: `qbar` (the GQA-mean query) is appended as one more query row, as
kernel A does. (Averaging the G logit rows instead, `mean_g (q_g . k)`, gives the same score
through a reduction over the non-minor axis of `[B, G, S]`, which XLA:CPU ran slower than the
dot itself inside the decode loop: `benchmarks/sparse_decode.py --section breakdown`.)
`heads` may be a tuple of ints (static, the fast layout) or an int array (falls back to the
reference).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp

from reasoning_jax.ops.sparse_decode.reference import (
  NEG_INF,
  DecodeKernels,
  check_decode_args,
  masked_softmax,
  gathered_block_sparse_decode,
  retrieval_decode_reference,
)


def _static(heads) -> tuple[int, ...] | None:
  if isinstance(heads, (tuple, list)) and all(isinstance(h, int) for h in heads):
    return tuple(heads)
  return None


def _softmax_out(logits, visible, v_head, dtype):
  """logits `[B, G, T]` f32 (scaled), visible `[B, 1, T]`, v `[B, T, D]` -> `[B, G, D]`."""
  probs = masked_softmax(logits, visible)
  out = jnp.einsum(
    "bgt,btd->bgd", probs.astype(v_head.dtype), v_head, preferred_element_type=jnp.float32
  )
  return out.astype(dtype)


def retrieval_decode_xla(
  q, k, v, lengths, heads: Sequence[int], *, block_size: int = 64, scale=None
):
  """`retrieval_decode_reference` with one pass over each head's keys (see the module)."""
  static = _static(heads)
  if static is None:
    return retrieval_decode_reference(q, k, v, lengths, heads, block_size=block_size, scale=scale)
  check_decode_args(q, k, v, lengths, jnp.asarray(static), block_size=block_size)
  b, s = k.shape[:2]
  scale = q.shape[-1] ** -0.5 if scale is None else scale
  visible = (jnp.arange(s)[None, :] < lengths[:, None])[:, None, :]  # [B, 1, S]
  g = q.shape[2]
  outs, scores = [], []
  for h in static:
    qbar = jnp.mean(q[:, h].astype(jnp.float32), axis=1, keepdims=True).astype(q.dtype)
    rows = jnp.concatenate([q[:, h], qbar], axis=1)  # [B, G + 1, D]: qbar as one more query
    raw = jnp.einsum("bgd,bsd->bgs", rows, k[:, :, h], preferred_element_type=jnp.float32)
    outs.append(_softmax_out(raw[:, :g] * scale, visible, v[:, :, h], q.dtype))
    pooled = jnp.where(visible[:, 0], raw[:, g], NEG_INF)  # qbar . k, [B, S]
    scores.append(jnp.max(pooled.reshape(b, s // block_size, block_size), axis=-1))
  return jnp.stack(outs, axis=1), jnp.stack(scores, axis=1)


def block_sparse_decode_xla(
  q, k, v, lengths, heads: Sequence[int], block_idx, *, block_size: int = 64, scale=None
):
  """`block_sparse_decode_reference` reading only the selected blocks of each head."""
  static = _static(heads)
  if static is None:
    return gathered_block_sparse_decode(
      q, k, v, lengths, heads, block_idx, block_size=block_size, scale=scale
    )
  check_decode_args(q, k, v, lengths, jnp.asarray(static), block_size=block_size)
  scale = q.shape[-1] ** -0.5 if scale is None else scale
  b = k.shape[0]
  rows = jnp.arange(b)[:, None]
  outs = []
  for r, h in enumerate(static):
    ids = block_idx[:, r]  # [B, n_sel]
    valid = ids >= 0
    tokens = jnp.where(valid, ids, 0)[..., None] * block_size + jnp.arange(block_size)
    tokens = tokens.reshape(b, -1)  # [B, T_sel]
    visible = (tokens < lengths[:, None]) & jnp.repeat(valid, block_size, axis=-1)
    kg, vg = k[rows, tokens, h], v[rows, tokens, h]  # [B, T_sel, D]
    raw = jnp.einsum("bgd,btd->bgt", q[:, h], kg, preferred_element_type=jnp.float32)
    outs.append(_softmax_out(raw * scale, visible[:, None, :], vg, q.dtype))
  return jnp.stack(outs, axis=1)


# The XLA backend of the sparse-decode context (the Pallas one is in pallas_kernels).
XLA_KERNELS = DecodeKernels(retrieval_decode_xla, block_sparse_decode_xla)
