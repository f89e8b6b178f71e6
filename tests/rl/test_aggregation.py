"""Tests for reasoning_jax/rl/aggregation.py (numbers from shared/methods/rl.md sections 0, 1.3)."""

import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax import rl
from reasoning_jax.rl import aggregation as agg

MODES = ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]


def _mean(pair):
  s, d = pair
  return float(s) / float(d)


def test_token_mean_vs_seq_mean_spec_example():
  # rl.md 1.3: lengths 1 and 3, per-token loss 0 on the short one and 1 on the long one.
  values = jnp.array([[0.0, 9.0, 9.0], [1.0, 1.0, 1.0]])
  mask = jnp.array([[1, 0, 0], [1, 1, 1]])
  assert _mean(rl.aggregate(values, mask, "token_mean")) == pytest.approx(0.75)
  assert _mean(rl.aggregate(values, mask, "seq_mean_token_mean")) == pytest.approx(0.5)
  s, d = rl.aggregate(values, mask, "token_mean")
  assert (float(s), float(d)) == (3.0, 4.0)
  s, d = rl.aggregate(values, mask, "seq_mean_token_mean")
  assert (float(s), float(d)) == (1.0, 2.0)  # each sequence contributes its mean


def test_seq_mean_token_sum_norm_constant():
  values = jnp.array([[0.0, 9.0, 9.0], [1.0, 1.0, 1.0]])
  mask = jnp.array([[1, 0, 0], [1, 1, 1]])
  s, d = rl.aggregate(values, mask, "seq_mean_token_sum_norm", norm_constant=4.0)
  assert (float(s), float(d)) == (0.75, 2.0)
  # Default C = T = 3.
  s, d = rl.aggregate(values, mask, "seq_mean_token_sum_norm")
  assert (float(s), float(d)) == (1.0, 2.0)


@pytest.mark.parametrize("mode", MODES)
def test_padding_rows_and_masked_nan_are_ignored(mode):
  values = jnp.array([[1.0, 2.0, jnp.nan], [jnp.inf, jnp.nan, 0.0], [3.0, 0.0, 0.0]])
  mask = jnp.array([[1, 1, 0], [0, 0, 0], [1, 0, 0]])
  s, d = rl.aggregate(values, mask, mode)
  s_ref, d_ref = rl.aggregate(values[::2].at[0, 2].set(0), mask[::2], mode)
  assert np.isfinite(float(s))
  np.testing.assert_allclose([s, d], [s_ref, d_ref], rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_micro_batch_pairs_sum_to_full_batch(mode):
  rng = np.random.default_rng(0)
  values = jnp.asarray(rng.normal(size=(8, 5)).astype(np.float32))
  lengths = np.array([5, 1, 3, 0, 2, 5, 4, 1])
  mask = jnp.asarray(np.arange(5)[None] < lengths[:, None])
  s, d = rl.aggregate(values, mask, mode, norm_constant=None)
  parts = [rl.aggregate(values[i : i + 3], mask[i : i + 3], mode) for i in (0, 3, 6)]
  np.testing.assert_allclose(sum(p[0] for p in parts), s, rtol=1e-6)
  np.testing.assert_allclose(sum(p[1] for p in parts), d)
  expected_d = {"token_mean": lengths.sum()}.get(mode, (lengths > 0).sum())
  assert float(d) == expected_d


def test_options_are_derived_from_signatures():
  assert agg.aggregation_options("seq_mean_token_sum_norm") == ("norm_constant",)
  assert agg.aggregation_options("token_mean") == ()


def test_errors_name_the_argument():
  v, m = jnp.zeros((2, 3)), jnp.ones((2, 3))
  with pytest.raises(ValueError, match=r"mode='seq_sum'.*\['seq_mean_token_mean'"):
    rl.aggregate(v, m, "seq_sum")
  with pytest.raises(ValueError, match="norm_constant.*only used by"):
    rl.aggregate(v, m, "token_mean", norm_constant=3.0)
  with pytest.raises(ValueError, match="norm_constant must be > 0"):
    rl.aggregate(v, m, "seq_mean_token_sum_norm", norm_constant=0.0)
  with pytest.raises(ValueError, match="mask must have shape"):
    rl.aggregate(v, jnp.ones((2, 4)), "token_mean")
  with pytest.raises(ValueError, match="mask must contain only 0 and 1"):
    rl.aggregate(v, m * 0.5, "token_mean")
  with pytest.raises(ValueError, match="values must be 2-D"):
    rl.aggregate(jnp.zeros(3), jnp.ones(3), "token_mean")
  with pytest.raises(TypeError, match="values must have a floating dtype"):
    rl.aggregate(jnp.zeros((2, 3), jnp.int32), m, "token_mean")
