"""Seeded generators for the synthetic reasoning tasks (pure Python, no TFDS).

Each generator takes a `random.Random` and returns one example dict with str
`question`, `answer` (the final answer) and `solution` (a worked solution that
ends with the line `Answer: {answer}`), plus task-specific fields. The TFDS
builders in `reasoning_jax.data.builders` call these; they are usable on their
own (e.g. for on-the-fly RL prompts).

* `arithmetic_example`: multi-digit `+` (column addition with carries, 2 or more
  operands), `-` (column subtraction with borrows) and `*` (partial products).
* `countdown_example`: 3-4 numbers and a target built from a random expression
  tree over all of them, so it is always solvable; `answer` is that expression.
* `modular_example`: `(a op b) mod p` for a prime `p`, reducing the operands first.

`generate_split` draws a split of unique questions (optionally excluding a set,
e.g. the test questions when drawing train) deterministically from a string seed.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Collection, Mapping, Optional, Sequence

__all__ = [
  "ARITHMETIC_OPS",
  "COUNTDOWN_OPS",
  "MODULAR_OPS",
  "arithmetic_example",
  "countdown_example",
  "modular_example",
  "generate_split",
  "primes_between",
]

ARITHMETIC_OPS = ("+", "-", "*")
COUNTDOWN_OPS = ("+", "-", "*", "/")
MODULAR_OPS = ("+", "-", "*")

_PLACES = (
  "ones",
  "tens",
  "hundreds",
  "thousands",
  "ten-thousands",
  "hundred-thousands",
  "millions",
  "ten-millions",
  "hundred-millions",
  "billions",
)


def _place(k: int) -> str:
  name = _PLACES[k] if k < len(_PLACES) else f"10^{k}"
  return f"Column {k + 1} ({name})"


def _check_ops(ops: Sequence[str], allowed: Sequence[str], arg: str) -> tuple[str, ...]:
  ops = tuple(ops)
  if not ops:
    raise ValueError(f"{arg} must name at least one operator from {allowed}, got {ops!r}")
  bad = [op for op in ops if op not in allowed]
  if bad:
    raise ValueError(f"{arg} has unsupported operators {bad}; allowed: {allowed}")
  return ops


def _random_int_with_digits(rng: random.Random, digits: int) -> int:
  lo = 0 if digits == 1 else 10 ** (digits - 1)
  return rng.randint(lo, 10**digits - 1)


# ------------------------------------------------------------------------------
# Arithmetic.
# ------------------------------------------------------------------------------


def _digits(n: int) -> list[int]:
  """Decimal digits of a non-negative int, least significant first."""
  return [int(c) for c in reversed(str(n))]


def _addition_solution(operands: Sequence[int]) -> tuple[int, list[str]]:
  lines = [
    "Add the numbers column by column, starting from the ones, and carry into the next column."
  ]
  digit_lists = [_digits(x) for x in operands]
  width = max(len(d) for d in digit_lists)
  carry, k, written = 0, 0, []
  while k < width or carry:
    terms = [d[k] for d in digit_lists if k < len(d)]
    if carry:
      terms.append(carry)
    s = sum(terms)
    digit, new_carry = s % 10, s // 10
    lhs = " + ".join(str(t) for t in terms)
    carry_text = f" (including the carry {carry})" if carry else ""
    lines.append(f"{_place(k)}: {lhs} = {s}{carry_text}. Write {digit}, carry {new_carry}.")
    written.append(digit)
    carry, k = new_carry, k + 1
  total = int("".join(str(d) for d in reversed(written)))
  lines.append(f"Reading the written digits from the last column to the first gives {total}.")
  lines.append(f"So {' + '.join(str(x) for x in operands)} = {total}.")
  return total, lines


def _subtraction_lines(top: int, bottom: int) -> tuple[int, list[str]]:
  """Column subtraction `top - bottom` for `top >= bottom >= 0`."""
  lines = [
    "Subtract column by column, starting from the ones, borrowing from the next column when needed."
  ]
  td, bd = _digits(top), _digits(bottom)
  borrow, written = 0, []
  for k, t in enumerate(td):
    b = bd[k] if k < len(bd) else 0
    parts = [f"{_place(k)}:"]
    cur = t
    if borrow:
      cur = t - borrow
      parts.append(f"after the borrow, {t} - {borrow} = {cur};")
    if cur < b:
      parts.append(f"{cur} is less than {b}, so borrow 10: {cur + 10} - {b} = {cur + 10 - b}.")
      digit, borrow = cur + 10 - b, 1
    else:
      parts.append(f"{cur} - {b} = {cur - b}.")
      digit, borrow = cur - b, 0
    parts.append(f"Write {digit}.")
    lines.append(" ".join(parts))
    written.append(digit)
  assert borrow == 0
  result = int("".join(str(d) for d in reversed(written)))
  lines.append(f"Reading the written digits from the last column to the first gives {result}.")
  return result, lines


def _subtraction_solution(a: int, b: int) -> tuple[int, list[str]]:
  if a >= b:
    result, lines = _subtraction_lines(a, b)
    lines.append(f"So {a} - {b} = {result}.")
    return result, lines
  lines = [f"{a} is less than {b}, so compute {b} - {a} and make the result negative."]
  diff, sub_lines = _subtraction_lines(b, a)
  lines += sub_lines
  lines.append(f"So {b} - {a} = {diff}, and {a} - {b} = {-diff}.")
  return -diff, lines


def _multiplication_solution(a: int, b: int) -> tuple[int, list[str]]:
  if a == 0 or b == 0:
    return 0, [f"One factor is 0, so {a} * {b} = 0."]
  lines = [
    f"Multiply {a} by each digit of {b} (with its place value), then add the partial products."
  ]
  partials = []
  for k, d in enumerate(_digits(b)):
    if d == 0:
      lines.append(f"{_place(k)} digit of {b} is 0: no partial product.")
      continue
    m = d * 10**k
    p = a * m
    partials.append(p)
    lines.append(f"{a} * {m} = {p}.")
  total = sum(partials)
  if len(partials) > 1:
    lines.append(f"Add the partial products: {' + '.join(str(p) for p in partials)} = {total}.")
  lines.append(f"So {a} * {b} = {total}.")
  return total, lines


def _compact_solution(op: str, operands: Sequence[int], answer: int) -> list[str]:
  """A short worked solution (CPU-sized SFT): column sums, or partial products."""
  if op == "+":
    digit_lists = [_digits(x) for x in operands]
    width = max(len(d) for d in digit_lists)
    carry, k, steps = 0, 0, []
    while k < width or carry:
      terms = [d[k] for d in digit_lists if k < len(d)] + ([carry] if carry else [])
      total = sum(terms)
      steps.append(f"{'+'.join(str(t) for t in terms)}={total}")
      carry, k = total // 10, k + 1
    return [", ".join(steps)]
  if op == "*" and len(operands) == 2 and operands[1] >= 10:
    a, b = operands
    partials = [a * d * 10**k for k, d in enumerate(_digits(b)) if d]
    steps = [f"{a}*{p // a}={p}" for p in partials] if a else []
    if len(partials) > 1:
      steps.append(f"{'+'.join(str(p) for p in partials)}={answer}")
    return [", ".join(steps) or f"{a}*{b}={answer}"]
  return [f" {op} ".join(str(x) for x in operands) + f" = {answer}"]


SOLUTION_STYLES = ("verbose", "compact")


def corrupt_final_answer(example: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
  """The example with one digit of its solution's final `Answer: X` line changed.

  A transcription error in a demonstration: the worked steps stay right, the last line
  disagrees with them, and `answer` (what the verifier checks) keeps the true value. One
  digit of X, drawn uniformly, is replaced by a different uniformly drawn digit (a leading
  digit never becomes 0), so a model that imitates such data spreads its mass over wrong
  final answers that share the same context as the right one.
  """
  solution = example["solution"]
  head, sep, last = solution.rpartition("Answer: ")
  if not sep or not last.lstrip("-").isdigit():
    raise ValueError(f"solution has no final 'Answer: <integer>' line: {solution!r}")
  sign, digits = ("-", last[1:]) if last.startswith("-") else ("", last)
  i = rng.randrange(len(digits))
  choices = [
    d for d in "0123456789" if d != digits[i] and not (d == "0" and i == 0 and len(digits) > 1)
  ]
  digits = digits[:i] + rng.choice(choices) + digits[i + 1 :]
  return {**example, "solution": f"{head}{sep}{sign}{digits}"}


def add_answer_noise(
  examples: list[dict[str, Any]], fraction: float, *, seed: str, arg_name: str = "answer_noise"
) -> list[dict[str, Any]]:
  """Corrupts the final answer line of `fraction` of `examples` (deterministic in `seed`)."""
  if not 0.0 <= fraction <= 1.0:
    raise ValueError(f"{arg_name} must be in [0, 1], got {fraction}")
  if fraction == 0.0:
    return examples
  rng = random.Random(seed)
  return [corrupt_final_answer(ex, rng) if rng.random() < fraction else ex for ex in examples]


def arithmetic_example(
  rng: random.Random,
  *,
  min_digits: int = 1,
  max_digits: int = 3,
  max_operands: int = 2,
  ops: Sequence[str] = ARITHMETIC_OPS,
  style: str = "verbose",
) -> dict[str, Any]:
  """Draws one arithmetic problem with a column-method worked solution.

  Args:
    rng: Source of randomness.
    min_digits: Fewest digits of an operand (>= 1).
    max_digits: Most digits of an operand (>= min_digits).
    max_operands: Most operands of an addition (>= 2); `-` and `*` use 2.
    ops: Operators to draw from, a subset of `("+", "-", "*")`.
    style: "verbose" (sentences, one line per column) or "compact" (one line of
      column sums / partial products; ~5x fewer tokens, for CPU-sized runs).

  Returns:
    A dict with `question`, `answer`, `solution`, `op` (str) and `operands`
    (list of int).

  Raises:
    ValueError: On invalid arguments (the message names the argument).
  """
  if not 1 <= min_digits <= max_digits:
    raise ValueError(
      f"min_digits and max_digits must satisfy 1 <= min_digits <= max_digits, "
      f"got {min_digits} and {max_digits}"
    )
  if max_operands < 2:
    raise ValueError(f"max_operands must be >= 2, got {max_operands}")
  if style not in SOLUTION_STYLES:
    raise ValueError(f"style must be one of {SOLUTION_STYLES}, got {style!r}")
  ops = _check_ops(ops, ARITHMETIC_OPS, "ops")
  op = rng.choice(ops)
  n = rng.randint(2, max_operands) if op == "+" else 2
  operands = [_random_int_with_digits(rng, rng.randint(min_digits, max_digits)) for _ in range(n)]
  if op == "+":
    answer, lines = _addition_solution(operands)
  elif op == "-":
    answer, lines = _subtraction_solution(*operands)
  else:
    answer, lines = _multiplication_solution(*operands)
  if style == "compact":
    lines = _compact_solution(op, operands, answer)
  lines.append(f"Answer: {answer}")
  expr = f" {op} ".join(str(x) for x in operands)
  return {
    "question": f"What is {expr}?",
    "answer": str(answer),
    "solution": "\n".join(lines),
    "op": op,
    "operands": operands,
  }


# ------------------------------------------------------------------------------
# Countdown.
# ------------------------------------------------------------------------------

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


class _Expr:
  """A node of a countdown expression tree (a leaf when `op` is None)."""

  __slots__ = ("value", "op", "left", "right")

  def __init__(
    self,
    value: int,
    op: Optional[str] = None,
    left: Optional["_Expr"] = None,
    right: Optional["_Expr"] = None,
  ):
    self.value, self.op, self.left, self.right = value, op, left, right

  def render(self) -> str:
    """Infix text with only the parentheses that precedence requires."""
    if self.op is None:
      return str(self.value)
    prec = _PRECEDENCE[self.op]
    left = self.left.render()
    if self.left.op is not None and _PRECEDENCE[self.left.op] < prec:
      left = f"({left})"
    right = self.right.render()
    if self.right.op is not None:
      rprec = _PRECEDENCE[self.right.op]
      # a - (b + c), a / (b * c), a * (b / c): keep the grouping explicit.
      if rprec < prec or (rprec == prec and (self.op in "-/" or self.right.op in "-/")):
        right = f"({right})"
    return f"{left} {self.op} {right}"


def _combine(rng: random.Random, a: _Expr, b: _Expr, ops: Sequence[str]) -> Optional[_Expr]:
  """Combines two nodes with a random valid op (positive integer result), or None."""
  for op in rng.sample(list(ops), len(ops)):
    x, y = a.value, b.value
    if op == "-" and x < y:
      a, b, x, y = b, a, y, x
    if op == "/" and (y == 0 or x % y):
      if x and y % x == 0:
        a, b, x, y = b, a, y, x
      else:
        continue
    value = {"+": x + y, "-": x - y, "*": x * y, "/": x // y if y else 0}[op]
    if value <= 0:
      continue
    return _Expr(value, op, a, b)
  return None


def countdown_example(
  rng: random.Random,
  *,
  min_numbers: int = 3,
  max_numbers: int = 4,
  max_value: int = 50,
  max_target: int = 1000,
  ops: Sequence[str] = COUNTDOWN_OPS,
  max_tries: int = 1000,
) -> dict[str, Any]:
  """Draws a countdown puzzle that is solvable by construction.

  Numbers are drawn from `[1, max_value]`; a random binary expression tree that
  uses every number exactly once (intermediate results are positive integers,
  `/` only when exact) gives the target, which must lie in `[1, max_target]`.

  Args:
    rng: Source of randomness.
    min_numbers: Fewest numbers (>= 2).
    max_numbers: Most numbers (>= min_numbers).
    max_value: Largest number drawn.
    max_target: Largest allowed target.
    ops: Operators to use, a subset of `("+", "-", "*", "/")`.
    max_tries: Draws before giving up.

  Returns:
    A dict with `question`, `answer` (an expression that uses each number once
    and evaluates to the target), `solution`, `numbers` (list of int, in the
    order shown in the question) and `target` (int).

  Raises:
    ValueError: On invalid arguments, or if no puzzle was found in `max_tries`.
  """
  if not 2 <= min_numbers <= max_numbers:
    raise ValueError(
      f"min_numbers and max_numbers must satisfy 2 <= min_numbers <= "
      f"max_numbers, got {min_numbers} and {max_numbers}"
    )
  if max_value < 1:
    raise ValueError(f"max_value must be >= 1, got {max_value}")
  if max_target < 1:
    raise ValueError(f"max_target must be >= 1, got {max_target}")
  ops = _check_ops(ops, COUNTDOWN_OPS, "ops")
  for _ in range(max_tries):
    n = rng.randint(min_numbers, max_numbers)
    numbers = [rng.randint(1, max_value) for _ in range(n)]
    pool = [_Expr(x) for x in numbers]
    steps = []
    while len(pool) > 1:
      i, j = rng.sample(range(len(pool)), 2)
      node = _combine(rng, pool[i], pool[j], ops)
      if node is None:
        break
      steps.append(f"{node.left.value} {node.op} {node.right.value} = {node.value}")
      pool = [p for k, p in enumerate(pool) if k not in (i, j)] + [node]
    if len(pool) != 1 or not 1 <= pool[0].value <= max_target:
      continue
    target, expr = pool[0].value, pool[0].render()
    shown = ", ".join(str(x) for x in numbers)
    question = (
      f"Using the numbers [{shown}], create an equation that equals {target}. "
      f"You can use {', '.join(ops)} and each number exactly once."
    )
    lines = ["Combine two numbers at a time:"] + steps
    lines += [f"So {expr} = {target}.", f"Answer: {expr}"]
    return {
      "question": question,
      "answer": expr,
      "solution": "\n".join(lines),
      "numbers": numbers,
      "target": target,
    }
  raise ValueError(
    f"no countdown puzzle with a target in [1, {max_target}] found in "
    f"max_tries={max_tries} draws; raise max_target or max_tries"
  )


# ------------------------------------------------------------------------------
# Modular arithmetic.
# ------------------------------------------------------------------------------


def primes_between(lo: int, hi: int) -> list[int]:
  """Primes `p` with `lo <= p <= hi`."""
  return [p for p in range(max(lo, 2), hi + 1) if all(p % q for q in range(2, int(p**0.5) + 1))]


def _divmod_line(x: int, p: int) -> str:
  q, r = divmod(x, p)
  qs = f"({q})" if q < 0 else str(q)
  return f"{x} = {p} * {qs} + {r}"


def modular_example(
  rng: random.Random,
  *,
  max_operand: int = 100,
  min_modulus: int = 3,
  max_modulus: int = 31,
  ops: Sequence[str] = MODULAR_OPS,
) -> dict[str, Any]:
  """Draws `(a op b) mod p` for a prime `p` with a worked solution.

  The solution reduces `a` and `b` mod `p`, combines the residues, and reduces
  the result, writing each reduction as `x = p * q + r`.

  Args:
    rng: Source of randomness.
    max_operand: `a` and `b` are drawn from `[0, max_operand]`.
    min_modulus: Smallest modulus.
    max_modulus: Largest modulus.
    ops: Operators to draw from, a subset of `("+", "-", "*")`.

  Returns:
    A dict with `question`, `answer`, `solution`, `a`, `b`, `modulus` (ints)
    and `op` (str).

  Raises:
    ValueError: On invalid arguments (the message names the argument).
  """
  if max_operand < 1:
    raise ValueError(f"max_operand must be >= 1, got {max_operand}")
  primes = primes_between(min_modulus, max_modulus)
  if not primes:
    raise ValueError(
      f"no prime modulus in [min_modulus, max_modulus] = [{min_modulus}, {max_modulus}]"
    )
  ops = _check_ops(ops, MODULAR_OPS, "ops")
  op, p = rng.choice(ops), rng.choice(primes)
  a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
  ra, rb = a % p, b % p
  lines = [
    f"Reduce both operands modulo {p} first.",
    f"{_divmod_line(a, p)}, so {a} mod {p} = {ra}.",
    f"{_divmod_line(b, p)}, so {b} mod {p} = {rb}.",
  ]
  value = {"+": ra + rb, "-": ra - rb, "*": ra * rb}[op]
  lines.append(f"Combine the residues: {ra} {op} {rb} = {value}.")
  answer = value % p
  lines.append(f"{_divmod_line(value, p)}, so {value} mod {p} = {answer}.")
  assert answer == {"+": a + b, "-": a - b, "*": a * b}[op] % p
  lines.append(f"Answer: {answer}")
  return {
    "question": f"What is ({a} {op} {b}) mod {p}?",
    "answer": str(answer),
    "solution": "\n".join(lines),
    "a": a,
    "b": b,
    "modulus": p,
    "op": op,
  }


# ------------------------------------------------------------------------------
# Splits.
# ------------------------------------------------------------------------------


def generate_split(
  make_example: Callable[[random.Random], dict[str, Any]],
  num_examples: int,
  *,
  seed: str,
  exclude: Collection[str] = (),
  unique: bool = True,
  max_tries_per_example: int = 50,
  arg_name: str = "num_examples",
) -> list[dict[str, Any]]:
  """Draws examples deterministically from a string seed.

  Args:
    make_example: Draws one example from an rng.
    num_examples: How many examples to return.
    seed: Seed string (e.g. `"arithmetic:0:test"`); equal seeds give equal lists.
    exclude: Questions that must not appear (e.g. the test questions for train).
    unique: Also reject questions already drawn for this split.
    max_tries_per_example: Give up after `num_examples * max_tries_per_example
      + 1000` draws (the question space is too small).
    arg_name: Name of the count in error messages (e.g. `num_train`).

  Returns:
    The examples, in draw order.

  Raises:
    ValueError: If `num_examples` is negative or not enough distinct questions exist.
  """
  if num_examples < 0:
    raise ValueError(f"{arg_name} must be >= 0, got {num_examples}")
  rng = random.Random(seed)
  seen: set[str] = set()
  out: list[dict[str, Any]] = []
  budget = num_examples * max_tries_per_example + 1000
  while len(out) < num_examples:
    if budget <= 0:
      raise ValueError(
        f"could only draw {len(out)} of {arg_name}={num_examples} examples with distinct "
        "questions (excluding the other split's); lower it or make the task harder"
      )
    budget -= 1
    ex = make_example(rng)
    q = ex["question"]
    if q in exclude or (unique and q in seen):
      continue
    seen.add(q)
    out.append(ex)
  return out
