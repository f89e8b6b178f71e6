"""The short-answer QA verifier."""

import pytest

from reasoning_jax.rewards import REWARDS, extract_qa_answer, normalize_qa, qa_exact_reward


@pytest.mark.parametrize(
  "completion, gold, expected",
  [
    ("Therefore, the answer is Lima.", "Lima", 1.0),
    ("Therefore , the answer is Lima .", "lima", 1.0),
    ("so the answer is: The Beatles\nmore text", "Beatles", 1.0),
    ("the answer is Lima. Or maybe Oslo.", "Oslo", 0.0),
    (r"... \boxed{New York City}", "new york city", 1.0),
    ("Lima", "Lima", 1.0),
    ("Therefore, the answer is unknown.", "Lima", 0.0),
    ("", "Lima", 0.0),
    (None, "Lima", 0.0),
    ("the answer is 3.5 metres", "3.5 metres", 1.0),
  ],
)
def test_qa_exact(completion, gold, expected):
  assert qa_exact_reward(completion, gold) == expected
  assert REWARDS.get("qa_exact")(completion, gold) == expected


def test_aliases_and_bad_gold():
  assert qa_exact_reward("the answer is NYC", "New York", answers=["New York", "NYC"]) == 1.0
  with pytest.raises(TypeError, match="answer must be a str"):
    qa_exact_reward("x", 3)
  assert normalize_qa("The  Big, Apple!") == "big apple"
  assert extract_qa_answer("answer is X\nanswer is Y") == "Y"
