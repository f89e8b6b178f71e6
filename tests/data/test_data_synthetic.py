"""Tests for reasoning_jax.data.synthetic and reasoning_jax.data.parsing (no TFDS)."""

from __future__ import annotations

import json
import operator
import random
import re
from functools import reduce

import numpy as np
import pytest

from data_test_helpers import evaluate, literals
from reasoning_jax.data import parsing, synthetic

# `a op b op c = d` with integer terms, as written in the worked solutions.
_EQUATION = re.compile(r"(?<![\w.)])(-?\d+(?: [-+*] \d+)+) = (-?\d+)(?![\d])")
_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def _check_equations(solution: str) -> int:
  """Asserts every `lhs = rhs` in the text holds; returns how many there were."""
  found = _EQUATION.findall(solution)
  for lhs, rhs in found:
    assert evaluate(lhs) == int(rhs), f"{lhs} = {rhs} is wrong in:\n{solution}"
  return len(found)


@pytest.mark.parametrize(
  "kwargs",
  [
    dict(min_digits=1, max_digits=2, max_operands=2),
    dict(min_digits=2, max_digits=4, max_operands=4),
    dict(min_digits=3, max_digits=6, max_operands=3, ops=("*",)),
    dict(min_digits=1, max_digits=5, max_operands=2, ops=("-",)),
  ],
)
def test_arithmetic_worked_solutions_are_correct(kwargs):
  rng = random.Random(0)
  for _ in range(150):
    ex = synthetic.arithmetic_example(rng, **kwargs)
    expected = reduce(_OPS[ex["op"]], ex["operands"])
    assert ex["answer"] == str(expected)
    assert ex["question"] == "What is " + f" {ex['op']} ".join(map(str, ex["operands"])) + "?"
    lines = ex["solution"].splitlines()
    assert lines[-1] == f"Answer: {expected}"
    assert _check_equations(ex["solution"]) >= 1
    if ex["op"] in "+-" and expected:
      # The digits written column by column spell |answer| (read last to first).
      written = [int(d) for d in re.findall(r"Write (\d)[.,]", ex["solution"])]
      assert int("".join(map(str, reversed(written)))) == abs(expected)
    if ex["op"] == "*" and 0 not in ex["operands"]:
      partials = [int(p) for p in re.findall(r"^\d+ \* \d+ = (\d+)\.$", ex["solution"], flags=re.M)]
      assert sum(partials) == expected


def test_arithmetic_carries_and_borrows_appear():
  ex_add = synthetic.arithmetic_example(
    random.Random(1), min_digits=3, max_digits=3, max_operands=2, ops=("+",)
  )
  assert "carry" in ex_add["solution"]
  # 1000 - 1 borrows through the zeros.
  answer, lines = synthetic._subtraction_solution(1000, 1)
  assert answer == 999
  assert _check_equations("\n".join(lines)) >= 4


def test_countdown_is_solvable_by_construction():
  rng = random.Random(0)
  sizes = set()
  for _ in range(300):
    ex = synthetic.countdown_example(rng)
    numbers, target, answer = ex["numbers"], ex["target"], ex["answer"]
    sizes.add(len(numbers))
    assert 3 <= len(numbers) <= 4 and all(1 <= x <= 50 for x in numbers)
    assert 1 <= target <= 1000
    assert evaluate(answer) == target, ex
    assert sorted(literals(answer)) == sorted(numbers), ex
    assert ex["solution"].splitlines()[-1] == f"Answer: {answer}"
    for line in ex["solution"].splitlines()[1:-2]:  # "a op b = c" steps.
      lhs, rhs = line.split(" = ")
      assert evaluate(lhs) == int(rhs) > 0
    assert f"[{', '.join(map(str, numbers))}]" in ex["question"]
    assert str(target) in ex["question"]
  assert sizes == {3, 4}


def test_countdown_render_keeps_needed_parentheses():
  e = synthetic._Expr
  tree = e(2, "-", e(10), e(8, "-", e(12), e(4)))  # 10 - (12 - 4)
  assert tree.render() == "10 - (12 - 4)"
  tree = e(36, "*", e(9, "+", e(4), e(5)), e(4))  # (4 + 5) * 4
  assert tree.render() == "(4 + 5) * 4"
  tree = e(2, "/", e(12), e(6, "*", e(3), e(2)))  # 12 / (3 * 2)
  assert tree.render() == "12 / (3 * 2)"
  assert evaluate(tree.render()) == 2


def test_modular_solutions_are_correct():
  rng = random.Random(0)
  divmod_re = re.compile(r"(-?\d+) = (\d+) \* \(?(-?\d+)\)? \+ (\d+), so (-?\d+) mod (\d+) = (\d+)")
  for _ in range(300):
    ex = synthetic.modular_example(rng)
    a, b, p, op = ex["a"], ex["b"], ex["modulus"], ex["op"]
    assert p in synthetic.primes_between(3, 31)
    assert ex["answer"] == str(_OPS[op](a, b) % p)
    assert ex["question"] == f"What is ({a} {op} {b}) mod {p}?"
    steps = divmod_re.findall(ex["solution"])
    assert len(steps) == 3
    for x, p1, q, r, x2, p2, r2 in steps:
      x, p1, q, r = int(x), int(p1), int(q), int(r)
      assert x == p1 * q + r and 0 <= r < p1 == p == int(p2) and x == int(x2) and r == int(r2)
    assert _check_equations(ex["solution"]) >= 1
    assert ex["solution"].endswith(f"Answer: {ex['answer']}")


def test_generate_split_is_deterministic_unique_and_excludes():
  make = lambda rng: synthetic.modular_example(rng, max_operand=20)  # noqa: E731
  a = synthetic.generate_split(make, 50, seed="s:0")
  b = synthetic.generate_split(make, 50, seed="s:0")
  c = synthetic.generate_split(make, 50, seed="s:1")
  assert a == b and a != c
  assert len({ex["question"] for ex in a}) == 50
  d = synthetic.generate_split(make, 50, seed="s:1", exclude={ex["question"] for ex in a})
  assert not {ex["question"] for ex in a} & {ex["question"] for ex in d}


def test_generate_split_errors_name_the_argument():
  make = lambda rng: synthetic.arithmetic_example(  # noqa: E731
    rng, min_digits=1, max_digits=1, ops=("+",)
  )
  with pytest.raises(ValueError, match="num_test=500"):
    synthetic.generate_split(make, 500, seed="x", arg_name="num_test")  # Only 100 exist.
  with pytest.raises(ValueError, match="num_train"):
    synthetic.generate_split(make, -1, seed="x", arg_name="num_train")


@pytest.mark.parametrize(
  "call, match",
  [
    (lambda r: synthetic.arithmetic_example(r, min_digits=3, max_digits=2), "min_digits"),
    (lambda r: synthetic.arithmetic_example(r, max_operands=1), "max_operands"),
    (lambda r: synthetic.arithmetic_example(r, ops=("/",)), "ops"),
    (lambda r: synthetic.countdown_example(r, min_numbers=1), "min_numbers"),
    (lambda r: synthetic.countdown_example(r, ops=()), "ops"),
    (lambda r: synthetic.modular_example(r, min_modulus=24, max_modulus=28), "min_modulus"),
  ],
)
def test_generator_argument_errors(call, match):
  with pytest.raises(ValueError, match=match):
    call(random.Random(0))


# ------------------------------------------------------------------------------
# Parsing.
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
  "text, expected",
  [
    ("We get $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("$\\boxed{\\dfrac{\\sqrt{3}}{2}}$", "\\dfrac{\\sqrt{3}}{2}"),
    ("first $\\boxed{5}$ then $\\boxed{7}$", "7"),
    ("set $\\boxed{\\{-2, 3\\}}$", "\\{-2, 3\\}"),
    ("$\\boxed{(-\\infty, 2]}$", "(-\\infty, 2]"),
    ("$\\boxed {12}$", "12"),
    ("so the answer is $\\boxed 5$.", "5"),
    ("$\\fbox{x+1}$", "x+1"),
    ("$\\boxed{\\boxed{3} + 1}$", "\\boxed{3} + 1"),
    ("no box here", None),
    ("unbalanced $\\boxed{\\frac{1}{2}$", None),
    ("$\\boxedfoo{3}$", None),
  ],
)
def test_extract_boxed_answer(text, expected):
  assert parsing.extract_boxed_answer(text) == expected


@pytest.mark.parametrize(
  "text, expected",
  [
    ("He has 24 + 48 = <<24+48=72>>72.\n#### 72", "72"),
    ("Total 25 * 48 = <<25*48=1200>>1200\n#### 1,200", "1200"),
    ("#### -3 ", "-3"),
    ("a #### 1 #### 2", "2"),
    ("no marker", None),
    ("#### ", None),
  ],
)
def test_gsm8k_final_answer(text, expected):
  assert parsing.gsm8k_final_answer(text) == expected


def test_strip_calculator_annotations():
  text = "48/2 = <<48/2=24>>24 and 24+48 = <<24+48=72>>72"
  assert parsing.strip_calculator_annotations(text) == "48/2 = 24 and 24+48 = 72"


def test_read_jsonl_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.jsonl"):
    list(parsing.read_jsonl(tmp_path / "nope.jsonl"))
  path = tmp_path / "bad.jsonl"
  path.write_text(json.dumps({"question": "q"}) + "\n\n{not json}\n")
  with pytest.raises(ValueError, match=r"bad.jsonl:1: missing key\(s\) \['answer'\]"):
    list(parsing.read_jsonl(path, ("question", "answer")))
  with pytest.raises(ValueError, match=r"bad.jsonl:3: malformed JSON"):
    list(parsing.read_jsonl(path))


def test_compact_arithmetic_solutions_are_correct():
  """The compact style: column sums / partial products that check out, then the answer."""
  import random
  import re
  from reasoning_jax.data.synthetic import arithmetic_example

  rng = random.Random(7)
  for _ in range(300):
    ex = arithmetic_example(rng, min_digits=1, max_digits=4, max_operands=3, style="compact")
    lines = ex["solution"].split("\n")
    assert lines[-1] == f"Answer: {ex['answer']}"
    for lhs, rhs in re.findall(r"([\d+*\- ]+?)\s*=\s*(-?\d+)", lines[0]):
      terms = lhs.strip()
      if "*" in terms:
        a, b = terms.split("*")
        assert int(a) * int(b) == int(rhs)
      elif " - " in terms:
        a, b = terms.split(" - ")
        assert int(a) - int(b) == int(rhs)
      else:
        assert sum(int(t) for t in terms.replace(" ", "").split("+")) == int(rhs)
    assert len(ex["solution"]) < 160
  with pytest.raises(ValueError, match="style"):
    arithmetic_example(rng, style="poetic")


def test_corrupt_final_answer_changes_one_digit_of_the_last_line_only():
  rng = random.Random(3)
  for _ in range(300):
    ex = synthetic.arithmetic_example(
      rng, min_digits=1, max_digits=3, ops=("+", "-", "*"), style="compact"
    )
    bad = synthetic.corrupt_final_answer(ex, rng)
    head, _, last = ex["solution"].rpartition("Answer: ")
    bad_head, _, bad_last = bad["solution"].rpartition("Answer: ")
    assert bad_head == head  # The worked steps are untouched.
    assert bad["answer"] == ex["answer"] == last  # The verifier's answer stays true.
    assert len(bad_last) == len(last) and bad_last.startswith("-") == last.startswith("-")
    assert sum(a != b for a, b in zip(bad_last, last)) == 1
    digits = bad_last.lstrip("-")
    assert not (len(digits) > 1 and digits[0] == "0")  # No leading zero.
  single = {"solution": "2+3=5\nAnswer: 5", "answer": "5"}
  seen = {synthetic.corrupt_final_answer(single, rng)["solution"][-1] for _ in range(500)}
  assert seen == set("012346789")  # Every other digit, 0 included for a one-digit answer.


def test_add_answer_noise_fraction_determinism_and_errors():
  rng = random.Random(0)
  examples = [synthetic.arithmetic_example(rng, style="compact") for _ in range(2000)]
  noisy = synthetic.add_answer_noise(examples, 0.3, seed="s")
  again = synthetic.add_answer_noise(examples, 0.3, seed="s")
  assert noisy == again
  changed = np.mean([a["solution"] != b["solution"] for a, b in zip(examples, noisy)])
  assert 0.26 < changed < 0.34
  assert synthetic.add_answer_noise(examples, 0.0, seed="s") is examples
  assert all(
    a["solution"] != b["solution"]
    for a, b in zip(examples, synthetic.add_answer_noise(examples, 1.0, seed="t"))
  )
  for bad in (-0.1, 1.5, float("nan")):
    with pytest.raises(ValueError, match="answer_noise"):
      synthetic.add_answer_noise(examples, bad, seed="s")
  with pytest.raises(ValueError, match="Answer"):
    synthetic.corrupt_final_answer({"solution": "no final line"}, rng)
