"""Passkey tasks: the token-level multi-needle generator and the text passkey prompt."""

import numpy as np
import pytest

from reasoning_jax.data import passkey
from reasoning_jax.data.passkey import KEY_MARK, PAD, QUERY_MARK


def make(**kw):
  args = dict(prompt_len=200, num_needles=4, value_len=4, vocab_size=64, seed=3)
  args.update(kw)
  return passkey.multi_needle(8, **args)


def test_deterministic_in_the_seed():
  a, b, c = make(), make(), make(seed=4)
  for field in ("prompts", "lengths", "answers", "needle_starts", "query_index"):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
  assert not np.array_equal(a.prompts, c.prompts)


def test_needles_queries_and_answers_line_up():
  data = make(min_prompt_len=120)
  assert data.prompts.shape == (8, 200) and data.answers.shape == (8, 4)
  for row in range(8):
    length = int(data.lengths[row])
    assert 120 <= length <= 200
    prompt = data.prompts[row]
    assert np.all(prompt[length:] == PAD) and np.all(prompt[:length] != PAD)
    assert prompt[length - 2] == QUERY_MARK
    starts = data.needle_starts[row]
    assert np.all(np.diff(starts) >= 6)  # Needles do not overlap.
    body = length - 2
    assert np.all(starts >= int(0.05 * body)) and np.all(starts <= np.ceil(0.95 * body))
    assert np.sum(prompt[:length] == KEY_MARK) == 4
    keys = [int(prompt[s + 1]) for s in starts]
    assert len(set(keys)) == 4 and min(keys) >= 3
    q = int(data.query_index[row])
    assert prompt[length - 1] == keys[q]
    np.testing.assert_array_equal(data.answers[row], prompt[starts[q] + 2 : starts[q] + 6])
    filler = np.delete(prompt[:body], np.concatenate([np.arange(s, s + 6) for s in starts]))
    values = np.concatenate([prompt[s + 2 : s + 6] for s in starts])
    assert len(set(values.tolist())) == 16 and min(filler) >= 3  # Distinct within a row,
    assert not set(filler.tolist()) & (set(values.tolist()) | set(keys))  # and from the filler.


def test_training_examples_put_the_loss_on_the_answer():
  data = make(min_prompt_len=100)
  tokens, mask = passkey.training_examples(data)
  assert tokens.shape == mask.shape == (8, 204)
  for row in range(8):
    length = int(data.lengths[row])
    np.testing.assert_array_equal(tokens[row, :length], data.prompts[row, :length])
    np.testing.assert_array_equal(tokens[row, mask[row]], data.answers[row])
    assert mask[row].sum() == 4 and mask[row, length : length + 4].all()


@pytest.mark.parametrize(
  "kwargs, name",
  [
    (dict(value_len=2), "value_len"),
    (dict(num_needles=0), "num_needles"),
    (dict(num_needles=40), "num_needles"),
    (dict(prompt_len=20), "prompt_len"),
    (dict(min_prompt_len=300), "min_prompt_len"),
    (dict(depth_range=(0.9, 0.1)), "depth_range"),
    (dict(vocab_size=5), "vocab_size"),
  ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
  with pytest.raises(ValueError, match=name):
    make(**kwargs)


def test_text_passkey_places_the_key_and_parses_it_back():
  item = passkey.text_passkey(30, depth=0.5, seed=1)
  assert len(item.passkey) == 5 and item.passkey[0] != "0"
  assert f"The pass key is {item.passkey}." in item.text
  assert item.text.endswith(passkey.QUESTION)
  middle = item.text.index(item.passkey) / len(item.text)
  assert 0.3 < middle < 0.7
  assert passkey.text_passkey(30, seed=1) == passkey.text_passkey(30, seed=1)
  assert passkey.parse_passkey(f" {item.passkey}. Remember") == item.passkey
  assert passkey.parse_passkey("__import__('os')") == ""
  with pytest.raises(ValueError, match="depth"):
    passkey.text_passkey(3, depth=1.5)
  with pytest.raises(ValueError, match="num_filler"):
    passkey.text_passkey(0)


def test_text_passkey_tokens_fit_the_budget():
  from reasoning_jax.tokenizers import load_tokenizer

  tok = load_tokenizer("byte")
  item, ids = passkey.text_passkey_tokens(tok, 800, seed=2)
  assert len(ids) <= 800 and len(ids) > 400
  assert tok.decode(ids) == item.text


def test_repeated_filler_and_multi_query_training_examples():
  data = make(filler_period=10)
  for row in range(8):
    body = np.delete(
      data.prompts[row, : data.lengths[row] - 2],
      np.concatenate([np.arange(s, s + 6) for s in data.needle_starts[row]]),
    )
    periods = [p for p in range(5, 11) if np.array_equal(body[p:], body[:-p])]
    assert periods, "the haystack repeats one sentence of 5-10 tokens"
  tokens, mask = passkey.training_examples(data, all_needles=True, seed=0)
  assert tokens.shape == (8, 200 + 4 + 3 * 6) and mask.sum() == 8 * 16
  for row in range(8):
    queries = np.flatnonzero(tokens[row] == QUERY_MARK)
    assert len(queries) == 4
    for q in queries:  # Each query is followed by its needle's values, which are in the loss.
      start = np.flatnonzero(tokens[row, :200] == tokens[row, q + 1])[0] - 1
      assert tokens[row, start] == KEY_MARK
      np.testing.assert_array_equal(tokens[row, q + 2 : q + 6], tokens[row, start + 2 : start + 6])
      assert mask[row, q + 2 : q + 6].all() and not mask[row, q : q + 2].any()
  _, every = passkey.training_examples(data, loss_on="all")
  assert every[:, 1:204].all() and not every[:, 0].any()
  with pytest.raises(ValueError, match="loss_on"):
    passkey.training_examples(data, loss_on="some")
  with pytest.raises(ValueError, match="filler_period"):
    make(filler_period=1)
