"""Routing decisions: `argmax (1 - lam) Q_hat - lam C` over (LLM, budget), and the baselines.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue et al., arXiv:2602.02823),
`shared/methods/inference.md` sections 6.1, 6.2 and 6.4:

  * `route`: the joint choice over every (LLM i, option k) of `Q_hat, C [N, M, K]`, flattened
    over (i, k); ties go to the lower predicted cost, then the higher predicted quality, then
    the lower flat index, so the choice is never dominated and moves monotonically in lam;
  * `route_continuous`: the continuous budget `b' in [b_1, B_user]` with `Q_hat` interpolated
    linearly between anchors. Within a segment both `Q_hat(b')` and `C(b')` are linear, so the
    maximum sits at an anchor, at the cap `B_user`, or (with the predicted-length cap
    `min(b', T_hat)`) at `T_hat`: evaluating those points is the exact search (section 6.2,
    "Implementation insight"), no grid;
  * `route_reactive`: the reactive model-only router of the paper's baselines (one predicted
    (quality, cost) point per LLM, e.g. CARROT / IRT-style routers);
  * `route_binary`: RouteLLM's strong/weak router ("RouteLLM: Learning to Route LLMs with
    Preference Data", Ong et al., arXiv:2406.18665): strong iff `P(strong wins) >= alpha`.

All return a `Route` (`model`, `option`, `score`, `quality`, `cost`, `budget`), evaluated by
`reasoning_jax.routing.metrics`. `lam` may be a scalar or a 1-D sweep (leading axis `[L]`).
Costs are divided by `cost_scale` inside the trade-off (`cost_normalizer`: the pool's max cost
under `lambda_mode="normalized"`); `Route.cost` stays in the caller's units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from reasoning_jax.routing.config import RouterConfig, check_budgets, check_lambda
from reasoning_jax.validation import as_array, check_finite

__all__ = [
  "Route",
  "continuous_candidates",
  "cost_normalizer",
  "interpolate_quality",
  "lambda_grid",
  "route",
  "route_binary",
  "route_continuous",
  "route_reactive",
]


class Route(NamedTuple):
  """A routing decision per query (leading `[L]` axis for a lam / alpha sweep).

  Attributes:
    model: `[N]` int32, the chosen LLM (index into the pool).
    option: `[N]` int32, the chosen option: the column of the `[N, M, K]` tables (budget
      anchor or "default"); for `route_continuous` the candidate index.
    score: `[N]` the objective at the choice.
    quality: `[N]` predicted quality of the choice.
    cost: `[N]` predicted cost of the choice (caller's units, not normalised).
    budget: `[N]` the chosen output budget (`route_continuous`; else None).
  """

  model: jax.Array
  option: jax.Array
  score: jax.Array
  quality: jax.Array
  cost: jax.Array
  budget: jax.Array | None = None


# ------------------------------------------------------------------------------ lam handling


def lambda_grid(config: RouterConfig | None = None) -> np.ndarray:
  """The lam values of a deferral-curve sweep, `[config.num_lambdas]`, from 0 to 1.

  "normalized": uniform on [0, 1] (costs divided by `cost_normalizer`). "log_ratio":
  `lam / (1 - lam)` log-uniform over `10 ** log_ratio_range`, with the ends set to 0 and 1.
  """
  config = RouterConfig() if config is None else config
  num = config.num_lambdas
  if config.lambda_mode == "normalized" or num < 3:
    return np.linspace(0.0, 1.0, num)
  ratio = 10.0 ** np.linspace(*config.log_ratio_range, num)
  lams = ratio / (1.0 + ratio)
  lams[0], lams[-1] = 0.0, 1.0
  return lams


def cost_normalizer(cost: Any, config: RouterConfig | None = None) -> float:
  """The `cost_scale` of `route` under `config.lambda_mode`: the pool's max cost in `cost`
  ("normalized"; reuse the training table's value at deployment so lam keeps its meaning)
  or 1.0 ("log_ratio")."""
  config = RouterConfig() if config is None else config
  if config.lambda_mode == "log_ratio":
    return 1.0
  top = float(np.max(np.asarray(cost)))
  return top if top > 0 else 1.0


def _check_lams(lam: Any, name: str = "lam") -> tuple[jax.Array, bool]:
  """`lam` as a float32 array and whether it was a sweep (1-D)."""
  if np.ndim(lam) == 0:
    return jnp.float32(check_lambda(lam if not hasattr(lam, "item") else lam.item(), name)), False
  values = np.asarray(lam, np.float64)
  if values.ndim != 1 or not values.size:
    raise ValueError(f"{name} must be a float in [0, 1] or a 1-D sweep of them, got {values.shape}")
  if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
    raise ValueError(f"{name} must lie in [0, 1], got values in [{values.min()}, {values.max()}]")
  return jnp.asarray(values, jnp.float32), True


def _check_scale(cost_scale: Any) -> float:
  if isinstance(cost_scale, bool) or not np.isfinite(cost_scale) or not cost_scale > 0:
    raise ValueError(f"cost_scale must be a finite float > 0, got {cost_scale!r}")
  return float(cost_scale)


def _check_tables(quality: Any, cost: Any, qname: str, cname: str, ndim: int):
  quality = as_array(quality, qname, ndim=ndim)
  cost = as_array(cost, cname, shape=tuple(quality.shape))
  if any(s == 0 for s in quality.shape):
    raise ValueError(f"{qname} must not be empty, got shape {tuple(quality.shape)}")
  check_finite(quality, qname)
  check_finite(cost, cname)
  return quality.astype(jnp.float32), cost.astype(jnp.float32)


# ------------------------------------------------------------------------------ the argmax


def _select(Q: jax.Array, C: jax.Array, lam: jax.Array, scale: jax.Array) -> Route:
  """Core: argmax over the flattened (i, k) of `[N, M, K]` with the tie-break chain."""
  n, _, k = Q.shape
  q, c = Q.reshape(n, -1), C.reshape(n, -1)
  s = (1.0 - lam) * q - lam * (c / scale)
  cand = s >= s.max(-1, keepdims=True)
  cand &= c <= jnp.where(cand, c, jnp.inf).min(-1, keepdims=True)
  cand &= q >= jnp.where(cand, q, -jnp.inf).max(-1, keepdims=True)
  j = jnp.argmax(cand, -1)

  def take(a):
    return jnp.take_along_axis(a, j[:, None], -1)[:, 0]

  return Route((j // k).astype(jnp.int32), (j % k).astype(jnp.int32), take(s), take(q), take(c))


_select_one = jax.jit(_select)
_select_sweep = jax.jit(jax.vmap(_select, in_axes=(None, None, 0, None)))


def route(quality: Any, cost: Any, lam: Any, *, cost_scale: float = 1.0) -> Route:
  """R2-Router's joint choice `argmax_{i,k} (1 - lam) Q_hat[n,i,k] - lam C[n,i,k] / cost_scale`.

  Args:
    quality: `Q_hat [N, M, K]` predicted quality per (query, LLM, option).
    cost: `C [N, M, K]` predicted cost (`cost_table`).
    lam: the trade-off in [0, 1], or a 1-D sweep `[L]` (outputs get a leading `[L]` axis).
    cost_scale: costs are divided by it in the objective (`cost_normalizer`).
  """
  Q, C = _check_tables(quality, cost, "quality", "cost", 3)
  lams, sweep = _check_lams(lam)
  scale = _check_scale(cost_scale)
  return (_select_sweep if sweep else _select_one)(Q, C, lams, jnp.float32(scale))


def route_reactive(
  quality: Any, cost: Any, lam: Any, *, cost_scale: float = 1.0, option: int = 0
) -> Route:
  """The reactive model-only router: one predicted point per LLM, `quality, cost [N, M]`.

  `option` is the table column the points stand for when the choice is evaluated on the
  `[N, M, K]` ground truth (e.g. the no-instruction "default" column); it is copied to
  `Route.option`.
  """
  Q, C = _check_tables(quality, cost, "quality", "cost", 2)
  lams, sweep = _check_lams(lam)
  scale = _check_scale(cost_scale)
  r = (_select_sweep if sweep else _select_one)(
    Q[..., None], C[..., None], lams, jnp.float32(scale)
  )
  return r._replace(option=jnp.full_like(r.option, int(option)))


def route_binary(
  strong_prob: Any,
  alpha: Any,
  *,
  strong: int = 1,
  weak: int = 0,
  option: int = 0,
  strong_cost: float = 1.0,
) -> Route:
  """RouteLLM's binary router: the strong model iff `strong_prob >= alpha`.

  Args:
    strong_prob: `[N]` the router's estimate of `P(strong wins | q)` in [0, 1].
    alpha: threshold in [0, 1], or a 1-D sweep `[L]`.
    strong, weak: the two models' indices in the pool.
    option: the table column both models answer in (copied to `Route.option`).
    strong_cost: `Route.cost` of a strong call (weak calls cost 0), so the mean cost is the
      strong-call fraction by default.
  Returns `Route` with `score = quality = strong_prob`.
  """
  p = as_array(strong_prob, "strong_prob", ndim=1)
  check_finite(p, "strong_prob")
  values = np.asarray(p)
  if values.size and (values.min() < 0 or values.max() > 1):
    raise ValueError("strong_prob must hold probabilities in [0, 1]")
  alphas, sweep = _check_lams(alpha, "alpha")
  to_strong = p[None, :] >= (alphas[:, None] if sweep else alphas[None, None])
  to_strong = to_strong if sweep else to_strong[0]
  model = jnp.where(to_strong, strong, weak).astype(jnp.int32)
  p = jnp.broadcast_to(p.astype(jnp.float32), model.shape)
  return Route(
    model,
    jnp.full_like(model, int(option)),
    p,
    p,
    jnp.where(to_strong, jnp.float32(strong_cost), jnp.float32(0.0)),
  )


# ------------------------------------------------------------------------------ continuous


def interpolate_quality(quality: Any, budgets: Sequence[int], query_budgets: Any) -> jax.Array:
  """`Q_hat(b')` by piecewise-linear interpolation between anchors (section 6.2):
  `(1 - a) Q_hat(b_k) + a Q_hat(b_{k+1})`, `a = (b' - b_k) / (b_{k+1} - b_k)`.

  Outside `[b_1, b_K]` the curve is held at the end anchor's value (DESIGN CHOICE: no head
  was trained there). Exact at anchors.

  Args:
    quality: `Q_hat [N, M, K]` at the anchors.
    budgets: the K anchors, strictly increasing.
    query_budgets: `[P]` budgets shared by every (query, LLM), or `[N, M, P]`.
  Returns `[N, M, P]`.
  """
  Q = as_array(quality, "quality", ndim=3)
  b = jnp.asarray(check_budgets(budgets), jnp.float32)
  if Q.shape[-1] != b.shape[0]:
    raise ValueError(f"quality must have {b.shape[0]} options (one per budget), got {Q.shape}")
  qb = as_array(jnp.asarray(query_budgets, jnp.float32), "query_budgets", ndim=(1, 3))
  if qb.ndim == 3 and tuple(qb.shape[:2]) != tuple(Q.shape[:2]):
    raise ValueError(
      f"query_budgets must be [P] or [N, M, P] = {Q.shape[:2]} + [P], got {qb.shape}"
    )
  return _interpolate(Q.astype(jnp.float32), b, qb)


@jax.jit
def _interpolate(Q: jax.Array, b: jax.Array, qb: jax.Array) -> jax.Array:
  if b.shape[0] == 1:
    return jnp.broadcast_to(Q, Q.shape[:2] + (qb.shape[-1],))
  qb = jnp.broadcast_to(qb, Q.shape[:2] + (qb.shape[-1],))
  lo = jnp.clip(jnp.searchsorted(b, qb, side="right") - 1, 0, b.shape[0] - 2)
  a = jnp.clip((qb - b[lo]) / (b[lo + 1] - b[lo]), 0.0, 1.0)
  q_lo = jnp.take_along_axis(Q, lo, -1)
  q_hi = jnp.take_along_axis(Q, lo + 1, -1)
  return (1.0 - a) * q_lo + a * q_hi


def continuous_candidates(budgets: Sequence[int], max_budget: float) -> np.ndarray:
  """The exact search set of the continuous budget `b' in [b_1, max_budget]`: the anchors up
  to the cap, and the cap itself (once). Raises if `max_budget < b_1`."""
  b = np.asarray(check_budgets(budgets), np.float64)
  if isinstance(max_budget, bool) or not np.isfinite(max_budget) or max_budget < b[0]:
    raise ValueError(
      f"max_budget must be a number >= the smallest budget {int(b[0])}, got {max_budget!r}"
    )
  kept = b[b <= max_budget]
  return kept if kept[-1] == max_budget else np.append(kept, float(max_budget))


def route_continuous(
  quality: Any,
  budgets: Sequence[int],
  input_tokens: Any,
  price_in: Any,
  price_out: Any,
  lam: Any,
  max_budget: float,
  *,
  predicted_lengths: Any = None,
  cost_scale: float = 1.0,
) -> Route:
  """The continuous R2-Router search over `b' in [b_1, max_budget]`, exactly.

  Cost `C(b') = n_in price_in + b' price_out` (or `min(b', T_hat) price_out` with
  `predicted_lengths [N, M]`); quality interpolated between anchors (`interpolate_quality`).
  The objective is piecewise linear in `b'` with breakpoints at the anchors and `T_hat`, so
  its maximum over the interval is at one of: the anchors <= cap, the cap, `T_hat` clipped to
  the interval. Those candidates `[N, M, P]` are scored and `route`'s tie-break applies.

  Args:
    quality: `Q_hat [N, M, K]` at the K anchors (without the "default" column).
    budgets: the K anchors.
    input_tokens: `[N]`; price_in, price_out: `[M]` per-token prices.
    lam: the trade-off in [0, 1] or a 1-D sweep.
    max_budget: the user's cap `B_user`.
    predicted_lengths: optional `[N, M]` output-length predictions `T_hat`.
    cost_scale: as in `route`.
  Returns `Route` with `budget [N]` (float) and `option` the candidate index.
  """
  Q = as_array(quality, "quality", ndim=3)
  check_finite(Q, "quality")
  n, m, _ = Q.shape
  cands = jnp.asarray(continuous_candidates(budgets, max_budget), jnp.float32)
  n_in = as_array(jnp.asarray(input_tokens, jnp.float32), "input_tokens", shape=(n,))
  pin = as_array(jnp.asarray(price_in, jnp.float32), "price_in", shape=(m,))
  pout = as_array(jnp.asarray(price_out, jnp.float32), "price_out", shape=(m,))
  cands = jnp.broadcast_to(cands, (n, m, cands.shape[0]))
  out_tokens = cands
  if predicted_lengths is not None:
    T = as_array(jnp.asarray(predicted_lengths, jnp.float32), "predicted_lengths", shape=(n, m))
    check_finite(T, "predicted_lengths")
    kink = jnp.clip(T, float(min(budgets[0], max_budget)), float(max_budget))[..., None]
    cands = jnp.concatenate([cands, kink], -1)
    out_tokens = jnp.minimum(cands, jnp.maximum(T, 0.0)[..., None])
  Qc = interpolate_quality(Q, budgets, cands)
  Cc = n_in[:, None, None] * pin[None, :, None] + out_tokens * pout[None, :, None]
  r = route(Qc, Cc, lam, cost_scale=cost_scale)
  flat = cands.reshape(n, -1)
  budget = jnp.take_along_axis(
    jnp.broadcast_to(flat, r.model.shape + flat.shape[-1:]),
    (r.model * cands.shape[-1] + r.option)[..., None],
    -1,
  )[..., 0]
  return r._replace(budget=budget)
