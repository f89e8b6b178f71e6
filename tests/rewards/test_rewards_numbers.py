"""Hand-written cases for reasoning_jax.rewards.numbers."""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from reasoning_jax.rewards import numbers


@pytest.mark.parametrize(
  "text, expected",
  [
    ("0", F(0)),
    ("42", F(42)),
    ("-7", F(-7)),
    ("+7", F(7)),
    ("\u22127", F(-7)),
    ("007", F(7)),
    ("1,234", F(1234)),
    ("1,234,567", F(1234567)),
    ("-1,234.5", F(-2469, 2)),
    ("1{,}234", F(1234)),
    (r"1\,234", F(1234)),
    ("0.5", F(1, 2)),
    (".5", F(1, 2)),
    ("3.", F(3)),
    ("-0.50", F(-1, 2)),
    ("3.5.", F(7, 2)),  # Trailing sentence period.
    ("2.5e-3", F(1, 400)),
    ("1E5", F(100000)),
    ("1e100", F(10**100)),
    ("1e-100", F(1, 10**100)),
    (r"3\times 10^{5}", F(300000)),
    (r"3 \cdot 10^5", F(300000)),
    ("3/4", F(3, 4)),
    ("-3/4", F(-3, 4)),
    ("6/8", F(3, 4)),
    ("1.5/3", F(1, 2)),
    (r"\frac{3}{4}", F(3, 4)),
    (r"\dfrac{3}{4}", F(3, 4)),
    (r"\tfrac{3}{4}", F(3, 4)),
    (r"\frac34", F(3, 4)),
    (r"\frac{3}4", F(3, 4)),
    (r"\frac3{4}", F(3, 4)),
    (r"\frac{-1}{2}", F(-1, 2)),
    (r"-\frac{1}{2}", F(-1, 2)),
    (r"\frac{1}{-2}", F(-1, 2)),
    (r"\frac{1,000}{3}", F(1000, 3)),
    (r"\frac{\frac{1}{2}}{3}", F(1, 6)),
    (r"\frac { 1 } { 2 }", F(1, 2)),
    (r"1\frac{1}{2}", F(3, 2)),
    (r"-1\frac12", F(-3, 2)),
    ("1 1/2", F(3, 2)),
    ("-2 1/4", F(-9, 4)),
    ("50%", F(50)),
    (r"12.5\%", F(25, 2)),
    (r"90^\circ", F(90)),
    (r"90^{\circ}", F(90)),
    ("90\u00b0", F(90)),
    (r"\$5", F(5)),
    ("$5", F(5)),
    ("$\\frac{1}{2}$", F(1, 2)),
    (r"12\text{ cm}", F(12)),
    (r"12 \text{cm}^2", F(12)),
    (r"12\mbox{ dollars}", F(12)),
    (r"\text{5}", F(5)),
    (r"\textbf{-5}", F(-5)),
    (r"\left(5\right)", F(5)),
    ("(5)", F(5)),
    ("{-5}", F(-5)),
    ("-(5)", F(-5)),
    ("  17  ", F(17)),
    (r"\!1\!", F(1)),
    ("3 / 4", F(3, 4)),
  ],
)
def test_parse_number(text, expected):
  value = numbers.parse_number(text)
  assert value == expected
  assert isinstance(value, F)


@pytest.mark.parametrize(
  "text",
  [
    "",
    " ",
    "abc",
    "1e400",
    "1e-400",
    "1e101",
    "1e" + "9" * 500,
    "--5",
    "+-5",
    "1,23",
    "1,2345",
    "1, 234",
    "(1,234)",
    "1 2",
    "1 .5",
    "1/0",
    r"\frac{1}{0}",
    "0/0",
    r"\frac{1}{2",
    r"\frac{1}",
    r"\frac",
    r"\frac{a}{b}",
    r"\frac{1}{2}3",
    r"\sqrt{2}",
    "x+1",
    "1/2/3",
    "3/-4",
    r"5\text{ or }6",
    "\u0663",
    "\uff15",
    "1_000",
    "0x10",
    "inf",
    "nan",
    "NaN",
    "Infinity",
    "1" * 1001,
    "5" + " " * 1000,
    r"1\frac{-1}{2}",
    r"\frac{\frac{\frac{\frac{\frac{\frac{1}{2}}{2}}{2}}{2}}{2}}{2}",
    None,
    5,
    b"5",
  ],
)
def test_parse_number_rejects(text):
  assert numbers.parse_number(text) is None


def test_parse_number_length_limit():
  assert numbers.parse_number("1" * 1000) == int("1" * 1000)
  assert numbers.parse_number("1" * 1001) is None


@pytest.mark.parametrize(
  "pred, gold",
  [
    ("-0.50", "-1/2"),
    (r"\frac{-1}{2}", "-0.5"),
    ("1,234", "1234.0"),
    ("x = 5", "5"),
    ("k=5", "5"),
    (r"\dfrac{1}{2}", r"\frac12"),
    (r"\sqrt{2}", r"\sqrt2"),
    (r"\left(1, 2\right)", "(1,2)"),
    (r"\text{(A)}", "(A)"),
    ("x+1", "x + 1"),
    ("x+1.", "x+1"),
    (r"\$5", "5"),
    ("50%", "50"),
    (r"2\sqrt{3}", r"2 \sqrt 3"),
    (r"\{1,2\}", r"\{1, 2\}"),
  ],
)
def test_answers_equal(pred, gold):
  assert numbers.answers_equal(pred, gold)
  assert numbers.answers_equal(gold, pred)


@pytest.mark.parametrize(
  "pred, gold",
  [
    ("0.333", "1/3"),
    ("5", "6"),
    ("", ""),
    ("  ", " "),
    (None, "5"),
    ("5", None),
    (5, "5"),
    ("(1,2)", "(2,1)"),
    (r"\sqrt{2}", r"\sqrt{3}"),
    ("x+1", "X+1"),
    ("1 2", "12"),
    (r"5\text{ or }6", "5"),
    ("1e400", "1e400" + "0"),
  ],
)
def test_answers_not_equal(pred, gold):
  assert not numbers.answers_equal(pred, gold)


def test_answers_equal_rel_tol():
  assert not numbers.answers_equal("0.333", "1/3")
  assert numbers.answers_equal("0.333", "1/3", rel_tol=1e-2)
  assert not numbers.answers_equal("0.3", "1/3", rel_tol=1e-2)
  assert numbers.answers_equal("0", "0", rel_tol=0.5)


@pytest.mark.parametrize("rel_tol", [-1e-3, float("nan"), float("inf"), "0.1", True, None])
def test_answers_equal_bad_rel_tol(rel_tol):
  with pytest.raises(ValueError, match="rel_tol"):
    numbers.answers_equal("1", "1", rel_tol=rel_tol)


@pytest.mark.parametrize(
  "text, expected",
  [
    (r" \left( \dfrac{1}{2}, \text{yes} \right) . ", r"(\frac{1}{2},yes)"),
    (r"{x+1}", "x+1"),
    (r"\frac12", r"\frac{1}{2}"),
    (r"\frac{1}2", r"\frac{1}{2}"),
    (r"\sqrt3", r"\sqrt{3}"),
    (r"y = \text{a}", "a"),
    (r"90^\circ", "90"),
    (None, None),
  ],
)
def test_normalize_answer(text, expected):
  assert numbers.normalize_answer(text) == expected


def test_answers_equal_long_strings_are_fast():
  long = "(" * 100_000 + ")" * 100_000
  assert numbers.answers_equal(long, long)
  assert not numbers.answers_equal(long, long + "x")
