"""Rule-based reward functions ("verifiers") registered by name in `REWARDS`.

Every reward has the signature

    fn(completion: str, answer: str, **example_fields) -> float

and returns 1.0 or 0.0. A malformed completion (any string, or even a non-`str`)
gives 0.0 and never raises; a malformed *example* (wrong `answer` type, missing
or ill-typed `numbers`/`target` fields) raises TypeError/ValueError naming the
field, since that is a data bug rather than a bad sample. Extra fields are
ignored, so one batch of examples can be scored by any reward.

Registered rewards:

* `"math_exact"`: `extract_final_answer(completion, "auto")` (boxed, answer tag,
  `####`, last number) compared with `answers_equal` (exact fractions, else
  normalised LaTeX strings). MATH-style ("Measuring Mathematical Problem
  Solving With the MATH Dataset", arXiv:2103.03874).
* `"boxed"`: the last `\\boxed{...}` only; no box gives 0.0.
* `"gsm8k"`: the text after the last `####` ("Training Verifiers to Solve Math
  Word Problems", arXiv:2110.14168), falling back to the last number of that
  line or, without `####`, of the whole completion.
* `"countdown"`: `check_countdown(completion, numbers, target)` with the example
  fields `numbers` and `target` (`target` defaults to `answer`); each number may
  be used at most once. `"countdown_strict"` requires every number exactly once,
  as in TinyZero.
* `"format_tag"`: 1.0 if the completion has a well-formed, non-empty
  `<answer>...</answer>` pair.

For `"math_exact"`, `"boxed"` and `"gsm8k"` the reference `answer` may be the
bare answer or a full reference solution: a `\\boxed{...}` (math_exact, boxed)
or `####` line (gsm8k, math_exact) in it is extracted first.

Example:
  >>> score_batch("gsm8k", ["... so 72.\\n#### 72", "#### 71"], ["72", "72"])
  array([1., 0.], dtype=float32)
"""

from __future__ import annotations

import numbers as _numbers
from fractions import Fraction
from typing import Any, Callable, Optional, Sequence

import numpy as np

from reasoning_jax.registry import REWARDS
from reasoning_jax.rewards import countdown as _countdown
from reasoning_jax.rewards import extract as _extract
from reasoning_jax.rewards import numbers as _numbers_mod

__all__ = [
  "RewardFn",
  "math_exact_reward",
  "boxed_reward",
  "gsm8k_reward",
  "countdown_reward",
  "countdown_strict_reward",
  "format_tag_reward",
  "score_batch",
  "REWARD_FIELDS",
]

RewardFn = Callable[..., float]

# The per-example fields the registered rewards read (countdown: numbers, target; rubric
# graders: rubric). Callers that score a batch forward the ones the examples carry.
REWARD_FIELDS = ("numbers", "target", "rubric")


def _gold_text(answer: Any) -> str:
  """The reference answer as a string; numbers are formatted with `str`."""
  if isinstance(answer, str):
    return answer
  if isinstance(answer, _numbers.Number) and not isinstance(answer, bool):
    return str(answer)
  if isinstance(answer, np.ndarray) and answer.ndim == 0:
    return str(answer.item())
  raise TypeError(f"answer must be a str or a number, got {type(answer).__name__}: {answer!r}")


def _reference(answer: Any, *, boxed: bool, gsm8k: bool) -> str:
  gold = _gold_text(answer)
  if boxed and ("\\boxed" in gold or "\\fbox" in gold):
    gold = _extract.extract_boxed(gold) or gold
  if gsm8k and "####" in gold:
    gold = _extract.extract_gsm8k_answer(gold) or gold
  return gold


def _score(completion: Any, check: Callable[[str], bool]) -> float:
  """1.0 if `check(completion)`; 0.0 for a non-`str` completion or any error."""
  if not isinstance(completion, str):
    return 0.0
  try:
    return 1.0 if check(completion) else 0.0
  except Exception:  # pylint: disable=broad-except
    # Rewards must be total over model output; the extractors and parsers are
    # fuzz-tested not to raise, this is a last line of defence.
    return 0.0


@REWARDS.register("math_exact")
def math_exact_reward(completion: str, answer: str, **example_fields: Any) -> float:
  """1.0 if the auto-extracted final answer equals `answer` (MATH-style grading).

  Args:
    completion: The model completion.
    answer: The reference answer, or a reference solution with `\\boxed{}`/`####`.
    **example_fields: Ignored.

  Returns:
    1.0 or 0.0.
  """
  del example_fields
  gold = _reference(answer, boxed=True, gsm8k=True)
  return _score(
    completion, lambda text: _numbers_mod.answers_equal(_extract.extract_final_answer(text), gold)
  )


@REWARDS.register("boxed")
def boxed_reward(completion: str, answer: str, **example_fields: Any) -> float:
  """1.0 if the last `\\boxed{...}` of the completion equals `answer`.

  Args:
    completion: The model completion.
    answer: The reference answer, or a reference solution with `\\boxed{}`.
    **example_fields: Ignored.

  Returns:
    1.0 or 0.0.
  """
  del example_fields
  gold = _reference(answer, boxed=True, gsm8k=False)
  return _score(
    completion, lambda text: _numbers_mod.answers_equal(_extract.extract_boxed(text), gold)
  )


def _gsm8k_prediction(text: str) -> Optional[str]:
  line = _extract.extract_gsm8k_answer(text)
  if line is None:
    return _extract.extract_last_number(text)
  if _numbers_mod.parse_number(line) is not None:
    return line
  return _extract.extract_last_number(line)


@REWARDS.register("gsm8k")
def gsm8k_reward(completion: str, answer: str, **example_fields: Any) -> float:
  """1.0 if the GSM8K answer (after `####`, else the last number) equals `answer`.

  Args:
    completion: The model completion.
    answer: The reference answer, or a GSM8K reference solution ending `#### N`.
    **example_fields: Ignored.

  Returns:
    1.0 or 0.0.
  """
  del example_fields
  gold = _reference(answer, boxed=False, gsm8k=True)
  return _score(completion, lambda text: _numbers_mod.answers_equal(_gsm8k_prediction(text), gold))


def _countdown_fields(answer: Any, example_fields: dict[str, Any]) -> tuple[list[int], Fraction]:
  if "numbers" not in example_fields:
    raise TypeError("the countdown reward needs a `numbers` example field")
  numbers = _countdown._as_numbers(example_fields["numbers"])  # pylint: disable=protected-access
  target = example_fields.get("target", answer)
  if target is None or (isinstance(target, str) and not target.strip()):
    raise TypeError("the countdown reward needs a `target` example field (or a non-empty answer)")
  return numbers, _countdown._as_target(target)  # pylint: disable=protected-access


@REWARDS.register("countdown")
def countdown_reward(completion: str, answer: str, **example_fields: Any) -> float:
  """1.0 if the completion's expression reaches `target` using each number at most once.

  Args:
    completion: The model completion (expression in `<answer>` tags, or on the
      last line; see `countdown.extract_countdown_expression`).
    answer: Used as the target when there is no `target` field.
    **example_fields: `numbers` (sequence of non-negative ints) and `target`.

  Returns:
    1.0 or 0.0.

  Raises:
    TypeError: If `numbers` is missing or ill-typed, or there is no target.
  """
  numbers, target = _countdown_fields(answer, example_fields)
  return _score(completion, lambda text: _countdown.check_countdown(text, numbers, target))


@REWARDS.register("countdown_strict")
def countdown_strict_reward(completion: str, answer: str, **example_fields: Any) -> float:
  """Like `"countdown"`, but every number must be used exactly once (TinyZero rule).

  Args:
    completion: The model completion.
    answer: Used as the target when there is no `target` field.
    **example_fields: `numbers` and `target`, as for `"countdown"`.

  Returns:
    1.0 or 0.0.
  """
  numbers, target = _countdown_fields(answer, example_fields)
  return _score(
    completion, lambda text: _countdown.check_countdown(text, numbers, target, use_all_numbers=True)
  )


@REWARDS.register("format_tag")
def format_tag_reward(completion: str, answer: str, **example_fields: Any) -> float:
  """1.0 if the completion contains a well-formed, non-empty `<answer>` tag pair.

  Args:
    completion: The model completion.
    answer: Ignored.
    **example_fields: Ignored.

  Returns:
    1.0 or 0.0.
  """
  del answer, example_fields
  return _score(completion, lambda text: _extract.extract_answer_tag(text) is not None)


def _as_batch(values: Any, argument: str) -> list[Any]:
  if isinstance(values, (str, bytes)):
    raise TypeError(f"{argument} must be a sequence, not a single {type(values).__name__}")
  if isinstance(values, np.ndarray):
    if values.ndim == 0:
      raise TypeError(f"{argument} must be a sequence, got a 0-d array")
    return list(values)
  try:
    return list(values)
  except TypeError:
    raise TypeError(f"{argument} must be a sequence, got {type(values).__name__}") from None


def score_batch(
  name: str,
  completions: Sequence[str],
  answers: Optional[Sequence[Any]] = None,
  /,
  **batched_fields: Sequence[Any],
) -> np.ndarray:
  """Scores a batch with the registered reward `name`.

  Args:
    name: A name registered in `REWARDS`.
    completions: The model completions, all `str`.
    answers: One reference answer per completion; None passes `""` (for rewards
      that ignore it, such as `"format_tag"`).
    **batched_fields: Per-example fields, each a sequence as long as
      `completions` (e.g. `numbers=[[1, 2], [3, 4]], target=[3, 7]`); example
      `i` receives `field=values[i]`.

  Returns:
    A float32 array of shape `[len(completions)]`.

  Raises:
    ValueError: If `name` is not registered or a length differs from
      `len(completions)`.
    TypeError: If `completions[i]` is not a `str` (the message names `i`), or an
      argument is not a sequence.
  """
  REWARDS.validate(name, argument="name")
  fn = REWARDS.get(name)
  completions = _as_batch(completions, "completions")
  n = len(completions)
  for i, completion in enumerate(completions):
    if not isinstance(completion, str):
      raise TypeError(f"completions[{i}] must be a str, got {type(completion).__name__}")
  if answers is None:
    answers = [""] * n
  else:
    answers = _as_batch(answers, "answers")
    if len(answers) != n:
      raise ValueError(f"len(answers)={len(answers)} != len(completions)={n}")
  fields = {}
  for key, values in batched_fields.items():
    values = _as_batch(values, key)
    if len(values) != n:
      raise ValueError(f"len({key})={len(values)} != len(completions)={n}")
    fields[key] = values
  scores = np.zeros(n, np.float32)
  for i in range(n):
    scores[i] = fn(completions[i], answers[i], **{key: values[i] for key, values in fields.items()})
  return scores
