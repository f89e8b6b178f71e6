"""What a proposed problem is, for the synthetic arithmetic grammar: validity and difficulty.

The coach writes free text; only the player's pseudo-labels decide what is trained on. These
diagnostics say what the coach learned to propose (never used for training): whether the text
is a well-formed question of the task grammar `What is a op b [op c ...]?`, its difficulty
(operands, digits of the largest operand, operator) and its true value (to measure how often
the player's plurality label is right).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

from reasoning_jax.rewards.countdown import evaluate_expression

__all__ = ["ProblemInfo", "parse_problem", "problem_text"]

_QUESTION_RE = re.compile(r"^What is (\d{1,9}(?: [-+*] \d{1,9}){1,5})\?$")


@dataclasses.dataclass(frozen=True)
class ProblemInfo:
  """A well-formed arithmetic question: its operands, operators and exact value."""

  operands: tuple[int, ...]
  ops: tuple[str, ...]
  value: str  # the exact value, as `rewards.answer_key` writes numbers

  @property
  def num_operands(self) -> int:
    return len(self.operands)

  @property
  def max_digits(self) -> int:
    return max(len(str(x)) for x in self.operands)

  @property
  def bucket(self) -> str:
    """`"<operands>x<max digits>"`, e.g. `"2x3"`: the difficulty bucket used in the plots."""
    return f"{self.num_operands}x{self.max_digits}"


def problem_text(completion: str) -> str:
  """The proposal a coach completion makes: its first non-empty line, stripped."""
  for line in completion.splitlines():
    if line.strip():
      return line.strip()
  return ""


def parse_problem(text: str) -> Optional[ProblemInfo]:
  """The `ProblemInfo` of a well-formed question of the arithmetic grammar, else None."""
  m = _QUESTION_RE.match(text.strip())
  if m is None:
    return None
  tokens = m.group(1).split(" ")
  value = evaluate_expression(m.group(1))
  if value is None:
    return None
  return ProblemInfo(tuple(int(t) for t in tokens[::2]), tuple(tokens[1::2]), str(value))
