"""Reading a HF checkpoint directory's tokenizer files: special tokens and the chat template.

`tokenizer.json` itself is loaded by the `tokenizers` library (see `hf.py`); this module reads
`tokenizer_config.json`, `special_tokens_map.json` and `chat_template.jinja` next to it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"

# The special-token roles a tokenizer config may name, in the order bos, eos, pad.
SPECIAL_ROLES = ("bos_token", "eos_token", "pad_token")


def read_json(path: Path) -> Any:
  """Loads a JSON file; ValueError naming the file if it is malformed."""
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"malformed JSON in {path}: {e}") from e


def _token_content(value: Any, source: str, key: str) -> Optional[str]:
  """Extracts a token string from a HF config value (str, {"content": str} or None)."""
  if value is None or isinstance(value, str):
    return value
  if isinstance(value, Mapping) and isinstance(value.get("content"), str):
    return value["content"]
  raise ValueError(
    f"{source}: {key} must be a string or a dict with a 'content' key, got {value!r}"
  )


def _select_chat_template(value: Any, source: str) -> Optional[str]:
  """Returns the template string from a `chat_template` config entry."""
  if value is None or isinstance(value, str):
    return value
  if isinstance(value, list):  # [{"name": ..., "template": ...}, ...]
    named = {t.get("name"): t.get("template") for t in value if isinstance(t, Mapping)}
    if isinstance(named.get("default"), str):
      return named["default"]
    raise ValueError(
      f"{source}: chat_template list has no 'default' entry (names: {sorted(map(str, named))})"
    )
  raise ValueError(f"{source}: chat_template must be a string, got {type(value).__name__}")


def read_tokenizer_config(directory: Path) -> dict[str, Any]:
  """Special tokens and chat template configured in a checkpoint directory.

  Special tokens come from `tokenizer_config.json`, with gaps filled from
  `special_tokens_map.json`; the chat template comes from `chat_template.jinja`, else from
  `tokenizer_config.json`. Missing files are skipped.

  Returns:
    A dict with some of the keys `bos_token`, `eos_token`, `pad_token`, `chat_template`.

  Raises:
    ValueError: If a file is malformed.
  """
  config: dict[str, Any] = {}
  stm_file = directory / SPECIAL_TOKENS_MAP_FILE
  cfg_file = directory / TOKENIZER_CONFIG_FILE
  for file in (cfg_file, stm_file):  # Earlier files take precedence.
    if not file.is_file():
      continue
    data = read_json(file)
    if not isinstance(data, dict):
      raise ValueError(f"{file} must hold a JSON object, got {type(data).__name__}")
    for role in SPECIAL_ROLES:
      token = _token_content(data.get(role), str(file), role)
      if config.get(role) is None and token is not None:
        config[role] = token
    if file == cfg_file:
      config["chat_template"] = _select_chat_template(data.get("chat_template"), str(file))
  jinja_file = directory / CHAT_TEMPLATE_FILE
  if jinja_file.is_file():
    config["chat_template"] = jinja_file.read_text(encoding="utf-8")
  return config
