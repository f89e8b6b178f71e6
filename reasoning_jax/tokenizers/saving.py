"""`save_tokenizer`: writes an `HFTokenizer` as the tokenizer files of a Hugging Face folder.

The folder gets `tokenizer.json`, `tokenizer_config.json` (special tokens, the chat template
when the tokenizer has one, `PreTrainedTokenizerFast` as the class) and
`special_tokens_map.json`: what `transformers.AutoTokenizer` and `load_tokenizer` read back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from reasoning_jax.tokenizers.hf import HFTokenizer
from reasoning_jax.tokenizers.hf_files import (
  SPECIAL_TOKENS_MAP_FILE,
  TOKENIZER_CONFIG_FILE,
  TOKENIZER_FILE,
  PathLike,
)

__all__ = ["save_tokenizer"]


def save_tokenizer(tokenizer: HFTokenizer, directory: PathLike) -> Path:
  """Writes `tokenizer`'s files into `directory` (created if missing); returns it.

  Raises:
    TypeError: `tokenizer` is not an `HFTokenizer` (the byte tokenizer has no files).
  """
  if not isinstance(tokenizer, HFTokenizer):
    raise TypeError(
      f"save_tokenizer needs an HFTokenizer, got {type(tokenizer).__name__} (the byte "
      "tokenizer has no files; name it as tokenizer='byte' instead)"
    )
  directory = Path(os.fspath(directory)).expanduser()
  directory.mkdir(parents=True, exist_ok=True)
  tokenizer.backend.save(str(directory / TOKENIZER_FILE))
  specials = {
    "bos_token": tokenizer.bos_token,
    "eos_token": tokenizer.eos_token,
    "pad_token": tokenizer.pad_token,
  }
  unk = json.loads(tokenizer.backend.to_str())["model"].get("unk_token")
  config = {
    "tokenizer_class": "PreTrainedTokenizerFast",
    **specials,
    "unk_token": unk,
    "additional_special_tokens": sorted(tokenizer.special_tokens, key=tokenizer.special_tokens.get),
    "clean_up_tokenization_spaces": False,
  }
  if tokenizer.chat_template is not None:
    config["chat_template"] = tokenizer.chat_template
  with open(directory / TOKENIZER_CONFIG_FILE, "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2)
  special_map = {k: v for k, v in {**specials, "unk_token": unk}.items() if v is not None}
  with open(directory / SPECIAL_TOKENS_MAP_FILE, "w", encoding="utf-8") as f:
    json.dump(special_map, f, indent=2)
  return directory
