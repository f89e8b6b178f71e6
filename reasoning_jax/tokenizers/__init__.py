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

Modules (one concept each):

* `base`: the `Tokenizer` interface.
* `batching`: right-padded batch encoding and decoding helpers.
* `bpe`: `train_bpe`, a byte-level BPE trained here (Qwen2 pre-tokenization, ChatML).
* `byte`: `ByteTokenizer`.
* `chat_template`: `render_chatml` and the sandboxed jinja chat-template compiler.
* `hf_files`: reading `tokenizer_config.json`, `special_tokens_map.json`, `chat_template.jinja`.
* `hf`: `HFTokenizer`.
* `loading`: `load_tokenizer`.
* `padded`: `PaddedVocab` (an embedding with more rows than the tokenizer has ids).
* `saving`: `save_tokenizer`, an `HFTokenizer` written as a folder's tokenizer files.
* `verdict`: `verdict_token_id`, a judge's verdict word resolved in context, and `JudgeError`.

Example:
  >>> tok = load_tokenizer("byte")
  >>> ids, lengths = tok.encode_batch(["hi", "hello"], add_eos=True)
  >>> ids.shape, lengths.tolist()
  ((2, 6), [3, 6])
  >>> tok.decode_batch(ids, lengths)
  ['hi', 'hello']
"""

from __future__ import annotations

from reasoning_jax.tokenizers.base import Tokenizer
from reasoning_jax.tokenizers.byte import ByteTokenizer
from reasoning_jax.tokenizers.chat_template import render_chatml
from reasoning_jax.tokenizers.hf import HFTokenizer
from reasoning_jax.tokenizers.hf_files import (
  CHAT_TEMPLATE_FILE,
  SPECIAL_TOKENS_MAP_FILE,
  TOKENIZER_CONFIG_FILE,
  TOKENIZER_FILE,
  PathLike,
)
from reasoning_jax.tokenizers.loading import load_tokenizer
from reasoning_jax.tokenizers.padded import PaddedVocab, pad_vocab
from reasoning_jax.tokenizers.verdict import JudgeError, verdict_token_id

__all__ = [
  "Tokenizer",
  "ByteTokenizer",
  "HFTokenizer",
  "load_tokenizer",
  "PaddedVocab",
  "pad_vocab",
  "render_chatml",
  "PathLike",
  "TOKENIZER_FILE",
  "TOKENIZER_CONFIG_FILE",
  "SPECIAL_TOKENS_MAP_FILE",
  "CHAT_TEMPLATE_FILE",
  "JudgeError",
  "verdict_token_id",
]
