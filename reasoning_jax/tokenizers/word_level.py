"""A closed-vocabulary word-level tokenizer (one id per word piece) as an `HFTokenizer`.

For synthetic tasks written in pre-tokenized form (word pieces separated by single spaces,
e.g. `multihop_task`): each word piece (`\\w+` or one punctuation mark) is one token, spaces
are dropped and `"\\n"` is a token of its own. Decoding puts one space between pieces and none
around newlines or special tokens, so `decode(encode(t)) == t` for pre-tokenized `t`, and a
ChatML conversation of pre-tokenized turns decodes (keeping special tokens) to its rendering.
Words outside the vocabulary map to the unknown token.

Ids: the special tokens first (`<|pad|>`, `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` by
default), then the unknown token, `"\\n"`, and the words sorted. `<|im_end|>` is eos (chat
turns end with it), `<|pad|>` is pad, there is no bos. `save_word_level` writes a directory
that `load_tokenizer` reads back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence, Union

from reasoning_jax.tokenizers.hf import HFTokenizer
from reasoning_jax.tokenizers.hf_files import PathLike
from reasoning_jax.tokenizers.saving import save_tokenizer

__all__ = ["CHAT_WORDS", "DEFAULT_SPECIALS", "save_word_level", "word_level_tokenizer"]

DEFAULT_SPECIALS = ("<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>")
# Words the ChatML rendering (`render_chatml`) adds around messages; always in the vocabulary.
CHAT_WORDS = ("\n", "assistant", "system", "user")
_PIECE = re.compile(r"\w+|[^\w\s]")


def word_level_tokenizer(
  words: Iterable[str],
  *,
  specials: Sequence[str] = DEFAULT_SPECIALS,
  unk: str = "<|unk|>",
  eos: str = "<|im_end|>",
  pad: str = "<|pad|>",
) -> HFTokenizer:
  """Builds a word-level tokenizer over a closed vocabulary.

  Args:
    words: The vocabulary: word pieces (`\\w+` or one non-space, non-word character) or
      `"\\n"`; duplicates are dropped. `CHAT_WORDS` are added.
    specials: Special tokens (added as special tokens: never split, single ids).
    unk: The token unknown words map to.
    eos: The eos token, one of `specials`.
    pad: The pad token, one of `specials`.

  Returns:
    The tokenizer (an `HFTokenizer` without a chat template: it renders ChatML).

  Raises:
    ValueError: If a word is not a single word piece, or eos/pad is not a special token.
  """
  from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

  specials = list(dict.fromkeys(specials))
  for role, token in (("eos", eos), ("pad", pad)):
    if token not in specials:
      raise ValueError(f"{role} token {token!r} must be one of the specials {specials}")
  vocab_words = set(CHAT_WORDS)
  for w in words:
    if not isinstance(w, str) or (w != "\n" and _PIECE.fullmatch(w) is None):
      raise ValueError(f"vocabulary entries must be single word pieces or '\\n', got {w!r}")
    vocab_words.add(w)
  reserved = [*specials, unk]
  ordered = reserved + ["\n"] + sorted(vocab_words - {"\n"} - set(reserved))
  vocab = {token: i for i, token in enumerate(ordered)}

  tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
  tok.pre_tokenizer = pre_tokenizers.Sequence(
    [
      pre_tokenizers.Split(Regex(r"[^\S\n]+"), behavior="removed"),
      pre_tokenizers.Split(Regex(r"\w+|[^\w\s]|\n"), behavior="isolated"),
    ]
  )
  # WordPiece with a prefix no token has: joins tokens with single spaces; then no spaces
  # around newlines and special tokens.
  glue = [("\n", "\n")] + [(s, s) for s in specials]
  tok.decoder = decoders.Sequence(
    [
      decoders.WordPiece(prefix="\u0000##", cleanup=False),
      decoders.Fuse(),
      *(decoders.Replace(" " + s, s) for s, _ in glue),
      *(decoders.Replace(s + " ", s) for s, _ in glue),
    ]
  )
  tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
  # The unknown token is matched whole in text but is not special (decoding keeps it).
  tok.add_tokens([AddedToken(unk, special=False, normalized=False)])
  return HFTokenizer(tok, eos_token=eos, pad_token=pad, name="<word-level tokenizer>")


def save_word_level(
  tokenizer_or_words: Union[HFTokenizer, Iterable[str]], directory: PathLike
) -> Path:
  """Writes a word-level tokenizer as a directory `load_tokenizer` reads back.

  Args:
    tokenizer_or_words: A tokenizer from `word_level_tokenizer`, or words to build one from
      (with the default specials).
    directory: Created if missing; gets `tokenizer.json`, `tokenizer_config.json` and
      `special_tokens_map.json`.

  Returns:
    The directory.
  """
  tok = tokenizer_or_words
  if not isinstance(tok, HFTokenizer):
    tok = word_level_tokenizer(tok)
  return save_tokenizer(tok, directory)
