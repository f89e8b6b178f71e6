"""Router evaluation (shared/methods/inference.md section 5): a random binary router's APGR is
about 0.5, the oracle dominates every router, AUDC of a flat curve is its quality, QNC is 1.0
when the target is never reached, and the PGR / CPT definitions."""

from __future__ import annotations

import numpy as np
import pytest

from reasoning_jax.routing import (
  apgr,
  audc,
  best_single_model,
  binary_pgr_curve,
  cost_normalizer,
  cost_range,
  cost_table,
  cpt,
  deferral_curve,
  oracle_curve,
  peak_quality,
  pgr,
  qnc,
  realised,
  route,
  route_binary,
)

BUDGETS = (10, 50, 200, 1000)


def _bench(seed=0, n=300, m=4):
  """Ground-truth tables: bigger models and budgets are better on average, noisy per query;
  predictions are the truth plus noise."""
  rng = np.random.default_rng(seed)
  skill = np.linspace(0.3, 0.8, m)[None, :, None] + 0.15 * np.log10(np.asarray(BUDGETS) / 10)
  Q_true = np.clip(skill * rng.uniform(0.6, 1.2, (n, 1, 1)) + rng.normal(0, 0.1, (n, m, 4)), 0, 1)
  pin, pout = np.geomspace(1e-7, 1e-5, m), np.geomspace(1e-6, 1e-4, m)
  C_true = np.asarray(cost_table(rng.integers(20, 300, n), pin, pout, BUDGETS), np.float64)
  Q_hat = np.clip(Q_true + rng.normal(0, 0.15, Q_true.shape), 0, 1).astype(np.float32)
  return Q_true, C_true, Q_hat


def test_random_router_apgr_is_one_half():
  rng = np.random.default_rng(0)
  n = 1000
  quality_strong = rng.uniform(0.4, 1.0, n)
  quality_weak = rng.uniform(0.0, 0.6, n)
  scores = [
    apgr(*binary_pgr_curve(rng.uniform(size=n), quality_strong, quality_weak)) for _ in range(20)
  ]
  assert np.all(np.abs(np.asarray(scores) - 0.5) < 0.02)  # each random router (std ~0.005)
  assert abs(np.mean(scores) - 0.5) < 0.005
  # An informed router (the true gain as its score) beats random clearly.
  informed = apgr(*binary_pgr_curve(quality_strong - quality_weak, quality_strong, quality_weak))
  assert informed > 0.6


def test_binary_router_curve_matches_thresholds():
  rng = np.random.default_rng(1)
  n = 200
  p, qs, qw = rng.uniform(size=n), rng.uniform(size=n), rng.uniform(size=n)
  fractions, curve = binary_pgr_curve(p, qs, qw)
  alpha = np.sort(p)[::-1][49]  # the 50th highest score: 50 strong calls
  choice = route_binary(p, float(alpha), strong=1, weak=0)
  table = np.stack([qw, qs], 1)[:, :, None]
  perf, frac = realised(choice, table, np.stack([np.zeros(n), np.ones(n)], 1)[:, :, None])
  assert frac == pytest.approx(0.25)
  assert curve[50] == pytest.approx(float(pgr(perf, qw.mean(), qs.mean())))
  assert (
    fractions[0] == 0 and fractions[-1] == 1 and curve[0] == 0 and curve[-1] == pytest.approx(1)
  )
  assert cpt(fractions, curve, 1.0) <= 1.0
  assert cpt(fractions, curve, 2.0) == 1.0
  assert cpt(fractions, curve, 0.0) == 0.0


def test_oracle_dominates_every_router():
  Q_true, C_true, Q_hat = _bench()
  scale = cost_normalizer(C_true)
  lams = np.linspace(0, 1, 401)
  oracle = oracle_curve(Q_true, C_true, lams, cost_scale=scale)
  learned = deferral_curve(Q_hat, C_true, Q_true, C_true, lams, cost_scale=scale)
  rng = np.random.default_rng(2)
  noise = deferral_curve(
    rng.uniform(size=Q_true.shape), C_true, Q_true, C_true, lams, cost_scale=scale
  )
  for other in (learned, noise):
    # At every lam the oracle's mean objective beats every point of the other curve.
    obj_o = (1 - lams) * oracle.quality - lams * oracle.cost / scale
    obj_r = (1 - lams[:, None]) * other.quality[None] - lams[:, None] * other.cost[None] / scale
    assert np.all(obj_o[:, None] >= obj_r - 1e-9)
    rng_ = cost_range(oracle, learned, noise)
    assert audc(oracle.cost, oracle.quality, rng_) >= audc(other.cost, other.quality, rng_)
    assert peak_quality(oracle.quality) >= peak_quality(other.quality)
  _, target, _ = best_single_model(Q_true, C_true)
  rng_ = cost_range(oracle, learned, noise)
  assert qnc(oracle.cost, oracle.quality, target, rng_) <= qnc(
    learned.cost, learned.quality, target, rng_
  )


def test_deferral_curve_realises_the_routed_entries():
  Q_true, C_true, Q_hat = _bench(n=20)
  r = route(Q_hat, C_true, 0.3, cost_scale=cost_normalizer(C_true))
  q, c = realised(r, Q_true, C_true)
  rows = np.arange(20)
  m, o = np.asarray(r.model), np.asarray(r.option)
  assert q == pytest.approx(Q_true[rows, m, o].mean())
  assert c == pytest.approx(C_true[rows, m, o].mean())


@pytest.mark.parametrize("q", [0.0, 0.37, 1.0])
def test_audc_of_a_flat_curve_is_its_quality(q):
  cost = np.array([3.0, 1.0, 2.0, 5.0])
  assert audc(cost, np.full(4, q), (1.0, 5.0)) == pytest.approx(q)
  # Extended to the range's end; a single point spans the range.
  assert audc([1.0], [q], (1.0, 5.0)) == pytest.approx(q)
  assert audc([1.0, 3.0], [q, q], (1.0, 5.0), extend=False) == pytest.approx(q / 2)


def test_audc_trapezoid_and_qnc():
  cost, quality = np.array([0.0, 1.0, 2.0]), np.array([0.2, 0.6, 0.8])
  assert audc(cost, quality, (0.0, 2.0)) == pytest.approx(0.25 * (0.2 + 0.6) + 0.25 * (0.6 + 0.8))
  assert qnc(cost, quality, 0.6, (0.0, 2.0)) == pytest.approx(0.5)
  assert qnc(cost, quality, 0.9, (0.0, 2.0)) == 1.0
  assert peak_quality(quality) == pytest.approx(0.8)


def test_bad_metric_inputs_raise():
  with pytest.raises(ValueError, match="cost_true"):
    realised(
      route(np.ones((2, 1, 1)), np.ones((2, 1, 1)), 0.5), np.ones((2, 1, 1)), np.ones((2, 2, 1))
    )
  with pytest.raises(ValueError, match="cost_range"):
    audc([0.0, 1.0], [0.5, 0.5], (1.0, 0.0))
  with pytest.raises(ValueError, match="perf_strong"):
    pgr(0.5, 0.3, 0.3)
  with pytest.raises(ValueError, match="num_points"):
    apgr([0.0, 1.0], [0.0, 1.0], num_points=0)
