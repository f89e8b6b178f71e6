"""Batch assembly: rows -> batch dicts of numpy arrays (stacking, packed-row renaming, copy-out).

Module-level classes so that grain worker processes can unpickle them.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np


def batch_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
  """Stacks numeric arrays; other values (str, lists) become object arrays."""
  out = {}
  for key in rows[0]:
    values = [r[key] for r in rows]
    if isinstance(values[0], np.ndarray) and values[0].dtype != object:
      out[key] = np.stack(values)
    elif all(isinstance(v, (bool, int, float)) for v in values):
      out[key] = np.asarray(values)
    else:
      arr = np.empty((len(values),), dtype=object)
      for i, v in enumerate(values):
        arr[i] = v
      out[key] = arr
  return out


class PackedToBatch:
  """Renames FirstFitPack outputs to `tokens/loss_mask/positions/segment_ids`."""

  def __call__(self, packed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
      "tokens": packed["tokens"].astype(np.int32),
      "loss_mask": packed["loss_mask"].astype(np.int32),
      "positions": packed["tokens_positions"].astype(np.int32),
      "segment_ids": packed["tokens_segment_ids"].astype(np.int32),
    }


class CopyOut:
  """Copies arrays out of grain's shared memory into ordinary numpy arrays."""

  def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
    return {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for k, v in batch.items()}
