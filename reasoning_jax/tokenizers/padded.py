"""`PaddedVocab`: a tokenizer seen through an embedding with more rows than it has ids.

Checkpoints pad the embedding past the tokenizer (Qwen3: 151,936 rows, 151,669 ids), so a
sampler may emit an id the tokenizer does not know. `PaddedVocab` reports the embedding's
`vocab_size` and decodes such ids to nothing (as `transformers` does); everything else is the
wrapped tokenizer's.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence


from reasoning_jax.tokenizers.base import Tokenizer


class PaddedVocab(Tokenizer):
  """`tokenizer` with `vocab_size` raised to `vocab_size`; unknown ids decode to ""."""

  def __init__(self, tokenizer: Tokenizer, vocab_size: int):
    if vocab_size < tokenizer.vocab_size:
      raise ValueError(f"vocab_size={vocab_size} < the tokenizer's {tokenizer.vocab_size}")
    self.inner = tokenizer
    self._vocab_size = int(vocab_size)

  @property
  def vocab_size(self) -> int:
    return self._vocab_size

  @property
  def pad_id(self) -> Optional[int]:
    return self.inner.pad_id

  @property
  def bos_id(self) -> Optional[int]:
    return self.inner.bos_id

  @property
  def eos_id(self) -> Optional[int]:
    return self.inner.eos_id

  def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    return self.inner.encode(text, add_bos=add_bos, add_eos=add_eos)

  def _encode_texts(self, texts: Sequence[str]) -> list[list[int]]:
    return self.inner._encode_texts(texts)

  def decode(self, ids: Any, *, skip_special_tokens: bool = True) -> str:
    arr = self._check_ids(ids)
    arr = arr[arr < self.inner.vocab_size]
    return self.inner.decode(arr, skip_special_tokens=skip_special_tokens)

  def __getattr__(self, name: str) -> Any:  # apply_chat_template, chat_template, name, ...
    if name == "inner":
      raise AttributeError(name)
    return getattr(self.inner, name)

  def __repr__(self) -> str:
    return f"PaddedVocab({self.inner!r}, vocab_size={self.vocab_size})"


def pad_vocab(tokenizer: Tokenizer, vocab_size: int) -> Tokenizer:
  """`tokenizer`, wrapped in `PaddedVocab` when the embedding has more rows than it has ids."""
  if vocab_size == tokenizer.vocab_size:
    return tokenizer
  return PaddedVocab(tokenizer, vocab_size)


__all__ = ["PaddedVocab", "pad_vocab"]
