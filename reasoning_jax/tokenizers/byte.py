"""The dependency-free UTF-8 byte tokenizer (`ByteTokenizer`, `vocab_size == 259`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from reasoning_jax.tokenizers.base import Tokenizer


class ByteTokenizer(Tokenizer):
  """UTF-8 byte tokenizer: ids 0/1/2 are pad/bos/eos and byte `b` is id `b + 3`.

  Special tokens are never parsed from text: `encode("<eos>")` gives the bytes
  of the string. With `skip_special_tokens=False`, `decode` renders them as
  `<pad>`, `<bos>` and `<eos>`.
  """

  NUM_SPECIAL = 3
  OFFSET = 3
  pad_token = "<pad>"
  bos_token = "<bos>"
  eos_token = "<eos>"

  @property
  def vocab_size(self) -> int:
    return 256 + self.OFFSET

  @property
  def pad_id(self) -> int:
    return 0

  @property
  def bos_id(self) -> int:
    return 1

  @property
  def eos_id(self) -> int:
    return 2

  @property
  def special_tokens(self) -> dict[str, int]:
    """Special token strings mapped to their ids."""
    return {self.pad_token: 0, self.bos_token: 1, self.eos_token: 2}

  def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    self._check_text(text)
    prefix, suffix = self._special_affixes(add_bos, add_eos)
    ids = (
      np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64) + self.OFFSET
    ).tolist()
    return prefix + ids + suffix

  def decode(self, ids: Any, *, skip_special_tokens: bool = True) -> str:
    arr = self._check_ids(ids)
    is_byte = arr >= self.OFFSET
    if skip_special_tokens or is_byte.all():
      return (
        (arr[is_byte] - self.OFFSET).astype(np.uint8).tobytes().decode("utf-8", errors="replace")
      )
    names = {v: k for k, v in self.special_tokens.items()}
    parts: list[str] = []
    run: list[int] = []
    for i in arr.tolist():
      if i >= self.OFFSET:
        run.append(i - self.OFFSET)
      else:
        parts.append(bytes(run).decode("utf-8", errors="replace"))
        run = []
        parts.append(names[i])
    parts.append(bytes(run).decode("utf-8", errors="replace"))
    return "".join(parts)

  def __repr__(self) -> str:
    return "ByteTokenizer(vocab_size=259)"
