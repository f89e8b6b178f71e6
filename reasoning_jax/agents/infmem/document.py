"""A document made ready for one episode: tokenized once, truncated, chunked and indexed."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from reasoning_jax.agents.infmem.chunking import Span, center_truncate, chunk_spans, unit_spans
from reasoning_jax.agents.infmem.config import InfMemConfig
from reasoning_jax.agents.infmem.retrieval import DocumentIndex


@dataclasses.dataclass
class Document:
  """Attributes:
  ids: the (center-truncated) token ids.
  original_tokens: the length before truncation.
  chunks, chunk_texts: the recurrent chunks and their decoded text.
  index: the BM25 index over the retrieval units (None for the MemAgent controller).
  index_seconds: time spent tokenizing units and building the index.
  """

  ids: list[int]
  original_tokens: int
  chunks: list[Span]
  chunk_texts: list[str]
  index: DocumentIndex | None
  index_seconds: float = 0.0

  @property
  def truncated(self) -> bool:
    return self.original_tokens > len(self.ids)

  @property
  def num_chunks(self) -> int:
    return len(self.chunks)


def prepare_document(
  text: Any, tokenizer: Any, config: InfMemConfig, *, name: str = "document"
) -> Document:
  """Tokenizes, center-truncates to `max_document_tokens`, chunks and (InfMem) indexes.

  Raises:
    TypeError: `text` is not a str.
    ValueError: the document is empty (no tokens): there is nothing to read.
  """
  if not isinstance(text, str):
    raise TypeError(f"{name} must be a str, got {type(text).__name__}")
  ids = list(tokenizer.encode(text))
  if not ids:
    raise ValueError(f"{name} is empty (0 tokens): an episode needs at least one chunk to read")
  original = len(ids)
  ids = center_truncate(ids, config.max_document_tokens)
  chunks = chunk_spans(len(ids), config.chunk_tokens)
  chunk_texts = [tokenizer.decode(ids[c.start : c.end]) for c in chunks]
  index, seconds = None, 0.0
  if config.controller == "infmem":
    start = time.perf_counter()
    units = unit_spans(chunks, config.unit_tokens, config.unit_overlap)
    index = DocumentIndex(units, [tokenizer.decode(ids[u.start : u.end]) for u in units], config)
    seconds = time.perf_counter() - start
  return Document(ids, original, chunks, chunk_texts, index, seconds)
