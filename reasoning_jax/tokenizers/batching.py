"""Batch encoding helpers: argument checks and right-padding of id lists into `np.int32` arrays.

`Tokenizer.encode_batch` and `Tokenizer.decode_batch` are thin wrappers over these, so every
tokenizer pads, truncates and cuts rows the same way.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from reasoning_jax.validation import check_positive_int


def check_batch_args(
  texts: Sequence[str], max_length: Optional[int], pad_to_multiple_of: Optional[int]
) -> list[str]:
  """Returns `texts` as a list after checking it and the width arguments of `encode_batch`."""
  if isinstance(texts, (str, bytes)):
    raise TypeError(
      "encode_batch expects a sequence of texts, got a single "
      f"{type(texts).__name__}; wrap it in a list"
    )
  texts = list(texts)
  for i, t in enumerate(texts):
    if not isinstance(t, str):
      raise TypeError(f"texts[{i}] must be str, got {type(t).__name__}")
  if max_length is not None:
    check_positive_int(max_length, "max_length")
  if pad_to_multiple_of is not None:
    check_positive_int(pad_to_multiple_of, "pad_to_multiple_of")
  return texts


def pad_sequences(
  seqs: list[list[int]],
  pad_id: Optional[int],
  *,
  max_length: Optional[int],
  pad_to_multiple_of: Optional[int],
  truncate: bool,
) -> tuple[np.ndarray, np.ndarray]:
  """Right-pads id lists into `(ids [B, L], lengths [B])`, both int32.

  The width is the longest sequence (after truncation to `max_length`), rounded up to
  `pad_to_multiple_of` if given. Raises ValueError when a sequence exceeds `max_length`
  without `truncate`, or when padding is needed but `pad_id` is None.
  """
  if max_length is not None:
    for i, seq in enumerate(seqs):
      if len(seq) > max_length:
        if not truncate:
          raise ValueError(
            f"text at index {i} encodes to {len(seq)} tokens, more than "
            f"max_length={max_length}; pass truncate=True to cut it"
          )
        seqs[i] = seq[:max_length]

  lengths = np.array([len(s) for s in seqs], dtype=np.int32)
  width = int(lengths.max()) if len(seqs) else 0
  if pad_to_multiple_of is not None:
    width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
  needs_pad = bool(len(seqs)) and bool((lengths < width).any())
  if needs_pad and pad_id is None:
    raise ValueError(
      "encode_batch needs padding but the tokenizer has no pad token (nor an eos "
      "token to fall back on); set pad_token"
    )
  out = np.full((len(seqs), width), pad_id if pad_id is not None else 0, dtype=np.int32)
  for i, seq in enumerate(seqs):
    out[i, : len(seq)] = seq
  return out, lengths


def row_lengths(ids: Any, lengths: Any) -> tuple[np.ndarray, np.ndarray]:
  """Returns `(ids, lengths)` of a `[B, L]` batch to decode; whole rows when `lengths` is None."""
  arr = np.asarray(ids)
  if arr.ndim != 2:
    raise ValueError(f"decode_batch expects ids of shape [B, L], got shape {arr.shape}")
  if lengths is None:
    return arr, np.full((arr.shape[0],), arr.shape[1], dtype=np.int64)
  lens = np.asarray(lengths)
  if lens.shape != (arr.shape[0],):
    raise ValueError(
      f"lengths must have shape ({arr.shape[0]},) to match ids {arr.shape}, got {lens.shape}"
    )
  if lens.size and (lens.min() < 0 or lens.max() > arr.shape[1]):
    raise ValueError(f"lengths must lie in [0, {arr.shape[1]}], got {lens.tolist()}")
  return arr, lens
