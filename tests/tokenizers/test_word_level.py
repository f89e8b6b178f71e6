"""Tests for `reasoning_jax.tokenizers.word_level` (closed-vocabulary word-level tokenizer)."""

from __future__ import annotations

import json
import random

import pytest

from reasoning_jax.data import multihop_task as mt
from reasoning_jax.tokenizers import load_tokenizer
from reasoning_jax.tokenizers.word_level import save_word_level, word_level_tokenizer


@pytest.fixture(scope="module")
def tok():
  return word_level_tokenizer(mt.vocabulary())


def test_ids_and_special_tokens(tok):
  assert tok.pad_id == 0 and tok.eos_token == "<|im_end|>" and tok.bos_id is None
  assert tok.eos_id == tok.token_to_id("<|im_end|>")
  assert set(tok.special_tokens) == {"<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"}
  for word in ("\n", "user", "assistant", "system", "<|unk|>"):
    assert tok.token_to_id(word) is not None
  assert tok.vocab_size == len(set(mt.vocabulary()) | {"user", "assistant", "system"}) + 6


def test_round_trip_on_pre_tokenized_text(tok):
  for seed in range(5):
    ex = mt.make_example(random.Random(seed), doc_tokens=500)
    for text in (ex["question"], ex["document"], ex["solution"]):
      ids = tok.encode(text)
      assert len(ids) == mt.count_tokens(text)  # One id per word piece.
      assert tok.token_to_id("<|unk|>") not in ids
      assert tok.decode(ids) == text


def test_newlines_survive_and_whitespace_is_dropped(tok):
  text = "Ada Moss slept .\nBen Cole slept .\n\nLima"
  ids = tok.encode(text)
  assert ids.count(tok.token_to_id("\n")) == 3
  assert tok.decode(ids) == text
  assert tok.encode("Ada  Moss\tslept.") == tok.encode("Ada Moss slept .")


def test_unknown_words_map_to_unk(tok):
  unk = tok.token_to_id("<|unk|>")
  ids = tok.encode("Ada Zorblax slept , ok")
  assert ids[1] == unk and ids[3] == unk and ids[4] == unk and len(ids) == 5
  assert tok.decode(ids) == "Ada <|unk|> slept <|unk|> <|unk|>"


def test_chatml_special_tokens_are_single_ids(tok):
  messages = [
    {"role": "system", "content": "What is the hometown of Ada Moss ?"},
    {"role": "user", "content": "Ada Moss slept ."},
    {"role": "assistant", "content": "So the answer is Lima ."},
  ]
  text = tok.apply_chat_template(messages, add_generation_prompt=True)
  ids = tok.encode(text)
  assert ids.count(tok.token_to_id("<|im_start|>")) == 4
  assert ids.count(tok.eos_id) == 3
  assert tok.token_to_id("<|unk|>") not in ids
  assert tok.decode(ids, skip_special_tokens=False) == text
  assert "<|im_end|>" not in tok.decode(ids)


def test_rejects_bad_words():
  with pytest.raises(ValueError, match="single word piece"):
    word_level_tokenizer(["two words"])
  with pytest.raises(ValueError, match="eos"):
    word_level_tokenizer(["a"], eos="<|eos|>")


@pytest.mark.parametrize("from_words", [False, True])
def test_save_and_load_round_trip(tok, tmp_path, from_words):
  directory = save_word_level(mt.vocabulary() if from_words else tok, tmp_path / "tok")
  assert json.loads((directory / "tokenizer_config.json").read_text())["eos_token"] == "<|im_end|>"
  loaded = load_tokenizer(directory)
  assert loaded.vocab_size == tok.vocab_size
  assert (loaded.eos_id, loaded.pad_id, loaded.bos_id) == (tok.eos_id, tok.pad_id, tok.bos_id)
  assert loaded.special_tokens == tok.special_tokens
  assert loaded.backend.get_vocab() == tok.backend.get_vocab()
  text = tok.apply_chat_template([{"role": "user", "content": "Ada Moss ?\nZorblax"}])
  assert loaded.encode(text) == tok.encode(text)
  ids = tok.encode(text)
  assert loaded.decode(ids, skip_special_tokens=False) == tok.decode(ids, skip_special_tokens=False)
