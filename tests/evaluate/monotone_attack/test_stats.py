"""reasoning_jax.evaluate.monotone_attack.stats: bootstrap intervals by hand cases."""

from __future__ import annotations

import numpy as np
import pytest

from reasoning_jax.evaluate.monotone_attack.stats import bootstrap_ci, mean_std


def test_constant_values_give_a_point_interval():
  assert bootstrap_ci(np.ones(50)) == (1.0, 1.0)
  assert bootstrap_ci(np.zeros(7), num_resamples=10) == (0.0, 0.0)


def test_interval_contains_the_mean_and_shrinks_with_n():
  rng = np.random.default_rng(0)
  small = rng.normal(2.0, 1.0, size=25)
  large = rng.normal(2.0, 1.0, size=2500)
  lo, hi = bootstrap_ci(small)
  assert lo < small.mean() < hi
  lo_l, hi_l = bootstrap_ci(large)
  assert lo_l < 2.0 < hi_l  # The true mean, at n = 2500 (about 10 standard errors wide).
  assert hi_l - lo_l < (hi - lo) / 5
  # A success rate: 3 of 4 ones; the interval sits in [0, 1] around 0.75.
  lo, hi = bootstrap_ci([1, 1, 1, 0] * 25)
  assert 0.6 < lo < 0.75 < hi < 0.9
  # The normal-theory width for n = 2500, sigma ~ 1: 2 * 1.96 / 50 = 0.078.
  assert hi_l - lo_l == pytest.approx(2 * 1.96 * large.std() / 50, rel=0.15)


def test_seeded_and_deterministic():
  values = np.arange(30.0)
  assert bootstrap_ci(values, seed=4) == bootstrap_ci(values, seed=4)
  assert bootstrap_ci(values, seed=4) != bootstrap_ci(values, seed=5)


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="values"):
    bootstrap_ci([])
  with pytest.raises(ValueError, match="num_resamples"):
    bootstrap_ci([1.0, 2.0], num_resamples=0)
  with pytest.raises(ValueError, match="confidence"):
    bootstrap_ci([1.0, 2.0], confidence=1.0)


def test_mean_std():
  assert mean_std([1.0, 3.0]) == (2.0, 1.0)
