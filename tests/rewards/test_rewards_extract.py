"""Hand-written cases for reasoning_jax.rewards.extract."""

from __future__ import annotations

import pytest

from reasoning_jax.rewards import extract


@pytest.mark.parametrize(
  "text, expected",
  [
    (r"The answer is $\boxed{5}$.", "5"),
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt{3}}{2}"),
    (r"first \boxed{1} then \boxed{2}", "2"),
    (r"\boxed{\boxed{5}}", "5"),  # Nested: the innermost box starts last.
    (r"\boxed{ 42 }", "42"),
    (r"\boxed {7}", "7"),
    ("\\boxed\n{7}", "7"),
    (r"\fbox{3}", "3"),
    (r"\fbox{a{b}c}", "a{b}c"),
    (r"\boxed 5", "5"),
    (r"$\boxed 5$", "5"),
    (r"\boxed -3.5", "-3.5"),
    (r"\boxed5", "5"),
    (r"\boxed{5} and then \boxed{", "5"),  # Unbalanced last box: use the previous one.
    (r"\boxed{5} \boxed{}", "5"),  # Empty last box: use the previous one.
    (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),  # Escaped braces do not count.
    (r"\boxed{\text{(A)}}", r"\text{(A)}"),
    (r"} stray \boxed{8}", "8"),
    (r"\boxed{a}}}", "a"),
  ],
)
def test_extract_boxed(text, expected):
  assert extract.extract_boxed(text) == expected


@pytest.mark.parametrize(
  "text",
  [
    "",
    "no box here",
    r"\boxed{",
    r"\boxed{{5}",
    r"\boxed{}",
    r"\boxed",
    r"\boxed ",
    r"\boxedfoo{5}",
    r"\fboxsep{5}",
    r"\boxed\frac12",
    "boxed{5}",
    r"\boxed}",
    None,
    5,
  ],
)
def test_extract_boxed_none(text):
  assert extract.extract_boxed(text) is None


@pytest.mark.parametrize(
  "text, expected",
  [
    ("Natalia sold 48 clips.\n#### 72", "72"),
    ("#### 72\nHope that helps", "72"),
    ("#### 1 \n#### 2", "2"),
    ("####   -3.5  ", "-3.5"),
    ("#####5", "5"),
    ("#### $1,000", "$1,000"),
  ],
)
def test_extract_gsm8k(text, expected):
  assert extract.extract_gsm8k_answer(text) == expected


@pytest.mark.parametrize("text", ["", "72", "### 72", "#### ", "#### 5\n####", "####\n5", None])
def test_extract_gsm8k_none(text):
  assert extract.extract_gsm8k_answer(text) is None


@pytest.mark.parametrize(
  "text, expected",
  [
    ("<think>hm</think><answer>42</answer>", "42"),
    ("<answer> 1 </answer> <answer>2</answer>", "2"),
    ("<answer>\n(1 + 2) * 3\n</answer>", "(1 + 2) * 3"),
    ("<answer>a<answer>b</answer>", "b"),
    ("<answer>1</answer> junk </answer>", "1"),
    ("<answer>x</answer><answer>", "x"),
    ("<answer><answer>7</answer></answer>", "7"),
  ],
)
def test_extract_answer_tag(text, expected):
  assert extract.extract_answer_tag(text) == expected


@pytest.mark.parametrize(
  "text",
  [
    "",
    "<answer>",
    "</answer>",
    "<answer>   </answer>",
    "</answer><answer>",
    "<ANSWER>1</ANSWER>",
    "<answer 1</answer>",
    None,
  ],
)
def test_extract_answer_tag_none(text):
  assert extract.extract_answer_tag(text) is None


@pytest.mark.parametrize(
  "text, expected",
  [
    ("I have 3 apples and 5 pears", "5"),
    ("total: 1,234,567 dollars", "1,234,567"),
    ("x = -0.50", "-0.50"),
    ("pages 3-4", "4"),
    ("it is .5 or so", ".5"),
    ("the ratio is 3/4.", "3/4"),
    ("that is 3.", "3"),
    ("speed 2.5e-3 m/s", "2.5e-3"),
    ("1,2345", "2345"),
    ("H2O and x2", None),
    ("costs $5", "5"),
    ("50% off", "50"),
    ("\u22127", "\u22127"),
    ("version 1.2.3", "1.2"),
    ("", None),
    ("no digits", None),
    ("\u0663", None),  # Arabic-Indic digit three: not ASCII.
  ],
)
def test_extract_last_number(text, expected):
  assert extract.extract_last_number(text) == expected


@pytest.mark.parametrize(
  "text, fmt, expected",
  [
    (r"<answer>\boxed{3}</answer> #### 4 then 5", "auto", "3"),
    ("<answer>7</answer> #### 4 then 5", "auto", "7"),
    ("#### 4\nthen 5", "auto", "4"),
    ("then 5 and 6", "auto", "6"),
    ("nothing", "auto", None),
    (r"\boxed{3} #### 4", "gsm8k", "4"),
    (r"\boxed{3} #### 4", "boxed", "3"),
    (r"\boxed{3} <answer>9</answer>", "tag", "9"),
    (r"\boxed{3} 8", "last_number", "8"),
    (None, "auto", None),
  ],
)
def test_extract_final_answer(text, fmt, expected):
  assert extract.extract_final_answer(text, fmt) == expected


def test_extract_final_answer_rejects_unknown_format():
  with pytest.raises(ValueError, match="fmt="):
    extract.extract_final_answer("1", fmt="latex")


def test_extractors_are_linear_on_adversarial_input():
  # Many unbalanced boxes/tags would be quadratic with naive rescans or regexes.
  n = 50_000
  assert extract.extract_boxed(r"\boxed{" * n) is None
  assert extract.extract_boxed(r"\boxed{" * n + r"\boxed{1}") == "1"
  assert extract.extract_answer_tag("<answer>" * n) is None
  assert extract.extract_last_number("1," * n) == "1"
  assert extract.extract_last_number("-" * n + "5") == "-5"
