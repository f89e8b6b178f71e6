"""The in-document BM25 index: search that excludes the chunk being read, with diversity.

BM25 comes from `bm25s` (sparse-matrix scoring). Units are tokenized as the released code's
"enhanced" index does: lowercase `[a-z0-9_]+` runs plus CJK unigrams and bigrams. A search
(memory_attention.md 1.1 and 1.3):

1. scores every unit; the `max(candidate_pool, candidate_multiplier * top_k)` best are the
   candidates, in score order;
2. walks them skipping units of the excluded (current) chunk, units of a chunk that already
   gave `max_per_chunk`, and units whose term-set Jaccard with a chosen unit exceeds
   `dedup_jaccard`, until `top_k` are chosen;
3. with `top_up`, fills any shortfall from the full ranking (excluded chunk still excluded,
   no cap, no Jaccard), as the released code does.

An empty query (no terms) returns nothing.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import numpy as np

from reasoning_jax.agents.infmem.chunking import Span
from reasoning_jax.agents.infmem.config import InfMemConfig

_WORD = re.compile(r"[a-z0-9_]+")


def bm25_terms(text: str) -> list[str]:
  """Lowercase `[a-z0-9_]+` runs, then CJK characters and adjacent CJK pairs."""
  lower = text.lower()
  terms = _WORD.findall(lower)
  cjk = [ch for ch in lower if "\u4e00" <= ch <= "\u9fff"]
  if cjk:
    terms.extend(cjk)
    terms.extend(a + b for a, b in zip(cjk, cjk[1:]))
  return terms


def jaccard(a: frozenset, b: frozenset) -> float:
  union = len(a | b)
  return len(a & b) / union if union else 0.0


@dataclasses.dataclass(frozen=True)
class Hit:
  """One retrieved unit: its index, span and text, and its BM25 score."""

  unit: int
  span: Span
  text: str
  score: float


class DocumentIndex:
  """BM25 over one document's retrieval units."""

  def __init__(self, spans: Sequence[Span], texts: Sequence[str], config: InfMemConfig):
    """Args:
    spans: the units' token spans (`chunking.unit_spans`), one per text.
    texts: the units' decoded text.
    config: `bm25_method`, `k1`, `b` and the search flags.
    """
    import bm25s  # Imported here: the rest of the agent works without an index.

    if len(spans) != len(texts):
      raise ValueError(f"{len(spans)} unit spans but {len(texts)} unit texts")
    self.spans = list(spans)
    self.texts = list(texts)
    self.config = config
    self.terms = [bm25_terms(t) for t in texts]
    self._sets = [frozenset(t) for t in self.terms]
    self._chunks = np.array([s.chunk for s in self.spans], np.int64)
    self._bm25 = None
    if self.spans:
      self._bm25 = bm25s.BM25(method=config.bm25_method, k1=config.k1, b=config.b)
      self._bm25.index(self.terms, show_progress=False)

  def __len__(self) -> int:
    return len(self.spans)

  def scores(self, query: str) -> np.ndarray:
    """BM25 score of every unit for `query` (zeros for a query without terms)."""
    terms = bm25_terms(query)
    if not terms or self._bm25 is None:
      return np.zeros(len(self), np.float32)
    return np.asarray(self._bm25.get_scores(terms), np.float32)

  def search(self, query: str, top_k: int, *, exclude_chunk: int | None = None) -> list[Hit]:
    """Up to `top_k` diverse units for `query`, never from `exclude_chunk`."""
    if not bm25_terms(query) or not len(self):
      return []
    cfg = self.config
    scores = self.scores(query)
    allowed = np.ones(len(self), bool) if exclude_chunk is None else self._chunks != exclude_chunk
    ranked = np.argsort(-scores, kind="stable")
    pool = ranked[: min(len(self), max(cfg.candidate_pool, cfg.candidate_multiplier * top_k))]
    chosen: list[int] = []
    per_chunk: dict[int, int] = {}
    for i in pool:
      i = int(i)
      if not allowed[i]:
        continue
      chunk = int(self._chunks[i])
      if per_chunk.get(chunk, 0) >= cfg.max_per_chunk:
        continue
      if any(jaccard(self._sets[i], self._sets[j]) > cfg.dedup_jaccard for j in chosen):
        continue
      chosen.append(i)
      per_chunk[chunk] = per_chunk.get(chunk, 0) + 1
      if len(chosen) >= top_k:
        break
    if cfg.top_up and len(chosen) < top_k:
      taken = {self.texts[j] for j in chosen}
      for i in ranked:
        i = int(i)
        if len(chosen) >= top_k:
          break
        if allowed[i] and self.texts[i] not in taken:
          chosen.append(i)
          taken.add(self.texts[i])
    return [Hit(i, self.spans[i], self.texts[i], float(scores[i])) for i in chosen]
