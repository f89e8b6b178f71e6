"""`HFTokenizer`: a local HF `tokenizer.json` (the `tokenizers` library) behind `Tokenizer`.

It never touches the network. Special tokens and the chat template are read from the files
next to `tokenizer.json` (see `hf_files.py`); chat templates render through `chat_template.py`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from reasoning_jax.tokenizers.base import Tokenizer
from reasoning_jax.tokenizers.chat_template import (
  check_messages,
  compile_chat_template,
  render_chatml,
)
from reasoning_jax.tokenizers.hf_files import (
  SPECIAL_ROLES,
  TOKENIZER_FILE,
  PathLike,
  read_json,
  read_tokenizer_config,
)


class HFTokenizer(Tokenizer):
  """A `tokenizers.Tokenizer` (from a local `tokenizer.json`) behind the `Tokenizer` API.

  `encode` never applies the tokenizer's post-processor (bos/eos are added only
  through `add_bos`/`add_eos`), but special tokens written in the text (e.g.
  `<|im_start|>`) are recognised and map to their single id.

  Attributes:
    bos_token: The bos token string, or None.
    eos_token: The eos token string, or None.
    pad_token: The pad token string (the eos token if none was configured), or None.
    chat_template: The jinja chat template, or None (ChatML is used then).
    name: Where the tokenizer was loaded from, for messages.
  """

  def __init__(
    self,
    tokenizer: Any,
    *,
    bos_token: Optional[str] = None,
    eos_token: Optional[str] = None,
    pad_token: Optional[str] = None,
    chat_template: Optional[str] = None,
    name: str = "<in-memory tokenizer>",
  ):
    """Wraps an already loaded tokenizer.

    Args:
      tokenizer: A `tokenizers.Tokenizer`.
      bos_token: Bos token string, or None.
      eos_token: Eos token string, or None.
      pad_token: Pad token string; None falls back to `eos_token`.
      chat_template: Jinja chat template, or None for ChatML.
      name: Source description used in error messages.

    Raises:
      ValueError: If a given special token is not in the vocabulary.
    """
    self._tok = tokenizer
    self.name = name
    self.chat_template = chat_template
    self._vocab_size = int(tokenizer.get_vocab_size(with_added_tokens=True))
    if pad_token is None:
      pad_token = eos_token
    self.bos_token, self.eos_token, self.pad_token = bos_token, eos_token, pad_token
    ids: dict[str, Optional[int]] = {}
    for role, token in self._role_tokens().items():
      if token is None:
        ids[role] = None
        continue
      if not isinstance(token, str):
        raise TypeError(f"{role} must be a str or None, got {type(token).__name__}")
      token_id = tokenizer.token_to_id(token)
      if token_id is None:
        raise ValueError(f"{role} {token!r} is not in the vocabulary of {name}")
      ids[role] = int(token_id)
    self._bos_id, self._eos_id, self._pad_id = (ids[role] for role in SPECIAL_ROLES)

    special = {
      str(t.content): int(i) for i, t in tokenizer.get_added_tokens_decoder().items() if t.special
    }
    for role, token in self._role_tokens().items():
      if token is not None:
        special[token] = ids[role]
    self._special_tokens = dict(sorted(special.items(), key=lambda kv: kv[1]))
    self._special_ids = np.array(sorted(set(special.values())), dtype=np.int64)

  def _role_tokens(self) -> dict[str, Optional[str]]:
    """`{"bos_token": ..., "eos_token": ..., "pad_token": ...}` (None where unset)."""
    return dict(zip(SPECIAL_ROLES, (self.bos_token, self.eos_token, self.pad_token)))

  @classmethod
  def from_file(
    cls,
    path: PathLike,
    *,
    bos_token: Optional[str] = None,
    eos_token: Optional[str] = None,
    pad_token: Optional[str] = None,
    chat_template: Optional[str] = None,
  ) -> "HFTokenizer":
    """Loads a local `tokenizer.json`, or a directory holding one. Never uses the network.

    For a directory, special tokens come from `tokenizer_config.json`, with gaps
    filled from `special_tokens_map.json`; the chat template comes from
    `chat_template.jinja`, else from `tokenizer_config.json`. Keyword arguments
    (when not None) override both.

    Args:
      path: Path to a `tokenizer.json` file or to a directory containing one.
      bos_token: Override for the bos token string.
      eos_token: Override for the eos token string.
      pad_token: Override for the pad token string (defaults to the eos token).
      chat_template: Override for the jinja chat template.

    Returns:
      The tokenizer.

    Raises:
      FileNotFoundError: If `path` (or `tokenizer.json` inside it) does not exist.
      ValueError: If a file is malformed or a special token is not in the vocabulary.
    """
    from tokenizers import Tokenizer as _RawTokenizer

    path = Path(os.fspath(path)).expanduser()
    if path.is_dir():
      directory, tok_file = path, path / TOKENIZER_FILE
    else:
      directory, tok_file = None, path
    if not tok_file.is_file():
      raise FileNotFoundError(f"tokenizer file not found: {tok_file}")

    try:
      raw = _RawTokenizer.from_file(str(tok_file))
    except Exception as e:  # tokenizers raises a bare Exception on bad content.
      read_json(tok_file)  # Raises a clearer error if the JSON itself is invalid.
      raise ValueError(f"could not load tokenizer from {tok_file}: {e}") from e

    config = read_tokenizer_config(directory) if directory is not None else {}
    overrides = dict(
      bos_token=bos_token, eos_token=eos_token, pad_token=pad_token, chat_template=chat_template
    )
    for key, value in overrides.items():
      if value is not None:
        config[key] = value
    return cls(raw, name=str(path), **config)

  # --- Tokenizer API. ---

  @property
  def vocab_size(self) -> int:
    return self._vocab_size

  @property
  def pad_id(self) -> Optional[int]:
    return self._pad_id

  @property
  def bos_id(self) -> Optional[int]:
    return self._bos_id

  @property
  def eos_id(self) -> Optional[int]:
    return self._eos_id

  @property
  def special_tokens(self) -> dict[str, int]:
    """Special token strings (added tokens flagged special, plus bos/eos/pad) to ids."""
    return dict(self._special_tokens)

  @property
  def backend(self) -> Any:
    """The underlying `tokenizers.Tokenizer`."""
    return self._tok

  def token_to_id(self, token: str) -> Optional[int]:
    """Returns the id of a single token string, or None if it is not in the vocabulary."""
    token_id = self._tok.token_to_id(token)
    return None if token_id is None else int(token_id)

  def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    self._check_text(text)
    prefix, suffix = self._special_affixes(add_bos, add_eos)
    return prefix + list(self._tok.encode(text, add_special_tokens=False).ids) + suffix

  def _encode_texts(self, texts: Sequence[str]) -> list[list[int]]:
    if not texts:
      return []
    return [list(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

  def decode(self, ids: Any, *, skip_special_tokens: bool = True) -> str:
    arr = self._check_ids(ids)
    if skip_special_tokens and self._special_ids.size:
      # Also drops bos/eos/pad that tokenizer.json does not flag as special,
      # as transformers does.
      arr = arr[~np.isin(arr, self._special_ids)]
    return self._tok.decode(arr.tolist(), skip_special_tokens=skip_special_tokens)

  def apply_chat_template(
    self,
    messages: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool = True,
    **template_kwargs: Any,
  ) -> str:
    """Renders a conversation to a prompt string.

    Uses `chat_template` in a sandboxed jinja2 environment set up like
    transformers' (`trim_blocks`, `lstrip_blocks`, `raise_exception`, `tojson`,
    `strftime_now`), with `messages`, `add_generation_prompt`, the configured
    `bos_token`/`eos_token`/`pad_token` and `template_kwargs` as variables.
    Without a template, falls back to ChatML (`render_chatml`).

    Args:
      messages: Dicts with `role` and `content`.
      add_generation_prompt: End with the header that opens an assistant turn.
      **template_kwargs: Extra template variables (e.g. `tools`, `enable_thinking`).

    Returns:
      The rendered text; encode it without `add_bos` if the template emits bos.

    Raises:
      jinja2.exceptions.TemplateError: If the template calls `raise_exception`
        or fails to render.
    """
    messages = check_messages(messages)
    if self.chat_template is None:
      return render_chatml(messages, add_generation_prompt=add_generation_prompt)
    variables = {role: tok for role, tok in self._role_tokens().items() if tok is not None}
    variables.update(template_kwargs)
    return compile_chat_template(self.chat_template).render(
      messages=messages, add_generation_prompt=add_generation_prompt, **variables
    )

  def __repr__(self) -> str:
    return (
      f"HFTokenizer({self.name!r}, vocab_size={self.vocab_size}, "
      f"bos={self.bos_token!r}, eos={self.eos_token!r}, pad={self.pad_token!r})"
    )
