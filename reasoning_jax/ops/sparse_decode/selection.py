"""Which cache blocks (or tokens) a sparse head reads: top-k under a budget with forced anchors.

"LycheeDecode: Accelerating Long-Context LLM Inference via Hybrid-Head Sparse Decoding"
(Lin et al., arXiv:2602.04541), `shared/methods/inference.md` section 8.2: a retrieval head keeps
the attention sinks (the first `sink_tokens` positions) and the recent window (the last
`recent_tokens` visible positions) and fills the rest of its token budget with the top-scoring
blocks (block mode) or tokens (token mode). Sinks and recent tokens count toward the budget.

Block mode (the decode path and the kernels): the blocks holding a sink or a recent token are
forced; a block with no visible token is never chosen (its id is -1). When every visible block
fits in the budget, every one is chosen, so a budget of at least the cache length is dense.

Token mode (accuracy reference, not block aligned): a boolean mask over slots.

DESIGN CHOICE (block mode): the forced set is block-granular, so it may cover up to one block
more than `ceil(sink / blk) + ceil(recent / blk)` when the recent window straddles a boundary;
`min_blocks` is that worst case and the budget must cover it (`check_budget`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

FORCED = float("inf")


def min_blocks(sink_tokens: int, recent_tokens: int, block_size: int) -> int:
  """Most blocks the sinks and the recent window can span (the window may straddle a block)."""
  recent = math.ceil((recent_tokens - 1) / block_size) + 1 if recent_tokens > 0 else 0
  return math.ceil(sink_tokens / block_size) + recent


def check_budget(budget: int, *, sink_tokens: int, recent_tokens: int, block_size: int) -> int:
  """Validates a token budget for block selection; returns the number of blocks it buys."""
  for name, value, low in (
    ("budget", budget, 1),
    ("block_size", block_size, 1),
    ("sink_tokens", sink_tokens, 0),
    ("recent_tokens", recent_tokens, 0),
  ):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
      raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
  if budget % block_size:
    raise ValueError(f"budget={budget} must be a multiple of block_size={block_size}")
  n_select = budget // block_size
  need = min_blocks(sink_tokens, recent_tokens, block_size)
  if n_select < need:
    raise ValueError(
      f"budget={budget} tokens ({n_select} blocks of {block_size}) is below sinks + recent: "
      f"sink_tokens={sink_tokens} and recent_tokens={recent_tokens} can span {need} blocks "
      f"({need * block_size} tokens); raise budget or lower sink_tokens / recent_tokens"
    )
  return n_select


def forced_blocks(lengths, num_blocks: int, *, block_size: int, sink_tokens: int, recent_tokens):
  """`[B, num_blocks]` bool: blocks holding a sink or a recent visible token."""
  start = jnp.arange(num_blocks) * block_size  # [nb]
  end = start + block_size
  sink = start < sink_tokens
  recent_from = lengths[:, None] - recent_tokens
  recent = (end > recent_from) & (start < lengths[:, None])
  return (sink[None, :] | recent) & (start[None, :] < lengths[:, None])


def select_blocks(
  scores,
  lengths,
  *,
  n_select: int,
  block_size: int,
  sink_tokens: int,
  recent_tokens: int,
):
  """Top-`n_select` blocks per head with sinks and recent blocks forced.

  Args:
    scores: `[B, R, nb]` float block scores (`-inf` for blocks with no visible token).
    lengths: `[B]` visible slots per row.
    n_select: blocks kept per head (the budget in blocks, anchors included).

  Returns:
    `[B, R, n_select]` int32 distinct block ids, -1 where fewer than `n_select` blocks are
    visible. When `n_select >= nb`, ids are padded with -1 up to `n_select`.
  """
  nb = scores.shape[-1]
  start = jnp.arange(nb) * block_size
  visible = start[None, :] < lengths[:, None]  # [B, nb]
  forced = forced_blocks(
    lengths, nb, block_size=block_size, sink_tokens=sink_tokens, recent_tokens=recent_tokens
  )
  ranked = jnp.where(forced[:, None, :], FORCED, scores.astype(jnp.float32))
  # Among visible blocks, a NaN-free finite floor keeps ordering; invisible ones sink below.
  ranked = jnp.where(visible[:, None, :], jnp.maximum(ranked, -3.0e38), -jnp.inf)
  k = min(n_select, nb)
  top, ids = jax.lax.top_k(ranked, k)
  ids = jnp.where(jnp.isneginf(top), -1, ids).astype(jnp.int32)
  if k < n_select:
    ids = jnp.pad(ids, ((0, 0), (0, 0), (0, n_select - k)), constant_values=-1)
  return ids


def select_tokens(scores, lengths, *, budget: int, sink_tokens: int, recent_tokens: int):
  """Token-mode selection: `[B, R, S]` bool, sinks + recent + top-(budget - anchors) tokens.

  Args:
    scores: `[B, R, S]` raw `qbar . k` logits.
    lengths: `[B]` visible slots per row.
    budget: tokens kept per head, anchors included (`>= sink_tokens + recent_tokens`).
  """
  if budget < sink_tokens + recent_tokens:
    raise ValueError(
      f"budget={budget} is below sinks + recent ({sink_tokens} + {recent_tokens} tokens)"
    )
  s = scores.shape[-1]
  pos = jnp.arange(s)[None, :]
  visible = pos < lengths[:, None]
  anchors = ((pos < sink_tokens) | (pos >= lengths[:, None] - recent_tokens)) & visible
  ranked = jnp.where(anchors[:, None, :], FORCED, scores.astype(jnp.float32))
  ranked = jnp.where(visible[:, None, :], jnp.maximum(ranked, -3.0e38), -jnp.inf)
  k = min(budget, s)
  # A rank cut keeps exactly k (a threshold would keep extra tokens on ties).
  order = jnp.argsort(-ranked, axis=-1, stable=True)
  rank = jnp.argsort(order, axis=-1, stable=True)
  return (rank < k) & visible[:, None, :]
