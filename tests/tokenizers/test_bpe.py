"""Tests for `reasoning_jax.tokenizers.bpe` (a byte-level BPE trained here) and `saving`."""

from __future__ import annotations

import json
import random

import pytest

from reasoning_jax.tokenizers import load_tokenizer
from reasoning_jax.tokenizers.bpe import CHATML_SPECIALS, train_bpe
from reasoning_jax.tokenizers.byte import ByteTokenizer
from reasoning_jax.tokenizers.saving import save_tokenizer


def _corpus(n=400, seed=0):
  rng = random.Random(seed)
  texts = []
  for _ in range(n):
    a, b, c = (rng.randint(1, 10) for _ in range(3))
    texts.append(f"Make {a * b - c} from [{a}, {b}, {c}].")
    texts.append(f"{a} * ({b} - {c})")
  return texts


@pytest.fixture(scope="module")
def tok():
  return train_bpe(_corpus(), vocab_size=300)


def test_specials_come_first_and_name_eos_and_pad(tok):
  assert [tok.token_to_id(s) for s in CHATML_SPECIALS] == [0, 1, 2]
  assert (tok.pad_id, tok.eos_id, tok.bos_id) == (0, 2, None)
  assert set(tok.special_tokens) == set(CHATML_SPECIALS)
  # Merges were learnt: words of the corpus are single tokens, the vocabulary is capped.
  assert 259 < tok.vocab_size <= 300
  assert tok.encode("Make") == [tok.token_to_id("Make")]
  assert tok.encode(" from") == [tok.token_to_id("Ġfrom")]


def test_digits_are_single_tokens_and_every_text_round_trips(tok):
  ids = tok.encode("Make 98 from [14, 2, 9].")
  pieces = [tok.decode([i]) for i in ids]
  assert pieces[:4] == ["Make", " ", "9", "8"] and "14" not in pieces and "1" in pieces
  # Byte-level: text the corpus never showed (other scripts, emoji, tabs) still round-trips.
  for text in ("Make 98 from [14, 2, 9].", "unseen\ttext: é ü 漢字 🙂", "a\n\nb  c"):
    assert tok.decode(tok.encode(text)) == text


def test_special_tokens_in_text_map_to_single_ids_and_the_template_is_chatml(tok):
  ids = tok.encode("<|im_start|>user\nhi<|im_end|>")
  assert ids[0] == 1 and ids[-1] == 2 and 0 not in ids
  text = tok.apply_chat_template([{"role": "user", "content": "Make 4 from [1, 3]."}])
  assert text == "<|im_start|>user\nMake 4 from [1, 3].<|im_end|>\n<|im_start|>assistant\n"
  thinking_off = tok.apply_chat_template([{"role": "user", "content": "x"}], enable_thinking=False)
  assert thinking_off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_save_and_load_give_the_same_tokenizer(tok, tmp_path):
  save_tokenizer(tok, tmp_path)
  config = json.loads((tmp_path / "tokenizer_config.json").read_text())
  assert config["eos_token"] == "<|im_end|>" and config["pad_token"] == "<|endoftext|>"
  assert config["chat_template"] == tok.chat_template
  back = load_tokenizer(tmp_path)
  for text in _corpus(20, seed=1):
    assert back.encode(text) == tok.encode(text)
  assert (back.eos_id, back.pad_id, back.chat_template) == (
    tok.eos_id,
    tok.pad_id,
    tok.chat_template,
  )


def test_transformers_reads_the_folder_the_same_way(tok, tmp_path):
  transformers = pytest.importorskip("transformers", reason="needs the `hf` extra")
  save_tokenizer(tok, tmp_path)
  ref = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
  messages = [{"role": "user", "content": "Make 12 from [3, 4, 1]."}]
  for text in [*_corpus(20, seed=2), "<|im_start|>user\n7 - 2<|im_end|>"]:
    assert ref(text, add_special_tokens=False)["input_ids"] == tok.encode(text)
  rendered = ref.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
  assert rendered == tok.apply_chat_template(messages)
  assert ref.eos_token_id == tok.eos_id and ref.pad_token_id == tok.pad_id


def test_bad_arguments_name_the_problem():
  with pytest.raises(ValueError, match="vocab_size=100 must be >= 259"):
    train_bpe(["a"], vocab_size=100)
  with pytest.raises(ValueError, match="eos token '<eos>' must be one of the specials"):
    train_bpe(["a"], vocab_size=300, eos="<eos>")
  with pytest.raises(TypeError, match="needs an HFTokenizer, got ByteTokenizer"):
    save_tokenizer(ByteTokenizer(), "/tmp/unused")
