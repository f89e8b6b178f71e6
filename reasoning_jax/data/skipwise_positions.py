"""Skip-wise position ids: train on short windows, see the relative distances of long ones.

"PoSE: Efficient Context Window Extension of LLMs via Positional Skip-wise Training" (Zhu et
al., arXiv:2309.10400). A training row of `seq_len` tokens keeps its contiguous content, but
its position ids are cut into `num_chunks` chunks at random points and chunk i's ids are
shifted by a skip `u_i`, with `0 = u_0 <= u_1 <= ... <= u_{N-1} <= target_len - seq_len` drawn
uniformly (sorted). Ids stay strictly increasing and below `target_len`, so a RoPE model trained
this way meets query-key distances up to `target_len - 1` at the cost of `seq_len`-token rows.

Used by the sparse-decoding experiment (`configs/sparse_decode.py:pose`) so that its CPU-scale
passkey model, trained on 256-token rows, can be evaluated at lengths where a KV budget drops
most of the cache.
"""

from __future__ import annotations

import numpy as np


def skipwise_positions(
  num_rows: int,
  seq_len: int,
  *,
  target_len: int,
  num_chunks: int = 2,
  seed: int = 0,
) -> np.ndarray:
  """`[num_rows, seq_len]` int32 position ids with random skips between `num_chunks` chunks.

  Each row: cut points drawn without replacement from `1 .. seq_len - 1` (sorted), skips
  `u_1 <= ... <= u_{N-1}` drawn uniformly from `0 .. target_len - seq_len` (sorted), chunk i's
  ids `arange(start_i, end_i) + u_i`. `target_len == seq_len` gives `arange(seq_len)` rows.

  Raises:
    ValueError naming the argument when `seq_len < num_chunks`, `target_len < seq_len` or
    `num_chunks < 1`.
  """
  if not isinstance(num_chunks, int) or num_chunks < 1:
    raise ValueError(f"num_chunks must be a positive int, got {num_chunks!r}")
  if seq_len < num_chunks:
    raise ValueError(f"seq_len={seq_len} must be at least num_chunks={num_chunks}")
  if target_len < seq_len:
    raise ValueError(f"target_len={target_len} must be at least seq_len={seq_len}")
  rng = np.random.default_rng(seed)
  base = np.arange(seq_len, dtype=np.int64)
  out = np.empty((num_rows, seq_len), np.int32)
  spare = target_len - seq_len
  for row in range(num_rows):
    cuts = np.sort(rng.choice(np.arange(1, seq_len), num_chunks - 1, replace=False))
    skips = np.concatenate([[0], np.sort(rng.integers(0, spare + 1, num_chunks - 1))])
    chunk = np.searchsorted(cuts, base, side="right")  # chunk index of every token
    out[row] = base + skips[chunk]
  return out
