"""Tests for reasoning_jax/rl/advantages.py (numbers from shared/methods/rl.md)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax import rl
from reasoning_jax.rl import advantages as adv_lib

ESTIMATORS = ["grpo", "dr_grpo", "rloo"]


# ---- spec numbers ----------------------------------------------------------------------------


def test_grpo_spec_group_ddof1():
  # rl.md 1.2: rewards [1, 0, 0, 1], ddof=1 -> +-0.8660.
  a = rl.grpo_advantages(jnp.array([1.0, 0.0, 0.0, 1.0]), group_size=4)
  np.testing.assert_allclose(a, [0.8660, -0.8660, -0.8660, 0.8660], atol=1e-4)


def test_grpo_spec_group_ddof0():
  # rl.md 1.2: ddof=0 -> +-1.0 minus the 1e-6 effect: 0.5 / (0.5 + 1e-6).
  a = rl.grpo_advantages(jnp.array([1.0, 0.0, 0.0, 1.0]), group_size=4, ddof=0)
  np.testing.assert_allclose(a, [1, -1, -1, 1], atol=3e-6)
  np.testing.assert_allclose(a[0], 0.5 / (0.5 + 1e-6), rtol=1e-6)
  assert float(a[0]) < 1.0


def test_grpo_spec_arm_group():
  # rl.md 5.3: group rewards [1, 1, 0, 0] (ddof=1) -> [0.866, 0.866, -0.866, -0.866].
  a = rl.grpo_advantages(jnp.array([1, 1, 0, 0]), group_size=4)
  np.testing.assert_allclose(a, [0.866, 0.866, -0.866, -0.866], atol=1e-3)


@pytest.mark.parametrize(
  "ddof,expected", [(0, [0.9806, 0.3922, -1.3728]), (1, [0.8006, 0.3203, -1.1209])]
)
def test_grpo_std_convention_spec_numbers(ddof, expected):
  # rl.md 6.4: values {1.0, 0.75, 0.0}: population vs unbiased std normalisation.
  a = rl.grpo_advantages(jnp.array([1.0, 0.75, 0.0]), group_size=3, ddof=ddof, eps=0.0)
  np.testing.assert_allclose(a, expected, atol=1e-4)


def test_default_flags_match_spec():
  import inspect

  params = inspect.signature(rl.grpo_advantages).parameters
  assert params["ddof"].default == 1 and params["eps"].default == 1e-6


def test_dr_grpo_and_rloo_formulas():
  r = jnp.array([1.0, 0.0, 0.0, 0.0, 3.0, 1.0])
  a = rl.dr_grpo_advantages(r, group_size=3)
  np.testing.assert_allclose(a, [2 / 3, -1 / 3, -1 / 3, -4 / 3, 5 / 3, -1 / 3], atol=1e-6)
  b = rl.rloo_advantages(r, group_size=3)
  # R_i - mean of the other two.
  np.testing.assert_allclose(b, [1.0, -0.5, -0.5, -2.0, 2.5, -0.5], atol=1e-6)
  np.testing.assert_allclose(rl.compute_advantages("rloo", r, group_size=3), b)


# ---- invariants ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ESTIMATORS)
def test_all_equal_groups_give_exact_zero(name):
  # 0.1 * 3 / 3 != 0.1 in float32: the centred value is a rounding error, not 0.
  r = jnp.array([1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.0, 0.0, 0.0, 5.0, 2.0, 5.0])
  a = rl.compute_advantages(name, r, group_size=3)
  assert np.all(np.isfinite(a))
  np.testing.assert_array_equal(a[:9], 0.0)
  assert np.all(a[9:] != 0)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_group_of_one_is_zero(name):
  a = rl.compute_advantages(name, jnp.array([3.0, 1.0]), group_ids=jnp.array([0, 1]))
  np.testing.assert_array_equal(a, 0.0)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_padding_rows_never_enter_group_stats(name):
  r = jnp.array([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
  valid = jnp.array([1, 1, 1, 0, 1, 1, 0, 0], bool)
  a = rl.compute_advantages(name, r, group_size=4, valid=valid)
  garbage = r.at[3].set(jnp.nan).at[6].set(1e6).at[7].set(-jnp.inf)
  b = rl.compute_advantages(name, garbage, group_size=4, valid=valid)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(a[~np.asarray(valid)], 0.0)
  # Same as computing on the valid rows alone.
  ref = rl.compute_advantages(name, r[:3], group_size=3)
  np.testing.assert_allclose(a[:3], ref, atol=1e-6)
  # Second group: valid rewards [1, 1] are all equal.
  np.testing.assert_array_equal(a[4:], 0.0)


def test_all_invalid_group_is_zero():
  a = rl.grpo_advantages(
    jnp.array([1.0, 0.0, 1.0, 0.0]), group_size=2, valid=jnp.array([1, 1, 0, 0], bool)
  )
  np.testing.assert_allclose(a, [0.7071, -0.7071, 0, 0], atol=1e-4)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_group_ids_match_contiguous_layout(name):
  rng = np.random.default_rng(0)
  r = jnp.asarray(rng.integers(0, 2, size=12).astype(np.float32))
  contiguous = rl.compute_advantages(name, r, group_size=4)
  perm = rng.permutation(12)
  ids = jnp.asarray(np.array([100, -7, 42])[np.arange(12) // 4][perm])
  shuffled = rl.compute_advantages(name, r[perm], group_ids=ids)
  np.testing.assert_allclose(shuffled, contiguous[perm], atol=1e-6)


def test_advantages_are_detached_jit_and_vmap():
  r = jnp.array([[1.0, 0.0, 0.5, 0.5], [2.0, 0.0, 1.0, 1.0]])
  g = jax.grad(lambda x: jnp.sum(rl.grpo_advantages(x, group_size=2) * x))(r[0])
  # d/dx sum(sg(A) * x) = A.
  np.testing.assert_allclose(g, rl.grpo_advantages(r[0], group_size=2))
  jitted = jax.jit(lambda x, ids: rl.grpo_advantages(x, group_ids=ids))
  ids = jnp.array([3, 3, 8, 8])
  np.testing.assert_allclose(jitted(r[0], ids), rl.grpo_advantages(r[0], group_size=2), atol=1e-6)
  batched = jax.vmap(lambda x: rl.grpo_advantages(x, group_size=2))(r)
  for i in range(2):
    np.testing.assert_allclose(batched[i], rl.grpo_advantages(r[i], group_size=2), atol=1e-6)


def test_under_jit_nan_rewards_propagate_to_their_group_only():
  f = jax.jit(lambda x: rl.grpo_advantages(x, group_size=2))
  a = f(jnp.array([jnp.nan, 1.0, 1.0, 0.0]))
  assert np.all(np.isnan(a[:2])) and np.all(np.isfinite(a[2:]))


def test_zero_variance_group_fraction():
  r = jnp.array([1, 1, 0, 1, 0, 0, 1, 0.0])
  frac = rl.zero_variance_group_fraction(r, group_size=2)
  np.testing.assert_allclose(frac, 0.5)


# ---- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf, -jnp.inf])
@pytest.mark.parametrize("name", ESTIMATORS)
def test_non_finite_rewards_raise(name, bad):
  with pytest.raises(ValueError, match="rewards"):
    rl.compute_advantages(name, jnp.array([1.0, bad, 0.0, 1.0]), group_size=2)


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(rewards=jnp.zeros((0,)), group_size=1), "rewards is empty"),
    (dict(rewards=jnp.zeros((6,)), group_size=4), "group_size=4 does not divide"),
    (dict(rewards=jnp.zeros((6,)), group_size=0), "group_size must be >= 1"),
    (dict(rewards=jnp.zeros((6,)), group_ids=jnp.zeros((5,), jnp.int32)), "group_ids"),
    (dict(rewards=jnp.zeros((6,)), group_size=2, valid=jnp.ones((5,), bool)), "valid"),
    (dict(rewards=jnp.zeros((6, 1)), group_size=2), "rewards must be 1-D"),
    (dict(rewards=jnp.zeros((6,))), "exactly one of group_ids"),
    (
      dict(rewards=jnp.zeros((6,)), group_size=2, group_ids=jnp.zeros(6, jnp.int32)),
      "exactly one of group_ids",
    ),
  ],
)
def test_invalid_inputs_raise_naming_argument(kwargs, match):
  with pytest.raises(ValueError, match=match):
    rl.grpo_advantages(**kwargs)


def test_invalid_dtypes_and_options():
  with pytest.raises(TypeError, match="group_ids"):
    rl.grpo_advantages(jnp.zeros(4), group_ids=jnp.zeros(4))
  with pytest.raises(TypeError, match="group_size must be an int"):
    rl.grpo_advantages(jnp.zeros(4), group_size=2.5)
  with pytest.raises(ValueError, match="ddof"):
    rl.grpo_advantages(jnp.zeros(4), group_size=2, ddof=-1)
  with pytest.raises(ValueError, match="eps"):
    rl.grpo_advantages(jnp.zeros(4), group_size=2, eps=float("nan"))
  with pytest.raises(ValueError, match=r"estimator='ppo'.*'dr_grpo', 'grpo'"):
    rl.compute_advantages("ppo", jnp.zeros(4), group_size=2)


def test_registry_contents_and_groups_helper():
  assert {"grpo", "dr_grpo", "rloo"} <= set(rl.ADVANTAGES.names())
  groups = adv_lib.make_groups(6, group_ids=jnp.array([9, 2, 9, 2, 5, 5]))
  np.testing.assert_array_equal(groups.index, [2, 0, 2, 0, 1, 1])
  counts = adv_lib.group_count(groups, jnp.ones(6, bool))
  np.testing.assert_array_equal(counts[:3], [2, 2, 2])


class HandNumbersWithAndWithoutJit(chex.TestCase):
  """Spec numbers of the three estimators through `self.variant` (jax.jit and eager)."""

  @chex.variants(with_jit=True, without_jit=True)
  def test_grpo_spec_group_ddof1(self):
    a = self.variant(lambda r: rl.grpo_advantages(r, group_size=4))(jnp.array([1.0, 0, 0, 1]))
    np.testing.assert_allclose(a, [0.8660, -0.8660, -0.8660, 0.8660], atol=1e-4)

  @chex.variants(with_jit=True, without_jit=True)
  def test_grpo_std_convention(self):
    a = self.variant(lambda r: rl.grpo_advantages(r, group_size=3, ddof=0, eps=0.0))(
      jnp.array([1.0, 0.75, 0.0])
    )
    np.testing.assert_allclose(a, [0.9806, 0.3922, -1.3728], atol=1e-4)

  @chex.variants(with_jit=True, without_jit=True)
  def test_dr_grpo_and_rloo_formulas(self):
    r = jnp.array([1.0, 0.0, 0.0, 0.0, 3.0, 1.0])
    a = self.variant(lambda x: rl.dr_grpo_advantages(x, group_size=3))(r)
    np.testing.assert_allclose(a, [2 / 3, -1 / 3, -1 / 3, -4 / 3, 5 / 3, -1 / 3], atol=1e-6)
    b = self.variant(lambda x: rl.rloo_advantages(x, group_size=3))(r)
    np.testing.assert_allclose(b, [1.0, -0.5, -0.5, -2.0, 2.5, -0.5], atol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_group_ids_and_valid(self):
    ids = jnp.array([7, 3, 7, 3, 3])
    valid = jnp.array([True, True, True, True, False])
    a = self.variant(lambda x: rl.dr_grpo_advantages(x, group_ids=ids, valid=valid))(
      jnp.array([1.0, 2.0, 0.0, 0.0, jnp.nan])
    )
    np.testing.assert_allclose(a, [0.5, 1.0, -0.5, -1.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_group_size_one_raises(name):
  """One sample per group: the baseline is the sample itself, every advantage would be 0."""
  with pytest.raises(ValueError, match="group_size must be an int >= 2, got 1"):
    rl.compute_advantages(name, jnp.array([1.0, 0.0, 1.0]), group_size=1)
