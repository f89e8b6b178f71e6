"""Rubrics: weighted criteria for open-ended responses, and the sparse rubric reward.

Grad2Reward: From Sparse Judgment to Dense Rewards for Improving Open-Ended LLM Reasoning
(Zhang et al.), arXiv 2602.01791; rl.md section 6.1.

A rubric is a list of items `(criterion, weight)`. A judge reads (prompt, response, criterion)
and returns a verdict True/False per item; the sparse reward of a response is

    r(x, o) = sum_k w_k * 1[z_k = True] / sum_k max(w_k, 0)

Weights may be negative (undesirable criteria, e.g. "repeats the question"): a satisfied
negative item lowers the reward, and the normaliser counts only the positive weights, so the
reward lies in `[sum_k min(w_k, 0) / Z, 1]` with `Z = sum_k max(w_k, 0)`. A rubric whose
weights are all <= 0 has `Z = 0`: it is rejected (`RubricError`), never scored as 0.

Storage format (JSON, one object per rubric; what the rubric task's examples carry):

    {"items": [{"criterion": "states the intermediate sum 47", "weight": 2.0,
                "check": {"number": 47}}, ...]}

`Rubric.parse` also takes the bare list of items, or a JSON string of either. `check` is
optional and never shown to a judge: it is the rule the programmatic grader
(`rubric_rules`, registered in `REWARDS`) applies to evaluate a response, for tasks built so
that every criterion is checkable. Checks: `{"number": n}` (n appears as a number),
`{"final": n}` (the last number of the response is n), `{"text": s}` (s appears,
case-insensitive).

Batched form: `K` = the most items of any rubric in the batch; `weights [N, K]` with
`item_mask [N, K]` (0 on padding items) and `verdicts [N, K]` (bool). `rubric_arrays` builds
the padded arrays, `sparse_rubric_reward` scores them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from reasoning_jax.registry import REWARDS
from reasoning_jax.validation import as_array, as_mask, check_finite

__all__ = [
  "CHECKS",
  "Rubric",
  "RubricError",
  "RubricItem",
  "check_item",
  "rubric_arrays",
  "rubric_rules_reward",
  "sparse_rubric_reward",
  "verdict_agreement",
]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _numbers_in(text: str) -> list[float]:
  return [float(x) for x in _NUMBER.findall(text[:10_000])]


CHECKS = {
  "number": lambda value, text: float(value) in _numbers_in(text),
  "final": lambda value, text: bool(_numbers_in(text)) and _numbers_in(text)[-1] == float(value),
  "text": lambda value, text: str(value).lower() in text.lower(),
}


def check_item(check: Mapping[str, Any], completion: str) -> bool:
  """Applies one `{kind: value}` check to a completion (False on malformed values)."""
  ((kind, value),) = check.items()
  try:
    return bool(CHECKS[kind](value, completion))
  except (TypeError, ValueError, OverflowError):
    return False


class RubricError(ValueError):
  """A malformed rubric; the message names the field (and the example when known)."""


@dataclasses.dataclass(frozen=True)
class RubricItem:
  """One criterion and its weight (negative for undesirable behaviour)."""

  criterion: str
  weight: float
  check: Mapping[str, Any] | None = None

  def __post_init__(self):
    if not isinstance(self.criterion, str) or not self.criterion.strip():
      raise RubricError(f"rubric item criterion must be a non-empty string, got {self.criterion!r}")
    if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)):
      raise RubricError(f"rubric item weight must be a number, got {self.weight!r}")
    if not math.isfinite(self.weight):
      raise RubricError(f"rubric item weight must be finite, got {self.weight!r}")
    if self.check is not None:
      if not isinstance(self.check, Mapping) or len(self.check) != 1:
        raise RubricError(f"rubric item check must be one {{kind: value}}, got {self.check!r}")
      ((kind, value),) = self.check.items()
      if kind not in CHECKS:
        raise RubricError(f"rubric item check kind {kind!r}; expected one of {sorted(CHECKS)}")


@dataclasses.dataclass(frozen=True)
class Rubric:
  """Items of one prompt; at least one positive weight (the normaliser must be > 0)."""

  items: tuple[RubricItem, ...]

  def __post_init__(self):
    if not self.items:
      raise RubricError("a rubric needs at least one item")
    if self.normaliser <= 0:
      weights = [item.weight for item in self.items]
      raise RubricError(
        f"rubric weights are all <= 0 ({weights}): the reward's normaliser "
        "sum_k max(w_k, 0) would be 0; give at least one criterion a positive weight"
      )

  @property
  def normaliser(self) -> float:
    """`Z = sum_k max(w_k, 0)`."""
    return float(sum(max(item.weight, 0.0) for item in self.items))

  @property
  def weights(self) -> np.ndarray:
    return np.asarray([item.weight for item in self.items], np.float32)

  def score(self, verdicts: Sequence[bool]) -> float:
    """The sparse reward of one response from its verdicts (one bool per item)."""
    if len(verdicts) != len(self.items):
      raise RubricError(f"verdicts has {len(verdicts)} entries, the rubric {len(self.items)} items")
    return float(sum(i.weight for i, v in zip(self.items, verdicts) if v) / self.normaliser)

  def to_json(self) -> str:
    items = []
    for item in self.items:
      d = {"criterion": item.criterion, "weight": item.weight}
      if item.check is not None:
        d["check"] = dict(item.check)
      items.append(d)
    return json.dumps({"items": items})

  def grade(self, completion: str) -> list[bool]:
    """Verdicts of the programmatic checks (every item needs a `check`)."""
    missing = [i for i, item in enumerate(self.items) if item.check is None]
    if missing:
      raise RubricError(f"rubric items {missing} have no 'check': the grader cannot evaluate them")
    return [check_item(item.check, completion) for item in self.items]

  @classmethod
  def parse(cls, obj: Any, *, where: str = "rubric") -> "Rubric":
    """A Rubric from a JSON string, `{"items": [...]}` or a list of `{criterion, weight}`."""
    if isinstance(obj, Rubric):
      return obj
    if isinstance(obj, (str, bytes)):
      try:
        obj = json.loads(obj)
      except json.JSONDecodeError as e:
        raise RubricError(f"{where} is not valid JSON: {e}") from None
    if isinstance(obj, Mapping):
      if "items" not in obj:
        raise RubricError(f"{where} must have an 'items' list, got keys {sorted(obj)}")
      obj = obj["items"]
    if not isinstance(obj, Sequence) or isinstance(obj, (str, bytes)):
      raise RubricError(f"{where} items must be a list, got {type(obj).__name__}")
    items = []
    for k, item in enumerate(obj):
      if not isinstance(item, Mapping) or not (
        {"criterion", "weight"} <= set(item) <= {"criterion", "weight", "check"}
      ):
        raise RubricError(
          f"{where} item {k} must be an object with 'criterion', 'weight' (and optionally "
          f"'check'), got {item!r}"
        )
      try:
        items.append(RubricItem(item["criterion"], item["weight"], item.get("check")))
      except RubricError as e:
        raise RubricError(f"{where} item {k}: {e}") from None
    try:
      return cls(tuple(items))
    except RubricError as e:
      raise RubricError(f"{where}: {e}") from None


def rubric_arrays(rubrics: Sequence[Any], *, max_items: int | None = None):
  """Padded `(weights [N, K] float32, item_mask [N, K] float32)` for `N` rubrics.

  `max_items` fixes K (static shapes across steps); a rubric with more items is an error.
  """
  parsed = [Rubric.parse(r, where=f"rubrics[{n}]") for n, r in enumerate(rubrics)]
  if not parsed:
    raise RubricError("rubrics is empty")
  k = max(len(r.items) for r in parsed)
  if max_items is not None:
    if k > max_items:
      raise RubricError(f"a rubric has {k} items, more than max_items={max_items}")
    k = max_items
  weights = np.zeros((len(parsed), k), np.float32)
  mask = np.zeros((len(parsed), k), np.float32)
  for n, r in enumerate(parsed):
    weights[n, : len(r.items)] = r.weights
    mask[n, : len(r.items)] = 1
  return weights, mask


def sparse_rubric_reward(verdicts: Any, weights: Any, item_mask: Any = None) -> jax.Array:
  """`r_n = sum_k w_nk 1[z_nk] / sum_k max(w_nk, 0)` over the real items -> `[N]` float32.

  Args:
    verdicts: `[N, K]` bool (or 0/1): the judge's verdict per item.
    weights: `[N, K]` finite item weights.
    item_mask: `[N, K]` 0/1, 1 on real items (default all).

  Raises RubricError when a row's real weights are all <= 0 (its normaliser would be 0).
  """
  weights = as_array(weights, "weights", ndim=2, kind="number")
  verdicts = as_mask(verdicts, "verdicts", shape=tuple(weights.shape))
  item_mask = (
    jnp.ones(weights.shape, jnp.float32)
    if item_mask is None
    else as_mask(item_mask, "item_mask", shape=tuple(weights.shape))
  )
  check_finite(weights, "weights", where=item_mask)
  positive = np.asarray(jnp.sum(jnp.maximum(weights, 0) * item_mask, axis=-1))
  if np.any(positive <= 0):
    rows = np.nonzero(positive <= 0)[0].tolist()
    raise RubricError(
      f"weights: rows {rows} have no positive weight on a real item (the normaliser "
      "sum_k max(w_k, 0) would be 0)"
    )
  return _sparse_core(verdicts, weights, item_mask)


@jax.jit
def _sparse_core(verdicts, weights, item_mask):
  w = jnp.asarray(weights, jnp.float32) * jnp.asarray(item_mask, jnp.float32)
  z = jnp.sum(jnp.maximum(w, 0), axis=-1)
  return jnp.sum(w * jnp.asarray(verdicts, jnp.float32), axis=-1) / z


@REWARDS.register("rubric_rules")
def rubric_rules_reward(
  completion: str, answer: Any = None, *, rubric: Any = None, **_: Any
) -> float:
  """The sparse rubric reward with verdicts from each item's programmatic `check`.

  The evaluation grader of rubric tasks built here (never a training signal in Grad2Reward
  experiments, where the judge decides). `answer` is ignored; `rubric` is the example's
  rubric (JSON or `Rubric`). A non-`str` completion scores as if no check passed.
  """
  del answer
  if rubric is None:
    raise RubricError("rubric_rules needs the example's 'rubric' field (a task with rubrics)")
  parsed = Rubric.parse(rubric)
  if not isinstance(completion, str):
    return parsed.score([False] * len(parsed.items))
  return parsed.score(parsed.grade(completion))


def verdict_agreement(rubrics, completions, verdicts) -> dict[str, float]:
  """A judge's verdicts `[N, K]` against the items' programmatic checks ({} unless every item
  of every rubric has a check).

  `judge_accuracy`: the fraction of (response, item) verdicts equal to the check;
  `judge_true_rate` / `grader_true_rate`: how often each says True; per item position k
  (rubrics of a task list their items in one order), `judge_accuracy_item{k}` and
  `judge_true_rate_item{k}` / `grader_true_rate_item{k}`, which show *which* criteria a
  judge cannot check (a judge that only sees whether a part is present says True where the
  grader, comparing numbers, says False).
  """
  # Item position -> (pairs, agreements, judge True, grader True).
  counts: dict[int, np.ndarray] = {}
  for rubric, text, row in zip(rubrics, completions, verdicts):
    parsed = Rubric.parse(rubric)
    if any(item.check is None for item in parsed.items):
      return {}
    for k, (truth, said) in enumerate(zip(parsed.grade(text), row[: len(parsed.items)])):
      said = bool(said)
      counts.setdefault(k, np.zeros(4, np.int64))
      counts[k] += (1, truth == said, said, truth)
  total = sum(counts.values()) if counts else np.zeros(4, np.int64)
  n = max(int(total[0]), 1)
  out = {
    "judge_accuracy": total[1] / n,
    "judge_true_rate": total[2] / n,
    "grader_true_rate": total[3] / n,
  }
  for k, (pairs, agree, judge_true, grader_true) in sorted(counts.items()):
    out[f"judge_accuracy_item{k}"] = agree / pairs
    out[f"judge_true_rate_item{k}"] = judge_true / pairs
    out[f"grader_true_rate_item{k}"] = grader_true / pairs
  return {key: float(value) for key, value in out.items()}
