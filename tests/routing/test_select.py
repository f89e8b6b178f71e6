"""R2-Router's selection (shared/methods/inference.md section 6.5): Pareto property, monotone
comparative statics in lam, the dominance theorem, the exact continuous search, interpolation
exactness, and the reactive / RouteLLM baselines on the same interface."""

from __future__ import annotations

import numpy as np
import pytest

from reasoning_jax.routing import (
  continuous_candidates,
  cost_normalizer,
  cost_table,
  interpolate_quality,
  lambda_grid,
  route,
  route_binary,
  route_continuous,
  route_reactive,
  RouterConfig,
)

BUDGETS = (10, 20, 50, 100, 300, 1000)


def _tables(seed: int, n: int = 64, m: int = 4, k: int = len(BUDGETS)):
  """Predicted quality increasing in the budget (as the heads usually are, not required) and
  cost from prices, plus a coarse-valued quality to create ties."""
  rng = np.random.default_rng(seed)
  Q = np.sort(rng.uniform(0, 1, (n, m, k)), axis=-1).astype(np.float32)
  pin = rng.uniform(1e-7, 1e-6, m)
  pout = rng.uniform(1e-6, 1e-5, m)
  n_in = rng.integers(10, 500, n)
  C = np.asarray(cost_table(n_in, pin, pout, BUDGETS[:k]))
  return Q, C, n_in, pin, pout


LAMS = np.linspace(0.0, 1.0, 101)


@pytest.mark.parametrize("ties", [False, True])
def test_pareto_no_candidate_dominates_the_choice(ties):
  Q, C, *_ = _tables(0)
  if ties:  # coarse values: many equal qualities and costs
    Q, C = np.round(Q * 4) / 4, np.round(C / C.max() * 5) / 5
  scale = cost_normalizer(C)
  r = route(Q, C, LAMS[1:-1], cost_scale=scale)
  q_sel, c_sel = np.asarray(r.quality)[..., None, None], np.asarray(r.cost)[..., None, None]
  dominated = (Q[None] >= q_sel) & (C[None] <= c_sel) & ((Q[None] > q_sel) | (C[None] < c_sel))
  assert not dominated.any()


@pytest.mark.parametrize("seed", [0, 1])
def test_monotone_comparative_statics_in_lambda(seed):
  Q, C, *_ = _tables(seed)
  r = route(Q, C, LAMS, cost_scale=cost_normalizer(C))
  cost, quality = np.asarray(r.cost), np.asarray(r.quality)
  assert np.all(np.diff(cost, axis=0) <= 0)
  assert np.all(np.diff(quality, axis=0) <= 0)
  # lam = 0 takes the best quality, lam = 1 the cheapest option.
  np.testing.assert_array_equal(quality[0], Q.reshape(len(Q), -1).max(-1))
  np.testing.assert_array_equal(cost[-1], C.reshape(len(C), -1).min(-1))


def test_tie_break_prefers_lower_cost_then_higher_quality():
  Q = np.array([[[0.5, 0.5], [0.5, 0.5]]], np.float32)
  C = np.array([[[3.0, 2.0], [1.0, 4.0]]], np.float32)
  r = route(Q, C, 0.0)  # all scores tie at lam = 0
  assert (int(r.model[0]), int(r.option[0])) == (1, 0)
  Q2 = np.array([[[0.2, 0.4]]], np.float32)
  C2 = np.array([[[1.0, 1.0]]], np.float32)
  r = route(Q2, C2, 1.0)  # equal cost, all scores tie at lam = 1
  assert int(r.option[0]) == 1


def test_dominance_theorem_r2_max_score_at_least_reactive():
  Q, C, *_ = _tables(2)
  n, m, k = Q.shape
  rng = np.random.default_rng(3)
  pick = rng.integers(0, k, (n, m))  # the reactive point of each LLM sits on one of its budgets
  Q_react = np.take_along_axis(Q, pick[..., None], -1)[..., 0]
  C_react = np.take_along_axis(C, pick[..., None], -1)[..., 0]
  scale = cost_normalizer(C)
  r2 = route(Q, C, LAMS, cost_scale=scale)
  re = route_reactive(Q_react, C_react, LAMS, cost_scale=scale, option=k - 1)
  assert np.all(np.asarray(r2.score) >= np.asarray(re.score))
  assert np.all(np.asarray(re.option) == k - 1)


def test_interpolation_is_exact_at_anchors_and_linear_between():
  Q, *_ = _tables(4, n=8)
  at = np.asarray(interpolate_quality(Q, BUDGETS, np.asarray(BUDGETS, np.float32)))
  np.testing.assert_array_equal(at, Q)
  mid = np.asarray(interpolate_quality(Q, BUDGETS, [35.0]))[..., 0]  # 0.5 between 20 and 50
  np.testing.assert_allclose(mid, 0.5 * (Q[..., 1] + Q[..., 2]), rtol=1e-6)
  ends = np.asarray(interpolate_quality(Q, BUDGETS, [1.0, 5000.0]))
  np.testing.assert_array_equal(ends[..., 0], Q[..., 0])
  np.testing.assert_array_equal(ends[..., 1], Q[..., -1])


@pytest.mark.parametrize("cap, lengths", [(700.0, False), (1000.0, False), (400.0, True)])
def test_continuous_search_equals_dense_grid(cap, lengths):
  Q, _, n_in, pin, pout = _tables(5, n=32, m=3)
  rng = np.random.default_rng(6)
  T = rng.uniform(5, 900, (32, 3)).astype(np.float32) if lengths else None
  scale = float((n_in.max() * pin.max() + cap * pout.max()))
  lams = np.linspace(0.05, 0.95, 7)
  exact = route_continuous(
    Q, BUDGETS, n_in, pin, pout, lams, cap, predicted_lengths=T, cost_scale=scale
  )
  grid = np.linspace(BUDGETS[0], cap, 4001, dtype=np.float32)
  Qg = np.asarray(interpolate_quality(Q, BUDGETS, grid))
  out = np.minimum(grid, T[..., None]) if lengths else grid
  Cg = n_in[:, None, None] * pin[None, :, None] + out * pout[None, :, None]
  dense = route(Qg, Cg, lams, cost_scale=scale)
  assert np.all(np.asarray(exact.score) >= np.asarray(dense.score) - 1e-6)
  np.testing.assert_allclose(np.asarray(exact.score), np.asarray(dense.score), atol=2e-4)
  b = np.asarray(exact.budget)
  assert np.all((b >= BUDGETS[0]) & (b <= cap))


def test_continuous_candidates():
  np.testing.assert_array_equal(continuous_candidates(BUDGETS, 60), [10, 20, 50, 60])
  np.testing.assert_array_equal(continuous_candidates(BUDGETS, 100), [10, 20, 50, 100])
  with pytest.raises(ValueError, match="max_budget"):
    continuous_candidates(BUDGETS, 5)


def test_binary_router_thresholds():
  p = np.array([0.1, 0.5, 0.9], np.float32)
  r = route_binary(p, 0.5, strong=2, weak=0, option=3)
  np.testing.assert_array_equal(np.asarray(r.model), [0, 2, 2])
  np.testing.assert_array_equal(np.asarray(r.option), [3, 3, 3])
  sweep = route_binary(p, np.array([0.0, 0.6, 1.0]))
  np.testing.assert_allclose(np.asarray(sweep.cost).mean(-1), [1.0, 1 / 3, 0.0], rtol=1e-6)


def test_lambda_grid_modes():
  normalized = lambda_grid(RouterConfig(num_lambdas=11))
  np.testing.assert_allclose(normalized, np.linspace(0, 1, 11))
  log_ratio = lambda_grid(RouterConfig(lambda_mode="log_ratio", num_lambdas=13))
  assert log_ratio[0] == 0 and log_ratio[-1] == 1 and np.all(np.diff(log_ratio) > 0)
  C = np.array([[[1.0, 4.0]]])
  assert cost_normalizer(C) == 4.0
  assert cost_normalizer(C, RouterConfig(lambda_mode="log_ratio")) == 1.0


@pytest.mark.parametrize("lam", [-0.1, 1.5, float("nan"), [0.2, 1.2]])
def test_lambda_outside_unit_interval_raises(lam):
  Q, C, *_ = _tables(0, n=4)
  with pytest.raises((ValueError, TypeError), match="lam"):
    route(Q, C, lam)


def test_bad_tables_raise_naming_the_argument():
  Q, C, *_ = _tables(0, n=4)
  with pytest.raises(ValueError, match="cost"):
    route(Q, C[:, :2], 0.5)
  with pytest.raises(ValueError, match="quality"):
    route(Q[0], C[0], 0.5)
  bad = Q.copy()
  bad[0, 0, 0] = np.nan
  with pytest.raises(ValueError, match="quality"):
    route(bad, C, 0.5)
  with pytest.raises(ValueError, match="cost_scale"):
    route(Q, C, 0.5, cost_scale=0.0)
  with pytest.raises(ValueError, match="alpha"):
    route_binary(np.array([0.5]), 2.0)
  with pytest.raises(ValueError, match="budgets"):
    interpolate_quality(Q, (10, 10, 50, 100, 300, 1000), [20.0])
