"""Exact, safe parsing and comparison of numeric answers.

`parse_number` turns the answer strings that models and datasets write
(`1,234`, `-0.50`, `.5`, `3/4`, `\\frac{3}{4}`, `1\\frac{1}{2}`, `2.5e-3`,
`\\$5`, `50\\%`, `90^\\circ`, `12\\text{ cm}`) into an exact `fractions.Fraction`
with regular expressions and integer arithmetic only: nothing is evaluated, and
no computer-algebra parser ever sees model output. `answers_equal` compares two
answers exactly as numbers when both parse, otherwise as normalised LaTeX
strings, as in the MATH grader ("Measuring Mathematical Problem Solving With the
MATH Dataset", Hendrycks et al., arXiv:2103.03874), so `\\sqrt{2}` matches
`\\sqrt2` and `\\left(1,2\\right)` matches `(1, 2)`.

Example:
  >>> parse_number(r"-\\dfrac{1}{2}") == parse_number("-0.50")
  True
  >>> answers_equal("1,234", "1234.0")
  True
"""

from __future__ import annotations

import math
import numbers as _numbers
import re
from fractions import Fraction
from typing import Any, Optional

from reasoning_jax.rewards import _latex

__all__ = [
  "MAX_NUMBER_CHARS",
  "MAX_EXPONENT",
  "parse_number",
  "normalize_answer",
  "answers_equal",
]

# Longer strings are never parsed as numbers (`parse_number` returns None).
MAX_NUMBER_CHARS = 1000
# Largest accepted |exponent| in `1e5`, `3\times 10^{5}`; larger ones are rejected
# so that a short string cannot build an astronomically large integer.
MAX_EXPONENT = 100
# `\frac` arguments are parsed recursively at most this deep.
_MAX_DEPTH = 4

_UNSIGNED_DECIMAL = r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]*)?|\.[0-9]+"
_DECIMAL_RE = re.compile(
  r"(?P<mant>" + _UNSIGNED_DECIMAL + r")"
  r"(?:[eE](?P<e1>[-+]?[0-9]+)"
  r"|(?:\\times|\\cdot|\*|\u00d7)10\^(?:\{(?P<e2>[-+]?[0-9]+)\}|(?P<e3>[0-9])))?"
)
_SLASH_RE = re.compile(r"(?P<num>" + _UNSIGNED_DECIMAL + r")/(?P<den>" + _UNSIGNED_DECIMAL + r")")
_MIXED_TEXT_RE = re.compile(r"(?P<sign>[-+]?)(?P<whole>[0-9]+)\s+(?P<num>[0-9]+)/(?P<den>[0-9]+)")
_FRAC_RE = re.compile(r"\\[dtc]?frac(?![A-Za-z])")
_LEADING_INT_RE = re.compile(r"[0-9]+")
_DIGIT_GAP_RE = re.compile(r"[0-9.,]\s+[0-9.,]")

_SPACING_RE = re.compile(r"\\[!,;: ]|~|\\q?quad(?![A-Za-z])|\\displaystyle(?![A-Za-z])")
_LEFT_RIGHT_RE = re.compile(r"\\(?:left|right)(?![A-Za-z])")
_DEGREES_RE = re.compile(r"(?:\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|\u00b0)\s*$")
_PERCENT_RE = re.compile(r"(?:\\%|%)\s*$")
_UNIT_COMMAND_RE = _latex.command_pattern(_latex.TEXT_COMMANDS)
# What may follow a dropped unit: nothing, or a power such as `^2`, `^{3}`.
_UNIT_TAIL_RE = re.compile(r"\s*(?:\^\s*(?:\{\s*[0-9]+\s*\}|[0-9]))?\s*")
# A short left-hand side such as `x =` or `k=` in front of the answer.
_LHS_RE = re.compile(r"\s*[A-Za-z][A-Za-z0-9_]?\s*=(?!=)")


def parse_number(s: Any) -> Optional[Fraction]:
  """Parses a numeric answer string exactly; never raises.

  Accepted forms (after stripping whitespace, `$`, `\\$`, LaTeX spacing `\\!`,
  `\\,`, `\\;`, `~`, `\\left`/`\\right`, a trailing `%`/`\\%` (so `50%` is 50),
  a trailing degree sign `^\\circ`, and trailing `\\text{...}` units):

  * integers with an optional sign (`+`, `-`, unicode minus) and strict thousands
    separators: `1,234,567` (also `1{,}234`), but not `1,23`;
  * decimals `0.5`, `.5`, `3.`;
  * scientific notation `2.5e-3`, `3\\times 10^{5}` with |exponent| <=
    `MAX_EXPONENT` (`1e400` is rejected);
  * fractions `3/4`, `-3/4`, `\\frac{3}{4}`, `\\dfrac`, `\\tfrac`, `\\frac34`,
    `\\frac{-1}{2}` (arguments parsed recursively);
  * mixed numbers `1\\frac{1}{2}` and `1 1/2`;
  * a whole-string wrapper `{...}`, `(...)`, `\\text{...}`, `\\mathbf{...}`.

  Digits separated only by whitespace (`1 2`) are rejected, as are non-ASCII
  digits.

  Args:
    s: The string to parse (anything else gives None).

  Returns:
    The exact value, or None if `s` is not a string, is longer than
    `MAX_NUMBER_CHARS`, or is not one of the accepted forms (including a zero
    denominator).
  """
  if not isinstance(s, str) or len(s) > MAX_NUMBER_CHARS:
    return None
  return _parse(s, 0)


def _parse(s: str, depth: int) -> Optional[Fraction]:
  if depth > _MAX_DEPTH:
    return None
  s = _clean_numeric(s)
  if not s:
    return None
  mixed = _MIXED_TEXT_RE.fullmatch(s)
  if mixed:
    den = int(mixed["den"])
    if den == 0:
      return None
    value = int(mixed["whole"]) + Fraction(int(mixed["num"]), den)
    return -value if mixed["sign"] == "-" else value
  if _DIGIT_GAP_RE.search(s):
    return None
  s = _unwrap("".join(s.split()))
  negative = False
  if s is not None and s[:1] in ("+", "-"):
    negative = s[0] == "-"
    s = _unwrap(s[1:])
  if not s:
    return None
  value = _parse_unsigned(s, depth)
  if value is None:
    return None
  return -value if negative else value


def _unwrap(s: str) -> Optional[str]:
  """Strips wrapping `{...}` and `(...)`; None for `(1,234)`, which may be a pair."""
  while True:
    braces = _latex.strip_wrapping(s, "{}")
    parens = _latex.strip_wrapping(braces, "()")
    if parens != braces and "," in parens:
      return None
    if parens == s:
      return s
    s = parens


def _clean_numeric(s: str) -> str:
  """Removes the decorations that never change a number's value."""
  s = s.strip()
  s = _drop_units(s)
  s = s.replace("\u2212", "-").replace("{,}", ",")
  s = s.replace("\\$", "").replace("$", "")
  s = _SPACING_RE.sub("", s)
  s = _LEFT_RIGHT_RE.sub("", s)
  s = s.strip()
  s = _PERCENT_RE.sub("", s)
  s = _DEGREES_RE.sub("", s)
  return s.strip().rstrip(".").strip()


def _drop_units(s: str) -> str:
  """Drops a trailing `\\text{ unit}` (optionally `^2`) and unwraps other text.

  A text-like group is treated as a unit, and removed together with a trailing
  power, when something precedes it, its content has no digit, and nothing but
  a power follows it. Otherwise the wrapper is removed and its content kept, so
  `\\text{5}` is 5 and `5\\text{ or }6` stays non-numeric.
  """
  for _ in range(8):
    m = _UNIT_COMMAND_RE.search(s)
    if m is None:
      return s
    open_idx = m.end()
    close = _latex.brace_matches(s).get(open_idx)
    if close is None:
      return s
    prefix, content, rest = s[: m.start()], s[open_idx + 1 : close], s[close + 1 :]
    if prefix.strip() and not any(c.isdigit() for c in content) and _UNIT_TAIL_RE.fullmatch(rest):
      s = prefix
    else:
      s = prefix + content + rest
  return s


def _parse_unsigned(s: str, depth: int) -> Optional[Fraction]:
  m = _DECIMAL_RE.fullmatch(s)
  if m:
    return _decimal_value(m)
  m = _SLASH_RE.fullmatch(s)
  if m:
    num, den = _plain_decimal(m["num"]), _plain_decimal(m["den"])
    return None if den == 0 else num / den
  # `\frac{a}{b}`, or a mixed number `1\frac{1}{2}`.
  whole = _LEADING_INT_RE.match(s)
  rest = s[whole.end() :] if whole else s
  if not _FRAC_RE.match(rest):
    return None
  frac = _parse_frac(rest, depth)
  if frac is None:
    return None
  if whole is None:
    return frac
  if frac < 0:
    return None  # `1\frac{-1}{2}` is not a mixed number.
  return int(whole.group(0)) + frac


def _parse_frac(s: str, depth: int) -> Optional[Fraction]:
  """Parses exactly `\\frac{a}{b}` (or `\\frac34`, `\\frac{3}4`) and nothing more."""
  m = _FRAC_RE.match(s)
  if m is None:
    return None
  pos = m.end()
  args = []
  for _ in range(2):
    if pos >= len(s):
      return None
    if s[pos] == "{":
      close = _latex.brace_matches(s[pos:]).get(0)
      if close is None:
        return None
      args.append(s[pos + 1 : pos + close])
      pos += close + 1
    elif s[pos].isascii() and s[pos].isdigit():
      args.append(s[pos])
      pos += 1
    else:
      return None
  if pos != len(s):
    return None
  num, den = _parse(args[0], depth + 1), _parse(args[1], depth + 1)
  if num is None or den is None or den == 0:
    return None
  return num / den


def _plain_decimal(text: str) -> Fraction:
  """Exact value of an `_UNSIGNED_DECIMAL` match such as `1,234.50` or `.5`."""
  int_part, _, frac_part = text.replace(",", "").partition(".")
  scale = 10 ** len(frac_part)
  return Fraction(int(int_part or "0") * scale + int(frac_part or "0"), scale)


def _decimal_value(m: re.Match[str]) -> Optional[Fraction]:
  value = _plain_decimal(m["mant"])
  exp_text = m["e1"] or m["e2"] or m["e3"]
  if exp_text is None:
    return value
  digits = exp_text.lstrip("+-").lstrip("0")
  if len(digits) > 3:
    return None
  exponent = int(exp_text)
  if abs(exponent) > MAX_EXPONENT:
    return None
  return value * Fraction(10) ** exponent


def _strip_lhs(s: str) -> str:
  """Drops a short left-hand side (`x = 5` -> `5`) when there is exactly one `=`."""
  if s.count("=") == 1:
    m = _LHS_RE.match(s)
    if m:
      return s[m.end() :]
  return s


_STRING_SPACING_RE = re.compile(
  r"\\[!,;: ]|~|\\q?quad(?![A-Za-z])|\\displaystyle(?![A-Za-z])|\\left(?![A-Za-z])"
  r"|\\right(?![A-Za-z])|\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\%|%|\\\$|\$"
)
_DIGIT_SPACE_RE = re.compile(r"(?<=[0-9])\s+(?=[0-9])")
_NON_DIGIT_SPACE_RE = re.compile(r"(?<![0-9])\s+|\s+(?![0-9])")
_DFRAC_RE = re.compile(r"\\[dtc]frac(?![A-Za-z])")
_SQRT_SHORT_RE = re.compile(r"\\sqrt([A-Za-z0-9])")
_FRAC_SHORT_RE = re.compile(r"\\frac([A-Za-z0-9])([A-Za-z0-9])")
_FRAC_HALF_SHORT_RE = re.compile(r"\\frac(\{[^{}]*\})([A-Za-z0-9])")


def normalize_answer(s: Any) -> Optional[str]:
  """Normalises a (non-numeric) answer string for exact string comparison.

  Removes whitespace (except a single space between two digits), `$`, LaTeX
  spacing, `\\left`/`\\right`, `\\displaystyle`, `%`, degree signs, a short
  left-hand side (`x = `), trailing periods and wrapping braces; unwraps
  `\\text{...}`-like commands; maps `\\dfrac`/`\\tfrac` to `\\frac`; and adds
  braces to `\\sqrt2` and `\\frac12`.

  Args:
    s: An answer string (anything else gives None).

  Returns:
    The normalised string, or None if `s` is not a string.
  """
  if not isinstance(s, str):
    return None
  s = _strip_lhs(s.strip())
  s = _latex.unwrap_commands(s)
  s = _STRING_SPACING_RE.sub("", s)
  s = _DIGIT_SPACE_RE.sub(" ", s)  # Keeps `1 2` distinct from `12`.
  s = _NON_DIGIT_SPACE_RE.sub("", s)
  s = _DFRAC_RE.sub(r"\\frac", s)
  s = _SQRT_SHORT_RE.sub(r"\\sqrt{\1}", s)
  s = _FRAC_SHORT_RE.sub(r"\\frac{\1}{\2}", s)
  s = _FRAC_HALF_SHORT_RE.sub(r"\\frac\1{\2}", s)
  s = s.rstrip(".")
  if len(s) <= MAX_NUMBER_CHARS:
    s = _latex.strip_wrapping(s, "{}")
  return s


def answers_equal(pred: Any, gold: Any, *, rel_tol: float = 0) -> bool:
  """Whether a predicted answer matches the reference answer.

  Both sides are first stripped of a short left-hand side (`x = 5`). If both
  then parse with `parse_number`, they are compared exactly as fractions
  (`-0.50` equals `-1/2` and `\\frac{-1}{2}`), or within `rel_tol` if it is
  positive. If exactly one parses, they differ. Otherwise the
  `normalize_answer` forms are compared as strings; empty answers never
  match. Never raises for any `pred` and `gold`.

  Args:
    pred: The predicted answer (anything that is not a `str` never matches).
    gold: The reference answer (likewise).
    rel_tol: Relative tolerance for numeric answers, `|a - b| <= rel_tol *
      max(|a|, |b|)`; 0 means exact.

  Returns:
    True if the answers match.

  Raises:
    ValueError: If `rel_tol` is negative, not finite or not a real number.
  """
  if (
    isinstance(rel_tol, bool)
    or not isinstance(rel_tol, _numbers.Real)
    or not math.isfinite(rel_tol)
    or rel_tol < 0
  ):
    raise ValueError(f"rel_tol must be a finite real number >= 0, got {rel_tol!r}")
  if not isinstance(pred, str) or not isinstance(gold, str):
    return False
  pred_value = parse_number(_strip_lhs(pred))
  gold_value = parse_number(_strip_lhs(gold))
  if pred_value is not None and gold_value is not None:
    if rel_tol == 0:
      return pred_value == gold_value
    tol = Fraction(rel_tol)
    return abs(pred_value - gold_value) <= tol * max(abs(pred_value), abs(gold_value))
  if pred_value is not None or gold_value is not None:
    return False  # A number never equals a non-number (`1 2` is not `12`).
  pred_norm, gold_norm = normalize_answer(pred), normalize_answer(gold)
  return bool(pred_norm) and pred_norm == gold_norm
