"""The R2-Bench-style table as arrays, and its seeded / out-of-distribution query splits.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue et al., arXiv:2602.02823),
`shared/methods/inference.md` section 6.3: per (query, LLM, budget) the quality of the answer
produced under the length instruction, its tokens and its cost. `routing.bench.build_bench`
builds one; `BenchTable.option_tables` lays it out over a router's options.

DESIGN CHOICE `quality_source` (of `option_tables`, default "verifier"): the quality a router
is trained and scored on is the verifier's (exact on this project's tasks), or "judge": the
judge model's scores (`routing.judge.ModelJudge`; R2-Bench grades every answer with a judge
LLM), available when the table was built with a judge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from reasoning_jax.routing.cost import ModelPrice
from reasoning_jax.routing.shards import atomic_json

__all__ = ["QUALITY_SOURCES", "BenchTable", "OptionTables", "ood_split", "split_indices"]

QUALITY_SOURCES = ("verifier", "judge")


class OptionTables(NamedTuple):
  """Ground-truth tables over a router's options `[N, M, K (+ 1)]`: the budgets, then the
  "default" column when asked (`RouterConfig.option_labels`)."""

  quality: np.ndarray
  cost: np.ndarray
  output_len: np.ndarray
  input_len: np.ndarray


# The default column's arrays, by the name of their budget-table counterpart.
DEFAULT_FIELDS = {
  "quality": "default_quality",
  "output_len": "default_output_len",
  "input_len": "default_input_len",
  "cost": "default_cost",
  "completions": "default_completions",
  "judge_quality": "default_judge_quality",
}


@dataclasses.dataclass
class BenchTable:
  """The benchmark as arrays (N queries, M models, K budgets).

  Attributes:
    models / budgets: the M names and K budgets.
    queries / answers / families: per query.
    quality: `[N, M, K]` verifier scores.
    output_len: `[N, M, K]` generated tokens (EOS included, at most the budget).
    input_len: `[N, M, K]` prompt tokens (the instruction included).
    cost: `[N, M, K]` `input_len * price_in + output_len * price_out`.
    prices: name -> `ModelPrice` used for `cost`.
    price_source: name -> "given" or "measured" (seconds per token).
    completions: `[N, M, K]` object array of completion texts.
    default_cap: the token cap of the no-instruction "default" column (None: not built).
    default_quality / default_output_len / default_input_len / default_cost /
    default_completions: that column, `[N, M]` each (None when not built), priced as `cost`.
    judge: the judge model's name (None: graded by the verifier only).
    judge_quality: `[N, M, K]` the judge's scores in [0, 1] (None without a judge).
    default_judge_quality: `[N, M]` the judge's scores of the default column.
  """

  models: tuple[str, ...]
  budgets: tuple[int, ...]
  queries: list[str]
  answers: list[Any]
  families: list[str]
  quality: np.ndarray
  output_len: np.ndarray
  input_len: np.ndarray
  cost: np.ndarray
  prices: dict[str, ModelPrice]
  price_source: dict[str, str]
  completions: np.ndarray
  default_cap: int | None = None
  default_quality: np.ndarray | None = None
  default_output_len: np.ndarray | None = None
  default_input_len: np.ndarray | None = None
  default_cost: np.ndarray | None = None
  default_completions: np.ndarray | None = None
  judge: str | None = None
  judge_quality: np.ndarray | None = None
  default_judge_quality: np.ndarray | None = None

  @property
  def num_queries(self) -> int:
    return len(self.queries)

  @property
  def has_default(self) -> bool:
    """Whether the no-instruction "default" column was built (`build_bench(default_cap=)`)."""
    return self.default_quality is not None

  @property
  def has_judge(self) -> bool:
    """Whether a judge model graded the table (`build_bench(judge=)`)."""
    return self.judge_quality is not None

  def option_tables(
    self, unlimited: bool = False, quality_source: str = "verifier"
  ) -> OptionTables:
    """`(quality, cost, output_len, input_len)`, `[N, M, K]` each, or `[N, M, K + 1]` with the
    "default" column last when `unlimited` (the layout of `RouterConfig(unlimited=True)`'s
    `option_labels` and of `fit_router`'s `quality`). `quality_source="judge"` puts the judge's
    scores in `quality` (the verifier's otherwise)."""
    if quality_source not in QUALITY_SOURCES:
      raise ValueError(f"quality_source must be one of {QUALITY_SOURCES}, got {quality_source!r}")
    if quality_source == "judge" and not self.has_judge:
      raise ValueError("quality_source='judge' needs judge scores: build the bench with a judge")
    first = "judge_quality" if quality_source == "judge" else "quality"
    names = (first, "cost", "output_len", "input_len")
    if not unlimited:
      return OptionTables(*(getattr(self, f) for f in names))
    if not self.has_default:
      raise ValueError(
        "unlimited=True needs the no-instruction column: build the bench with default_cap"
      )
    return OptionTables(
      *(
        np.concatenate([getattr(self, f), getattr(self, DEFAULT_FIELDS[f])[..., None]], -1)
        for f in names
      )
    )

  def take(self, index: Any) -> BenchTable:
    """The table restricted to the queries `index`."""
    idx = np.asarray(index, np.int64)
    rows = {
      f: None if getattr(self, f) is None else getattr(self, f)[idx]
      for f in (*DEFAULT_FIELDS, *DEFAULT_FIELDS.values())
    }
    return dataclasses.replace(
      self,
      queries=[self.queries[i] for i in idx],
      answers=[self.answers[i] for i in idx],
      families=[self.families[i] for i in idx],
      **rows,
    )

  def save(self, path: str) -> None:
    """Writes `path` (.npz arrays) and `path` + ".json" (names, prices, texts); the default
    column's and the judge's arrays under their field names when they were built."""
    fields = [f for f in (*DEFAULT_FIELDS, *DEFAULT_FIELDS.values()) if "completions" not in f]
    np.savez(path, **{f: getattr(self, f) for f in fields if getattr(self, f) is not None})
    meta = {
      "models": list(self.models),
      "budgets": list(self.budgets),
      "queries": self.queries,
      "answers": [str(a) for a in self.answers],
      "families": self.families,
      "prices": {k: list(v) for k, v in self.prices.items()},
      "price_source": self.price_source,
      "completions": self.completions.tolist(),
      "default_cap": self.default_cap,
      "judge": self.judge,
    }
    if self.has_default:
      meta["default_completions"] = self.default_completions.tolist()
    atomic_json(f"{path}.json", meta)


def split_indices(
  n: int, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
  """A seeded random `(train, test)` split of `range(n)` (each sorted, both non-empty)."""
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
    raise ValueError(f"n must be an int >= 2 (queries to split), got {n!r}")
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
  perm = np.random.default_rng(seed).permutation(n)
  n_test = min(max(1, int(round(test_fraction * n))), n - 1)
  return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def ood_split(
  families: Sequence[str], test_families: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
  """An out-of-distribution `(train, test)` split: the test set is every query whose family is
  in `test_families`, the training set the rest (section 6.6: STEM -> non-STEM)."""
  fams = list(families)
  test_set = set(test_families)
  missing = sorted(test_set - set(fams))
  if missing:
    raise ValueError(f"test_families {missing} do not occur in families {sorted(set(fams))}")
  mask = np.array([f in test_set for f in fams])
  if mask.all():
    raise ValueError(f"test_families {sorted(test_set)} cover every query; no training set left")
  return np.flatnonzero(~mask), np.flatnonzero(mask)
