"""Reference helpers for reasoning_jax.data tests, written independently of the library."""

from __future__ import annotations

from fractions import Fraction
from typing import Optional


def evaluate(text: str) -> Fraction:
  """Exact value of an integer `+ - * /` expression with parentheses (no `eval`).

  Written independently of reasoning_jax, as the reference the tests check against.
  """
  tokens, i = [], 0
  while i < len(text):
    c = text[i]
    if c.isspace():
      i += 1
    elif c.isdigit():
      j = i
      while j < len(text) and text[j].isdigit():
        j += 1
      tokens.append(int(text[i:j]))
      i = j
    elif c in "+-*/()":
      tokens.append(c)
      i += 1
    else:
      raise ValueError(f"bad character {c!r} in {text!r}")
  pos = 0

  def peek() -> Optional[object]:
    return tokens[pos] if pos < len(tokens) else None

  def take():
    nonlocal pos
    if pos >= len(tokens):
      raise ValueError(f"truncated expression {text!r}")
    pos += 1
    return tokens[pos - 1]

  def expr():
    v = term()
    while peek() in ("+", "-"):
      v = v + term() if take() == "+" else v - term()
    return v

  def term():
    v = factor()
    while peek() in ("*", "/"):
      op, rhs = take(), factor()
      if op == "/" and rhs == 0:
        raise ZeroDivisionError(text)
      v = v * rhs if op == "*" else v / rhs
    return v

  def factor():
    t = take()
    if t == "(":
      v = expr()
      if take() != ")":
        raise ValueError(f"unbalanced parentheses in {text!r}")
      return v
    if t == "-":
      return -factor()
    if isinstance(t, int):
      return Fraction(t)
    raise ValueError(f"unexpected {t!r} in {text!r}")

  v = expr()
  if pos != len(tokens):
    raise ValueError(f"trailing tokens in {text!r}")
  return v


def literals(text: str) -> list[int]:
  """The integer literals of an expression, in order."""
  out, cur = [], ""
  for c in text + " ":
    if c.isdigit():
      cur += c
    elif cur:
      out.append(int(cur))
      cur = ""
  return out
