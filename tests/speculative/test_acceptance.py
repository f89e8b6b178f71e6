"""The accept/reject step of speculative sampling: spec `inference.md` §1.4 tests."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from reasoning_jax.generate.sampling import categorical_sample
from reasoning_jax.speculative import (
  accept_drafts,
  expected_speedup,
  expected_tokens_per_call,
)

V = 8
TRIALS = 200_000


def _dists(seed, k):
  rng = np.random.default_rng(seed)
  p = rng.dirichlet(np.ones(V) * 0.7, size=k + 1).astype(np.float32)
  q = rng.dirichlet(np.ones(V) * 0.7, size=k).astype(np.float32)
  return p, q


def _batch(p, q, trials, seed):
  """`trials` rows sharing the per-position distributions; drafts sampled from q."""
  k = q.shape[0]
  log_q = jnp.broadcast_to(jnp.log(q), (trials, k, V))
  log_p = jnp.broadcast_to(jnp.log(p), (trials, k + 1, V))
  drafts = categorical_sample(jax.random.key(seed), log_q)
  return drafts, log_q, log_p


def _first_token(acc, drafts):
  return np.where(np.asarray(acc.num_accepted) > 0, np.asarray(drafts)[:, 0], acc.next_token)


def _chi2_pvalue(samples, probs):
  counts = np.bincount(samples, minlength=len(probs))
  probs = np.asarray(probs, np.float64)
  expected = probs / probs.sum() * len(samples)
  keep = expected > 0
  assert counts[~keep].sum() == 0, "a token of probability 0 was emitted"
  expected = expected[keep] * counts[keep].sum() / expected[keep].sum()  # Exact totals.
  return stats.chisquare(counts[keep], expected).pvalue


@pytest.mark.parametrize("k", [1, 3])
def test_first_token_follows_target_and_acceptance_rate(k):
  p, q = _dists(0, k)
  drafts, log_q, log_p = _batch(p, q, TRIALS, seed=1)
  acc = accept_drafts(jax.random.key(2), drafts, log_q, log_p)
  first = _first_token(acc, drafts)
  assert _chi2_pvalue(first, p[0]) > 1e-3
  # P(first draft accepted) = sum_x min(p_1, q_1) within 3 sigma.
  beta = np.minimum(p[0], q[0]).sum()
  rate = np.mean(np.asarray(acc.num_accepted) > 0)
  assert abs(rate - beta) < 3 * np.sqrt(beta * (1 - beta) / TRIALS)
  # accept_prob is min(1, p/q) at the draft; its mean estimates the same beta.
  assert abs(float(np.mean(acc.accept_prob[:, 0])) - beta) < 0.01


def test_second_token_follows_target_given_first_accepted():
  p, q = _dists(3, 2)
  drafts, log_q, log_p = _batch(p, q, TRIALS, seed=4)
  acc = accept_drafts(jax.random.key(5), drafts, log_q, log_p)
  n = np.asarray(acc.num_accepted)
  second = np.where(n > 1, np.asarray(drafts)[:, 1], acc.next_token)[n >= 1]
  assert _chi2_pvalue(second, p[1]) > 1e-3


def test_resampling_from_p_instead_of_the_residual_fails_the_test():
  """Negative control (spec §1.4): the chi-square test has the power to see a wrong rule."""
  p, q = _dists(0, 1)
  drafts, log_q, log_p = _batch(p, q, TRIALS, seed=1)
  acc = accept_drafts(jax.random.key(2), drafts, log_q, log_p)
  wrong = categorical_sample(jax.random.key(7), log_p[:, 0])
  first = np.where(np.asarray(acc.num_accepted) > 0, np.asarray(drafts)[:, 0], wrong)
  assert _chi2_pvalue(first, p[0]) < 1e-6


def test_equal_draft_accepts_everything():
  p, _ = _dists(8, 4)
  drafts, log_q, log_p = _batch(p, p[:4], 4096, seed=9)
  acc = accept_drafts(jax.random.key(10), drafts, log_q, log_p)
  np.testing.assert_array_equal(acc.num_accepted, 4)  # The length histogram: a point mass.
  # The bonus token comes from p_{k+1}.
  assert _chi2_pvalue(np.asarray(acc.next_token), p[4]) > 1e-3


def test_zero_drafts_is_plain_target_sampling():
  p, q = _dists(11, 2)
  drafts, log_q, log_p = _batch(p, q, TRIALS // 2, seed=12)
  acc = accept_drafts(jax.random.key(13), drafts, log_q, log_p, num_draft=0)
  np.testing.assert_array_equal(acc.num_accepted, 0)
  np.testing.assert_array_equal(acc.accept_prob, 0.0)
  assert _chi2_pvalue(np.asarray(acc.next_token), p[0]) > 1e-3


def test_num_draft_below_capacity_never_accepts_past_it():
  p, _ = _dists(14, 4)
  drafts, log_q, log_p = _batch(p, p[:4], 512, seed=15)
  acc = accept_drafts(jax.random.key(16), drafts, log_q, log_p, num_draft=2)
  np.testing.assert_array_equal(acc.num_accepted, 2)
  assert float(jnp.max(acc.accept_prob[:, 2:])) == 0.0


def test_point_masses_give_the_greedy_rule():
  """One-hot p and q: accept iff the draft is the target's argmax; the fix is that argmax."""
  log_one_hot = lambda ids: jnp.where(jax.nn.one_hot(ids, V, dtype=bool), 0.0, -jnp.inf)
  target_argmax = jnp.array([[1, 2, 3, 4], [5, 6, 7, 0]])
  drafts = jnp.array([[1, 2, 7], [5, 1, 7]])
  acc = accept_drafts(
    jax.random.key(0), drafts, log_one_hot(drafts), log_one_hot(target_argmax), num_draft=3
  )
  np.testing.assert_array_equal(acc.num_accepted, [2, 1])
  np.testing.assert_array_equal(acc.next_token, [3, 6])
  all_pass = accept_drafts(
    jax.random.key(1),
    drafts[:1, :2],
    log_one_hot(drafts[:1, :2]),
    log_one_hot(target_argmax[:1, :3]),
  )
  np.testing.assert_array_equal(all_pass.num_accepted, [2])
  np.testing.assert_array_equal(all_pass.next_token, [3])  # The bonus: argmax p_{k+1}.


def test_shapes_are_checked():
  drafts = jnp.zeros((2, 3), jnp.int32)
  log_q = jnp.zeros((2, 3, V))
  with pytest.raises(ValueError, match=r"target_log_probs must be \[B, K \+ 1, V\] = \[2, 4, 8\]"):
    accept_drafts(jax.random.key(0), drafts, log_q, jnp.zeros((2, 3, V)))
  with pytest.raises(ValueError, match=r"draft_log_probs must be \[B, K, V\]"):
    accept_drafts(jax.random.key(0), drafts, jnp.zeros((2, 2, V)), jnp.zeros((2, 4, V)))
  with pytest.raises(ValueError, match=r"draft_tokens must be \[B, K\]"):
    accept_drafts(jax.random.key(0), drafts[0], log_q, jnp.zeros((2, 4, V)))


def test_cost_model_by_hand():
  # alpha = 0.5, k = 2: (1 - 0.125) / 0.5 = 1.75 tokens per call.
  assert expected_tokens_per_call(0.5, 2) == pytest.approx(1.75)
  assert expected_tokens_per_call(1.0, 3) == 4.0
  assert expected_tokens_per_call(0.0, 5) == 1.0
  # c = 0.1: 1.75 / (2 * 0.1 + 1) = 1.4583...
  assert expected_speedup(0.5, 2, 0.1) == pytest.approx(1.75 / 1.2)
  with pytest.raises(ValueError, match="alpha must be in"):
    expected_tokens_per_call(1.5, 2)
