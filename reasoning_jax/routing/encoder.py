"""The frozen query encoder of R2-Router: mean-pooled final hidden states of a zoo model.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue et al., arXiv:2602.02823),
`shared/methods/inference.md` section 6.2: every query is embedded once by a frozen encoder
(`z_x`, the paper's Qwen3-Embedding-0.6B; the released config names Qwen/Qwen3-0.6B in pooling
mode) and the quality heads read only `z_x`. Here any zoo `Transformer` serves: the embedding is
the mean over the query's real tokens of `model.forward`'s final-normed hidden states, in
float32. A local HF folder (e.g. the embedding model itself, when a user has it) loads through
`QueryEncoder.from_hf`. Which encoder produced the embeddings is recorded (`EncoderInfo`), as
section 6.2 asks.

Queries are encoded in batches of `batch_size` rows (the last one padded with empty rows) and
widths rounded up to a power-of-two bucket (at least `min_bucket`, at most `max_length`), so a
stream of queries compiles a handful of shapes.

  >>> enc = QueryEncoder(model, tokenizer, name="tiny-qwen3")
  >>> Z = enc.encode(["What is 2 + 3?", "Name a prime."])        # [2, H] float32
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reasoning_jax.tokenizers import Tokenizer

__all__ = ["EncoderInfo", "QueryEncoder", "mean_pool"]


@dataclasses.dataclass(frozen=True)
class EncoderInfo:
  """Which encoder produced an embedding table (section 6.2: "record which one you used").

  Attributes:
    name: a label (a preset name, the folder's base name, or the caller's).
    path: the HF folder it was loaded from, or None for an in-memory model.
    hidden_size: the embedding width H.
    max_length: the longest query it accepts, in tokens (bos included).
    pooling: always "mean" (over the real tokens of the final-normed hidden states).
  """

  name: str
  path: str | None
  hidden_size: int
  max_length: int
  pooling: str = "mean"

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def mean_pool(hidden: jax.Array, lengths: jax.Array) -> jax.Array:
  """`[B, H]` float32 mean of `hidden [B, T, H]` over the first `lengths[b]` positions (rows of
  length 0 give zeros)."""
  t = hidden.shape[1]
  mask = (jnp.arange(t)[None, :] < lengths[:, None]).astype(jnp.float32)
  total = jnp.einsum("bth,bt->bh", hidden.astype(jnp.float32), mask)
  return total / jnp.maximum(lengths, 1).astype(jnp.float32)[:, None]


def _bucket(width: int, min_bucket: int, max_length: int) -> int:
  b = max(min_bucket, 1)
  while b < width:
    b *= 2
  return min(b, max_length)


class QueryEncoder:
  """A frozen zoo model used as R2-Router's query encoder.

  Args:
    model: a `reasoning_jax.models.Transformer` (anything with `forward(ids, attention_mask=)`
      returning final-normed hidden states and a `config` with `vocab_size`, `hidden_size`).
    tokenizer: its tokenizer; every id it can produce must have an embedding row.
    name: the label recorded in `info` (default: the model family).
    path: the folder it came from (recorded in `info`), or None.
    max_length: the longest query in tokens (default: the model's `max_position_embeddings`).
    batch_size: queries per forward pass (the last batch is padded to it).
    min_bucket: the smallest padded width.
    add_bos: prepend the tokenizer's bos (default: when it has one).

  Raises:
    ValueError: a tokenizer with more ids than the model's embedding has rows (names
      `tokenizer`), or a bad `max_length` / `batch_size` / `min_bucket`.
  """

  def __init__(
    self,
    model: Any,
    tokenizer: Tokenizer,
    *,
    name: str = "",
    path: str | None = None,
    max_length: int | None = None,
    batch_size: int = 32,
    min_bucket: int = 16,
    add_bos: bool | None = None,
  ):
    config = model.config
    if tokenizer.vocab_size > config.vocab_size:
      raise ValueError(
        f"tokenizer {tokenizer!r} has {tokenizer.vocab_size} ids but the encoder model's "
        f"embedding has vocab_size={config.vocab_size} rows; pass the tokenizer that belongs to "
        "the encoder model"
      )
    limit = int(config.max_position_embeddings)
    max_length = limit if max_length is None else max_length
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)):
      raise ValueError(f"max_length must be a positive int, got {max_length!r}")
    if not 1 <= max_length <= limit:
      raise ValueError(
        f"max_length must be in [1, max_position_embeddings={limit}], got {max_length}"
      )
    for arg, value in (("batch_size", batch_size), ("min_bucket", min_bucket)):
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{arg} must be a positive int, got {value!r}")
    self.tokenizer = tokenizer
    self.batch_size = int(batch_size)
    self.min_bucket = int(min_bucket)
    self.max_length = int(max_length)
    self.add_bos = tokenizer.bos_id is not None if add_bos is None else bool(add_bos)
    self.info = EncoderInfo(
      name=name or str(getattr(config, "family", type(model).__name__)),
      path=None if path is None else os.path.abspath(path),
      hidden_size=int(config.hidden_size),
      max_length=self.max_length,
    )
    graphdef, state = nnx.split(model)
    self._state = state

    @jax.jit
    def embed(state, ids, lengths):
      m = nnx.merge(graphdef, state)
      mask = jnp.arange(ids.shape[1])[None, :] < lengths[:, None]
      hidden, _ = m.forward(ids, attention_mask=mask)
      return mean_pool(hidden, lengths)

    self._embed = embed

  @classmethod
  def from_hf(
    cls, hf_dir: str, *, tokenizer: str = "", dtype: str = "", name: str = "", **kwargs: Any
  ) -> QueryEncoder:
    """An encoder from a local Hugging Face folder (config.json, safetensors, tokenizer.json),
    e.g. Qwen3-Embedding-0.6B; `tokenizer` overrides the folder's own. Keyword arguments go to
    the constructor."""
    from reasoning_jax.models.source import build_model, resolve_source

    src = resolve_source(hf_dir=hf_dir, tokenizer=tokenizer, dtype=dtype, flag="encoder")
    model = build_model(src)
    label = name or os.path.basename(os.path.normpath(src.hf_dir or hf_dir))
    return cls(model, src.tokenizer, name=label, path=src.hf_dir, **kwargs)

  @property
  def hidden_size(self) -> int:
    return self.info.hidden_size

  def tokenize(self, queries: Sequence[str]) -> list[list[int]]:
    """Token ids per query (bos included with `add_bos`); raises naming the query when one is
    longer than `max_length` or encodes to nothing."""
    if isinstance(queries, (str, bytes)) or not isinstance(queries, Sequence):
      raise TypeError(f"queries must be a sequence of str, got {type(queries).__name__}")
    prefix = [self.tokenizer.bos_id] if self.add_bos else []
    out = []
    for i, q in enumerate(queries):
      if not isinstance(q, str):
        raise TypeError(f"queries[{i}] must be a str, got {type(q).__name__}")
      ids = prefix + list(self.tokenizer.encode(q))
      if not ids:
        raise ValueError(f"queries[{i}] encodes to no tokens (an empty query)")
      if len(ids) > self.max_length:
        raise ValueError(
          f"queries[{i}] is {len(ids)} tokens, longer than the encoder's context "
          f"max_length={self.max_length} ({self.info.name}); shorten the query or raise "
          "max_length (at most the model's max_position_embeddings)"
        )
      out.append(ids)
    return out

  def encode(self, queries: Sequence[str]) -> np.ndarray:
    """`[N, H]` float32 embeddings of `queries`, in order."""
    seqs = self.tokenize(queries)
    pad = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0
    out = np.zeros((len(seqs), self.hidden_size), np.float32)
    for start in range(0, len(seqs), self.batch_size):
      chunk = seqs[start : start + self.batch_size]
      width = _bucket(max(len(s) for s in chunk), self.min_bucket, self.max_length)
      ids = np.full((self.batch_size, width), pad, np.int32)
      lengths = np.zeros(self.batch_size, np.int32)
      for r, s in enumerate(chunk):
        ids[r, : len(s)] = s
        lengths[r] = len(s)
      z = self._embed(self._state, jnp.asarray(ids), jnp.asarray(lengths))
      out[start : start + len(chunk)] = np.asarray(z)[: len(chunk)]
    return out

  __call__ = encode

  def __repr__(self) -> str:
    return f"QueryEncoder({self.info.name!r}, path={self.info.path!r}, H={self.hidden_size})"
