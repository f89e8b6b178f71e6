"""Tests for reasoning_jax.tokenizers (no network: tokenizers are trained in tmp_path)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoning_jax.tokenizers import (
  ByteTokenizer,
  HFTokenizer,
  Tokenizer,
  load_tokenizer,
  render_chatml,
)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# A Qwen-like template written over several lines, so that the expected output
# only comes out with trim_blocks=True and lstrip_blocks=True.
QWEN_LIKE_TEMPLATE = """\
{% for message in messages %}
    {% if loop.first and message['role'] != 'system' %}
<|im_start|>system
You are a helpful assistant.<|im_end|>
    {% endif %}
    {% if message['role'] not in ['system', 'user', 'assistant'] %}
        {{ raise_exception('Unknown role: ' + message['role']) }}
    {% endif %}
<|im_start|>{{ message['role'] }}
{{ message['content'] }}<|im_end|>
{% endfor %}
{% if add_generation_prompt %}
<|im_start|>assistant
{% endif %}"""

MESSAGES = [
  {"role": "user", "content": "What is 2 + 3?"},
  {"role": "assistant", "content": "2 + 3 = 5."},
  {"role": "user", "content": "And 4 * 6?"},
]


def _corpus() -> list[str]:
  lines = []
  for a in range(12):
    b = (7 * a + 3) % 11
    lines.append(f"Question: what is {a} plus {b}? Answer: {a + b}.")
    lines.append(f"The quick brown fox jumps over {a} lazy dogs, then rests for {b} minutes.")
    lines.append(
      f"<|im_start|>user\nCompute {a} times {b}.<|im_end|>\n"
      f"<|im_start|>assistant\n{a * b}<|im_end|>"
    )
  lines += ["Größe, naïve café — 数学 problems ✓", "tabs\tand\nnewlines  and   spaces"]
  return lines


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
  """A directory with a trained byte-level BPE tokenizer.json and tokenizer_config.json."""
  from tokenizers import Tokenizer as RawTokenizer
  from tokenizers import decoders, models, pre_tokenizers, processors, trainers

  raw = RawTokenizer(models.BPE())
  raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  raw.decoder = decoders.ByteLevel()
  raw.post_processor = processors.ByteLevel(trim_offsets=False)
  trainer = trainers.BpeTrainer(
    vocab_size=400,
    special_tokens=SPECIALS,
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    show_progress=False,
  )
  raw.train_from_iterator(_corpus(), trainer)
  d = tmp_path_factory.mktemp("qwen_like")
  raw.save(str(d / "tokenizer.json"))
  config = {
    "tokenizer_class": "PreTrainedTokenizerFast",
    "bos_token": None,
    "eos_token": {
      "__type": "AddedToken",
      "content": "<|im_end|>",
      "lstrip": False,
      "normalized": False,
      "rstrip": False,
      "single_word": False,
      "special": True,
    },
    "pad_token": "<|endoftext|>",
    "chat_template": QWEN_LIKE_TEMPLATE,
  }
  (d / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
  return d


@pytest.fixture(scope="module")
def hf(tok_dir) -> HFTokenizer:
  return HFTokenizer.from_file(tok_dir)


# ------------------------------------------------------------------------------
# ByteTokenizer.
# ------------------------------------------------------------------------------


def test_byte_ids_and_vocab():
  tok = ByteTokenizer()
  assert isinstance(tok, Tokenizer)
  assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.vocab_size) == (0, 1, 2, 259)
  assert tok.encode("A") == [ord("A") + 3]
  assert tok.encode("ab", add_bos=True, add_eos=True) == [1, 97 + 3, 98 + 3, 2]
  assert tok.encode("é") == [0xC3 + 3, 0xA9 + 3]


@pytest.mark.parametrize("text", ["hello, world!", "Größe 数学 ✓ 🚀", "", "\x00\n\t"])
def test_byte_round_trip(text):
  tok = ByteTokenizer()
  assert tok.decode(tok.encode(text)) == text
  assert tok.decode(tok.encode(text, add_bos=True, add_eos=True)) == text


def test_byte_decode_specials_and_arrays():
  tok = ByteTokenizer()
  ids = tok.encode("hi", add_bos=True, add_eos=True) + [0, 0]
  assert tok.decode(ids, skip_special_tokens=False) == "<bos>hi<eos><pad><pad>"
  assert tok.decode(np.array(ids, dtype=np.int32)) == "hi"
  assert tok.decode([]) == ""
  # Invalid UTF-8 is replaced, not raised.
  assert tok.decode([0xFF + 3]) == "\ufffd"


@pytest.mark.parametrize("bad", [259, -1, 10_000])
def test_byte_decode_out_of_range(bad):
  with pytest.raises(ValueError, match=rf"{bad}.*259"):
    ByteTokenizer().decode([5, bad])


def test_byte_encode_batch_padding():
  tok = ByteTokenizer()
  ids, lengths = tok.encode_batch(["a", "abcd", ""], add_eos=True)
  assert ids.dtype == np.int32 and lengths.dtype == np.int32
  assert ids.shape == (3, 5)
  assert lengths.tolist() == [2, 5, 1]
  np.testing.assert_array_equal(ids[0], [97 + 3, 2, 0, 0, 0])
  np.testing.assert_array_equal(ids[2], [2, 0, 0, 0, 0])
  assert tok.decode_batch(ids, lengths) == ["a", "abcd", ""]
  assert tok.decode_batch(ids) == ["a", "abcd", ""]
  assert tok.decode_batch(ids, lengths, skip_special_tokens=False)[0] == "a<eos>"

  ids, lengths = tok.encode_batch(["a", "abcd"], add_bos=True, pad_to_multiple_of=8)
  assert ids.shape == (2, 8) and lengths.tolist() == [2, 5]

  ids, lengths = tok.encode_batch([])
  assert ids.shape == (0, 0) and lengths.shape == (0,)


def test_byte_encode_batch_max_length():
  tok = ByteTokenizer()
  with pytest.raises(ValueError, match=r"index 1.*6 tokens.*max_length=4"):
    tok.encode_batch(["ab", "abcde"], add_eos=True, max_length=4)
  ids, lengths = tok.encode_batch(["ab", "abcde"], add_eos=True, max_length=4, truncate=True)
  assert ids.shape == (2, 4) and lengths.tolist() == [3, 4]
  assert tok.decode_batch(ids, lengths) == ["ab", "abcd"]
  # Exactly max_length is fine.
  ids, _ = tok.encode_batch(["abc"], add_eos=True, max_length=4)
  assert ids.shape == (1, 4)


def test_byte_argument_errors():
  tok = ByteTokenizer()
  with pytest.raises(TypeError, match="sequence of texts"):
    tok.encode_batch("abc")
  with pytest.raises(ValueError, match="max_length"):
    tok.encode_batch(["a"], max_length=0)
  with pytest.raises(ValueError, match="lengths"):
    tok.decode_batch(np.zeros((2, 3), np.int32), [1, 4])
  with pytest.raises(ValueError, match="shape"):
    tok.decode([[1, 2]])
  with pytest.raises(TypeError):
    tok.encode(b"bytes")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_byte_round_trip_property(text):
  tok = ByteTokenizer()
  ids = tok.encode(text, add_bos=True, add_eos=True)
  assert all(0 <= i < tok.vocab_size for i in ids)
  assert tok.decode(ids) == text


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=5))
def test_byte_batch_round_trip_property(texts):
  tok = ByteTokenizer()
  ids, lengths = tok.encode_batch(texts, add_eos=True, pad_to_multiple_of=4)
  assert ids.shape[1] % 4 == 0
  assert tok.decode_batch(ids, lengths) == texts


# ------------------------------------------------------------------------------
# HFTokenizer.
# ------------------------------------------------------------------------------


def test_hf_special_tokens(hf, tok_dir):
  assert isinstance(hf, Tokenizer)
  assert hf.vocab_size == 400
  assert hf.token_to_id("<|endoftext|>") == 0
  assert hf.token_to_id("<|im_start|>") == 1
  assert hf.token_to_id("<|im_end|>") == 2
  assert hf.token_to_id("definitely not a token") is None
  assert hf.bos_id is None
  assert (hf.eos_id, hf.pad_id) == (2, 0)
  assert hf.special_tokens == {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
  for i, token in enumerate(SPECIALS):
    assert hf.encode(token) == [i]
  ids = hf.encode("<|im_start|>user\nhi<|im_end|>")
  assert ids[0] == 1 and ids[-1] == 2 and ids.count(1) == 1 and ids.count(2) == 1
  assert hf.decode(ids, skip_special_tokens=False) == "<|im_start|>user\nhi<|im_end|>"
  assert hf.decode(ids) == "user\nhi"


@pytest.mark.parametrize(
  "text",
  [
    "Question: what is 3 plus 4? Answer: 7.",
    "  leading spaces, Größe 数学 ✓ 🚀\n\tunseen words zyxw",
    "",
  ],
)
def test_hf_round_trip(hf, text):
  ids = hf.encode(text)
  assert all(0 <= i < hf.vocab_size for i in ids)
  assert hf.decode(ids) == text
  assert hf.decode(hf.encode(text, add_eos=True)) == text


def test_hf_bpe_merges_shorten_text(hf):
  text = "Question: what is 3 plus 4?"
  assert len(hf.encode(text)) < len(text.encode("utf-8"))


def test_hf_add_bos_without_bos(hf):
  with pytest.raises(ValueError, match="no bos"):
    hf.encode("x", add_bos=True)


def test_hf_batch(hf):
  texts = ["what is 1 plus 2?", "", "The quick brown fox"]
  ids, lengths = hf.encode_batch(texts, add_eos=True, pad_to_multiple_of=8)
  assert ids.dtype == np.int32 and ids.shape[1] % 8 == 0
  for row, n, text in zip(ids, lengths, texts):
    assert row[:n].tolist() == hf.encode(text, add_eos=True)
    assert (row[n:] == hf.pad_id).all()
  assert hf.decode_batch(ids, lengths) == texts
  assert hf.decode_batch(ids) == texts


def test_hf_decode_out_of_range(hf):
  with pytest.raises(ValueError, match=r"400.*vocab_size 400"):
    hf.decode([3, 400])
  with pytest.raises(ValueError, match=r"-5"):
    hf.decode([-5])


def test_hf_chat_template(hf):
  expected = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
    "<|im_start|>assistant\n2 + 3 = 5.<|im_end|>\n"
    "<|im_start|>user\nAnd 4 * 6?<|im_end|>\n"
    "<|im_start|>assistant\n"
  )
  assert hf.apply_chat_template(MESSAGES) == expected
  assert (
    hf.apply_chat_template(MESSAGES, add_generation_prompt=False)
    == (expected[: -len("<|im_start|>assistant\n")])
  )
  system = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
  assert hf.apply_chat_template(system) == (
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    "<|im_start|>assistant\n"
  )
  # The rendered prompt tokenizes with the chat markers as single ids.
  ids = hf.encode(hf.apply_chat_template(system))
  assert ids.count(hf.token_to_id("<|im_start|>")) == 3


def test_hf_chat_template_raise_exception(hf):
  import jinja2

  with pytest.raises(jinja2.exceptions.TemplateError, match="Unknown role: robot"):
    hf.apply_chat_template([{"role": "robot", "content": "beep"}])


def test_hf_chat_template_variables_and_sandbox(tok_dir):
  template = (
    "{{ bos_token }}{% for m in messages %}{{ m['content'] | tojson }}"
    "{{ eos_token }}{% endfor %}{{ extra }}"
  )
  tok = HFTokenizer.from_file(tok_dir, bos_token="<|endoftext|>", chat_template=template)
  out = tok.apply_chat_template([{"role": "user", "content": "a<b>"}], extra="!")
  assert out == '<|endoftext|>"a<b>"<|im_end|>!'
  import jinja2

  sneaky = HFTokenizer.from_file(tok_dir, chat_template="{{ messages.append({'role': 'x'}) }}")
  with pytest.raises(jinja2.exceptions.SecurityError):
    sneaky.apply_chat_template(MESSAGES)


def test_chatml_fallback(tok_dir):
  tok = HFTokenizer.from_file(tok_dir / "tokenizer.json", eos_token="<|im_end|>")
  assert tok.chat_template is None
  msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi there"}]
  expected = (
    "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
  )
  assert tok.apply_chat_template(msgs) == expected
  assert tok.apply_chat_template(msgs, add_generation_prompt=False) == (
    "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
  )
  assert render_chatml(msgs) == expected
  with pytest.raises(ValueError, match="role"):
    tok.apply_chat_template([{"content": "no role"}])


def test_file_path_without_config(tok_dir):
  tok = HFTokenizer.from_file(tok_dir / "tokenizer.json")
  assert tok.bos_id is None and tok.eos_id is None and tok.pad_id is None
  assert tok.special_tokens == {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
  ids, _ = tok.encode_batch(["same", "same"])  # No padding needed.
  with pytest.raises(ValueError, match="pad"):
    tok.encode_batch(["a", "a longer text"])
  with pytest.raises(ValueError, match="no eos"):
    tok.encode("a", add_eos=True)


def test_overrides_and_pad_fallback(tok_dir):
  tok = HFTokenizer.from_file(
    tok_dir, eos_token="<|endoftext|>", pad_token="<|im_start|>", bos_token="<|im_start|>"
  )
  assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 0, 1)
  only_eos = HFTokenizer.from_file(tok_dir / "tokenizer.json", eos_token="<|im_end|>")
  assert only_eos.pad_id == only_eos.eos_id == 2
  assert only_eos.pad_token == "<|im_end|>"
  with pytest.raises(ValueError, match="<nope>"):
    HFTokenizer.from_file(tok_dir, eos_token="<nope>")


def test_special_tokens_map_and_chat_template_file(tok_dir, tmp_path):
  (tmp_path / "tokenizer.json").write_bytes((tok_dir / "tokenizer.json").read_bytes())
  (tmp_path / "special_tokens_map.json").write_text(
    json.dumps(
      {
        "bos_token": {"content": "<|im_start|>", "special": True},
        "eos_token": {"content": "<|endoftext|>", "lstrip": False},
      }
    )
  )
  (tmp_path / "tokenizer_config.json").write_text(
    json.dumps({"eos_token": "<|im_end|>", "chat_template": "config template"})
  )
  tok = HFTokenizer.from_file(tmp_path)
  # tokenizer_config.json wins; special_tokens_map.json fills the gaps.
  assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 2, 2)
  assert tok.apply_chat_template(MESSAGES) == "config template"
  (tmp_path / "chat_template.jinja").write_text("{{ messages | length }} from file")
  assert HFTokenizer.from_file(tmp_path).apply_chat_template(MESSAGES) == "3 from file"


def test_missing_files(tmp_path):
  missing = tmp_path / "nope" / "tokenizer.json"
  with pytest.raises(FileNotFoundError, match=str(missing)):
    HFTokenizer.from_file(missing)
  with pytest.raises(FileNotFoundError, match=str(tmp_path / "tokenizer.json")):
    HFTokenizer.from_file(tmp_path)  # Directory without tokenizer.json.
  with pytest.raises(FileNotFoundError, match="nope"):
    load_tokenizer(str(tmp_path / "nope"))


def test_malformed_files(tok_dir, tmp_path):
  bad = tmp_path / "tokenizer.json"
  bad.write_text('{"version": "1.0", "model": ')
  with pytest.raises(ValueError, match=str(bad)):
    HFTokenizer.from_file(bad)
  bad.write_text('{"not": "a tokenizer"}')
  with pytest.raises(ValueError, match=str(bad)):
    HFTokenizer.from_file(bad)
  good_dir = tmp_path / "cfg"
  good_dir.mkdir()
  (good_dir / "tokenizer.json").write_bytes((tok_dir / "tokenizer.json").read_bytes())
  (good_dir / "tokenizer_config.json").write_text("{oops")
  with pytest.raises(ValueError, match="tokenizer_config.json"):
    HFTokenizer.from_file(good_dir)


def test_load_tokenizer(tok_dir):
  byte = load_tokenizer("byte")
  assert isinstance(byte, ByteTokenizer)
  assert load_tokenizer(byte) is byte
  tok = load_tokenizer(tok_dir)
  assert isinstance(tok, HFTokenizer) and tok.eos_id == 2
  tok = load_tokenizer(str(tok_dir / "tokenizer.json"), eos_token="<|endoftext|>")
  assert tok.eos_id == 0
  with pytest.raises(TypeError):
    load_tokenizer(42)
  with pytest.raises(TypeError):
    load_tokenizer("byte", eos_token="x")


# ------------------------------------------------------------------------------
# Parity with transformers.
# ------------------------------------------------------------------------------


def test_matches_transformers_encoding(hf, tok_dir):
  transformers = pytest.importorskip("transformers")
  ref = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tok_dir / "tokenizer.json"))
  texts = [
    "Question: what is 3 plus 4? Answer: 7.",
    "  Größe 数学 ✓ 🚀\n\tunseen zyxw",
    "<|im_start|>user\nCompute 2 times 5.<|im_end|>\n<|im_start|>assistant\n",
  ]
  for text in texts:
    assert hf.encode(text) == ref.encode(text, add_special_tokens=False)
    assert hf.encode(text) == ref(text)["input_ids"]
  # Chat template rendering matches as well.
  ref_dir = transformers.PreTrainedTokenizerFast.from_pretrained(str(tok_dir))
  assert hf.apply_chat_template(MESSAGES) == ref_dir.apply_chat_template(
    MESSAGES, tokenize=False, add_generation_prompt=True
  )
