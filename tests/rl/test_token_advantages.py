"""Tests for reasoning_jax/rl/token_advantages.py (numbers from shared/methods/rl.md 6.4)."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax import rl

# rl.md 6.4: response A has token rewards [0.25, 0.75], response B [0.0]; padded to T=2.
SPEC_REWARDS = jnp.array([[0.25, 0.75], [0.0, 0.0]])
SPEC_MASK = jnp.array([[1, 1], [1, 0]])


def _random(seed=0, n=6, t=5):
  rng = np.random.default_rng(seed)
  rewards = rng.normal(size=(n, t)).astype(np.float32)
  lengths = rng.integers(1, t + 1, size=n)
  mask = (np.arange(t)[None] < lengths[:, None]).astype(np.int32)
  return jnp.asarray(rewards), jnp.asarray(mask)


def test_returns_to_go_spec():
  np.testing.assert_allclose(rl.returns_to_go(SPEC_REWARDS, SPEC_MASK), [[1.0, 0.75], [0.0, 0]])


@pytest.mark.parametrize(
  "ddof,expected", [(0, [0.9806, 0.3922, -1.3728]), (1, [0.8006, 0.3203, -1.1209])]
)
def test_token_grpo_spec_numbers(ddof, expected):
  a = rl.token_grpo_advantages(SPEC_REWARDS, mask=SPEC_MASK, group_size=2, ddof=ddof)
  assert a.shape == (2, 2) and a.dtype == jnp.float32
  np.testing.assert_allclose([a[0, 0], a[0, 1], a[1, 0]], expected, atol=1e-4)
  assert float(a[1, 1]) == 0.0  # Masked token.


def test_default_flags():
  params = inspect.signature(rl.token_grpo_advantages).parameters
  assert params["ddof"].default == 0 and params["eps"].default == 1e-6
  assert rl.TOKEN_LEVEL_ESTIMATORS == {"token_grpo", "token_rloo"}
  assert all(name in rl.ADVANTAGES for name in rl.TOKEN_LEVEL_ESTIMATORS)
  assert rl.is_token_level("token_grpo") and not rl.is_token_level("grpo")
  assert rl.is_token_level("arm", base_estimator="token_rloo")
  assert not rl.is_token_level("arm", base_estimator="grpo")


def test_token_rloo_hand_computed():
  # Returns: A = [1.0, 0.75], B = [0.0]. Baseline of A: mean over B's tokens = 0;
  # baseline of B: mean over A's tokens = 0.875.
  a = rl.token_rloo_advantages(SPEC_REWARDS, mask=SPEC_MASK, group_size=2)
  np.testing.assert_allclose(a, [[1.0, 0.75], [-0.875, 0.0]], atol=1e-7)
  # Three rows, pooled token baseline: rows' returns [2, 1], [3], [0, 0, 0] (T=3).
  r = jnp.array([[1.0, 1.0, 9.0], [3.0, 9.0, 9.0], [0.0, 0.0, 0.0]])
  m = jnp.array([[1, 1, 0], [1, 0, 0], [1, 1, 1]])
  a = rl.token_rloo_advantages(r, mask=m, group_ids=jnp.array([5, 5, 5]))
  want = [[2 - 3 / 4, 1 - 3 / 4, 0], [3 - 3 / 5, 0, 0], [-6 / 3] * 3]
  np.testing.assert_allclose(a, want, atol=1e-6)


def test_grouping_by_ids_equals_group_size():
  r, m = _random(1)
  perm = np.array([3, 0, 4, 1, 5, 2])
  ids = jnp.array([0, 0, 0, 1, 1, 1])[perm] * 7 - 3  # Non-contiguous, arbitrary ids.
  for fn in (rl.token_grpo_advantages, rl.token_rloo_advantages):
    by_size = fn(r, mask=m, group_size=3)
    by_ids = fn(r[perm], mask=m[perm], group_ids=ids)
    np.testing.assert_allclose(by_ids, by_size[perm], atol=1e-6)


def test_invalid_rows_and_masked_tokens_are_zero_and_ignored():
  r, m = _random(2)
  valid = jnp.array([1, 1, 0, 1, 1, 1])
  r = r.at[2].set(jnp.nan).at[0, -1].set(jnp.inf)  # Invalid row / masked token: ignored.
  m = m.at[0, -1].set(0)
  for fn in (rl.token_grpo_advantages, rl.token_rloo_advantages):
    a = fn(r, mask=m, group_size=3, valid=valid)
    assert bool(jnp.all(jnp.isfinite(a)))
    assert bool(jnp.all(a[2] == 0)) and bool(jnp.all(jnp.where(m == 0, a, 0) == 0))
    clean = fn(r.at[2].set(5.0).at[0, -1].set(0.0), mask=m, group_size=3, valid=valid)
    np.testing.assert_array_equal(a, clean)


def test_constant_returns_group_is_exactly_zero():
  # Every counted token has return 0.1 (sparse 0.1 on the last token of each row); the
  # float mean of 0.1 over 7 tokens need not be 0.1, which / (0 + eps) would blow up.
  m = jnp.array([[1, 1, 1], [1, 0, 0], [1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0]])
  tok = rl.sequence_to_token_rewards(jnp.full(6, 0.1), m)
  tok = tok.at[3:].set(rl.sequence_to_token_rewards(jnp.array([1.0, 0.0, 0.0]), m[3:]))
  for fn in (rl.token_grpo_advantages, rl.token_rloo_advantages):
    a = fn(tok, mask=m, group_size=3)
    assert bool(jnp.all(a[:3] == 0)) and bool(jnp.any(a[3:] != 0))


def test_jit_matches_eager():
  r, m = _random(3)
  ids = jnp.array([2, 9, 2, 9, 9, 2])
  for fn in (rl.token_grpo_advantages, rl.token_rloo_advantages):
    eager = fn(r, mask=m, group_ids=ids)
    jitted = jax.jit(lambda r, m, i, fn=fn: fn(r, mask=m, group_ids=i))(r, m, ids)
    np.testing.assert_allclose(jitted, eager, atol=1e-6)
    # Advantages are data: no gradient flows back to the rewards.
    g = jax.grad(lambda x, fn=fn: jnp.sum(fn(x, mask=m, group_size=3) * x))(r)
    np.testing.assert_allclose(g, jnp.where(m > 0, fn(r, mask=m, group_size=3), 0), atol=1e-6)


def test_sparse_reward_gives_constant_returns_per_row():
  m = jnp.array([[0, 1, 1, 1], [1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])  # Left/interior pad.
  seq = jnp.array([1.0, -0.5, 2.0, 0.0])
  tok = rl.sequence_to_token_rewards(seq, m)
  np.testing.assert_array_equal(tok, [[0, 0, 0, 1.0], [0, -0.5, 0, 0], [0, 0, 2.0, 0], [0] * 4])
  returns = rl.returns_to_go(tok, m)
  np.testing.assert_array_equal(returns, np.where(m > 0, seq[:, None], 0))
  a = rl.token_grpo_advantages(tok, mask=m, group_size=2)
  for row in range(3):  # Advantages constant over each row's valid tokens too.
    vals = np.asarray(a[row])[np.asarray(m[row]) > 0]
    assert np.all(vals == vals[0])
  # Invalid rows may hold NaN and get zeros.
  out = rl.sequence_to_token_rewards(seq.at[1].set(jnp.nan), m, valid=jnp.array([1, 0, 1, 1]))
  assert bool(jnp.all(out[1] == 0))


@pytest.mark.parametrize(
  "call,match",
  [
    (
      lambda: rl.token_grpo_advantages(jnp.ones(4), mask=jnp.ones((4, 2)), group_size=2),
      "rewards must be 2-D token rewards .N, T.*sequence_to_token_rewards",
    ),
    (
      lambda: rl.token_grpo_advantages(jnp.ones((4, 2)), mask=jnp.ones((4, 3)), group_size=2),
      r"mask must have shape \(4, 2\)",
    ),
    (
      lambda: rl.token_rloo_advantages(
        jnp.ones((4, 2)).at[0, 0].set(jnp.nan), mask=jnp.ones((4, 2)), group_size=2
      ),
      "rewards contains 1 non-finite",
    ),
    (
      lambda: rl.token_grpo_advantages(jnp.ones((4, 2)), mask=jnp.ones((4, 2)), group_size=1),
      "group_size must be an int >= 2",
    ),
    (
      lambda: rl.token_grpo_advantages(jnp.ones((4, 2)), mask=jnp.ones((4, 2)), group_size=3),
      "does not divide",
    ),
    (
      lambda: rl.token_grpo_advantages(jnp.ones((4, 2)), mask=jnp.ones((4, 2))),
      "exactly one of group_ids",
    ),
    (
      lambda: rl.token_grpo_advantages(
        jnp.ones((4, 2)), mask=jnp.ones((4, 2)), group_size=2, valid=jnp.ones(3)
      ),
      r"valid must have shape \(4,\)",
    ),
    (
      lambda: rl.token_grpo_advantages(jnp.ones((0, 2)), mask=jnp.ones((0, 2)), group_size=2),
      "rewards is empty",
    ),
    (
      lambda: rl.sequence_to_token_rewards(jnp.ones(2), jnp.array([[1, 0], [0, 0]])),
      r"row\(s\) \[1\] are non-zero but mask has no token",
    ),
    (lambda: rl.sequence_to_token_rewards(jnp.ones(2), jnp.ones((3, 2))), "mask must have shape"),
  ],
)
def test_errors_name_the_argument(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_mask_is_required():
  with pytest.raises(TypeError, match="mask"):
    rl.ADVANTAGES.get("token_grpo")(jnp.ones((4, 2)), group_size=2)
