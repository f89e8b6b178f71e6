"""Tokenizers: a dependency-free byte tokenizer and a local HF `tokenizer.json` wrapper.

Both implement the `Tokenizer` interface: `encode`/`decode` for single texts and
`encode_batch`/`decode_batch`, which produce and consume right-padded `np.int32`
arrays ready to feed to a JAX model.

* `ByteTokenizer` needs no files: ids 0, 1, 2 are pad/bos/eos and byte `b` is id
  `b + 3` (`vocab_size == 259`). Use it for synthetic tasks and tests.
* `HFTokenizer` wraps the `tokenizers` library around a local `tokenizer.json`
  (e.g. a Qwen checkpoint directory). It never touches the network. Special
  tokens and the chat template are read from `tokenizer_config.json`,
  `special_tokens_map.json` and `chat_template.jinja` when they sit next to it.

Example:
  >>> tok = load_tokenizer("byte")
  >>> ids, lengths = tok.encode_batch(["hi", "hello"], add_eos=True)
  >>> ids.shape, lengths.tolist()
  ((2, 6), [3, 6])
  >>> tok.decode_batch(ids, lengths)
  ['hi', 'hello']
"""

from __future__ import annotations

import abc
import functools
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = [
  "Tokenizer",
  "ByteTokenizer",
  "HFTokenizer",
  "load_tokenizer",
  "render_chatml",
]

PathLike = Union[str, "os.PathLike[str]"]

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"

_SPECIAL_ROLES = ("bos_token", "eos_token", "pad_token")


# ------------------------------------------------------------------------------
# Interface.
# ------------------------------------------------------------------------------


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
    if isinstance(texts, (str, bytes)):
      raise TypeError(
        "encode_batch expects a sequence of texts, got a single "
        f"{type(texts).__name__}; wrap it in a list"
      )
    texts = list(texts)
    for i, t in enumerate(texts):
      if not isinstance(t, str):
        raise TypeError(f"texts[{i}] must be str, got {type(t).__name__}")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
      raise ValueError(f"max_length must be a positive int or None, got {max_length!r}")
    if pad_to_multiple_of is not None and (
      not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1
    ):
      raise ValueError(
        f"pad_to_multiple_of must be a positive int or None, got {pad_to_multiple_of!r}"
      )
    prefix = [self._required_id("bos", self.bos_id)] if add_bos else []
    suffix = [self._required_id("eos", self.eos_id)] if add_eos else []

    seqs = [prefix + ids + suffix for ids in self._encode_texts(texts)]
    if max_length is not None:
      for i, seq in enumerate(seqs):
        if len(seq) > max_length:
          if not truncate:
            raise ValueError(
              f"text at index {i} encodes to {len(seq)} tokens, more than "
              f"max_length={max_length}; pass truncate=True to cut it"
            )
          seqs[i] = seq[:max_length]

    lengths = np.array([len(s) for s in seqs], dtype=np.int32)
    width = int(lengths.max()) if len(seqs) else 0
    if pad_to_multiple_of is not None:
      width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    needs_pad = bool(len(seqs)) and bool((lengths < width).any())
    if needs_pad and self.pad_id is None:
      raise ValueError(
        "encode_batch needs padding but the tokenizer has no pad token (nor an eos "
        "token to fall back on); set pad_token"
      )
    out = np.full((len(seqs), width), self.pad_id if self.pad_id is not None else 0, dtype=np.int32)
    for i, seq in enumerate(seqs):
      out[i, : len(seq)] = seq
    return out, lengths

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
    arr = np.asarray(ids)
    if arr.ndim != 2:
      raise ValueError(f"decode_batch expects ids of shape [B, L], got shape {arr.shape}")
    if lengths is None:
      lens = np.full((arr.shape[0],), arr.shape[1], dtype=np.int64)
    else:
      lens = np.asarray(lengths)
      if lens.shape != (arr.shape[0],):
        raise ValueError(
          f"lengths must have shape ({arr.shape[0]},) to match ids {arr.shape}, got {lens.shape}"
        )
      if lens.size and (lens.min() < 0 or lens.max() > arr.shape[1]):
        raise ValueError(f"lengths must lie in [0, {arr.shape[1]}], got {lens.tolist()}")
    return [
      self.decode(row[: int(n)], skip_special_tokens=skip_special_tokens)
      for row, n in zip(arr, lens)
    ]

  @staticmethod
  def _required_id(name: str, value: Optional[int]) -> int:
    if value is None:
      raise ValueError(f"add_{name}=True but the tokenizer has no {name} token")
    return value

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


# ------------------------------------------------------------------------------
# Byte tokenizer.
# ------------------------------------------------------------------------------


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
    if not isinstance(text, str):
      raise TypeError(f"text must be str, got {type(text).__name__}")
    ids = (
      np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64) + self.OFFSET
    ).tolist()
    return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

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


# ------------------------------------------------------------------------------
# Chat templates.
# ------------------------------------------------------------------------------


def render_chatml(
  messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True
) -> str:
  """Renders messages as ChatML (the Qwen format), without a default system prompt.

  Args:
    messages: Dicts with str `role` and `content`.
    add_generation_prompt: Append `<|im_start|>assistant\\n`.

  Returns:
    `<|im_start|>{role}\\n{content}<|im_end|>\\n` per message, then the prompt.
  """
  parts = []
  for i, m in enumerate(_check_messages(messages)):
    content = m.get("content")
    if not isinstance(content, str):
      raise ValueError(
        f"messages[{i}]['content'] must be a str for the ChatML fallback, got "
        f"{type(content).__name__}"
      )
    parts.append(f"<|im_start|>{m['role']}\n{content}<|im_end|>\n")
  if add_generation_prompt:
    parts.append("<|im_start|>assistant\n")
  return "".join(parts)


def _check_messages(messages: Any) -> list[Mapping[str, Any]]:
  if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
    raise TypeError(f"messages must be a list of dicts, got {type(messages).__name__}")
  for i, m in enumerate(messages):
    if not isinstance(m, Mapping):
      raise TypeError(f"messages[{i}] must be a dict, got {type(m).__name__}")
    if not isinstance(m.get("role"), str):
      raise ValueError(f"messages[{i}] needs a str 'role', got {m.get('role')!r}")
  return list(messages)


@functools.lru_cache(maxsize=16)
def _compile_chat_template(template: str) -> Any:
  """Compiles a chat template the way transformers does (sandboxed jinja2)."""
  try:
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment
  except ImportError as e:  # pragma: no cover - jinja2 is a declared dependency.
    raise ImportError("apply_chat_template needs jinja2: pip install jinja2") from e

  class _GenerationTag(jinja2.ext.Extension):
    """Accepts `{% generation %}...{% endgeneration %}` and renders the body."""

    tags = {"generation"}

    def parse(self, parser):
      lineno = next(parser.stream).lineno
      body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
      return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
      return caller()

  def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)

  def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # Like transformers: no HTML escaping, unlike jinja's builtin filter.
    return json.dumps(
      x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )

  def strftime_now(fmt):
    return datetime.now().strftime(fmt)

  env = ImmutableSandboxedEnvironment(
    trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, jinja2.ext.loopcontrols]
  )
  env.filters["tojson"] = tojson
  env.globals["raise_exception"] = raise_exception
  env.globals["strftime_now"] = strftime_now
  return env.from_string(template)


# ------------------------------------------------------------------------------
# Hugging Face `tokenizers` wrapper.
# ------------------------------------------------------------------------------


def _token_content(value: Any, source: str, key: str) -> Optional[str]:
  """Extracts a token string from a HF config value (str, {"content": str} or None)."""
  if value is None or isinstance(value, str):
    return value
  if isinstance(value, Mapping) and isinstance(value.get("content"), str):
    return value["content"]
  raise ValueError(
    f"{source}: {key} must be a string or a dict with a 'content' key, got {value!r}"
  )


def _read_json(path: Path) -> Any:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"malformed JSON in {path}: {e}") from e


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
    ids = {}
    for role, token in zip(_SPECIAL_ROLES, (bos_token, eos_token, pad_token)):
      if token is None:
        ids[role] = None
        continue
      if not isinstance(token, str):
        raise TypeError(f"{role} must be a str or None, got {type(token).__name__}")
      token_id = tokenizer.token_to_id(token)
      if token_id is None:
        raise ValueError(f"{role} {token!r} is not in the vocabulary of {name}")
      ids[role] = int(token_id)
    self._bos_id, self._eos_id, self._pad_id = (
      ids["bos_token"],
      ids["eos_token"],
      ids["pad_token"],
    )

    special = {
      str(t.content): int(i) for i, t in tokenizer.get_added_tokens_decoder().items() if t.special
    }
    for token, token_id in (
      (bos_token, self._bos_id),
      (eos_token, self._eos_id),
      (pad_token, self._pad_id),
    ):
      if token is not None:
        special[token] = token_id
    self._special_tokens = dict(sorted(special.items(), key=lambda kv: kv[1]))
    self._special_ids = np.array(sorted(set(special.values())), dtype=np.int64)

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
      _read_json(tok_file)  # Raises a clearer error if the JSON itself is invalid.
      raise ValueError(f"could not load tokenizer from {tok_file}: {e}") from e

    config: dict[str, Any] = {}
    if directory is not None:
      stm_file = directory / SPECIAL_TOKENS_MAP_FILE
      cfg_file = directory / TOKENIZER_CONFIG_FILE
      for file in (cfg_file, stm_file):  # Earlier files take precedence.
        if not file.is_file():
          continue
        data = _read_json(file)
        if not isinstance(data, dict):
          raise ValueError(f"{file} must hold a JSON object, got {type(data).__name__}")
        for role in _SPECIAL_ROLES:
          token = _token_content(data.get(role), str(file), role)
          if config.get(role) is None and token is not None:
            config[role] = token
        if file == cfg_file:
          config["chat_template"] = _select_chat_template(data.get("chat_template"), str(file))
      jinja_file = directory / CHAT_TEMPLATE_FILE
      if jinja_file.is_file():
        config["chat_template"] = jinja_file.read_text(encoding="utf-8")

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
    if not isinstance(text, str):
      raise TypeError(f"text must be str, got {type(text).__name__}")
    prefix = [self._required_id("bos", self.bos_id)] if add_bos else []
    suffix = [self._required_id("eos", self.eos_id)] if add_eos else []
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
    messages = _check_messages(messages)
    if self.chat_template is None:
      return render_chatml(messages, add_generation_prompt=add_generation_prompt)
    variables = {
      role: tok
      for role, tok in zip(_SPECIAL_ROLES, (self.bos_token, self.eos_token, self.pad_token))
      if tok is not None
    }
    variables.update(template_kwargs)
    return _compile_chat_template(self.chat_template).render(
      messages=messages, add_generation_prompt=add_generation_prompt, **variables
    )

  def __repr__(self) -> str:
    return (
      f"HFTokenizer({self.name!r}, vocab_size={self.vocab_size}, "
      f"bos={self.bos_token!r}, eos={self.eos_token!r}, pad={self.pad_token!r})"
    )


# ------------------------------------------------------------------------------
# Factory.
# ------------------------------------------------------------------------------


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
