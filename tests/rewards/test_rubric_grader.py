"""The rubric grader (`rubric_rules`) and the rubric task built on the same checks."""

import json
import random

import numpy as np
import pytest

from reasoning_jax.data import rubric_task
from reasoning_jax.data.stages import ConcatSource
from reasoning_jax.rewards import REWARDS, Rubric, RubricError, score_batch
from reasoning_jax.rewards.rubric import check_item


def test_checks():
  assert check_item({"number": 47}, "23+24=47. 47*2=94")
  assert not check_item({"number": 47}, "470 and 4.7")
  assert check_item({"final": 94}, "47*2=94. Answer: 94") and not check_item(
    {"final": 47}, "47*2=94"
  )
  assert check_item({"text": "add 23 AND 24"}, "Add 23 and 24, then ...")
  assert not check_item({"number": "x"}, "x") and not check_item({"final": 1}, "")  # Total.


def test_grader_on_the_rubric_task():
  ex = rubric_task.rubric_example(random.Random(3))
  grade = REWARDS.get("rubric_rules")
  assert grade(ex["solution"], ex["answer"], rubric=ex["rubric"]) == 1.0  # The ideal response.
  parts = json.loads(ex["parts"])
  assert grade(f"Answer: {parts['f']}", rubric=ex["rubric"]) == pytest.approx(3 / 6)
  repeated = f"{ex['question']} {ex['solution']}"
  assert grade(repeated, rubric=ex["rubric"]) == pytest.approx(5 / 6)  # The negative item.
  assert grade(None, rubric=ex["rubric"]) == 0.0
  scores = score_batch("rubric_rules", [ex["solution"], ""], None, rubric=[ex["rubric"]] * 2)
  np.testing.assert_allclose(scores, [1.0, 0.0])
  with pytest.raises(RubricError, match=r"items \[0\] have no 'check'"):
    Rubric.parse([{"criterion": "x", "weight": 1.0}]).grade("x")


def test_judge_demonstrations_carry_the_checks_verdicts():
  rng = random.Random(0)
  labels = []
  for _ in range(50):
    ex = rubric_task.rubric_example(rng)
    demo = rubric_task.judge_example(ex, rng)
    question, rest = demo["question"].split(" R: ", 1)
    response, criterion = rest.rsplit(" C: ", 1)
    criterion = criterion.removesuffix(" V:")
    (item,) = [i for i in json.loads(ex["rubric"])["items"] if i["criterion"] == criterion]
    verdict = check_item(item["check"], response)
    assert demo["solution"] == (rubric_task.TRUE_WORD if verdict else rubric_task.FALSE_WORD)
    labels.append(verdict)
  assert 0.2 < np.mean(labels) < 0.8  # Both verdicts are taught.
  assert rubric_task.judge_template() == rubric_task.JUDGE_TEMPLATE + "\n"


def test_concat_source():
  src = ConcatSource([[0, 1], [], [2, 3, 4]])
  assert len(src) == 5 and [src[i] for i in range(5)] == [0, 1, 2, 3, 4]
  with pytest.raises(IndexError):
    src[5]
