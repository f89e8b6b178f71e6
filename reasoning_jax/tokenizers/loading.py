"""`load_tokenizer`: builds a tokenizer from a spec ("byte", a path, or a `Tokenizer`)."""

from __future__ import annotations

import os
from typing import Any, Union

from reasoning_jax.tokenizers.base import Tokenizer
from reasoning_jax.tokenizers.byte import ByteTokenizer
from reasoning_jax.tokenizers.hf import HFTokenizer


def load_tokenizer(spec: Union[str, "os.PathLike[str]", Tokenizer], **kwargs: Any) -> Tokenizer:
  """Builds a tokenizer from a spec.

  Args:
    spec: `"byte"` for `ByteTokenizer`; a path to a `tokenizer.json` or to a
      directory holding one for `HFTokenizer` (write `./byte` for a directory
      named `byte`); or a `Tokenizer`, returned unchanged.
    **kwargs: Passed to `HFTokenizer.from_file` (e.g. `eos_token=`).

  Returns:
    The tokenizer.

  Raises:
    FileNotFoundError: If the path does not exist.
    TypeError: If `spec` has the wrong type or kwargs are given for "byte".
  """
  if isinstance(spec, Tokenizer):
    if kwargs:
      raise TypeError(f"load_tokenizer got a Tokenizer instance and extra kwargs {sorted(kwargs)}")
    return spec
  if isinstance(spec, str) and spec == "byte":
    if kwargs:
      raise TypeError(f"the byte tokenizer takes no options, got {sorted(kwargs)}")
    return ByteTokenizer()
  if not isinstance(spec, (str, os.PathLike)):
    raise TypeError(f"tokenizer spec must be 'byte' or a path, got {type(spec).__name__}")
  return HFTokenizer.from_file(spec, **kwargs)
