"""Decode attention for hybrid sparse heads: the readable references of kernels A and B.

"LycheeDecode: Accelerating Long-Context LLM Inference via Hybrid-Head Sparse Decoding"
(Lin et al., arXiv:2602.04541); `shared/methods/inference.md` sections 8.2 and 8.5. One decode
step attends the single new token of each row to a contiguous KV cache `[B, S, K, D]` (slot
index == position). Queries arrive grouped by KV head, `q [B, K, G, D]` (`G = N / K` query heads
share KV head `k`), and every function processes only the KV heads listed in `heads [R]`
(int32; one layer's retrieval heads, or its sparse heads), so the two kinds of head run as two
calls over contiguous work, the effect of the paper's weight re-ordering without moving weights.

  * `retrieval_decode_reference` (kernel A): dense attention of each processed head's G query
    rows over every visible token, fused with the block scores the selection needs:
    `scores[b, r, j] = max_{t in block j, t < lengths[b]} qbar . k_t` with `qbar` the mean of
    the G query rows (post-RoPE, post q-norm), raw logits (no `1/sqrt(D)`, no softmax), and
    `-inf` for a block with no visible token.
  * `block_sparse_decode_reference` (kernel B): attention of each processed head's G query
    rows restricted to the visible tokens of its selected blocks `block_idx[b, r, :]` (block ids,
    -1 = no block; the ids of one row are distinct).

`lengths[b]` is the number of visible slots of row b (its new token's position + 1): slots at or
beyond it are stale or unwritten and never seen. Scores and softmax run in float32; outputs are
in q's dtype. A row with no visible selected token returns zeros.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

NEG_INF = float("-inf")


def check_decode_args(q, k, v, lengths, heads, *, block_size: int) -> None:
  """Raises on shapes the decode attentions cannot take, naming the argument."""
  if q.ndim != 4:
    raise ValueError(f"q must be [B, K, G, D], got shape {tuple(q.shape)}")
  if k.ndim != 4 or k.shape != v.shape:
    raise ValueError(
      f"k and v must be the cache [B, S, K, D] with equal shapes, got {tuple(k.shape)} "
      f"and {tuple(v.shape)}"
    )
  b, kh, _, d = q.shape
  if k.shape[0] != b or k.shape[2] != kh or k.shape[3] != d:
    raise ValueError(
      f"q [B, K, G, D] = {tuple(q.shape)} and the cache [B, S, K, D] = {tuple(k.shape)} must "
      "agree on B, K and D"
    )
  if not isinstance(block_size, int) or block_size < 1 or k.shape[1] % block_size:
    raise ValueError(
      f"block_size={block_size!r} must be a positive int dividing the cache length S={k.shape[1]}"
    )
  if tuple(lengths.shape) != (b,):
    raise ValueError(f"lengths must be [B] = [{b}], got shape {tuple(lengths.shape)}")
  if heads.ndim != 1 or heads.shape[0] < 1:
    raise ValueError(f"heads must be a non-empty [R] vector of KV head ids, got {heads.shape}")


def _visible(lengths, s: int):
  return jnp.arange(s)[None, :] < lengths[:, None]  # [B, S]


def _gather_heads(q, k, v, heads):
  return jnp.take(q, heads, axis=1), jnp.take(k, heads, axis=2), jnp.take(v, heads, axis=2)


def masked_softmax(logits, mask):
  """Softmax of f32 `logits` over the last axis restricted to `mask` (broadcastable); a row with
  nothing visible gets all-zero weights instead of NaN."""
  logits = jnp.where(mask, logits, NEG_INF)
  peak = jnp.max(logits, axis=-1, keepdims=True)
  peak = jnp.where(jnp.isfinite(peak), peak, 0.0)
  weights = jnp.where(mask, jnp.exp(logits - peak), 0.0)
  total = jnp.sum(weights, axis=-1, keepdims=True)
  return weights / jnp.where(total > 0, total, 1.0)


def _masked_attention(qh, kh, vh, mask, scale):
  """qh [B, R, G, D], kh/vh [B, S, R, D], mask [B, R, S] -> [B, R, G, D] (zeros if empty)."""
  logits = jnp.einsum("brgd,bsrd->brgs", qh, kh, preferred_element_type=jnp.float32) * scale
  probs = masked_softmax(logits, mask[:, :, None, :])
  out = jnp.einsum("brgs,bsrd->brgd", probs, vh.astype(jnp.float32))
  return out.astype(qh.dtype)


def block_max_scores(qbar, k, lengths, *, block_size: int):
  """`max` over the visible tokens of each block of `qbar . k_t`: `[B, R, S / block_size]` f32.

  Args:
    qbar: `[B, R, D]` one selection query per processed head.
    k: `[B, S, R, D]` keys of those heads.
    lengths: `[B]` visible slots per row.
  """
  b, s = k.shape[:2]
  logits = jnp.einsum("brd,bsrd->brs", qbar, k, preferred_element_type=jnp.float32)
  logits = jnp.where(_visible(lengths, s)[:, None, :], logits, NEG_INF)
  return jnp.max(logits.reshape(b, logits.shape[1], s // block_size, block_size), axis=-1)


def retrieval_decode_reference(q, k, v, lengths, heads, *, block_size: int = 64, scale=None):
  """Kernel A's reference: dense decode attention and fused max-pooled block scores.

  Args:
    q: `[B, K, G, D]` the new token's queries, grouped by KV head.
    k, v: `[B, S, K, D]` the cache (the new token already written).
    lengths: `[B]` int32 visible slots per row.
    heads: `[R]` int32 KV heads to process.
    block_size: tokens per scored block (divides S).
    scale: softmax scale (default `D ** -0.5`).

  Returns:
    `(out [B, R, G, D], scores [B, R, S / block_size] float32)`.
  """
  check_decode_args(q, k, v, lengths, heads, block_size=block_size)
  scale = q.shape[-1] ** -0.5 if scale is None else scale
  qh, kh, vh = _gather_heads(q, k, v, heads)
  mask = jnp.broadcast_to(
    _visible(lengths, k.shape[1])[:, None, :],
    (q.shape[0],)
    + (
      heads.shape[0],
      k.shape[1],
    ),
  )
  out = _masked_attention(qh, kh, vh, mask, scale)
  qbar = jnp.mean(qh.astype(jnp.float32), axis=2).astype(qh.dtype)
  return out, block_max_scores(qbar, kh, lengths, block_size=block_size)


def masked_decode_reference(q, k, v, heads, mask, *, scale=None):
  """Attention of each processed head's G query rows over the slots where `mask [B, R, S]`.

  The token-mode path (sparse heads reading an arbitrary token set); zeros where empty.
  """
  scale = q.shape[-1] ** -0.5 if scale is None else scale
  qh, kh, vh = _gather_heads(q, k, v, heads)
  return _masked_attention(qh, kh, vh, mask, scale)


def block_mask(block_idx, lengths, *, s: int, block_size: int):
  """Token mask `[B, R, S]` of the visible tokens inside the selected blocks."""
  token_block = jnp.arange(s) // block_size  # [S]
  chosen = jnp.any(token_block[None, None, :, None] == block_idx[:, :, None, :], axis=-1)
  return chosen & _visible(lengths, s)[:, None, :]


def block_sparse_decode_reference(
  q, k, v, lengths, heads, block_idx, *, block_size: int = 64, scale=None
):
  """Kernel B's reference: attention restricted to the selected blocks of each head.

  Args:
    q, k, v, lengths, heads, block_size, scale: as in `retrieval_decode_reference`.
    block_idx: `[B, R, n_sel]` int32 distinct block ids per row (-1 = no block).

  Returns:
    `[B, R, G, D]` in q's dtype.
  """
  check_decode_args(q, k, v, lengths, heads, block_size=block_size)
  if block_idx.ndim != 3 or block_idx.shape[:2] != (q.shape[0], heads.shape[0]):
    raise ValueError(
      f"block_idx must be [B, R, n_sel] = [{q.shape[0]}, {heads.shape[0]}, n_sel], got "
      f"{tuple(block_idx.shape)}"
    )
  scale = q.shape[-1] ** -0.5 if scale is None else scale
  qh, kh, vh = _gather_heads(q, k, v, heads)
  mask = block_mask(block_idx, lengths, s=k.shape[1], block_size=block_size)
  return _masked_attention(qh, kh, vh, mask, scale)


def gathered_block_sparse_decode(
  q, k, v, lengths, heads, block_idx, *, block_size: int = 64, scale=None
):
  """`block_sparse_decode_reference` computed by gathering the selected blocks (XLA path).

  Reads `n_sel * block_size` tokens per head instead of masking all S: the cost a sparse head
  should have. Same arguments and result as the reference.
  """
  check_decode_args(q, k, v, lengths, heads, block_size=block_size)
  scale = q.shape[-1] ** -0.5 if scale is None else scale
  b = k.shape[0]
  qh = jnp.take(q, heads, axis=1)  # [B, R, G, D]
  valid_block = block_idx >= 0
  safe = jnp.where(valid_block, block_idx, 0)
  tokens = safe[..., None] * block_size + jnp.arange(block_size)  # [B, R, n_sel, blk]
  tokens = tokens.reshape(b, heads.shape[0], -1)  # [B, R, T_sel]
  visible = (tokens < lengths[:, None, None]) & jnp.repeat(valid_block, block_size, axis=-1)

  rows = jnp.arange(b)[:, None, None]
  head_ids = heads[None, :, None]

  def gather(cache):  # [B, S, K, D] -> [B, R, T_sel, D]: one gather of the selected slots.
    return cache[rows, tokens, head_ids]

  kg, vg = gather(k), gather(v)
  logits = jnp.einsum("brgd,brtd->brgt", qh, kg, preferred_element_type=jnp.float32) * scale
  probs = masked_softmax(logits, visible[:, :, None, :])
  out = jnp.einsum("brgt,brtd->brgd", probs, vg.astype(jnp.float32))
  return out.astype(q.dtype)


def per_query_block_scores(q, k, lengths, heads, *, block_size: int):
  """`[B, R, G, S / block_size]`: block max of each query row's own raw logits (the
  per-query-head selection ablation; the method pools the GQA-mean query instead)."""
  b, s = k.shape[:2]
  qh = jnp.take(q, heads, axis=1)
  kh = jnp.take(k, heads, axis=2)
  logits = jnp.einsum("brgd,bsrd->brgs", qh, kh, preferred_element_type=jnp.float32)
  logits = jnp.where(_visible(lengths, s)[:, None, None, :], logits, NEG_INF)
  r, g = logits.shape[1:3]
  return jnp.max(logits.reshape(b, r, g, s // block_size, block_size), axis=-1)


def per_query_block_sparse_decode(
  q, k, v, lengths, heads, block_idx, *, block_size: int = 64, scale=None
):
  """Kernel B's semantics with one block set per QUERY row: `block_idx [B, R, G, n_sel]`."""
  check_decode_args(q, k, v, lengths, heads, block_size=block_size)
  scale = q.shape[-1] ** -0.5 if scale is None else scale
  b = k.shape[0]
  qh = jnp.take(q, heads, axis=1)  # [B, R, G, D]
  valid = block_idx >= 0
  tokens = jnp.where(valid, block_idx, 0)[..., None] * block_size + jnp.arange(block_size)
  tokens = tokens.reshape(*block_idx.shape[:3], -1)  # [B, R, G, T_sel]
  visible = (tokens < lengths[:, None, None, None]) & jnp.repeat(valid, block_size, axis=-1)
  rows = jnp.arange(b)[:, None, None, None]
  head_ids = heads[None, :, None, None]
  kg, vg = k[rows, tokens, head_ids], v[rows, tokens, head_ids]  # [B, R, G, T_sel, D]
  logits = jnp.einsum("brgd,brgtd->brgt", qh, kg, preferred_element_type=jnp.float32) * scale
  probs = masked_softmax(logits, visible)
  return jnp.einsum("brgt,brgtd->brgd", probs, vg.astype(jnp.float32)).astype(q.dtype)


class DecodeKernels(NamedTuple):
  """A backend's pair of decode attentions (signatures of the two references)."""

  retrieval_decode: Callable[..., tuple[jax.Array, jax.Array]]
  block_sparse_decode: Callable[..., jax.Array]
