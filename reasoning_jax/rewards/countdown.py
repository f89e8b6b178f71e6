"""Countdown arithmetic: a whitelisted expression evaluator, checker and solver.

The Countdown task (as used in TinyZero, Pan et al. 2025,
https://github.com/Jiayi-Pan/TinyZero, after the "Countdown" numbers game):
given numbers such as `[19, 36, 55, 7]` and a target `65`, write an arithmetic
expression with `+ - * /` and parentheses that uses the given numbers and
evaluates to the target, e.g. `<answer>55 + 36 - 7 - 19</answer>`.

Model output is never evaluated by Python. `evaluate_expression` checks the
string against a character whitelist, parses it with `ast.parse(expr,
mode="eval")` (which only builds a syntax tree; nothing is compiled to code or
run) and walks the tree itself, accepting only `Expression`, `BinOp` with
`Add`/`Sub`/`Mult`/`Div`, `UnaryOp` with `USub`/`UAdd` and non-negative `int`
constants, computing exactly with `fractions.Fraction`. Names, calls,
attributes, subscripts, lambdas, `**`, `//`, floats and strings are rejected,
as are expressions over `MAX_EXPRESSION_CHARS` characters or `MAX_NODES`
nodes, literals above `MAX_LITERAL`, and division by zero.

Example:
  >>> evaluate_expression("(25 - 5) * 3 / 4")
  Fraction(15, 1)
  >>> check_countdown("<answer>55 + 36 - 7 - 19</answer>", [19, 36, 55, 7], 65)
  True
"""

from __future__ import annotations

import ast
import collections
import itertools
import operator
import re
from fractions import Fraction
from typing import Any, Iterable, Optional

from reasoning_jax.rewards import extract as _extract
from reasoning_jax.rewards import numbers as _numbers

__all__ = [
  "MAX_EXPRESSION_CHARS",
  "MAX_NODES",
  "MAX_LITERAL",
  "MAX_SOLVER_NUMBERS",
  "evaluate_expression",
  "expression_numbers",
  "extract_countdown_expression",
  "check_countdown",
  "solve_countdown",
]

# Longer expressions are invalid.
MAX_EXPRESSION_CHARS = 200
# At most this many expression nodes (numbers and operations) in the tree.
MAX_NODES = 100
# Largest integer literal allowed in an expression.
MAX_LITERAL = 10**9
# `solve_countdown` refuses more numbers than this (the search is exponential).
MAX_SOLVER_NUMBERS = 6
# Intermediate results whose numerator or denominator exceed this many bits are
# invalid (unreachable with the limits above; a guard against future changes).
_MAX_BITS = 4096

# Everything else (letters, `_`, `.`, quotes, brackets, commas, `%`, `^`, `@`,
# newlines) is rejected before parsing.
_ALLOWED_RE = re.compile(r"[0-9+\-*/() \t]+")
# Typographic operators models like to write.
_TRANSLATION = str.maketrans({"\u00d7": "*", "\u22c5": "*", "\u00f7": "/", "\u2212": "-"})
_BINARY_OPERATOR_RE = re.compile(r"[0-9)]\s*[-+*/\u00d7\u00f7\u2212]")

_BIN_OPS = {
  ast.Add: operator.add,
  ast.Sub: operator.sub,
  ast.Mult: operator.mul,
  ast.Div: operator.truediv,
}


class _Invalid(Exception):
  """Internal: the expression is not a valid Countdown expression."""


def _analyze(expr: Any) -> Optional[tuple[Fraction, list[int]]]:
  """Value and integer literals (in order) of a whitelisted expression, or None."""
  if not isinstance(expr, str) or len(expr) > MAX_EXPRESSION_CHARS:
    return None
  expr = expr.translate(_TRANSLATION).strip()
  if not expr or not _ALLOWED_RE.fullmatch(expr):
    return None
  try:
    # Builds a syntax tree only (compile with PyCF_ONLY_AST); nothing is run.
    tree = ast.parse(expr, mode="eval")
  except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
    return None
  if not isinstance(tree, ast.Expression):
    return None
  if sum(1 for node in ast.walk(tree) if isinstance(node, ast.expr)) > MAX_NODES:
    return None
  literals: list[int] = []
  try:
    value = _eval_node(tree.body, literals)
  except (_Invalid, RecursionError):
    return None
  return value, literals


def _eval_node(node: ast.AST, literals: list[int]) -> Fraction:
  if isinstance(node, ast.Constant):
    value = node.value
    if type(value) is not int or not 0 <= value <= MAX_LITERAL:
      raise _Invalid
    literals.append(value)
    return Fraction(value)
  if isinstance(node, ast.UnaryOp):
    operand = _eval_node(node.operand, literals)
    if isinstance(node.op, ast.USub):
      return -operand
    if isinstance(node.op, ast.UAdd):
      return operand
    raise _Invalid
  if isinstance(node, ast.BinOp):
    op = _BIN_OPS.get(type(node.op))
    if op is None:
      raise _Invalid
    left = _eval_node(node.left, literals)
    right = _eval_node(node.right, literals)
    if op is operator.truediv and right == 0:
      raise _Invalid
    result = op(left, right)
    if (
      abs(result.numerator).bit_length() > _MAX_BITS or result.denominator.bit_length() > _MAX_BITS
    ):
      raise _Invalid
    return result
  raise _Invalid


def evaluate_expression(expr: Any) -> Optional[Fraction]:
  """Exact value of a whitelisted `+ - * /` integer expression; never raises.

  Args:
    expr: The expression, e.g. `"(25 - 5) * 3 / 4"`. `×`, `÷` and the unicode
      minus are read as `*`, `/` and `-`.

  Returns:
    The exact value, or None if `expr` is not a string or not a valid
    expression (see the module docstring), including division by zero.
  """
  result = _analyze(expr)
  return None if result is None else result[0]


def expression_numbers(expr: Any) -> Optional[list[int]]:
  """Integer literals of a valid expression in order of appearance, else None."""
  result = _analyze(expr)
  return None if result is None else result[1]


def extract_countdown_expression(text: Any) -> Optional[str]:
  """Picks the candidate expression out of a completion; never raises.

  Rule: take the content of the last well-formed `<answer>...</answer>` tag
  (`extract.extract_answer_tag`), or, if there is none, the last non-empty line
  of `text`. If the candidate contains `=`, split it on `=` and keep only the
  first part that contains a binary operator (`55 + 36 - 7 - 19 = 65` and
  `65 = 55 + 36 - 7 - 19` both give the sum), or the first part if none does;
  the other parts are ignored, so a completion cannot hedge with several
  attempts. A trailing period is dropped.

  Args:
    text: A model completion.

  Returns:
    The candidate expression string (not validated), or None.
  """
  if not isinstance(text, str):
    return None
  candidate = _extract.extract_answer_tag(text)
  if candidate is None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
      return None
    candidate = lines[-1]
  if "=" in candidate:
    parts = [part.strip() for part in candidate.split("=")]
    with_operator = [part for part in parts if _BINARY_OPERATOR_RE.search(part)]
    candidate = with_operator[0] if with_operator else parts[0]
  candidate = candidate.strip().rstrip(".").strip()
  return candidate or None


def _as_numbers(numbers: Any) -> list[int]:
  if isinstance(numbers, (str, bytes)) or not isinstance(numbers, Iterable):
    raise TypeError(f"numbers must be a sequence of non-negative ints, got {numbers!r}")
  result = []
  for k, n in enumerate(numbers):
    if isinstance(n, bool):
      raise TypeError(f"numbers[{k}] must be an int, got {n!r}")
    try:
      value = operator.index(n)
    except TypeError:
      raise TypeError(f"numbers[{k}] must be an int, got {n!r}") from None
    if value < 0:
      raise ValueError(f"numbers[{k}] must be non-negative, got {value}")
    result.append(value)
  return result


def _as_target(target: Any) -> Fraction:
  if isinstance(target, bool):
    raise TypeError(f"target must be a number, got {target!r}")
  if isinstance(target, Fraction):
    return target
  if isinstance(target, str):
    value = _numbers.parse_number(target)
    if value is None:
      raise ValueError(f"target={target!r} is not a number")
    return value
  try:
    return Fraction(operator.index(target))
  except TypeError:
    pass
  if isinstance(target, float) and target.is_integer():
    return Fraction(int(target))
  raise TypeError(f"target must be an int, Fraction or numeric str, got {target!r}")


def check_countdown(
  expr_text: Any, numbers: Iterable[int], target: Any, *, use_all_numbers: bool = False
) -> bool:
  """Whether a completion solves a Countdown instance.

  The expression is chosen by `extract_countdown_expression` (the `<answer>` tag,
  else the last line; the first `=`-separated part with an operator). It must be
  a valid expression (`evaluate_expression`), use only literals from `numbers`,
  each at most as often as it occurs there (multiset check), and evaluate
  exactly to `target`. TinyZero's stricter rule, every number exactly once, is
  `use_all_numbers=True`. Unary minus is allowed, as in the evaluator.

  Args:
    expr_text: A model completion or a bare expression (non-`str` gives False).
    numbers: The available numbers (non-negative ints).
    target: The target value: int, integral float, Fraction or numeric str.
    use_all_numbers: Require every number to be used exactly once.

  Returns:
    True if the expression is valid and correct. Never raises for any
    `expr_text`.

  Raises:
    TypeError: If `numbers` or `target` have the wrong type.
    ValueError: If a number is negative or a str `target` does not parse.
  """
  available = collections.Counter(_as_numbers(numbers))
  goal = _as_target(target)
  expr = extract_countdown_expression(expr_text)
  if expr is None:
    return False
  result = _analyze(expr)
  if result is None:
    return False
  value, literals = result
  if value != goal:
    return False
  used = collections.Counter(literals)
  if any(count > available[n] for n, count in used.items()):
    return False
  return not use_all_numbers or used == available


def solve_countdown(
  numbers: Iterable[int], target: Any, *, use_all_numbers: bool = False
) -> Optional[str]:
  """Finds one expression over `numbers` that evaluates to `target`, by brute force.

  Depth-first search over pairs of the remaining values and the operations
  `+`, `-`, `*`, `/` (both orders for `-` and `/`, no division by zero), with
  memoisation of visited multisets of values. Meant for the small instances of
  data generators and tests (at most `MAX_SOLVER_NUMBERS` numbers).

  Args:
    numbers: The available numbers (non-negative ints).
    target: The target value (as for `check_countdown`).
    use_all_numbers: Require every number to be used exactly once.

  Returns:
    A fully parenthesised expression string that `check_countdown` accepts with
    the same arguments, or None if there is none.

  Raises:
    TypeError: If `numbers` or `target` have the wrong type.
    ValueError: If there are more than `MAX_SOLVER_NUMBERS` numbers or a number
      is negative or above `MAX_LITERAL`.
  """
  values = _as_numbers(numbers)
  goal = _as_target(target)
  if len(values) > MAX_SOLVER_NUMBERS:
    raise ValueError(
      f"numbers has {len(values)} entries; solve_countdown supports at most {MAX_SOLVER_NUMBERS}"
    )
  too_large = [v for v in values if v > MAX_LITERAL]
  if too_large:
    raise ValueError(f"numbers must be <= MAX_LITERAL={MAX_LITERAL}, got {too_large[0]}")
  if not values:
    return None
  seen: set[tuple[Fraction, ...]] = set()

  def search(items: list[tuple[Fraction, str]]) -> Optional[str]:
    if not use_all_numbers or len(items) == 1:
      for value, expr in items:
        if value == goal:
          return expr
    if len(items) < 2:
      return None
    key = tuple(sorted(value for value, _ in items))
    if key in seen:
      return None
    seen.add(key)
    for i, j in itertools.combinations(range(len(items)), 2):
      (a, ea), (b, eb) = items[i], items[j]
      rest = [item for k, item in enumerate(items) if k != i and k != j]
      candidates = [
        (a + b, f"({ea} + {eb})"),
        (a * b, f"({ea} * {eb})"),
        (a - b, f"({ea} - {eb})"),
        (b - a, f"({eb} - {ea})"),
      ]
      if b != 0:
        candidates.append((a / b, f"({ea} / {eb})"))
      if a != 0:
        candidates.append((b / a, f"({eb} / {ea})"))
      for candidate in candidates:
        found = search(rest + [candidate])
        if found is not None:
          return found
    return None

  found = search([(Fraction(v), str(v)) for v in values])
  if found is not None and found.startswith("("):
    found = found[1:-1]
  return found
