"""The final answer a verifier reads, as a canonical key, and the plurality pseudo-label.

Methods that group samples by their answer need the *verifier's* reading of a completion,
not a second extractor that could disagree with it:

* TrajFusion ("Beyond Rejection Sampling: Trajectory Fusion for Scaling Mathematical
  Reasoning", arXiv:2602.04391) groups wrong trajectories by their distinct final answers;
* CPMöbius ("CPMöbius: Iterative Coach-Player Reasoning for Data-Free Reinforcement
  Learning", arXiv:2602.02979) labels a self-proposed problem with the unique most frequent
  answer of the player's samples.

`answer_key(reward, completion)` extracts with exactly the extractor of the registered reward
`reward` and canonicalises: numbers become their exact fraction (`"0.50"`, `"1/2"` and
`"\\frac{1}{2}"` share the key `"1/2"`), other answers their `normalize_answer` form; no
extractable answer is None. Two completions with equal keys are scored equal by that reward
against any reference (for the numeric answers all our tasks use).
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Hashable, Optional, Sequence

from reasoning_jax.rewards import countdown as _countdown
from reasoning_jax.rewards import extract as _extract
from reasoning_jax.rewards import numbers as _numbers
from reasoning_jax.rewards import verifiers as _verifiers

__all__ = ["ANSWER_KEY_REWARDS", "answer_key", "answer_keys", "unique_mode"]


def _canonical(answer: Optional[str]) -> Optional[str]:
  if answer is None:
    return None
  value = _numbers.parse_number(_numbers._strip_lhs(answer))
  if value is not None:
    return str(value)
  normalized = _numbers.normalize_answer(answer)
  return normalized or None


def _countdown_key(text: str) -> Optional[str]:
  value = _countdown.evaluate_expression(_countdown.extract_countdown_expression(text))
  return None if value is None else str(value)


# Registered reward -> the extractor its score reads.
_EXTRACTORS: dict[str, Callable[[str], Optional[str]]] = {
  "math_exact": lambda t: _canonical(_extract.extract_final_answer(t)),
  "boxed": lambda t: _canonical(_extract.extract_boxed(t)),
  "gsm8k": lambda t: _canonical(_verifiers._gsm8k_prediction(t)),
  "countdown": _countdown_key,
  "countdown_strict": _countdown_key,
}
ANSWER_KEY_REWARDS = tuple(sorted(_EXTRACTORS))


def answer_key(reward: str, completion: Any) -> Optional[str]:
  """The canonical final answer of `completion` as the reward `reward` reads it, or None.

  Never raises on model output (a non-str completion or an unparsable answer gives None).

  Raises:
    ValueError: `reward` has no answer extractor (`ANSWER_KEY_REWARDS` lists those that do).
  """
  if reward not in _EXTRACTORS:
    raise ValueError(
      f"reward={reward!r} has no answer extractor; answer keys exist for {ANSWER_KEY_REWARDS}"
    )
  if not isinstance(completion, str):
    return None
  try:
    return _EXTRACTORS[reward](completion)
  except Exception:  # pylint: disable=broad-except  # Total over model output, like the rewards.
    return None


def answer_keys(reward: str, completions: Sequence[Any]) -> list[Optional[str]]:
  """`answer_key` of every completion."""
  return [answer_key(reward, c) for c in completions]


def unique_mode(answers: Sequence[Optional[Hashable]]) -> Optional[Hashable]:
  """The unique most frequent non-None answer; None on a tie for the top count or when no
  answer is present. Missing answers (None) are counted as distinct non-answers: they can
  never be the label, and they still count in the denominator of any agreement rate.

  >>> unique_mode([5, 5, 3]), unique_mode([5, 3]), unique_mode([None, None, 4])
  (5, None, 4)
  """
  counts = collections.Counter(a for a in answers if a is not None)
  if not counts:
    return None
  (top, n), *rest = counts.most_common(2)
  if rest and rest[0][1] == n:
    return None
  return top
