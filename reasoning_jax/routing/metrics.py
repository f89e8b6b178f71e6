"""How routers are evaluated: deferral curves, AUDC, peak quality, QNC, PGR / APGR / CPT.

`shared/methods/inference.md` section 5.

  * Multi-model deferral curves ("Universal Model Routing for Efficient LLM Inference",
    Jitkrittum et al., arXiv:2502.08773; used by "R2-Router: A New Paradigm for LLM Routing
    with Reasoning", Xue et al., arXiv:2602.02823): sweep lam in `argmax (1 - lam) Q_hat -
    lam C`, record the mean realised cost and quality on the ground-truth tables per lam.
    AUDC is the trapezoid area under quality vs cost with cost min-max normalised by ONE
    global range shared by every method compared; peak quality is the curve's maximum; QNC is
    the smallest normalised cost at which quality reaches the best single LLM's (1.0 if never).
  * Binary routers ("RouteLLM: Learning to Route LLMs with Preference Data", Ong et al.,
    arXiv:2406.18665): `PGR = (perf - perf_weak) / (perf_strong - perf_weak)` against the
    strong-call fraction; APGR its area over [0, 1] from evenly spaced cost points (10 in the
    paper; a random router gives about 0.5); CPT(x) the smallest strong-call fraction with
    PGR >= x.

Every function takes arrays (host numpy is fine) and returns numpy values; nothing is jitted
beyond the routing itself.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from reasoning_jax.routing.select import Route, route

__all__ = [
  "Curve",
  "apgr",
  "audc",
  "best_single_model",
  "binary_pgr_curve",
  "cost_range",
  "cpt",
  "deferral_curve",
  "normalize_cost",
  "oracle_curve",
  "peak_quality",
  "pgr",
  "qnc",
  "realised",
]


class Curve(NamedTuple):
  """A deferral curve: one point per swept lam (or threshold).

  Attributes:
    cost: `[L]` mean realised cost.
    quality: `[L]` mean realised quality.
    lam: `[L]` the swept parameter.
  """

  cost: np.ndarray
  quality: np.ndarray
  lam: np.ndarray


def _tables(quality_true: Any, cost_true: Any) -> tuple[np.ndarray, np.ndarray]:
  q = np.asarray(quality_true, np.float64)
  c = np.asarray(cost_true, np.float64)
  if q.ndim != 3:
    raise ValueError(f"quality_true must be [N, M, K], got shape {q.shape}")
  if c.shape != q.shape:
    raise ValueError(f"cost_true must have the shape of quality_true {q.shape}, got {c.shape}")
  if not (np.all(np.isfinite(q)) and np.all(np.isfinite(c))):
    raise ValueError("quality_true and cost_true must be finite")
  return q, c


def realised(choice: Route, quality_true: Any, cost_true: Any) -> tuple[np.ndarray, np.ndarray]:
  """Mean realised `(quality, cost)` of `choice` on the ground-truth tables `[N, M, K]`:
  the entries `[n, model[n], option[n]]`, averaged over n (leading sweep axes kept)."""
  q, c = _tables(quality_true, cost_true)
  model, option = np.asarray(choice.model), np.asarray(choice.option)
  if model.shape[-1] != q.shape[0]:
    raise ValueError(f"choice routes {model.shape[-1]} queries, the tables hold {q.shape[0]}")
  rows = np.arange(q.shape[0])
  return q[rows, model, option].mean(-1), c[rows, model, option].mean(-1)


def deferral_curve(
  quality_hat: Any,
  cost_hat: Any,
  quality_true: Any,
  cost_true: Any,
  lams: Any,
  *,
  cost_scale: float = 1.0,
) -> Curve:
  """Route with the predictions at every lam of `lams` and realise on the ground truth.

  Args:
    quality_hat, cost_hat: `[N, M, K]` predicted tables (what the router sees).
    quality_true, cost_true: `[N, M, K]` ground truth (judge scores, billed cost).
    lams: `[L]` trade-offs in [0, 1] (`lambda_grid`).
    cost_scale: as in `route` (`cost_normalizer`).
  """
  lams = np.atleast_1d(np.asarray(lams, np.float64))
  choice = route(quality_hat, cost_hat, lams, cost_scale=cost_scale)
  q, c = realised(choice, quality_true, cost_true)
  return Curve(np.asarray(c), np.asarray(q), lams)


def oracle_curve(quality_true: Any, cost_true: Any, lams: Any, *, cost_scale: float = 1.0) -> Curve:
  """The oracle router: routes on the ground truth itself (an upper bound for every router
  at each lam: its mean objective is the largest possible)."""
  return deferral_curve(
    quality_true, cost_true, quality_true, cost_true, lams, cost_scale=cost_scale
  )


def cost_range(*curves: Curve) -> tuple[float, float]:
  """The global `(min, max)` cost over every curve compared (AUDC's one shared range)."""
  if not curves:
    raise ValueError("cost_range needs at least one curve")
  costs = np.concatenate([np.asarray(cv.cost, np.float64).ravel() for cv in curves])
  return float(costs.min()), float(costs.max())


def normalize_cost(cost: Any, cost_range: tuple[float, float]) -> np.ndarray:
  """Min-max normalised cost `(cost - lo) / (hi - lo)` (0 when `hi == lo`)."""
  lo, hi = (float(v) for v in cost_range)
  if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
    raise ValueError(f"cost_range must be (lo, hi) with lo <= hi, got {cost_range!r}")
  cost = np.asarray(cost, np.float64)
  return np.zeros_like(cost) if hi == lo else (cost - lo) / (hi - lo)


def _sorted_points(cost: Any, quality: Any) -> tuple[np.ndarray, np.ndarray]:
  cost, quality = np.asarray(cost, np.float64).ravel(), np.asarray(quality, np.float64).ravel()
  if cost.shape != quality.shape or not cost.size:
    raise ValueError(
      f"cost and quality must be equal, non-empty 1-D, got {cost.shape}, {quality.shape}"
    )
  order = np.lexsort((quality, cost))
  return cost[order], quality[order]


def audc(cost: Any, quality: Any, cost_range: tuple[float, float], *, extend: bool = True) -> float:
  """Area under the deferral curve on normalised cost (section 5).

  Points are sorted by cost (then quality) and integrated by the trapezoid rule on
  `normalize_cost(cost, cost_range)`. With `extend` (DESIGN CHOICE, default True) the curve
  is continued flat at its last point's quality to normalised cost 1, so a router that stops
  spending early is not charged for the cost range it never needed (without it, a cheaper
  curve would lose area it could never have used). A flat curve at quality q spanning the
  range has AUDC q.
  """
  c, q = _sorted_points(cost, quality)
  x = normalize_cost(c, cost_range)
  if extend and x[-1] < 1.0:
    x, q = np.append(x, 1.0), np.append(q, q[-1])
  return float(np.sum(0.5 * (q[1:] + q[:-1]) * np.diff(x))) if x.size > 1 else 0.0


def peak_quality(quality: Any) -> float:
  """The curve's maximum quality."""
  return float(np.max(np.asarray(quality, np.float64)))


def qnc(cost: Any, quality: Any, target: float, cost_range: tuple[float, float]) -> float:
  """Quality-neutral cost: the smallest normalised cost at which the curve's quality is
  >= `target` (the best single LLM's quality); 1.0 if never reached."""
  c, q = _sorted_points(cost, quality)
  hit = np.nonzero(q >= target)[0]
  return float(normalize_cost(c[hit[0]], cost_range)) if hit.size else 1.0


def best_single_model(
  quality_true: Any, cost_true: Any, option: int = -1
) -> tuple[int, float, float]:
  """The single LLM with the highest mean quality at table column `option` (default: the last,
  the largest budget or "default"): `(model, mean quality, mean cost)`; QNC's target."""
  q, c = _tables(quality_true, cost_true)
  means = q[:, :, option].mean(0)
  best = int(np.argmax(means))
  return best, float(means[best]), float(c[:, best, option].mean())


# ------------------------------------------------------------------------------ RouteLLM


def pgr(perf: Any, perf_weak: float, perf_strong: float) -> np.ndarray:
  """Performance gap recovered `(perf - perf_weak) / (perf_strong - perf_weak)`."""
  gap = float(perf_strong) - float(perf_weak)
  if gap == 0:
    raise ValueError("perf_strong must differ from perf_weak (PGR is undefined)")
  return (np.asarray(perf, np.float64) - perf_weak) / gap


def binary_pgr_curve(
  strong_prob: Any, quality_strong: Any, quality_weak: Any
) -> tuple[np.ndarray, np.ndarray]:
  """Exact PGR of a binary router at every strong-call fraction `j / N`, `j = 0..N`.

  The j queries with the highest `strong_prob` go to the strong model (the threshold alpha at
  the j-th score; ties in score by query index). Returns `(fractions [N+1], pgr [N+1])`.
  """
  p = np.asarray(strong_prob, np.float64).ravel()
  qs, qw = (
    np.asarray(quality_strong, np.float64).ravel(),
    np.asarray(quality_weak, np.float64).ravel(),
  )
  if not (p.shape == qs.shape == qw.shape) or not p.size:
    raise ValueError(
      f"strong_prob, quality_strong, quality_weak must be equal non-empty [N], got "
      f"{p.shape}, {qs.shape}, {qw.shape}"
    )
  n = p.size
  order = np.argsort(-p, kind="stable")
  gains = np.concatenate([[0.0], np.cumsum((qs - qw)[order])])
  perf = (qw.sum() + gains) / n
  return np.arange(n + 1) / n, pgr(perf, qw.mean(), qs.mean())


def apgr(fractions: Any, pgr_values: Any, num_points: int = 10) -> float:
  """Average PGR over the strong-call fraction in [0, 1]: PGR read (linearly) at
  `num_points + 1` evenly spaced fractions `0, 1/num_points, ..., 1` and integrated by the
  trapezoid rule (RouteLLM's 10 cost points); a random router gives about 0.5."""
  if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 1:
    raise ValueError(f"num_points must be a positive int, got {num_points!r}")
  f, g = _sorted_points(fractions, pgr_values)
  grid = np.linspace(0.0, 1.0, num_points + 1)
  values = np.interp(grid, f, g)
  return float(np.sum(0.5 * (values[1:] + values[:-1])) / num_points)


def cpt(fractions: Any, pgr_values: Any, x: float) -> float:
  """Call-performance threshold CPT(x): the smallest strong-call fraction with PGR >= x
  (e.g. x = 0.5 for CPT(50%)); 1.0 if never reached."""
  f, g = _sorted_points(fractions, pgr_values)
  hit = np.nonzero(g >= x)[0]
  return float(f[hit[0]]) if hit.size else 1.0
