"""Hand-written cases for reasoning_jax.rewards.countdown."""

from __future__ import annotations

import ast
import itertools
import random
from fractions import Fraction as F

import numpy as np
import pytest

from reasoning_jax.rewards import countdown


@pytest.mark.parametrize(
  "expr, expected",
  [
    ("1", F(1)),
    ("1 + 2", F(3)),
    ("(25 - 5) * 3 / 4", F(15)),
    ("7 / 2", F(7, 2)),
    ("1 / 3 + 1 / 6", F(1, 2)),
    ("-3 + 5", F(2)),
    ("+3", F(3)),
    ("-(2 - 7)", F(5)),
    ("((((1))))", F(1)),
    ("2 * (3 + 4) - 10 / 5", F(12)),
    ("6 \u00d7 7", F(42)),
    ("8 \u00f7 2", F(4)),
    ("9 \u2212 4", F(5)),
    ("  1+1  ", F(2)),
    ("0", F(0)),
    ("1000000000", F(10**9)),
    ("5 - 5 * 1", F(0)),
  ],
)
def test_evaluate_expression(expr, expected):
  value = countdown.evaluate_expression(expr)
  assert value == expected
  assert isinstance(value, F)


@pytest.mark.parametrize(
  "expr",
  [
    "",
    "   ",
    "1 / 0",
    "5 / (3 - 3)",
    "1 / (1 - 1) * 0",
    "2**10",
    "2 ** 2",
    "7 // 2",
    "7 % 2",
    "2 ^ 3",
    "1.5 + 1",
    "1e3",
    "__import__('os')",
    "__import__('os').system('ls')",
    "abs(-3)",
    "x",
    "x + 1",
    "(1).real",
    "[1, 2][0]",
    "(lambda: 1)()",
    "lambda: 1",
    "'1' + '2'",
    "1, 2",
    "1; 2",
    "1 if 1 else 2",
    "1 < 2",
    "1 and 2",
    "not 1",
    "~1",
    "1 @ 2",
    "(1 := 2)",
    "1\n+ 2",
    "05",
    "1_000",
    "0x10",
    "1 +",
    "(1 + 2",
    "1 + 2)",
    "1000000001",
    "9" * 30,
    "1" + " + 1" * 60,
    "(" * 150 + "1" + ")" * 150,
    "-" * 199 + "1",
    "1 " * 30,
    "\u0663",
    "1 + \uff15",
    None,
    5,
    b"1 + 2",
    "1 + 2 " + " " * 200,
  ],
)
def test_evaluate_expression_rejects(expr):
  assert countdown.evaluate_expression(expr) is None


def test_evaluate_expression_limits():
  assert countdown.evaluate_expression(" + ".join(["1"] * 50)) == 50  # 99 nodes.
  assert countdown.evaluate_expression(" + ".join(["1"] * 51)) is None  # 101 nodes.
  assert countdown.evaluate_expression("1" + " " * 199) == 1  # 200 chars.
  assert countdown.evaluate_expression("1" + " " * 200) is None  # 201 chars.
  big = "*".join(["999999999"] * 20)
  assert countdown.evaluate_expression(big) == 999999999**20


def test_expression_numbers():
  assert countdown.expression_numbers("(25 - 5) * 3 / 5") == [25, 5, 3, 5]
  assert countdown.expression_numbers("1 / 0") is None


@pytest.mark.parametrize(
  "text, expected",
  [
    ("<answer>1 + 2</answer>", "1 + 2"),
    ("blah\n<answer>1 + 2 = 3</answer>", "1 + 2"),
    ("<answer>3 = 1 + 2</answer>", "1 + 2"),
    ("<answer>1 + 2 = 3 - 0 = 3</answer>", "1 + 2"),
    ("<answer>3 = 3</answer>", "3"),
    ("thinking...\n\n(1 + 2) * 3.\n\n", "(1 + 2) * 3"),
    ("<answer>  </answer>\n1 + 2", "1 + 2"),
    ("", None),
    ("\n \n", None),
    (None, None),
  ],
)
def test_extract_countdown_expression(text, expected):
  assert countdown.extract_countdown_expression(text) == expected


NUMS = [19, 36, 55, 7]


@pytest.mark.parametrize(
  "text, expected",
  [
    ("<answer>55 + 36 - 7 - 19</answer>", True),
    ("<answer>55 + 36 - 7 - 19 = 65</answer>", True),
    ("<answer>65 = 55 + 36 - 7 - 19</answer>", True),
    ("Let me think.\n55 + 36 - 7 - 19", True),
    ("<answer>(55 + 36 - 7 - 19)</answer>", True),
    ("<answer>55 + 19 - 7 - 2</answer>", False),  # 2 is not available.
    ("<answer>55 + 55 - 45</answer>", False),  # 55 reused; 45 unknown.
    ("<answer>55 + 7 + 7 - 4</answer>", False),  # 7 reused.
    ("<answer>55 + 36 - 7 - 18</answer>", False),  # Unknown number.
    ("<answer>55 + 36 - 7</answer>", False),  # Wrong value (84).
    ("<answer>55 + 36 / (7 - 7)</answer>", False),  # Division by zero (and reuse).
    ("<answer>19 * 36 / (55 - 55)</answer>", False),
    ("<answer>55 ** 1 + 7 + 19 - 16</answer>", False),
    ("<answer>__import__('os')</answer>", False),
    ("<answer>65</answer>", False),
    ("<answer>55 + 36 - 7 - 19</answer><answer>1</answer>", False),  # Last tag counts.
    ("<answer>55 + 36 - 7 - 19\n1 + 1</answer>", False),  # No hedging across lines.
    ("<answer>55 + 36 - 7 - 19 = 1 + 2</answer>", True),  # First part with an operator.
    ("<answer>1 + 2 = 55 + 36 - 7 - 19</answer>", False),
    ("", False),
  ],
)
def test_check_countdown(text, expected):
  assert countdown.check_countdown(text, NUMS, 65) is expected


def test_check_countdown_subset_vs_all_numbers():
  assert countdown.check_countdown("55 + 7 + 3", [55, 7, 3, 19], 65)
  assert not countdown.check_countdown("55 + 7 + 3", [55, 7, 3, 19], 65, use_all_numbers=True)
  assert countdown.check_countdown(
    "55 + 7 + 3 + 19 - 19", [55, 7, 3, 19, 19], 65, use_all_numbers=True
  )
  assert countdown.check_countdown("2 + 2", [2, 2], 4, use_all_numbers=True)
  assert not countdown.check_countdown("2 + 2 + 2", [2, 2], 6)


def test_check_countdown_target_and_number_types():
  assert countdown.check_countdown("3 / 2", [3, 2], F(3, 2))
  assert countdown.check_countdown("3 * 2", np.array([3, 2]), np.int64(6))
  assert countdown.check_countdown("3 * 2", (3, 2), "6")
  assert countdown.check_countdown("3 * 2", [3, 2], 6.0)
  assert not countdown.check_countdown(None, [3, 2], 6)
  assert not countdown.check_countdown(123, [3, 2], 6)


@pytest.mark.parametrize(
  "numbers, target, error, argument",
  [
    ("12", 3, TypeError, "numbers"),
    (5, 3, TypeError, "numbers"),
    ([1.5], 3, TypeError, r"numbers\[0\]"),
    ([1, True], 3, TypeError, r"numbers\[1\]"),
    ([-1], 3, ValueError, r"numbers\[0\]"),
    ([1, 2], "three", ValueError, "target"),
    ([1, 2], None, TypeError, "target"),
    ([1, 2], 2.5, TypeError, "target"),
    ([1, 2], True, TypeError, "target"),
  ],
)
def test_check_countdown_bad_arguments(numbers, target, error, argument):
  with pytest.raises(error, match=argument):
    countdown.check_countdown("1 + 2", numbers, target)


@pytest.mark.parametrize(
  "numbers, target, use_all",
  [
    ([19, 36, 55, 7], 65, False),
    ([19, 36, 55, 7], 65, True),
    ([1, 2, 3, 4], 24, True),
    ([3, 3, 8, 8], 24, True),  # Needs fractions: 8 / (3 - 8 / 3).
    ([5], 5, True),
    ([100, 4], 25, False),
    ([1, 5, 6, 7], 21, True),
  ],
)
def test_solve_countdown_finds_valid_solutions(numbers, target, use_all):
  expr = countdown.solve_countdown(numbers, target, use_all_numbers=use_all)
  assert expr is not None
  assert countdown.check_countdown(expr, numbers, target, use_all_numbers=use_all)
  assert countdown.evaluate_expression(expr) == target


@pytest.mark.parametrize(
  "numbers, target, use_all",
  [
    ([1, 1], 5, False),
    ([2], 3, False),
    ([], 0, False),
    ([1, 1, 1], 10, True),
  ],
)
def test_solve_countdown_unsolvable(numbers, target, use_all):
  assert countdown.solve_countdown(numbers, target, use_all_numbers=use_all) is None


def test_solve_countdown_limits():
  with pytest.raises(ValueError, match="numbers"):
    countdown.solve_countdown(list(range(1, 8)), 5)
  with pytest.raises(ValueError, match="numbers"):
    countdown.solve_countdown([10**10], 5)


def test_solve_countdown_random_instances_round_trip():
  rng = random.Random(0)
  for _ in range(20):
    numbers = [rng.randint(1, 25) for _ in range(rng.randint(2, 4))]
    # A reachable target: combine the numbers left to right with random ops.
    value = F(numbers[0])
    for n in numbers[1:]:
      value = rng.choice([value + n, value * n, abs(value - n)])
    expr = countdown.solve_countdown(numbers, value, use_all_numbers=True)
    assert expr is not None, (numbers, value)
    assert countdown.check_countdown(
      f"<answer>{expr}</answer>", numbers, value, use_all_numbers=True
    )


def test_evaluate_matches_fraction_arithmetic_exhaustively():
  ops = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: None if b == 0 else a / b,
  }
  for a, b, c in itertools.product([0, 1, 7], repeat=3):
    for o1, o2 in itertools.product(ops, repeat=2):
      inner = ops[o2](F(b), F(c))
      expected = None if inner is None else ops[o1](F(a), inner)
      assert countdown.evaluate_expression(f"{a} {o1} ({b} {o2} {c})") == expected


@pytest.mark.parametrize(
  "source",
  [
    "x",
    "abs(1)",
    "(1).real",
    "[1][0]",
    "(lambda: 1)()",
    "2 ** 10",
    "7 // 2",
    "7 % 2",
    "1.5",
    "'a'",
    "True",
    "None",
    "~1",
    "not 1",
    "1 < 2",
    "1 if 1 else 2",
    "[1]",
    "(1, 2)",
    "{1: 2}",
    "__import__('os')",
    "f'{1}'",
    "1 + abs(2)",
    "-(1).real",
  ],
)
def test_ast_walker_rejects_disallowed_nodes(source):
  # The character whitelist already rejects all of these; the tree walk is a
  # second, independent line of defence and must reject them on its own.
  tree = ast.parse(source, mode="eval")
  with pytest.raises(countdown._Invalid):  # pylint: disable=protected-access
    countdown._eval_node(tree.body, [])  # pylint: disable=protected-access
