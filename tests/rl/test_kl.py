"""Tests for reasoning_jax/rl/kl.py (numbers from shared/methods/rl.md section 1.2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax import rl


@pytest.mark.parametrize(
  "name,alias,expected",
  [("k1", "kl", 0.6931), ("k2", "mse_kl", 0.2402), ("k3", "low_var_kl", 0.1931)],
)
def test_spec_values(name, alias, expected):
  # rl.md 1.2: logp = log 0.5, ref_logp = log 0.25.
  logp, ref = jnp.log(jnp.full((1, 1), 0.5)), jnp.log(jnp.full((1, 1), 0.25))
  for estimator in (name, alias):
    value = rl.kl_divergence(logp, ref, estimator=estimator)
    np.testing.assert_allclose(value, [[expected]], atol=1e-4)


def test_k3_nonnegative_and_accurate_for_small_ratio():
  logp = jnp.linspace(-3, 0, 7)[None]
  ref = logp + jnp.array([-2, -1e-4, -1e-7, 0, 1e-7, 1e-4, 2.0])[None]
  k3 = rl.kl_divergence(logp, ref, estimator="k3")
  assert np.all(np.asarray(k3) >= 0)
  x = np.asarray(ref - logp, np.float64)
  np.testing.assert_allclose(k3, np.expm1(x) - x, rtol=1e-2, atol=1e-12)


def test_clamp_and_mask():
  logp = jnp.array([[0.0, -30.0, -jnp.inf]])
  ref = jnp.array([[-30.0, 0.0, 0.0]])
  mask = jnp.array([[1, 1, 0]])
  k3 = rl.kl_divergence(logp, ref, mask, estimator="k3", clamp=10.0)
  # x = -30: k3 = 29 -> clamped to 10; x = +30: k3 ~ 1e13 -> 10; masked slot (inf input) -> 0.
  np.testing.assert_array_equal(k3, [[10.0, 10.0, 0.0]])
  unclamped = rl.kl_divergence(logp[:, :1], ref[:, :1], estimator="k3")
  np.testing.assert_allclose(unclamped, [[29.0]])
  k1 = rl.kl_divergence(logp, ref, mask, estimator="k1", clamp=5.0)
  np.testing.assert_allclose(k1, [[5.0, -5.0, 0.0]])
  g = jax.grad(lambda lp: jnp.sum(rl.kl_divergence(lp, ref, mask, estimator="k2")))(logp)
  assert np.all(np.isfinite(g))


def _expected_grads(estimator, theta, ref_logits):
  """E_{o ~ pi}[ d/dtheta k(o) ] over a small categorical, exactly (sampling not differentiated)."""
  ref_logp = jax.nn.log_softmax(ref_logits)

  def expected(th):
    logp = jax.nn.log_softmax(th)
    per_token = rl.kl_divergence(logp[None], ref_logp[None], estimator=estimator)[0]
    return jnp.sum(jax.lax.stop_gradient(jnp.exp(logp)) * per_token)

  return jax.grad(expected)(theta)


def test_estimator_gradient_semantics():
  # rl.md 1.2: as a loss on on-policy samples, k1 has zero expected gradient, k2 gives the
  # gradient of KL(pi || ref) and k3 the gradient of KL(ref || pi).
  theta = jnp.array([0.3, -1.2, 0.8, 0.1, -0.4])
  ref_logits = jnp.array([-0.5, 0.7, 0.2, -1.0, 0.9])
  ref_logp = jax.nn.log_softmax(ref_logits)

  def kl_pi_ref(th):
    logp = jax.nn.log_softmax(th)
    return jnp.sum(jnp.exp(logp) * (logp - ref_logp))

  def kl_ref_pi(th):
    logp = jax.nn.log_softmax(th)
    return jnp.sum(jnp.exp(ref_logp) * (ref_logp - logp))

  np.testing.assert_allclose(_expected_grads("k1", theta, ref_logits), 0.0, atol=1e-6)
  np.testing.assert_allclose(
    _expected_grads("k2", theta, ref_logits), jax.grad(kl_pi_ref)(theta), atol=1e-5
  )
  np.testing.assert_allclose(
    _expected_grads("k3", theta, ref_logits), jax.grad(kl_ref_pi)(theta), atol=1e-5
  )


def test_kl_penalized_rewards_sequence_and_token_level():
  logp = jnp.log(jnp.array([[0.5, 0.5, 0.9]]))
  ref = jnp.log(jnp.array([[0.25, 0.5, 0.1]]))
  mask = jnp.array([[1, 1, 0]])
  seq = rl.kl_penalized_rewards(jnp.array([1.0]), logp, ref, mask, beta=0.1)
  np.testing.assert_allclose(seq, [1.0 - 0.1 * np.log(2.0)], atol=1e-6)
  tok = rl.kl_penalized_rewards(jnp.array([[0.0, 0.0, 7.0]]), logp, ref, mask, beta=0.1)
  np.testing.assert_allclose(tok, [[-0.1 * np.log(2.0), 0.0, 0.0]], atol=1e-6)
  g = jax.grad(
    lambda lp: jnp.sum(rl.kl_penalized_rewards(jnp.array([1.0]), lp, ref, mask, beta=0.1))
  )(logp)
  np.testing.assert_array_equal(g, 0.0)


def test_errors_name_the_argument():
  x = jnp.zeros((2, 3))
  with pytest.raises(ValueError, match=r"estimator='k4'.*\['k1'"):
    rl.kl_divergence(x, x, estimator="k4")
  with pytest.raises(ValueError, match="clamp"):
    rl.kl_divergence(x, x, clamp=0.0)
  with pytest.raises(ValueError, match="ref_logp"):
    rl.kl_divergence(x, jnp.zeros((2, 4)))
  with pytest.raises(ValueError, match="mask"):
    rl.kl_divergence(x, x, jnp.ones((3, 3)))
  with pytest.raises(ValueError, match="beta"):
    rl.kl_penalized_rewards(jnp.zeros(2), x, x, jnp.ones((2, 3)), beta=-1.0)
  with pytest.raises(ValueError, match="rewards"):
    rl.kl_penalized_rewards(jnp.array([jnp.nan, 0.0]), x, x, jnp.ones((2, 3)), beta=0.1)
