"""MRPO (arXiv 2602.02545): spec numbers, invariants, padding, SOE loop, optax variant."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from reasoning_jax.rl import mrpo
from reasoning_jax.rl.advantages import ADVANTAGES


def grpo_advantages(rewards, group_size, *, ddof=1, delta=1e-6):
  """Reference GRPO group advantage (spec 1.2): (R - mean_g) / (std_g + delta)."""
  r = jnp.asarray(rewards, jnp.float32).reshape(-1, group_size)
  mean = jnp.mean(r, axis=-1, keepdims=True)
  std = jnp.std(r, axis=-1, keepdims=True, ddof=ddof)
  return ((r - mean) / (std + delta)).reshape(-1)


def np_erank(rows):
  """Independent float64 effective rank (Roy & Vetterli) of `rows [w, d]`."""
  x = np.asarray(rows, np.float64)
  s = np.linalg.svd(x - x.mean(0), compute_uv=False)
  s = s[s >= 1e-10]
  if s.sum() == 0:
    return 1.0
  p = s / s.sum()
  return float(np.exp(-np.sum(p * np.log(p))))


def np_trajectory_rank(h, m, window, stride, reduction):
  x = np.asarray(h)[np.asarray(m) > 0]
  if len(x) == 0:
    return 1.0
  if len(x) < window:
    ranks = [np_erank(x)]
  else:
    ranks = [np_erank(x[s : s + window]) for s in range(0, len(x) - window + 1, stride)]
  return min(ranks) if reduction == "min" else float(np.mean(ranks))


def _ragged(seed, n=6, t=13, d=5):
  """Hidden states with right, left and interior padding holding NaN garbage."""
  rng = np.random.default_rng(seed)
  h = rng.normal(size=(n, t, d)).astype(np.float32)
  m = np.zeros((n, t), np.float32)
  lengths = [13, 10, 9, 3, 1, 0][:n]
  for i, length in enumerate(lengths):
    if i % 3 == 0:
      m[i, :length] = 1  # Right padding.
    elif i % 3 == 1:
      m[i, t - length :] = 1  # Left padding.
    else:
      m[i, rng.permutation(t)[:length]] = 1  # Interior gaps.
  h = np.where(m[..., None] > 0, h, np.nan).astype(np.float32)
  return jnp.asarray(h), jnp.asarray(m)


# ----------------------------------------------------------------------------- spec numbers


def test_spec_effective_rank_examples():
  rank_one = jnp.outer(jnp.array([1.0, -2.0, 0.5, 3.0, 4.0]), jnp.array([1.0, 2.0, -1.0]))
  np.testing.assert_allclose(mrpo.effective_rank(rank_one), 1.0, atol=1e-5)
  np.testing.assert_allclose(mrpo.effective_rank(jnp.eye(4)), 3.0, atol=1e-5)
  identical = jnp.tile(jnp.array([[0.1, 0.3, 0.7, -1.3]]), (6, 1))
  assert float(mrpo.effective_rank(identical)) == 1.0
  assert float(mrpo.effective_rank(jnp.zeros((4, 3)))) == 1.0
  assert float(mrpo.effective_rank(jnp.ones((1, 3)))) == 1.0
  # Two equal singular values -> 2; a batch of windows in one call.
  square = jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
  np.testing.assert_allclose(
    mrpo.effective_rank(jnp.stack([square, jnp.eye(4)[:, :2]])),
    [2.0, np_erank(np.eye(4)[:, :2])],
    atol=1e-5,
  )


def test_spec_orthogonality_example():
  given = mrpo.BiasManifold(jnp.zeros(2), jnp.array([[1.0], [0.0]]), jnp.array(1))
  np.testing.assert_allclose(
    mrpo.orthogonality_score(jnp.array([1.0, 1.0]), given), 0.70711, atol=1e-5
  )
  # Estimated from a pool that varies only along e1 (mu = 0): the same manifold.
  pool = jnp.array([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0], [-2.0, 0.0]])
  est = mrpo.bias_manifold(pool)
  assert int(est.rank) == 1
  z = jnp.array([[1.0, 1.0], [3.0, 0.0], [0.0, -2.0]])
  np.testing.assert_allclose(mrpo.orthogonality_score(z, est), [0.70711, 0.0, 1.0], atol=1e-5)


@pytest.mark.parametrize("eps_var, k", [(0.05, 2), (0.1, 1), (0.0, 3), (0.03, 3)])
def test_bias_manifold_rank_selection(eps_var, k):
  # Centred energies 90 : 6 : 4 along e1, e2, e3 -> cumulative 0.90, 0.96, 1.0.
  scales = np.sqrt(np.array([90.0, 6.0, 4.0]) / 2)
  rows = [s * sign * np.eye(4)[i] for i, s in enumerate(scales) for sign in (1, -1)]
  pool = np.array(rows + [np.full(4, np.nan)], np.float32)  # Last row is padding.
  mask = jnp.array([1, 1, 1, 1, 1, 1, 0])
  manifold = mrpo.bias_manifold(jnp.asarray(pool), mask, eps_var=eps_var)
  assert int(manifold.rank) == k
  np.testing.assert_allclose(manifold.mean, 0.0, atol=1e-6)
  u = np.asarray(manifold.basis)
  np.testing.assert_allclose(np.abs(u[:, :k]), np.eye(4)[:, :k], atol=1e-5)
  np.testing.assert_array_equal(u[:, k:], 0.0)


def test_spec_reward_example():
  correct = jnp.array([1.0, 1.0, 0.0, 0.0])
  for x, y in [(0.0, 0.0), (1.0, 0.3), (0.7, 1.0)]:
    r = mrpo.rank_aware_rewards(correct, jnp.array([1.0, 0.0, x, y]), alpha=0.5)
    np.testing.assert_array_equal(r, [1.5, 1.0, 0.0, 0.0])


# ----------------------------------------------------------------------------- invariants


def test_alpha_zero_is_grpo_exactly():
  h, m = _ragged(0)
  correct = jnp.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
  out = mrpo.mrpo_rewards(correct, h, m, config=mrpo.MRPOConfig(alpha=0.0, window=4))
  np.testing.assert_array_equal(out.rewards, correct)
  np.testing.assert_array_equal(grpo_advantages(out.rewards, 3), grpo_advantages(correct, 3))
  assert float(jnp.max(out.norm_rank)) == 1.0  # The bonus exists, alpha just zeroes it.


def test_rank_bonus_activates_all_correct_groups_only():
  rng = np.random.default_rng(1)
  h = jnp.asarray(rng.normal(size=(8, 6, 5)), jnp.float32)
  h = h.at[1, :, 1:].set(0.0)  # A low-rank (rank-1) trajectory among the correct ones.
  m = jnp.ones((8, 6))
  correct = jnp.array([1, 1, 1, 1, 0, 0, 0, 0])
  out = mrpo.mrpo_rewards(correct, h, m, config=mrpo.MRPOConfig(window=4, stride=1))
  adv = grpo_advantages(out.rewards, 4)
  assert float(jnp.abs(adv[:4]).sum()) > 1.0  # All-correct group now has a gradient signal.
  assert float(adv[1]) < 0  # ... pushing away from the low-rank trajectory.
  np.testing.assert_array_equal(adv[4:], 0.0)  # All-incorrect group stays at zero.
  np.testing.assert_array_equal(out.rewards[4:], 0.0)


@pytest.mark.parametrize("reduction", ["min", "mean"])
def test_trajectory_rank_matches_reference_and_ignores_padding(reduction):
  h, m = _ragged(2)
  got = mrpo.trajectory_rank(h, m, window=4, stride=3, reduction=reduction)
  want = [np_trajectory_rank(np.nan_to_num(h[i]), m[i], 4, 3, reduction) for i in range(6)]
  np.testing.assert_allclose(got, want, rtol=1e-4)
  # The same responses compacted and right-padded with zeros give the same ranks.
  compact = np.zeros(h.shape, np.float32)
  compact_mask = np.zeros(m.shape, np.float32)
  for i in range(6):
    valid = np.asarray(h[i])[np.asarray(m[i]) > 0]
    compact[i, : len(valid)] = valid
    compact_mask[i, : len(valid)] = 1
  again = mrpo.trajectory_rank(
    jnp.asarray(compact), jnp.asarray(compact_mask), window=4, stride=3, reduction=reduction
  )
  np.testing.assert_allclose(again, got, rtol=1e-5)
  assert float(got[5]) == 1.0  # Empty response.
  if reduction == "min":  # The memory knob (rows per lax.map step) changes nothing.
    chunked = mrpo.trajectory_rank(h, m, window=4, stride=3, row_batch_size=4)
    np.testing.assert_allclose(chunked, got, rtol=1e-6)


def test_window_edges_pinned():
  """window=4, stride=3: starts 0, 3, 6 while start + 4 <= L; the tail is not a window."""
  rng = np.random.default_rng(3)
  base = rng.normal(size=(12, 8)).astype(np.float32)
  # L = 10: rows 6..9 identical -> the window [6, 10) exists and has erank 1.
  h10 = base.copy()
  h10[6:10] = base[6]
  # L = 9: rows 5..8 identical, but [5, 9) is not a window (starts are 0, 3).
  h9 = base.copy()
  h9[5:9] = base[5]
  m = np.zeros((2, 12), np.float32)
  m[0, :10] = 1
  m[1, :9] = 1
  r = mrpo.trajectory_rank(jnp.asarray(np.stack([h10, h9])), jnp.asarray(m), window=4, stride=3)
  assert float(r[0]) == pytest.approx(1.0, abs=1e-6)
  expected = min(np_erank(h9[0:4]), np_erank(h9[3:7]))
  np.testing.assert_allclose(r[1], expected, rtol=1e-4)
  assert float(r[1]) > 1.5
  # Shorter than a window: the whole response is one window.
  short = mrpo.trajectory_rank(jnp.asarray(base[None, :3]), jnp.ones((1, 3)), window=4)
  np.testing.assert_allclose(short, [np_erank(base[:3])], rtol=1e-4)


def test_normalize_rank_scopes_and_floor():
  rank = jnp.array([1.0, 2.0, 3.0, 5.0, 2.0, 2.0, 2.0, 99.0])
  valid = jnp.array([1, 1, 1, 1, 1, 1, 1, 0])
  batch = mrpo.normalize_rank(rank, valid=valid)
  np.testing.assert_allclose(batch, [0, 0.25, 0.5, 1, 0.25, 0.25, 0.25, 0], atol=1e-7)
  group = mrpo.normalize_rank(rank, valid=valid, scope="group", group_size=4)
  np.testing.assert_allclose(group, [0, 0.25, 0.5, 1, 0, 0, 0, 0], atol=1e-7)  # Flat group -> 0.
  flat = mrpo.normalize_rank(jnp.array([2.0, 2.0 + 5e-9, 2.0]))
  np.testing.assert_array_equal(flat, 0.0)
  # Non-contiguous group ids give the same per-group result.
  perm = jnp.array([4, 0, 7, 2, 5, 1, 6, 3])
  by_ids = mrpo.normalize_rank(
    rank[perm], valid=valid[perm], scope="group", group_ids=(jnp.arange(8) // 4)[perm] * 10
  )
  np.testing.assert_array_equal(by_ids, group[perm])
  cfg = mrpo.MRPOConfig(window=4, norm_scope="group")
  h, m = _ragged(4)
  out = mrpo.mrpo_rewards(jnp.ones(6), h, m, group_size=3, config=cfg)
  np.testing.assert_allclose(
    out.norm_rank,
    mrpo.normalize_rank(out.rank, valid=jnp.any(m > 0, -1), scope="group", group_size=3),
  )


def test_registered_estimator():
  assert ADVANTAGES.get("mrpo") is mrpo.mrpo_group_advantages
  h, m = _ragged(10)
  rewards = jnp.array([1.0, 0.0, 1.0, 1.0, 1.0, 1.0])
  grpo = ADVANTAGES.get("grpo")
  zero = ADVANTAGES.get("mrpo")(
    rewards, group_size=3, hidden=h, mask=m, config=mrpo.MRPOConfig(alpha=0.0, window=4)
  )
  np.testing.assert_array_equal(zero, grpo(rewards, group_size=3))
  np.testing.assert_array_equal(zero, grpo_advantages(rewards, 3))  # Independent reference.
  cfg = mrpo.MRPOConfig(window=4)
  adv = ADVANTAGES.get("mrpo")(rewards, group_size=3, hidden=h, mask=m, config=cfg)
  shaped = mrpo.mrpo_rewards(rewards, h, m, config=cfg).rewards
  np.testing.assert_allclose(adv, grpo_advantages(shaped, 3), atol=1e-6)
  assert float(jnp.abs(adv[3:]).sum()) > 0  # All-correct group 2 is active.
  # Invalid rows (NaN rewards allowed there) get advantage 0 and no rank statistics.
  valid = jnp.array([1, 1, 1, 1, 1, 0])
  masked = ADVANTAGES.get("mrpo")(
    rewards.at[5].set(jnp.nan), group_size=3, hidden=h, mask=m, valid=valid, config=cfg
  )
  assert float(masked[5]) == 0.0 and bool(jnp.all(jnp.isfinite(masked)))
  with pytest.raises(ValueError, match="base_estimator"):
    ADVANTAGES.get("mrpo")(rewards, group_size=3, hidden=h, mask=m, base_estimator="arm")


# ----------------------------------------------------------------------------- gradients, jit


def test_gradients_finite():
  rng = np.random.default_rng(5)
  window = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
  mask = jnp.array([1, 1, 0, 1, 1, 0])
  padded = jnp.where(mask[:, None] > 0, window, jnp.nan)
  g = jax.grad(lambda w: mrpo.effective_rank(w, mask))(padded)
  assert bool(jnp.all(jnp.isfinite(g)))
  np.testing.assert_array_equal(g[mask == 0], 0.0)  # Padding gets no gradient.
  assert float(jnp.abs(g).sum()) > 0

  # The reward path is detached: zero (finite) gradient wrt hidden states.
  h, m = _ragged(6)
  g_reward = jax.grad(
    lambda x: jnp.sum(
      mrpo.mrpo_rewards(jnp.ones(6), x, m, config=mrpo.MRPOConfig(window=4)).rewards
    )
  )(h)
  np.testing.assert_array_equal(g_reward, 0.0)

  # NOT-IN-PAPER penalty, including a token exactly at mu (0/0 guarded).
  manifold = mrpo.BiasManifold(jnp.zeros(5), jnp.eye(5)[:, :2], jnp.array(2))
  hidden = jnp.where(m[..., None] > 0, h, 0.0).at[0, 0].set(0.0)
  loss = lambda x: (lambda s, d, _: s / d)(
    *mrpo.orthogonal_penalty_not_in_paper(x, m, manifold, correct=jnp.array([1, 1, 0, 1, 1, 1]))
  )
  g_pen = jax.grad(loss)(hidden)
  assert bool(jnp.all(jnp.isfinite(g_pen)))
  np.testing.assert_array_equal(g_pen[2], 0.0)  # Incorrect row excluded.
  # Value: mean over tokens of the in-manifold energy fraction.
  s, d, aux = mrpo.orthogonal_penalty_not_in_paper(
    jnp.array([[[3.0, 0, 4, 0, 0]]]), jnp.ones((1, 1)), manifold, weight=2.0
  )
  np.testing.assert_allclose([s, d], [2 * 9 / 25, 1.0], rtol=1e-6)
  np.testing.assert_allclose(aux["orthogonal_penalty/mean_in_manifold_fraction"], 9 / 25, rtol=1e-6)


def test_jit_and_vmap():
  h, m = _ragged(7)
  correct = jnp.array([1, 1, 0, 1, 0, 1])
  cfg = mrpo.MRPOConfig(window=4)
  eager = mrpo.mrpo_rewards(correct, jnp.nan_to_num(h), m, config=cfg)
  jitted = jax.jit(mrpo.mrpo_rewards, static_argnames=("group_size", "config"))(
    correct, h, m, config=cfg
  )
  for e, j in zip(eager, jitted):
    np.testing.assert_allclose(e, j, rtol=1e-5)
  windows = jnp.nan_to_num(h[:, :4])
  np.testing.assert_allclose(
    jax.vmap(mrpo.effective_rank)(windows), mrpo.effective_rank(windows), rtol=1e-5
  )
  manifold = mrpo.bias_manifold(jnp.nan_to_num(h[0]))
  z = jnp.nan_to_num(h[1])
  np.testing.assert_allclose(
    jax.jit(mrpo.orthogonality_score)(z, manifold), mrpo.orthogonality_score(z, manifold), atol=1e-5
  )


# ----------------------------------------------------------------------------- validation


def test_config_defaults_and_validation():
  c = mrpo.MRPOConfig()
  assert (
    c.alpha,
    c.window,
    c.window_stride,
    c.rank_reduction,
    c.norm_scope,
    c.eps_var,
    c.num_probes,
    c.sampling_budget,
    c.max_probe_tokens,
    c.probe_pooling,
    c.omega_threshold,
    c.target_traces,
  ) == (0.5, 64, 32, "min", "batch", 0.05, 8, 16, 64, "mean", 0.8, 10_000)
  assert dataclasses.replace(c, window=16).window_stride == 8
  with pytest.raises(dataclasses.FrozenInstanceError):
    c.alpha = 1.0  # type: ignore[misc]
  for kwargs, name in [
    ({"alpha": float("nan")}, "MRPOConfig.alpha"),
    ({"window": 0}, "MRPOConfig.window"),
    ({"stride": -1}, "MRPOConfig.stride"),
    ({"rank_reduction": "max"}, "MRPOConfig.rank_reduction"),
    ({"norm_scope": "token"}, "MRPOConfig.norm_scope"),
    ({"eps_var": 1.0}, "MRPOConfig.eps_var"),
    ({"probe_pooling": "max"}, "MRPOConfig.probe_pooling"),
  ]:
    with pytest.raises(ValueError, match=name):
      mrpo.MRPOConfig(**kwargs)


def test_errors_name_the_argument():
  h = jnp.zeros((2, 5, 3))
  m = jnp.ones((2, 5))
  with pytest.raises(ValueError, match="hidden must have 3 dims"):
    mrpo.trajectory_rank(h[0], m)
  with pytest.raises(ValueError, match="mask must have the shape of hidden"):
    mrpo.trajectory_rank(h, m[:, :4])
  with pytest.raises(ValueError, match="hidden has 1 non-finite"):
    mrpo.trajectory_rank(h.at[1, 2, 0].set(jnp.nan), m)
  with pytest.raises(ValueError, match="window must be a positive int"):
    mrpo.trajectory_rank(h, m, window=0)
  with pytest.raises(ValueError, match="reduction"):
    mrpo.trajectory_rank(h, m, reduction="median")
  with pytest.raises(ValueError, match="row_mask must hold only 0/1"):
    mrpo.effective_rank(h[0], jnp.full((5,), 0.5))
  with pytest.raises(ValueError, match="exactly one of group_ids"):
    mrpo.normalize_rank(jnp.ones(4), scope="group")
  with pytest.raises(ValueError, match="group_size=3 does not divide"):
    mrpo.normalize_rank(jnp.ones(4), scope="group", group_size=3)
  with pytest.raises(ValueError, match="correct must have shape"):
    mrpo.rank_aware_rewards(jnp.ones(3), jnp.ones(4))
  with pytest.raises(ValueError, match="norm_rank has 1 non-finite"):
    mrpo.rank_aware_rewards(jnp.ones(2), jnp.array([0.5, jnp.nan]))
  with pytest.raises(ValueError, match="eps_var"):
    mrpo.bias_manifold(jnp.ones((3, 2)), eps_var=-0.1)
  with pytest.raises(ValueError, match="states has 1 non-finite"):
    mrpo.bias_manifold(jnp.ones((3, 2)).at[0, 0].set(jnp.inf))
  manifold = mrpo.bias_manifold(jnp.eye(3))
  with pytest.raises(ValueError, match="manifold has mean"):
    mrpo.orthogonality_score(jnp.ones(4), manifold)
  with pytest.raises(TypeError, match="manifold must be a BiasManifold"):
    mrpo.orthogonality_score(jnp.ones(3), (manifold.mean, manifold.basis))
  with pytest.raises(TypeError, match="config must be an MRPOConfig"):
    mrpo.mrpo_rewards(jnp.ones(2), h, m, config={"alpha": 0.5})


# ----------------------------------------------------------------------------- SOE loop


E1, E2 = np.eye(3)[0], np.eye(3)[1]
PROBE_STATES = {
  "a": np.stack([E1, 3 * E1]),  # Inside the bias manifold: Omega 0.
  "b": np.stack([E2, E2]),  # Orthogonal: Omega 1.
  "c": np.stack([E1 + E2, E1 + E2]),
}  # Omega 1/sqrt(2).


def _soe_callables(probes, steps_to_answer=2):
  calls = {"teacher": 0, "student": []}

  def student_generate_fn(context, num_probes, max_new_tokens, rng):
    calls["student"].append((num_probes, max_new_tokens, rng.shape))
    return [[p] for p in probes][:num_probes]

  def teacher_generate_fn(context, rng):
    calls["teacher"] += 1
    step = sum(1 for tok in context if str(tok).startswith("t"))
    return [f"t{step}"], step + 1 >= steps_to_answer

  def hidden_fn(context, probe):
    return jnp.asarray(PROBE_STATES[probe[-1]], jnp.float32)

  def verify_fn(problem, context):
    return context[0] == problem[0] and context[-1] == f"t{steps_to_answer - 1}"

  return calls, student_generate_fn, teacher_generate_fn, hidden_fn, verify_fn


def _e1_manifold():
  return mrpo.bias_manifold(jnp.asarray(np.stack([E1, -E1, 2 * E1, -2 * E1]), jnp.float32))


def test_soe_trace_picks_most_orthogonal_probe():
  calls, student, teacher, hidden, verify = _soe_callables(["a", "c", "b"])
  cfg = mrpo.MRPOConfig(num_probes=3, max_probe_tokens=16)
  trace = mrpo.soe_synthesize_trace(
    ["q"],
    _e1_manifold(),
    student_generate_fn=student,
    teacher_generate_fn=teacher,
    hidden_fn=hidden,
    verify_fn=verify,
    rng=jax.random.key(0),
    config=cfg,
  )
  assert trace.context == ["q", "b", "t0", "b", "t1"]
  np.testing.assert_allclose(trace.chosen_scores, [1.0, 1.0], atol=1e-6)
  assert trace.finished and trace.verified and trace.kept
  assert [c[:2] for c in calls["student"]] == [(3, 16), (3, 16)]

  # Only in-manifold / mixed probes: verified but mean Omega 0.707 < 0.8 -> rejected.
  _, student, teacher, hidden, verify = _soe_callables(["a", "c"])
  trace = mrpo.soe_synthesize_trace(
    ["q"],
    _e1_manifold(),
    student_generate_fn=student,
    teacher_generate_fn=teacher,
    hidden_fn=hidden,
    verify_fn=verify,
    rng=jax.random.key(0),
    config=cfg,
  )
  assert trace.verified and not trace.kept
  np.testing.assert_allclose(trace.mean_score, 2**-0.5, atol=1e-6)

  # "last" pooling scores the last probe token: "a" still 0, budget exhausted -> unfinished.
  _, student, teacher, hidden, verify = _soe_callables(["a"], steps_to_answer=5)
  trace = mrpo.soe_synthesize_trace(
    ["q"],
    _e1_manifold(),
    student_generate_fn=student,
    teacher_generate_fn=teacher,
    hidden_fn=hidden,
    verify_fn=verify,
    rng=jax.random.key(0),
    config=mrpo.MRPOConfig(max_steps=2, probe_pooling="last"),
  )
  assert not trace.finished and not trace.verified and len(trace.chosen_scores) == 2


def test_soe_synthesize_skips_problems_without_failures_and_stops_at_target():
  _, student, teacher, hidden, verify = _soe_callables(["a", "b"])
  seen = []

  def teacher_attempts_fn(problem, num_samples, rng):
    seen.append((problem[0], num_samples))
    fail = problem[0] != "easy"
    return [
      (jnp.asarray(np.stack([E1, -E1]) * (i + 1), jnp.float32), not fail or i % 2 == 0)
      for i in range(num_samples)
    ]

  result = mrpo.soe_synthesize(
    [["easy"], ["hard1"], ["hard2"], ["hard3"]],
    teacher_attempts_fn=teacher_attempts_fn,
    student_generate_fn=student,
    teacher_generate_fn=teacher,
    hidden_fn=hidden,
    verify_fn=verify,
    rng=jax.random.key(1),
    config=mrpo.MRPOConfig(target_traces=2, sampling_budget=4),
  )
  assert (result.num_problems, result.num_skipped_no_failure, result.num_rejected) == (3, 1, 0)
  assert [t.context[0] for t in result.traces] == ["hard1", "hard2"]
  assert seen == [("easy", 4), ("hard1", 4), ("hard2", 4)]


# ----------------------------------------------------------------------------- optax (NOT IN PAPER)


def _basis():
  q, _ = np.linalg.qr(np.random.default_rng(8).normal(size=(4, 2)))
  return jnp.asarray(q, jnp.float32)


def test_orthogonal_update_projects_selected_leaves():
  u = _basis()
  rng = np.random.default_rng(9)
  grads = {
    "w": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
    "b": jnp.asarray(rng.normal(size=(4,)), jnp.float32),
    "other": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
  }
  tx = mrpo.orthogonal_update_not_in_paper(u)
  out, _ = tx.update(grads, tx.init(grads))
  np.testing.assert_allclose(out["w"], grads["w"] - grads["w"] @ u @ u.T, atol=1e-6)
  np.testing.assert_allclose(out["w"] @ u, 0.0, atol=1e-6)
  np.testing.assert_allclose(out["b"] @ u, 0.0, atol=1e-6)
  np.testing.assert_array_equal(out["other"], grads["other"])  # axis -1 has size 3, not d.
  again, _ = tx.update(out, tx.init(out))
  np.testing.assert_allclose(again["w"], out["w"], atol=1e-6)  # A projector: idempotent.
  # axis=0 + an explicit mask; a mask selecting a mismatched leaf names the mask.
  tx0 = mrpo.orthogonal_update_not_in_paper(u, axis=0, mask={"w": False, "b": False, "other": True})
  out0, _ = tx0.update(grads, tx0.init(grads))
  np.testing.assert_allclose(u.T @ out0["other"], 0.0, atol=1e-6)
  np.testing.assert_array_equal(out0["w"], grads["w"])
  bad = mrpo.orthogonal_update_not_in_paper(u, mask=lambda g: jax.tree.map(lambda _: True, g))
  with pytest.raises(ValueError, match=r"mask selects update \['other'\]"):
    bad.update(grads, bad.init(grads))


def test_orthogonal_update_composes_with_chain_and_jit():
  u = _basis()
  params = {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}
  grads = jax.tree.map(lambda p: jnp.arange(p.size, dtype=jnp.float32).reshape(p.shape) - 2, params)
  tx = optax.chain(optax.scale_by_adam(), mrpo.orthogonal_update_not_in_paper(u), optax.scale(-0.1))
  state = tx.init(params)
  updates, state = jax.jit(tx.update)(grads, state, params)
  np.testing.assert_allclose(updates["w"] @ u, 0.0, atol=1e-6)
  new = optax.apply_updates(params, updates)
  np.testing.assert_allclose((new["w"] - params["w"]) @ u, 0.0, atol=1e-6)
  # A per-step basis passed as an extra arg through the chain overrides the fixed one.
  other = jnp.asarray(np.eye(4)[:, :1], jnp.float32)
  updates2, _ = tx.update(grads, state, params, orthogonal_basis=other)
  np.testing.assert_allclose(updates2["w"][:, 0], 0.0, atol=1e-7)
  assert float(jnp.abs(updates2["w"] @ u).max()) > 1e-3
  # Validation names the argument.
  with pytest.raises(ValueError, match="needs a basis"):
    lazy = mrpo.orthogonal_update_not_in_paper()
    lazy.update(grads, lazy.init(params))
  with pytest.raises(ValueError, match="basis must have orthonormal"):
    mrpo.orthogonal_update_not_in_paper(2.0 * u)
  with pytest.raises(ValueError, match="orthogonal_basis must have orthonormal"):
    tx.update(grads, state, params, orthogonal_basis=jnp.ones((4, 2)))


def test_registered_estimator_with_token_level_base():
  from reasoning_jax import rl

  h, m = _ragged(10)
  rewards = jnp.array([1.0, 0.0, 1.0, 1.0, 1.0, 0.0])  # Row 5 has no token: reward 0.
  cfg = mrpo.MRPOConfig(window=4)
  kw = dict(group_size=3, hidden=h, mask=m, config=cfg, base_estimator="token_grpo")
  from_seq = ADVANTAGES.get("mrpo")(rewards, **kw)
  shaped = mrpo.mrpo_rewards(rewards, h, m, config=cfg).rewards
  want = rl.token_grpo_advantages(rl.sequence_to_token_rewards(shaped, m), mask=m, group_size=3)
  np.testing.assert_array_equal(from_seq, want)
  # Dense 0/1 token rewards: the rank bonus is added on the last token; same advantages.
  from_tok = ADVANTAGES.get("mrpo")(rl.sequence_to_token_rewards(rewards, m), **kw)
  np.testing.assert_allclose(from_tok, from_seq, atol=1e-6)
  assert from_seq.shape == m.shape and float(jnp.abs(from_seq).sum()) > 0
  with pytest.raises(ValueError, match=r"rewards must be \[N\] sequence rewards"):
    ADVANTAGES.get("mrpo")(
      rl.sequence_to_token_rewards(rewards, m), group_size=3, hidden=h, mask=m, config=cfg
    )
