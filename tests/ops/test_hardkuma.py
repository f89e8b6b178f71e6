"""HardKuma role gates and DuoAttention rounding (LycheeDecode arXiv:2602.04541, spec 8.3 /
8.6; HardKuma arXiv:1905.08160; DuoAttention arXiv:2410.10819): point masses at a = b = 1
(1/12 each, Monte-Carlo and closed form), Kuma mean vs sample means, reparameterised
gradients (finite differences inside, exactly zero where clipped), expected density, the
density controller by hand, the LR schedule by hand, role thresholds and input checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax.ops.sparse_decode import (
  A_B_RANGE,
  EPS_U,
  STRETCH,
  DensityConstraintState,
  density_penalty,
  duo_gate_values,
  expected_density,
  hardkuma_from_uniform,
  hardkuma_sample,
  init_density_constraint,
  kuma_cdf,
  kuma_mean,
  kuma_sample,
  lr_schedule_factor,
  lycheedecode_schedule,
  prob_one,
  prob_zero,
  roles_from_duo,
  roles_from_kuma,
)


def test_constants():
  assert EPS_U == 1e-3 and STRETCH == (-0.1, 1.1) and A_B_RANGE == (1e-6, 100.0)


def test_point_masses_at_a_b_one_are_one_twelfth():
  one = jnp.ones(())
  # Closed form: F(x) = x at a = b = 1, so P(z=0) = F(1/12) = 1/12 and P(z=1) = 1 - 11/12.
  np.testing.assert_allclose(prob_zero(one, one), 1 / 12, atol=1e-6)
  np.testing.assert_allclose(prob_one(one, one), 1 / 12, atol=1e-6)
  z = hardkuma_sample(jax.random.key(0), one, one, shape=(1_000_000,))
  assert z.shape == (1_000_000,) and z.dtype == jnp.float32
  assert float(z.min()) == 0.0 and float(z.max()) == 1.0
  p0, p1 = float(jnp.mean(z == 0.0)), float(jnp.mean(z == 1.0))
  assert abs(p0 - 1 / 12) < 0.005 and abs(p1 - 1 / 12) < 0.005
  # The closed form at other (a, b) agrees with Monte Carlo too.
  a, b = jnp.float32(2.0), jnp.float32(0.5)
  z = hardkuma_sample(jax.random.key(1), a, b, shape=(200_000,))
  assert abs(float(jnp.mean(z == 0.0)) - float(prob_zero(a, b))) < 0.005
  assert abs(float(jnp.mean(z == 1.0)) - float(prob_one(a, b))) < 0.005


def test_kuma_cdf_closed_form_and_endpoints():
  x = jnp.asarray([-0.5, 0.0, 0.25, 0.5, 1.0, 1.5])
  # a = 2, b = 3: F(x) = 1 - (1 - x^2)^3.
  want = [0.0, 0.0, 1 - (1 - 1 / 16) ** 3, 1 - 0.75**3, 1.0, 1.0]
  np.testing.assert_allclose(kuma_cdf(x, 2.0, 3.0), want, atol=1e-6)
  g = jax.grad(lambda a: jnp.sum(kuma_cdf(x, a, 3.0)))(2.0)
  assert np.isfinite(g)


@pytest.mark.parametrize(
  "a,b,want", [(1.0, 1.0, 0.5), (2.0, 3.0, 3 * math.gamma(1.5) * math.gamma(3) / math.gamma(4.5))]
)
def test_kuma_mean_hand_values(a, b, want):
  np.testing.assert_allclose(kuma_mean(a, b), want, rtol=1e-5)


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (2.0, 3.0), (0.5, 0.7)])
def test_kuma_mean_matches_sample_mean(a, b):
  u = jax.random.uniform(jax.random.key(3), (200_000,), minval=EPS_U, maxval=1 - EPS_U)
  s = kuma_sample(u, a, b)
  assert float(s.min()) > 0.0 and float(s.max()) < 1.0
  # The EPS_U truncation of u moves the mean by < 1e-3; Monte-Carlo noise ~ 5e-4.
  np.testing.assert_allclose(float(jnp.mean(s)), float(kuma_mean(a, b)), atol=3e-3)


def test_kuma_mean_is_stable_at_the_clamp_edges():
  assert abs(float(kuma_mean(1e-6, 1.0)) - 1e-6) < 1e-9  # b B(1 + 1e6, 1) = 1 / (1 + 1e6).
  np.testing.assert_allclose(kuma_mean(1e-9, 1.0), kuma_mean(1e-6, 1.0))  # a is clamped.
  np.testing.assert_allclose(kuma_mean(100.0, 100.0), 0.94952594, rtol=1e-4)


def test_gradients_inside_and_exactly_zero_where_clipped():
  u = jnp.asarray([0.002, 0.02, 0.3, 0.5, 0.7, 0.95, 0.998], jnp.float32)
  a = jnp.full(u.shape, 1.3, jnp.float32)
  b = jnp.full(u.shape, 0.8, jnp.float32)
  z = hardkuma_from_uniform(u, a, b)
  interior = np.asarray((z > 0) & (z < 1))
  assert interior.any() and (~interior).any()  # Both kinds of sample are present.
  ga, gb = jax.grad(lambda a, b: jnp.sum(hardkuma_from_uniform(u, a, b)), argnums=(0, 1))(a, b)
  ga, gb = np.asarray(ga), np.asarray(gb)
  assert np.isfinite(ga).all() and np.isfinite(gb).all()
  assert (ga[interior] != 0).all() and (gb[interior] != 0).all()
  assert (ga[~interior] == 0).all() and (gb[~interior] == 0).all()
  # Central finite differences (elementwise map, so the sum's gradient is per-sample).
  h = 1e-3
  fd_a = (hardkuma_from_uniform(u, a + h, b) - hardkuma_from_uniform(u, a - h, b)) / (2 * h)
  fd_b = (hardkuma_from_uniform(u, a, b + h) - hardkuma_from_uniform(u, a, b - h)) / (2 * h)
  np.testing.assert_allclose(ga[interior], np.asarray(fd_a)[interior], rtol=2e-2, atol=1e-3)
  np.testing.assert_allclose(gb[interior], np.asarray(fd_b)[interior], rtol=2e-2, atol=1e-3)


def test_sample_broadcasts_and_clamps():
  a = jnp.ones((3, 4))
  z = hardkuma_sample(jax.random.key(0), a, jnp.ones((4,)))
  assert z.shape == (3, 4)
  u = jnp.asarray([0.5])
  np.testing.assert_allclose(kuma_sample(u, 1e3, 1.0), kuma_sample(u, 100.0, 1.0))
  assert bool(jnp.isfinite(hardkuma_from_uniform(u, 0.0, 1e9)).all())


def test_expected_density_is_mean_of_one_minus_f_one_twelfth():
  a = jnp.asarray([[1.0, 2.0], [0.5, 3.0]])
  b = jnp.asarray([[1.0, 0.5], [0.7, 1.0]])
  x = 1 / 12
  want = np.mean([(1 - x**ai) ** bi for ai, bi in zip(np.ravel(a), np.ravel(b))])
  np.testing.assert_allclose(expected_density(a, b), want, rtol=1e-6)
  np.testing.assert_allclose(expected_density(jnp.ones((2, 3)), jnp.ones((2, 3))), 11 / 12)


def test_density_penalty_by_hand():
  state = init_density_constraint()
  assert float(state.ema) == 0.0 and float(state.lam) == 2.0
  # Step 1: rho_hat = 0.3 > 0.1: c_hat = 0.2, ema' = 0.02, c = 0.02, lam' = 2 e^{0.02}.
  eta = 1.0
  pen, state, m = density_penalty(jnp.float32(0.3), 0.1, state, eta=eta)
  lam1 = 2 * math.exp(0.02)
  np.testing.assert_allclose([state.ema, state.lam], [0.02, lam1], rtol=1e-5)
  np.testing.assert_allclose([m["c_hat"], m["c"], m["lam"]], [0.2, 0.02, lam1], rtol=1e-5)
  np.testing.assert_allclose(pen, lam1 * 0.02, rtol=1e-5)
  # Step 2: rho_hat = 0.2: c_hat = 0.1, ema'' = 0.9 * 0.02 + 0.01 = 0.028, lam'' = lam' e^0.028.
  pen, state2, _ = density_penalty(jnp.float32(0.2), 0.1, state, eta=eta)
  lam2 = lam1 * math.exp(0.028)
  np.testing.assert_allclose([state2.ema, state2.lam], [0.028, lam2], rtol=1e-5)
  np.testing.assert_allclose(pen, lam2 * 0.028, rtol=1e-5)
  # d penalty / d rho_hat = lam' above the target, 0 below (the EMA part carries none).
  g_above = jax.grad(lambda r: density_penalty(r, 0.1, state, eta=eta)[0])(jnp.float32(0.2))
  g_below = jax.grad(lambda r: density_penalty(r, 0.1, state, eta=eta)[0])(jnp.float32(0.05))
  np.testing.assert_allclose(g_above, lam2, rtol=1e-5)
  assert float(g_below) == 0.0
  # Below the target the EMA (0.9 * 0.02 = 0.018) still pushes: value lam * 0.018, no gradient.
  pen, state3, _ = density_penalty(jnp.float32(0.05), 0.1, state, eta=eta)
  np.testing.assert_allclose(pen, lam1 * math.exp(0.018) * 0.018, rtol=1e-5)
  # Default eta = 1e-3 and the clip at 20.
  _, s, _ = density_penalty(jnp.float32(0.3), 0.1, init_density_constraint())
  np.testing.assert_allclose(s.lam, 2 * math.exp(1e-3 * 0.02), rtol=1e-6)
  big = DensityConstraintState(ema=jnp.float32(0.5), lam=jnp.float32(19.0))
  _, s, _ = density_penalty(jnp.float32(1.0), 0.0, big, eta=10.0)
  assert float(s.lam) == 20.0
  # The state is a pytree: it goes through jit.
  out = jax.jit(lambda r, st: density_penalty(r, 0.1, st))(jnp.float32(0.3), big)
  assert isinstance(out[1], DensityConstraintState)


def test_lr_schedule_by_hand():
  # N = 100, ramp 0.2 N = 20: up = (s+1)/20, down = (100-s)/20, each floored at 0.1.
  steps = jnp.asarray([0, 1, 9, 19, 50, 80, 85, 90, 98, 99])
  want = [0.1, 0.1, 0.5, 1.0, 1.0, 1.0, 0.75, 0.5, 0.1, 0.1]
  np.testing.assert_allclose(lr_schedule_factor(steps, 100), want, rtol=1e-6)
  np.testing.assert_allclose(jax.jit(lambda s: lr_schedule_factor(s, 100))(2), 0.15, rtol=1e-6)
  schedule = lycheedecode_schedule(0.01, 3000)  # 0.2 N = 600: s = 299 -> 0.5.
  np.testing.assert_allclose(schedule(299), 0.005, rtol=1e-6)
  np.testing.assert_allclose(schedule(1500), 0.01, rtol=1e-6)


def test_roles_from_kuma():
  # a = 1: mean = b B(2, b) = 1 / (1 + b): b = 0.5 -> 2/3 (retrieval), b = 2 -> 1/3 (sparse).
  a = jnp.ones((3, 2))
  b = jnp.asarray([[2.0, 2.0], [0.5, 2.0], [2.0, 0.5]])
  roles = roles_from_kuma(a, b)
  assert roles.dtype == jnp.bool_
  np.testing.assert_array_equal(roles, [[True, True], [True, False], [False, True]])
  roles = roles_from_kuma(a, b, force_first_layer=False)
  np.testing.assert_array_equal(roles, [[False, False], [True, False], [False, True]])


def test_roles_from_duo_threshold_and_fraction_with_ties():
  alpha = jnp.asarray([[0.9, 0.5], [0.5, 0.5], [0.2, 1.7]])
  np.testing.assert_allclose(duo_gate_values(alpha), [[0.9, 0.5], [0.5, 0.5], [0.2, 1.0]])
  roles = roles_from_duo(alpha, threshold=0.5)  # >= threshold, on the clipped values.
  np.testing.assert_array_equal(roles, [[True, True], [True, True], [False, True]])
  # Keep round(0.5 * 6) = 3: 1.7, 0.9, then the first of the tied 0.5s (flat index 1).
  roles = roles_from_duo(alpha, fraction=0.5)
  assert roles.dtype == jnp.bool_ and int(roles.sum()) == 3
  np.testing.assert_array_equal(roles, [[True, True], [False, False], [False, True]])
  roles = roles_from_duo(alpha, fraction=4 / 6)  # 4: the next tie goes to flat index 2.
  np.testing.assert_array_equal(roles, [[True, True], [True, False], [False, True]])
  np.testing.assert_array_equal(roles_from_duo(alpha, fraction=1.0), np.ones((3, 2), bool))
  # Forced layer 0 counts toward the budget: 3 - 2 = 1 more, the 1.7.
  roles = roles_from_duo(alpha, fraction=0.5, force_first_layer=True)
  np.testing.assert_array_equal(roles, [[True, True], [False, False], [False, True]])
  roles = roles_from_duo(alpha, fraction=1 / 6, force_first_layer=True)
  np.testing.assert_array_equal(roles, [[True, True], [False, False], [False, False]])
  roles = roles_from_duo(alpha, threshold=0.95, force_first_layer=True)
  np.testing.assert_array_equal(roles, [[True, True], [False, False], [False, True]])
  # Deterministic: a re-run gives the same selection.
  np.testing.assert_array_equal(
    roles_from_duo(alpha, fraction=0.5), roles_from_duo(alpha, fraction=0.5)
  )


def test_bad_inputs_name_the_argument():
  ok = jnp.ones((2, 3))
  with pytest.raises(ValueError, match="fraction"):
    roles_from_duo(ok, fraction=0.0)
  with pytest.raises(ValueError, match="fraction"):
    roles_from_duo(ok, fraction=1.5)
  with pytest.raises(ValueError, match="exactly one of threshold and fraction"):
    roles_from_duo(ok)
  with pytest.raises(ValueError, match="exactly one of threshold and fraction"):
    roles_from_duo(ok, threshold=0.5, fraction=0.5)
  with pytest.raises(ValueError, match="alpha must have 2 dims"):
    roles_from_duo(jnp.ones((6,)), threshold=0.5)
  with pytest.raises(ValueError, match="a and b must have the same shape"):
    roles_from_kuma(ok, jnp.ones((3, 2)))
  with pytest.raises(ValueError, match="a must have 2 dims"):
    roles_from_kuma(jnp.ones((2, 3, 1)), jnp.ones((2, 3, 1)))
  with pytest.raises(ValueError, match="b must have 2 dims"):
    expected_density(ok, jnp.ones((3,)))
  with pytest.raises(ValueError, match="num_steps"):
    lr_schedule_factor(0, 0)
  with pytest.raises(ValueError, match="ema_decay"):
    density_penalty(jnp.float32(0.1), 0.1, init_density_constraint(), ema_decay=1.0)
  with pytest.raises(ValueError, match="lam0"):
    init_density_constraint(0.0)
