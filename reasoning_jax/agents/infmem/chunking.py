"""Cutting a tokenized document: center truncation, recurrent chunks, retrieval units.

Pure functions over token counts (memory_attention.md 1.1): a document longer than the cap
keeps its first and last halves; recurrent chunks are consecutive `chunk_tokens` spans;
retrieval units are `unit_tokens` windows with stride `unit_tokens - overlap` cut *inside*
each chunk (a unit never crosses a chunk boundary, so excluding the current chunk from
retrieval is exact), the last unit of a chunk ending at the chunk's end.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence


@dataclasses.dataclass(frozen=True)
class Span:
  """Token range `[start, end)` of the (truncated) document; `chunk` is its recurrent chunk."""

  chunk: int
  start: int
  end: int


def center_truncate(ids: Sequence[int], max_tokens: int) -> list[int]:
  """The first `max_tokens // 2` and the last `max_tokens // 2` ids when longer than the cap.

  As the released code: an odd cap loses one token (`ids[:cap//2] + ids[-cap//2:]`).
  """
  ids = list(ids)
  if len(ids) <= max_tokens:
    return ids
  half = max_tokens // 2
  return ids[:half] + ids[len(ids) - half :]


def chunk_spans(num_tokens: int, chunk_tokens: int) -> list[Span]:
  """Consecutive recurrent chunks covering `[0, num_tokens)`; the last one may be shorter."""
  if chunk_tokens < 1:
    raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
  return [
    Span(i, start, min(num_tokens, start + chunk_tokens))
    for i, start in enumerate(range(0, num_tokens, chunk_tokens))
  ]


def unit_spans(chunks: Sequence[Span], unit_tokens: int, overlap: int) -> list[Span]:
  """Retrieval units inside each chunk: windows of `unit_tokens`, stride `unit_tokens - overlap`.

  A 1200-token chunk with units of 500 and overlap 100 gives [0, 500), [400, 900),
  [800, 1200): the window stops once it reaches the chunk's end.
  """
  if not 0 <= overlap < unit_tokens:
    raise ValueError(f"overlap must be in [0, unit_tokens={unit_tokens}), got {overlap}")
  stride = unit_tokens - overlap
  units = []
  for c in chunks:
    start = c.start
    while start < c.end:
      end = min(c.end, start + unit_tokens)
      units.append(Span(c.chunk, start, end))
      if end >= c.end:
        break
      start += stride
  return units
