"""Rubrics, the sparse reward and the attribution softmax: the numbers of rl.md 6.1-6.4."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax.credit import (
  Rubric,
  RubricError,
  attribution_weights,
  grad_x_input,
  rubric_arrays,
  scatter_token_rewards,
  sparse_rubric_reward,
)


def test_rubric_formats_and_score():
  items = [
    {"criterion": "states the intermediate sum 47", "weight": 2.0},
    {"criterion": "gives the final answer", "weight": 3},
    {"criterion": "repeats the question", "weight": -1.0},
  ]
  a = Rubric.parse(items)
  assert Rubric.parse({"items": items}) == a == Rubric.parse(a.to_json())
  assert a.normaliser == 5.0
  assert a.score([True, True, False]) == 1.0
  assert a.score([True, False, True]) == pytest.approx(0.2)
  assert a.score([False, False, True]) == pytest.approx(-0.2)
  weights, mask = rubric_arrays([a, items[:1]])
  assert weights.shape == mask.shape == (2, 3) and mask[1].tolist() == [1, 0, 0]
  verdicts = np.asarray([[True, False, True], [True, True, True]])  # Padding verdict ignored.
  np.testing.assert_allclose(sparse_rubric_reward(verdicts, weights, mask), [0.2, 1.0], 1e-6)


@pytest.mark.parametrize(
  "bad, match",
  [
    ([{"criterion": "x", "weight": -1.0}, {"criterion": "y", "weight": 0}], "all <= 0"),
    ([], "at least one item"),
    ([{"criterion": "", "weight": 1.0}], "non-empty string"),
    ([{"criterion": "x", "weight": float("nan")}], "finite"),
    ([{"criterion": "x"}], "'criterion', 'weight'"),
    ([{"criterion": "x", "weight": 1, "check": {"regex": "."}}], "check kind 'regex'"),
    ("{not json", "not valid JSON"),
  ],
)
def test_bad_rubrics_are_named(bad, match):
  with pytest.raises(RubricError, match=match):
    Rubric.parse(bad)


def test_sparse_reward_rejects_rows_without_positive_weight():
  with pytest.raises(RubricError, match=r"rows \[1\] have no positive weight"):
    sparse_rubric_reward(np.ones((2, 2), bool), np.asarray([[1.0, -1.0], [-1.0, 0.0]]))


def test_linear_toy_judge_gradient_times_embedding():
  """F(E) = sum_t u . e_t: g_t = u for every t and b_t = u . e_t."""
  e = jax.random.normal(jax.random.key(0), (2, 5, 3))
  u = jnp.asarray([0.5, -1.0, 2.0])

  def score(x):
    return jnp.sum(x @ u), jnp.sum(x @ u, axis=-1)

  _, b = grad_x_input(score, e)
  np.testing.assert_allclose(b, e @ u, rtol=1e-6)


def test_spec_example_alpha_and_token_rewards():
  """b = [2, 0, -1], tau = 1, one True item with normalised weight 0.8 (rl.md 6.4)."""
  b = np.asarray([[2.0, 0.0, -1.0, 9.0]])
  span = np.asarray([[True, True, True, False]])  # Position 3 is template: not attributed.
  alpha, entropy = attribution_weights(b, span, tau=1.0)
  np.testing.assert_allclose(alpha[0, :3], [0.8438, 0.1142, 0.0420], atol=1e-4)
  assert alpha[0, 3] == 0 and float(entropy[0]) > 0
  cols = np.asarray([[5, 6, 7, 0]], np.int32)
  r = scatter_token_rewards(
    np.asarray(alpha), span, cols, np.asarray([0]), np.asarray([0.8]), (1, 9)
  )
  np.testing.assert_allclose(r[0, 5:8], [0.6750, 0.0914, 0.0336], atol=1e-4)
  assert r.sum() == pytest.approx(0.8, abs=1e-6) and r[0, :5].sum() == 0


def test_tau_to_infinity_is_uniform_and_zscore_is_scale_free():
  b = np.asarray([[3.0, -2.0, 0.5, 7.0]])
  span = np.asarray([[True, True, True, True]])
  uniform, entropy = attribution_weights(b, span, tau=float("inf"))
  np.testing.assert_allclose(uniform, 0.25)
  assert float(entropy[0]) == pytest.approx(np.log(4), abs=1e-6)
  np.testing.assert_allclose(attribution_weights(b, span, tau=1e6)[0], 0.25, atol=1e-5)
  z1, _ = attribution_weights(b, span, attr_norm="zscore")
  z2, _ = attribution_weights(3 * b + 5, span, attr_norm="zscore")
  np.testing.assert_allclose(z1, z2, atol=1e-6)


def test_conservation_with_a_negative_weight():
  rng = np.random.default_rng(0)
  weights = np.asarray([2.0, 1.0, -1.5])  # Z = 3.
  verdicts = np.asarray([True, False, True])
  b = rng.normal(size=(2, 6)) * 3
  span = np.ones((2, 6), bool)
  alpha, _ = attribution_weights(b, span, tau=0.7)
  coef = weights[verdicts] / 3.0  # One attribution per True item.
  cols = np.tile(np.arange(6, dtype=np.int32), (2, 1))
  r = scatter_token_rewards(np.asarray(alpha), span, cols, np.asarray([0, 0]), coef, (1, 6))
  sparse = float(sparse_rubric_reward(verdicts[None], weights[None])[0])
  assert sparse == pytest.approx((2.0 - 1.5) / 3.0)
  assert r.sum() == pytest.approx(sparse, abs=1e-6)
  assert (r < 0).any()  # The negative item's mass is spread as negative token rewards.


def test_nan_attributions_are_errors_only_inside_the_span():
  b = np.asarray([[1.0, np.nan, 0.0], [0.0, 1.0, np.nan]])
  span = np.asarray([[True, True, False], [True, True, False]])
  with pytest.raises(FloatingPointError, match=r"pairs \[0\]"):
    attribution_weights(b, span)
  alpha, _ = attribution_weights(b[1:], span[1:])  # NaN outside the span: ignored.
  assert np.isfinite(alpha).all()
  with pytest.raises(ValueError, match="tau must be > 0"):
    attribution_weights(b[1:], span[1:], tau=0.0)
  with pytest.raises(ValueError, match="attr_norm"):
    attribution_weights(b[1:], span[1:], attr_norm="l2")
