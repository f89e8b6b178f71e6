"""The `Tokenizer` interface shared by every tokenizer.

Subclasses implement `vocab_size`, `pad_id`, `bos_id`, `eos_id`, `encode` and `decode`;
`encode_batch`/`decode_batch` (right-padded `np.int32` arrays ready to feed to a JAX model)
and the id checks are implemented here on top of them.
"""

from __future__ import annotations

import abc
from typing import Any, Optional, Sequence

import numpy as np

from reasoning_jax.tokenizers.batching import check_batch_args, pad_sequences, row_lengths


class Tokenizer(abc.ABC):
  """Interface shared by all tokenizers.

  Subclasses implement `vocab_size`, `pad_id`, `bos_id`, `eos_id`, `encode`
  and `decode`; the batch methods are implemented here on top of them.
  """

  @property
  @abc.abstractmethod
  def vocab_size(self) -> int:
    """Number of ids, including added/special tokens; valid ids are `[0, vocab_size)`."""

  @property
  @abc.abstractmethod
  def pad_id(self) -> Optional[int]:
    """Id used for right padding, or None if the tokenizer has none."""

  @property
  @abc.abstractmethod
  def bos_id(self) -> Optional[int]:
    """Beginning-of-sequence id, or None if the tokenizer has none."""

  @property
  @abc.abstractmethod
  def eos_id(self) -> Optional[int]:
    """End-of-sequence id, or None if the tokenizer has none."""

  @abc.abstractmethod
  def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    """Encodes one text.

    Args:
      text: The text to encode.
      add_bos: Prepend `bos_id` (ValueError if the tokenizer has none).
      add_eos: Append `eos_id` (ValueError if the tokenizer has none).

    Returns:
      The token ids.
    """

  @abc.abstractmethod
  def decode(self, ids: Any, *, skip_special_tokens: bool = True) -> str:
    """Decodes one sequence of ids.

    Args:
      ids: A 1-D sequence or array of ints.
      skip_special_tokens: Drop special tokens (pad/bos/eos, ...) from the output.

    Returns:
      The text; invalid UTF-8 is replaced by U+FFFD.

    Raises:
      ValueError: If an id is outside `[0, vocab_size)`.
    """

  def _encode_texts(self, texts: Sequence[str]) -> list[list[int]]:
    """Encodes texts without special tokens; subclasses may override for speed."""
    return [self.encode(t) for t in texts]

  def encode_batch(
    self,
    texts: Sequence[str],
    *,
    add_bos: bool = False,
    add_eos: bool = False,
    max_length: Optional[int] = None,
    pad_to_multiple_of: Optional[int] = None,
    truncate: bool = False,
  ) -> tuple[np.ndarray, np.ndarray]:
    """Encodes texts into a right-padded id matrix.

    The width is the longest sequence (after bos/eos and truncation), rounded up
    to `pad_to_multiple_of` if given (which may exceed `max_length`).

    Args:
      texts: The texts to encode (a sequence of str, not a single str).
      add_bos: Prepend `bos_id` to every sequence.
      add_eos: Append `eos_id` to every sequence.
      max_length: Maximum sequence length, bos/eos included.
      pad_to_multiple_of: Round the width up to a multiple of this (limits recompiles).
      truncate: Cut sequences longer than `max_length` to their first
        `max_length` ids (which may drop the eos) instead of raising.

    Returns:
      `(ids, lengths)`: `ids` is int32 `[B, L]` padded with `pad_id`, `lengths`
      is int32 `[B]`.

    Raises:
      ValueError: If a sequence exceeds `max_length` and `truncate` is False, if
        padding is needed but `pad_id` is None, or on invalid arguments.
    """
    texts = check_batch_args(texts, max_length, pad_to_multiple_of)
    prefix, suffix = self._special_affixes(add_bos, add_eos)
    seqs = [prefix + ids + suffix for ids in self._encode_texts(texts)]
    return pad_sequences(
      seqs,
      self.pad_id,
      max_length=max_length,
      pad_to_multiple_of=pad_to_multiple_of,
      truncate=truncate,
    )

  def decode_batch(
    self,
    ids: Any,
    lengths: Any = None,
    *,
    skip_special_tokens: bool = True,
  ) -> list[str]:
    """Decodes a `[B, L]` id matrix row by row.

    Args:
      ids: Int array-like of shape `[B, L]`.
      lengths: Optional int array-like `[B]`; row `i` is cut to `ids[i, :lengths[i]]`.
        Without it whole rows are decoded and padding disappears only through
        `skip_special_tokens`.
      skip_special_tokens: Passed to `decode`.

    Returns:
      One string per row.

    Raises:
      ValueError: On bad shapes or lengths, or ids outside `[0, vocab_size)`.
    """
    arr, lens = row_lengths(ids, lengths)
    return [
      self.decode(row[: int(n)], skip_special_tokens=skip_special_tokens)
      for row, n in zip(arr, lens)
    ]

  @staticmethod
  def _required_id(name: str, value: Optional[int]) -> int:
    if value is None:
      raise ValueError(f"add_{name}=True but the tokenizer has no {name} token")
    return value

  def _special_affixes(self, add_bos: bool, add_eos: bool) -> tuple[list[int], list[int]]:
    """`([bos] or [], [eos] or [])`; ValueError if a requested token does not exist."""
    prefix = [self._required_id("bos", self.bos_id)] if add_bos else []
    suffix = [self._required_id("eos", self.eos_id)] if add_eos else []
    return prefix, suffix

  @staticmethod
  def _check_text(text: Any) -> None:
    if not isinstance(text, str):
      raise TypeError(f"text must be str, got {type(text).__name__}")

  def _check_ids(self, ids: Any) -> np.ndarray:
    """Returns `ids` as a 1-D int64 array, validating dtype, rank and range."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
      raise ValueError(f"decode expects a 1-D sequence of ids, got shape {arr.shape}")
    if arr.size == 0:
      return np.zeros((0,), dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
      raise TypeError(f"token ids must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= self.vocab_size)
    if bad.any():
      raise ValueError(
        f"token id {int(arr[np.argmax(bad)])} is out of range for vocab_size {self.vocab_size}"
      )
    return arr
