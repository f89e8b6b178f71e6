r"""A byte-level BPE trained here, split the way Qwen2/Qwen3 split text, as an `HFTokenizer`.

For a model trained from scratch that should still go through the Hugging Face path (its own
`tokenizer.json`, a chat template, special tokens): `train_bpe(texts, vocab_size=...)` learns
merges with the `tokenizers` library, offline, from `texts`. Pre-tokenization is the Qwen2
regex (letters with one leading non-letter, **single digits**, punctuation runs, newlines,
spaces) followed by byte-level mapping, so every byte string encodes (no unknown token) and
numbers are spelled digit by digit as in Qwen's vocabularies. The special tokens are ChatML's
(`<|endoftext|>` pad, `<|im_start|>`, `<|im_end|>` eos) and the chat template renders ChatML
with Qwen3's `enable_thinking=False` empty think block. `save_tokenizer` writes the folder.

Example:
  >>> tok = train_bpe(["Make 24 from [2, 3, 4]."] * 8, vocab_size=270)
  >>> tok.decode(tok.encode("Make 24 from [2, 3, 4].")) == "Make 24 from [2, 3, 4]."
  True
"""

from __future__ import annotations

from typing import Iterable, Sequence

from reasoning_jax.tokenizers.hf import HFTokenizer

__all__ = ["CHATML_SPECIALS", "CHATML_TEMPLATE", "QWEN2_SPLIT", "train_bpe"]

CHATML_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# Qwen2's pre-tokenizer pattern (tokenizer.json of Qwen2/Qwen2.5/Qwen3): `\p{N}` alone, so
# every digit is its own pre-token.
QWEN2_SPLIT = (
  r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
  r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CHATML_TEMPLATE = (
  "{% for message in messages %}"
  "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
  "{% endfor %}"
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
  "{% if enable_thinking is defined and enable_thinking is false %}"
  "{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}{% endif %}"
)


def train_bpe(
  texts: Iterable[str],
  *,
  vocab_size: int,
  specials: Sequence[str] = CHATML_SPECIALS,
  eos: str = "<|im_end|>",
  pad: str = "<|endoftext|>",
  chat_template: str | None = CHATML_TEMPLATE,
) -> HFTokenizer:
  """Trains a byte-level BPE on `texts`.

  Args:
    texts: The training corpus (e.g. a task's prompts and answers).
    vocab_size: Total ids: 256 byte symbols + `specials` + merges. Training stops early when
      no pair is left to merge, so the result may be smaller.
    specials: Special tokens (single ids, never split, recognised in text).
    eos: The eos token (turns end with it), one of `specials`.
    pad: The pad token, one of `specials`.
    chat_template: The jinja chat template (None: the ChatML fallback of `HFTokenizer`).

  Returns:
    The tokenizer; `save_tokenizer(tok, directory)` writes it.

  Raises:
    ValueError: `vocab_size` leaves no room for the byte alphabet and the specials, or
      eos / pad is not a special token.
  """
  from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

  specials = list(dict.fromkeys(specials))
  for role, token in (("eos", eos), ("pad", pad)):
    if token not in specials:
      raise ValueError(f"{role} token {token!r} must be one of the specials {specials}")
  alphabet = pre_tokenizers.ByteLevel.alphabet()
  if vocab_size < len(alphabet) + len(specials):
    raise ValueError(
      f"vocab_size={vocab_size} must be >= {len(alphabet) + len(specials)} (256 byte "
      f"symbols + {len(specials)} special tokens)"
    )
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.Sequence(
    [
      pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ]
  )
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
    vocab_size=vocab_size,
    special_tokens=[AddedToken(s, special=True, normalized=False) for s in specials],
    initial_alphabet=alphabet,
    show_progress=False,
  )
  tok.train_from_iterator(texts, trainer=trainer)
  return HFTokenizer(
    tok, eos_token=eos, pad_token=pad, chat_template=chat_template, name="<trained BPE>"
  )
