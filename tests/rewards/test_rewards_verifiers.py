"""Tests for the registered rewards and score_batch."""

from __future__ import annotations

import doctest
import importlib
from fractions import Fraction

import numpy as np
import pytest

from reasoning_jax import registry, rewards
from reasoning_jax.rewards import REWARDS, score_batch

EXPECTED_REWARDS = {
  "math_exact",
  "qa_exact",
  "gsm8k",
  "boxed",
  "countdown",
  "countdown_strict",
  "format_tag",
  "rubric_rules",
}


def test_registry_contents():
  assert isinstance(REWARDS, registry.Registry)
  assert REWARDS.category == "reward"
  assert set(REWARDS.names()) == EXPECTED_REWARDS
  assert REWARDS.validate("gsm8k", argument="reward") == "gsm8k"
  with pytest.raises(ValueError, match="reward="):
    REWARDS.validate("nope", argument="reward")


@pytest.mark.parametrize(
  "completion, answer, expected",
  [
    (r"so the answer is $\boxed{\frac{1}{2}}$", "0.5", 1.0),
    (r"\boxed{\dfrac{1}{2}}", r"\frac12", 1.0),
    (r"\boxed{x = 5}", "5", 1.0),
    (r"\boxed{\sqrt{2}}", r"\sqrt2", 1.0),
    (r"\boxed{\sqrt{3}}", r"\sqrt2", 0.0),
    ("<answer>1,234</answer>", "1234", 1.0),
    ("work...\n#### 72", "72", 1.0),
    ("the result is 72 apples", "72", 1.0),
    ("the result is 71", "72", 0.0),
    ("", "72", 0.0),
    (r"\boxed{", "72", 0.0),
    (r"Solution ... \boxed{7}", r"It follows that \boxed{7}.", 1.0),  # Gold is a solution.
    ("3", 3, 1.0),
    ("0.5", Fraction(1, 2), 1.0),
  ],
)
def test_math_exact(completion, answer, expected):
  assert REWARDS.get("math_exact")(completion, answer) == expected


def test_boxed_requires_a_box():
  fn = REWARDS.get("boxed")
  assert fn(r"\boxed{12}", "12") == 1.0
  assert fn(r"\boxed 12", "12") == 1.0
  assert fn("12", "12") == 0.0
  assert fn("#### 12", "12") == 0.0


@pytest.mark.parametrize(
  "completion, answer, expected",
  [
    ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "72", 1.0),
    ("#### 72.", "72", 1.0),
    ("#### $1,000", "1000", 1.0),
    ("#### The answer is 72 apples", "72", 1.0),
    ("#### 72\n#### 73", "72", 0.0),
    ("no marker, final 72", "72", 1.0),
    ("####", "72", 0.0),
    ("#### 72", "She sold 48+24 = <<48+24=72>>72 clips.\n#### 72", 1.0),
    ("#### 7.20", "7.2", 1.0),
    ("#### -3", "3", 0.0),
  ],
)
def test_gsm8k(completion, answer, expected):
  assert REWARDS.get("gsm8k")(completion, answer) == expected


def test_countdown_rewards():
  fields = {"numbers": [19, 36, 55, 7], "target": 65}
  fn, strict = REWARDS.get("countdown"), REWARDS.get("countdown_strict")
  assert fn("<answer>55 + 36 - 7 - 19</answer>", "", **fields) == 1.0
  assert strict("<answer>55 + 36 - 7 - 19</answer>", "", **fields) == 1.0
  assert fn("<answer>55 + 19 - 7 - 2</answer>", "", **fields) == 0.0
  assert fn("<answer>36 + 36 - 7</answer>", "", **fields) == 0.0
  assert fn("<answer>55 + 36 - 7 - 19 - 0 * 7</answer>", "", **fields) == 0.0
  assert fn("<answer>(36 - 19) + 55 - 7</answer>", "", **fields) == 1.0
  assert fn("<answer>55 + 7 + 3</answer>", "", numbers=[55, 7, 3, 19], target=65) == 1.0
  assert strict("<answer>55 + 7 + 3</answer>", "", numbers=[55, 7, 3, 19], target=65) == 0.0
  # The target falls back to `answer`.
  assert fn("<answer>2 * 3</answer>", "6", numbers=[2, 3]) == 1.0
  assert fn("<answer>2 * 3</answer>", 6, numbers=[2, 3]) == 1.0


def test_countdown_reward_bad_fields_raise():
  fn = REWARDS.get("countdown")
  with pytest.raises(TypeError, match="numbers"):
    fn("1", "1")
  with pytest.raises(TypeError, match="target"):
    fn("1", "", numbers=[1])
  with pytest.raises(TypeError, match="numbers"):
    fn("1", "1", numbers="1 2")


def test_format_tag():
  fn = REWARDS.get("format_tag")
  assert fn("<think>x</think><answer>5</answer>", "") == 1.0
  assert fn("<answer>5", "") == 0.0
  assert fn("<answer></answer>", "") == 0.0
  assert fn("</answer>5<answer>", "") == 0.0


@pytest.mark.parametrize("name", sorted(EXPECTED_REWARDS))
@pytest.mark.parametrize("completion", [None, 5, b"<answer>1</answer>", ["1"], "", "\x00" * 10])
def test_rewards_return_zero_on_malformed_completions(name, completion):
  rubric = [{"criterion": "answers 3", "weight": 1.0, "check": {"final": 3}}]
  fields = {"numbers": [1, 2], "target": 3, "rubric": rubric}
  assert REWARDS.get(name)(completion, "3", **fields) == 0.0


def test_rewards_reject_bad_answer_type():
  for name in ("math_exact", "gsm8k", "boxed"):
    with pytest.raises(TypeError, match="answer"):
      REWARDS.get(name)("1", object())
    with pytest.raises(TypeError, match="answer"):
      REWARDS.get(name)("1", None)


def test_score_batch():
  scores = score_batch("math_exact", [r"\boxed{2}", "#### 3", "nothing"], ["2", "4", "1"])
  assert scores.dtype == np.float32
  assert scores.shape == (3,)
  np.testing.assert_array_equal(scores, [1.0, 0.0, 0.0])
  scores = score_batch(
    "countdown",
    ["<answer>1 + 2</answer>", "<answer>3 * 4</answer>"],
    None,
    numbers=np.array([[1, 2], [3, 4]]),
    target=[3, 11],
  )
  np.testing.assert_array_equal(scores, [1.0, 0.0])
  scores = score_batch("format_tag", ("<answer>a</answer>", "b"))
  np.testing.assert_array_equal(scores, [1.0, 0.0])
  assert score_batch("gsm8k", [], []).shape == (0,)
  # Fields named like score_batch's own parameters are still passed through.
  np.testing.assert_array_equal(score_batch("boxed", [r"\boxed{1}"], ["1"], name=["x"]), [1.0])


def test_score_batch_errors():
  with pytest.raises(ValueError, match="name="):
    score_batch("nope", ["1"], ["1"])
  with pytest.raises(ValueError, match=r"len\(answers\)=1 != len\(completions\)=2"):
    score_batch("gsm8k", ["1", "2"], ["1"])
  with pytest.raises(ValueError, match=r"len\(target\)=1"):
    score_batch("countdown", ["1", "2"], None, numbers=[[1], [2]], target=[1])
  with pytest.raises(TypeError, match=r"completions\[1\]"):
    score_batch("gsm8k", ["1", None, "3"], ["1", "2", "3"])
  with pytest.raises(TypeError, match=r"completions\[0\]"):
    score_batch("gsm8k", [b"1"], ["1"])
  with pytest.raises(TypeError, match="completions"):
    score_batch("gsm8k", "12", ["1", "2"])
  with pytest.raises(TypeError, match="answers"):
    score_batch("gsm8k", ["1"], 1)


def test_package_exports():
  for name in rewards.__all__:
    assert hasattr(rewards, name), name


@pytest.mark.parametrize(
  "module",
  [
    "reasoning_jax.rewards",
    "reasoning_jax.rewards.extract",
    "reasoning_jax.rewards.numbers",
    "reasoning_jax.rewards.countdown",
    "reasoning_jax.rewards.verifiers",
  ],
)
def test_docstring_examples(module):
  result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0
  assert result.failed == 0
