"""Evaluating routers on an `[N, M, K]` table: R2-Router and its baselines on one split.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue et al., arXiv:2602.02823),
`shared/methods/inference.md` sections 5 and 6.4. Pure functions of arrays (testable on
synthetic tables): `quality`, `cost` `[N, M, K]` are the ground truth (verifier scores, measured
cost), `cost_hat` the cost the routers see (the paper's `n_in price_in + b_k price_out`), `Z`
the query embeddings. Per split:

  * R2-Router: heads per (model, budget) ("ridge" and / or "mlp") fitted on the training
    queries, routed jointly over (model, budget) at every lam (`routing.route`, realised on the
    ground truth by `routing.realised`). With a `DefaultOption` (the released code's
    `unlimited`), each model also offers its no-instruction answer: its quality head is one
    more column of `quality`, its predicted cost `n_in price_in + min(T_hat, cap) price_out`
    with `T_hat` a ridge prediction of its output length fitted on the training queries, and a
    route that picks it is realised on the table's default column (its measured quality and
    cost); `default_share` is how often it is picked over the lam sweep;
  * reactive: the same heads' column of the largest budget only (one point per model, the
    "default" answer: the paper's model-only routers);
  * binary (RouteLLM-style): strong = the last model, weak = the first, both at the largest
    budget; `P(strong wins | q)` from a ridge head on `1[q_strong > q_weak]`, clipped to
    [0, 1]; its PGR curve gives APGR and CPT(50%) / CPT(80%);
  * random: each query to the strong model with probability f (else the weak), f on a grid
    (RouteLLM's random baseline; its APGR is about 0.5);
  * oracle: routes on the ground truth itself (`routing.oracle_curve`).

Metrics on ONE global cost range per split (every curve and single-model point): AUDC, peak
quality, QNC against the best single model (the highest mean quality at the largest budget),
and the raw cost at which each curve first reaches that quality, and 90% of it (the paper's
"4-5x lower cost" is the reactive router's cost there over R2-Router's). The K-anchor ablation fits heads at K
of the budgets and interpolates the others (`routing.interpolate_quality`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from reasoning_jax.routing import (
  Curve,
  RouterConfig,
  apgr,
  audc,
  binary_pgr_curve,
  cost_normalizer,
  cost_range,
  cpt,
  deferral_curve,
  fit_length_predictor,
  fit_quality_heads,
  fit_ridge_heads,
  interpolate_quality,
  lambda_grid,
  oracle_curve,
  peak_quality,
  predict_lengths,
  predict_quality,
  qnc,
  realised,
  ridge_heads_apply,
  route,
  route_binary,
  route_reactive,
)

ORACLE, REACTIVE, BINARY, RANDOM = "oracle", "reactive", "binary (RouteLLM)", "random"


def r2_name(head: str) -> str:
  return f"R2-Router ({head})"


def predicted_cost(input_len: Any, price_in: Any, price_out: Any, budgets: Sequence[int]):
  """`C_hat [N, M, K] = n_in price_in + b_k price_out`: what a router sees (the budget is
  billed in full; the measured `cost` bills the tokens actually generated)."""
  n_in = np.asarray(input_len, np.float64)
  if n_in.ndim == 3:
    n_in = n_in[..., 0]
  b = np.asarray(budgets, np.float64)
  pin, pout = np.asarray(price_in, np.float64), np.asarray(price_out, np.float64)
  return n_in[:, :, None] * pin[None, :, None] + b[None, None, :] * pout[None, :, None]


class DefaultOption(NamedTuple):
  """The no-instruction "default" option of every model (`RouterConfig.unlimited`), as the
  routers see it: the length predictor's targets and what its predicted cost is made of.

  Attributes:
    output_len: `[N, M]` generated tokens of the default answers (`BenchTable.default_output_len`).
    input_len: `[N, M]` their prompt tokens (no instruction).
    price_in, price_out: `[M]` per-token prices.
    cap: the default answers' token cap (`BenchTable.default_cap`).
  """

  output_len: Any
  input_len: Any
  price_in: Any
  price_out: Any
  cap: int


def predicted_default_cost(default: DefaultOption, lengths_hat: Any, rows: Any) -> np.ndarray:
  """`C_hat [n, M]` of the default option at queries `rows`: `n_in price_in + min(T_hat, cap)
  price_out` (the released code's cost of "unlimited"; `lengths_hat [n, M]` is `T_hat`)."""
  n_in = np.asarray(default.input_len, np.float64)[rows]
  tokens = np.clip(np.asarray(lengths_hat, np.float64), 0.0, float(default.cap))
  return n_in * np.asarray(default.price_in)[None] + tokens * np.asarray(default.price_out)[None]


def standardize(Z_train: Any, Z: Any) -> np.ndarray:
  """`Z` standardised by the training rows' mean and std (zero-variance features kept at 0)."""
  Z_train, Z = np.asarray(Z_train, np.float64), np.asarray(Z, np.float64)
  mu, sd = Z_train.mean(0), Z_train.std(0)
  return ((Z - mu) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


def head_config(
  settings: dict[str, Any], head: str, budgets: Sequence[int], default_cap: int | None = None
) -> RouterConfig:
  """The `RouterConfig` of R2-Router's heads under the experiment's settings (`unlimited`
  with a `default_cap`)."""
  extra = {} if default_cap is None else {"unlimited": True, "default_cap": int(default_cap)}
  return RouterConfig(
    **extra,
    head=head,
    hidden_sizes=tuple(settings.get("mlp_hidden", (256, 128, 64))),
    learning_rate=float(settings.get("mlp_learning_rate", 1e-4)),
    epochs=int(settings.get("mlp_epochs", 100)),
    ridge_alpha=float(settings.get("ridge_alpha", 10.0)),
    budgets=tuple(int(b) for b in budgets),
    num_lambdas=int(settings.get("num_lambdas", 201)),
    seed=int(settings.get("seed", 0)),
  )


def fit_predict(
  Z_tr, Q_tr, Z_te, head: str, settings: dict[str, Any], budgets, default_cap=None
) -> np.ndarray:
  """`Q_hat [N_te, M, K (+1)]` of heads of kind `head` fitted on `(Z_tr, Q_tr [N_tr, M, K
  (+1)])` (the "default" column last with `default_cap`)."""
  cfg = head_config(settings, head, budgets, default_cap)
  heads = fit_quality_heads(Z_tr, Q_tr, cfg, key=jax.random.key(cfg.seed))
  return np.asarray(predict_quality(heads, Z_te), np.float64)


def anchor_indices(num_budgets: int, count: int) -> np.ndarray:
  """`count` anchor columns of `num_budgets`, evenly spread, always with the largest budget."""
  if not 1 <= count <= num_budgets:
    raise ValueError(f"anchor count must be in [1, {num_budgets}], got {count}")
  if count == 1:
    return np.asarray([num_budgets - 1])
  return np.unique(np.round(np.linspace(0, num_budgets - 1, count)).astype(int))


def anchor_quality(Q_hat_anchor: Any, budgets: Sequence[int], anchors: Any) -> np.ndarray:
  """`Q_hat [N, M, K]` at every budget from heads at the `anchors` columns only
  (piecewise-linear between anchors, held flat outside them)."""
  b = [int(budgets[i]) for i in np.asarray(anchors)]
  return np.asarray(interpolate_quality(Q_hat_anchor, b, list(budgets)), np.float64)


def strong_probability(Z_tr, Q_tr, Z_te, strong: int, weak: int, alpha: float) -> np.ndarray:
  """RouteLLM-style `P(strong wins | q)`: a ridge head on `1[q_strong > q_weak]` at the largest
  budget, clipped to [0, 1]."""
  y = (np.asarray(Q_tr)[:, strong, -1] > np.asarray(Q_tr)[:, weak, -1]).astype(np.float32)
  heads = fit_ridge_heads(Z_tr, y[:, None], float(alpha))
  return np.clip(np.asarray(ridge_heads_apply(heads, np.asarray(Z_te)))[:, 0], 0.0, 1.0)


def _points(curve: Curve) -> dict[str, list[float]]:
  return {"cost": np.asarray(curve.cost).tolist(), "quality": np.asarray(curve.quality).tolist()}


def cost_at(curve: Curve, target: float) -> float:
  """The smallest raw mean cost at which `curve` reaches quality `target` (nan if never)."""
  c, q = np.asarray(curve.cost, np.float64), np.asarray(curve.quality, np.float64)
  hit = q >= target - 1e-12
  return float(c[hit].min()) if hit.any() else float("nan")


def evaluate_split(
  quality: Any,
  cost: Any,
  cost_hat: Any,
  Z: Any,
  train: Any,
  test: Any,
  budgets: Sequence[int],
  settings: dict[str, Any],
  *,
  heads: Sequence[str] = ("ridge",),
  anchor_counts: Sequence[int] = (),
  seed: int = 0,
  default: DefaultOption | None = None,
) -> dict[str, Any]:
  """Every router on one `(train, test)` split; returns per router its curve and metrics,
  the single models' points, the binary router's APGR / CPT and the K-anchor ablation.

  `quality`, `cost` are `[N, M, K]` over the budgets, or `[N, M, K + 1]` with the default
  column last when `default` is given (`BenchTable.option_tables(unlimited=True)`); `cost_hat`
  is `[N, M, K]`. The default option is offered to R2-Router and to the oracle; the reactive,
  binary and random baselines, the single models and the ablation stay at the budgets.
  """
  q_opt, c_opt, ch = (np.asarray(a, np.float64) for a in (quality, cost, cost_hat))
  train, test = np.asarray(train), np.asarray(test)
  k = len(budgets)
  if q_opt.shape[-1] != k + (default is not None) or c_opt.shape != q_opt.shape:
    what = f"{k} budgets" + (" + the default column" if default is not None else "")
    raise ValueError(
      f"quality and cost must be [N, M, {k + (default is not None)}] ({what}), got "
      f"{q_opt.shape} and {c_opt.shape}"
    )
  q, c = q_opt[..., :k], c_opt[..., :k]
  n, m, _ = q.shape
  if m < 2:
    raise ValueError(f"routing needs a pool of at least 2 models, got {m}")
  Z_tr, Z_te = standardize(Z[train], Z[train]), standardize(Z[train], Z[test])
  q_tr, q_te, c_te, ch_te = q[train], q[test], c[test], ch[test]
  settings = {**settings, "seed": seed}
  lams = lambda_grid(head_config(settings, "ridge", budgets))
  scale = cost_normalizer(ch[train])
  cap = None if default is None else default.cap
  ch_opt_te = ch_te  # What R2-Router sees per option: the budgets, then the default option.
  if default is not None:
    lengths = fit_length_predictor(
      Z_tr, np.asarray(default.output_len)[train], float(settings.get("ridge_alpha", 10.0))
    )
    ch_default = predicted_default_cost(default, predict_lengths(lengths, Z_te), test)
    ch_opt_te = np.concatenate([ch_te, ch_default[..., None]], -1)
  curves: dict[str, Curve] = {}
  q_hats = {}
  shares = {}
  for head in heads:
    q_hats[head] = fit_predict(Z_tr, q_opt[train], Z_te, head, settings, budgets, cap)
    choice = route(q_hats[head], ch_opt_te, lams, cost_scale=scale)
    curves[r2_name(head)] = Curve(*realised(choice, q_opt[test], c_opt[test])[::-1], lams)
    # Per lam: the fraction of test queries routed to a model's default option (column k).
    shares[r2_name(head)] = (np.asarray(choice.option) == k).mean(-1)
  base = q_hats.get("ridge", q_hats[heads[0]])[..., :k]
  r = route_reactive(base[..., -1], ch_te[..., -1], lams, cost_scale=scale, option=k - 1)
  curves[REACTIVE] = Curve(*realised(r, q_te, c_te)[::-1], lams)
  strong, weak = m - 1, 0
  p = strong_probability(Z_tr, q_tr, Z_te, strong, weak, settings.get("ridge_alpha", 10.0))
  alphas = np.unique(np.clip(np.concatenate([np.linspace(0, 1, 101), p, [1.0]]), 0.0, 1.0))
  rb = route_binary(p, alphas, strong=strong, weak=weak, option=k - 1)
  curves[BINARY] = Curve(*realised(rb, q_te, c_te)[::-1], alphas)
  rng = np.random.default_rng(seed + 1000)
  fracs = np.linspace(0.0, 1.0, 21)
  scores = rng.random(len(test))
  rr = route_binary(scores, 1.0 - fracs, strong=strong, weak=weak, option=k - 1)
  curves[RANDOM] = Curve(*realised(rr, q_te, c_te)[::-1], fracs)
  curves[ORACLE] = oracle_curve(q_opt[test], c_opt[test], lams, cost_scale=scale)
  singles = {
    "quality": q_te[:, :, -1].mean(0).tolist(),
    "cost": c_te[:, :, -1].mean(0).tolist(),
    "quality_by_budget": q_te.mean(0).tolist(),
    "cost_by_budget": c_te.mean(0).tolist(),
  }
  if default is not None:
    singles["quality_default"] = q_opt[test][..., k].mean(0).tolist()
    singles["cost_default"] = c_opt[test][..., k].mean(0).tolist()
  best = int(np.argmax(singles["quality"]))
  target = float(singles["quality"][best])
  single_curve = Curve(np.asarray(singles["cost"]), np.asarray(singles["quality"]), np.zeros(m))
  crange = cost_range(*curves.values(), single_curve)
  out: dict[str, Any] = {"routers": {}, "singles": singles, "best_model": best, "target": target}
  out["cost_range"] = list(crange)
  for name, cv in curves.items():
    out["routers"][name] = {
      "audc": audc(cv.cost, cv.quality, crange),
      "peak": peak_quality(cv.quality),
      "qnc": qnc(cv.cost, cv.quality, target, crange),
      "cost_at_best": cost_at(cv, target),
      "cost_at_90": cost_at(cv, 0.9 * target),
      "curve": _points(cv),
    }
    if default is not None and name in shares:
      out["routers"][name]["default_share"] = float(shares[name].mean())
      out["routers"][name]["curve"]["default_share"] = shares[name].tolist()
  nan = float("nan")
  out["binary"] = {"apgr": nan, "cpt50": nan, "cpt80": nan, "random_apgr": nan}
  if _gap(q_te):
    fr, g = binary_pgr_curve(p, q_te[:, strong, -1], q_te[:, weak, -1])
    fr_rand, g_rand = binary_pgr_curve(scores, q_te[:, strong, -1], q_te[:, weak, -1])
    n_pts = int(settings.get("apgr_points", 10))
    out["binary"] = {
      "apgr": apgr(fr, g, n_pts),
      "cpt50": cpt(fr, g, 0.5),
      "cpt80": cpt(fr, g, 0.8),
      "random_apgr": apgr(fr_rand, g_rand, n_pts),
    }
  if anchor_counts:
    out["anchors"] = anchor_ablation(
      Z_tr, q_tr, Z_te, q_te, c_te, ch_te, budgets, settings, anchor_counts, lams, scale, crange,
      target,
    )  # fmt: skip
  return out


def _gap(q_te: np.ndarray) -> bool:
  """Whether the strong and weak models differ in mean quality (PGR is defined)."""
  return abs(q_te[:, -1, -1].mean() - q_te[:, 0, -1].mean()) > 1e-9


def anchor_ablation(
  Z_tr, q_tr, Z_te, q_te, c_te, ch_te, budgets, settings, counts, lams, scale, crange, target
) -> dict[str, dict[str, float]]:
  """R2-Router (ridge) with heads at K anchors, the other budgets interpolated: AUDC / QNC /
  peak per K (keys: str(K))."""
  k = len(budgets)
  out = {}
  for count in counts:
    count = min(int(count), k)
    idx = anchor_indices(k, count)
    sub = [int(budgets[i]) for i in idx]
    q_hat = fit_predict(Z_tr, q_tr[..., idx], Z_te, "ridge", settings, sub)
    full = anchor_quality(q_hat, budgets, idx)
    cv = deferral_curve(full, ch_te, q_te, c_te, lams, cost_scale=scale)
    out[str(count)] = {
      "anchors": sub,
      "audc": audc(cv.cost, cv.quality, crange),
      "qnc": qnc(cv.cost, cv.quality, target, crange),
      "peak": peak_quality(cv.quality),
    }
  return out
