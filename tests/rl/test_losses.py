"""Tests for reasoning_jax/rl/losses/ and importance.py (numbers from shared/methods/rl.md)."""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax import rl

ALL_LOSSES = ["ppo_clip", "grpo", "dapo", "dr_grpo", "cispo", "dispo"]


def _tokens(ratios, logp=-1.0):
  """logp/old_logp [N, T] with exp(logp - old_logp) = ratios (padded with ratio 1)."""
  ratios = jnp.asarray(ratios, jnp.float32)
  logp = jnp.full(ratios.shape, logp, jnp.float32)
  return logp, logp - jnp.log(ratios)


def _call(loss_fn, logp, *args, config=None, attr="loss", **kwargs):
  """One loss evaluation for `_run_many`: the loss (with `config` bound) and its inputs."""
  fn = loss_fn if config is None else rl.BoundLoss("test", loss_fn, config)
  return (fn, attr), (logp, args, kwargs)


@functools.partial(jax.jit, static_argnums=0)
def _compiled_many(fns, inputs):
  results = []
  for (fn, attr), (logp, args, kwargs) in zip(fns, inputs):

    def f(lp, fn=fn, attr=attr, args=args, kwargs=kwargs):
      out = fn(lp, *args, **kwargs)
      return getattr(out, attr), out

    (_, out), grad = jax.value_and_grad(f, has_aux=True)(logp)
    results.append((out, grad))
  return results


def _run_many(*calls):
  """[(LossOutput, d out.<attr> / d logp)] for several `_call`s, compiled as ONE program.

  Differentiating eagerly would compile the forward and backward of every loss separately;
  one jit per test (cached across tests with the same losses and shapes) keeps the suite fast.
  """
  fns, inputs = zip(*calls)
  return _compiled_many(tuple(fns), tuple(inputs))


def _run(loss_fn, logp, *args, **kwargs):
  return _run_many(_call(loss_fn, logp, *args, **kwargs))[0]


def _grad(loss_fn, logp, *args, **kwargs):
  return _run(loss_fn, logp, *args, **kwargs)[1]


def _batch(seed=0, n=8, t=5):
  rng = np.random.default_rng(seed)
  logp = jnp.asarray(-rng.uniform(0.1, 2.0, (n, t)).astype(np.float32))
  old = logp + jnp.asarray(rng.normal(0, 0.3, (n, t)).astype(np.float32))
  ref = logp + jnp.asarray(rng.normal(0, 0.3, (n, t)).astype(np.float32))
  lengths = np.array([5, 1, 3, 0, 2, 5, 4, 1])[:n]
  mask = jnp.asarray((np.arange(t)[None] < lengths[:, None]).astype(np.int32))
  rewards = jnp.asarray(rng.integers(0, 2, n).astype(np.float32))
  adv = rl.grpo_advantages(rewards, group_size=4)
  return logp, old, ref, mask, adv


def _kwargs(name, ref):
  return {"ref_logp": ref} if name == "grpo" else {}


# ---- 1.1 PPO-clip gradient facts --------------------------------------------------------------


@pytest.mark.parametrize(
  "adv,ratio,expected",
  [
    (1.0, 1.5, 0.0),  # A > 0, r > 1 + eps_high: clipped, zero gradient
    (1.0, 0.5, -1.0 * 0.5),  # A > 0, r < 1: unclipped, -A r
    (-1.0, 0.5, 0.0),  # A < 0, r < 1 - eps_low: clipped, zero gradient
    (-1.0, 1.5, 1.0 * 1.5),  # A < 0, r > 1: unclipped (no upper cap), -A r
    (-1.0, 3.0, 1.0 * 3.0),  # ... can be large
    (2.0, 1.0, -2.0),  # r == 1: REINFORCE, -A
  ],
)
def test_ppo_clip_gradient_facts(adv, ratio, expected):
  logp, old = _tokens([[ratio]])
  g = _grad(rl.ppo_clip_loss, logp, old, jnp.array([adv]), jnp.ones((1, 1)))
  np.testing.assert_allclose(g, [[expected]], rtol=1e-6, atol=1e-7)


def test_ppo_clip_value_and_clip_metrics():
  logp, old = _tokens([[1.5, 0.5, 1.1], [0.5, 1.5, 0.9]])
  out = rl.ppo_clip_loss(logp, old, jnp.array([1.0, -1.0]), jnp.ones((2, 3)))
  # -min(rA, clip(r)A) per token.
  expected = np.array([-1.2, -0.5, -1.1, 0.8, 1.5, 0.9])
  np.testing.assert_allclose(out.loss, expected.mean(), rtol=1e-6)
  m = rl.summarize_aux(out.aux)
  assert float(m["clip_frac_high"]) == pytest.approx(1 / 6)
  assert float(m["clip_frac_low"]) == pytest.approx(1 / 6)
  np.testing.assert_allclose([m["ratio_min"], m["ratio_max"]], [0.5, 1.5], rtol=1e-6)
  np.testing.assert_allclose(m["ratio_mean"], np.mean([1.5, 0.5, 1.1, 0.5, 1.5, 0.9]), rtol=1e-6)
  np.testing.assert_allclose([m["adv_mean"], m["adv_std"], m["adv_abs_mean"]], [0, 1, 1], atol=1e-6)


# ---- 1.2 GRPO ---------------------------------------------------------------------------------


def test_grpo_single_token_gradient_is_minus_a_over_len_over_n():
  # rl.md 1.2: beta = 0, r = 1: d loss / d logp = -A / |o_i| / N.
  lengths = np.array([1, 3, 2, 4])
  mask = jnp.asarray(np.arange(4)[None] < lengths[:, None])
  logp, old = _tokens(np.ones((4, 4)))
  adv = rl.grpo_advantages(jnp.array([1.0, 0.0, 0.0, 1.0]), group_size=4)
  g = _grad(rl.grpo_loss, logp, old, adv, mask, config=rl.GRPOConfig(beta=0.0))
  expected = -np.asarray(adv)[:, None] / lengths[:, None] / 4 * np.asarray(mask)
  np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-8)


def test_grpo_kl_term_gradient_closed_form():
  # l_t = pg_t + beta * k3_t; d k3 / d logp = 1 - pi_ref / pi_theta (at r = 1: d pg = -A).
  logp, old = _tokens([[1.0, 1.0]], logp=np.log(0.5))
  ref = jnp.log(jnp.array([[0.25, 0.5]]))
  out, g = _run(rl.grpo_loss, logp, old, jnp.array([0.5]), jnp.ones((1, 2)), ref_logp=ref)
  beta = rl.GRPOConfig().beta
  np.testing.assert_allclose(g, [[(-0.5 + beta * (1 - 0.5)) / 2, -0.5 / 2]], rtol=1e-6)
  m = rl.summarize_aux(out.aux)
  np.testing.assert_allclose(m["kl_mean"], 0.1931 / 2, atol=1e-4)
  np.testing.assert_allclose(m["kl_loss"], beta * 0.1931 / 2, atol=1e-5)
  np.testing.assert_allclose(m["pg_loss"] + m["kl_loss"], out.loss, rtol=1e-6)


def test_kl_in_reward_placement_removes_loss_term():
  logp, old, ref, mask, adv = _batch()
  (in_reward, _), (no_kl, _) = _run_many(
    _call(rl.grpo_loss, logp, old, adv, mask, ref_logp=ref, config=rl.GRPOConfig(kl_in_loss=False)),
    _call(rl.grpo_loss, logp, old, adv, mask, config=rl.GRPOConfig(beta=0.0)),
  )
  np.testing.assert_allclose(in_reward.loss, no_kl.loss, rtol=1e-6)
  assert "kl_mean_token_sum" in in_reward.aux and "kl_loss_sum" not in in_reward.aux


def test_grpo_requires_ref_logp_when_kl_in_loss():
  logp, old, _, mask, adv = _batch()
  with pytest.raises(ValueError, match="ref_logp is required"):
    rl.grpo_loss(logp, old, adv, mask)


# ---- 1.3 DAPO ---------------------------------------------------------------------------------


def test_dapo_clip_higher_and_equal_eps_is_grpo_clipping():
  # A > 0, r = 1.25: clipped under symmetric 0.2, active under eps_high = 0.28.
  logp1, old1 = _tokens([[1.25]])
  args = (old1, jnp.array([1.0]), jnp.ones((1, 1)))
  sym = rl.DAPOConfig(eps_high=0.2)
  logp, old, ref, mask, adv = _batch()
  (_, g_dapo), (_, g_ppo), (_, g_sym), (out, g), (ref_out, ref_g) = _run_many(
    _call(rl.dapo_loss, logp1, *args),
    _call(rl.ppo_clip_loss, logp1, *args),
    _call(rl.dapo_loss, logp1, *args, config=sym),
    _call(rl.dapo_loss, logp, old, adv, mask, config=sym),
    _call(rl.ppo_clip_loss, logp, old, adv, mask),
  )
  np.testing.assert_allclose(g_dapo, [[-1.25]], rtol=1e-6)
  np.testing.assert_allclose(g_ppo, [[0.0]])
  np.testing.assert_allclose(g_sym, [[0.0]])
  np.testing.assert_array_equal(out.loss, ref_out.loss)
  np.testing.assert_array_equal(g, ref_g)


def test_dapo_with_grpo_settings_equals_grpo():
  # rl.md 9 invariant 1: DAPO(eps_high = eps_low, seq-mean aggregation, beta > 0) == GRPO.
  logp, old, ref, mask, adv = _batch()
  cfg = rl.DAPOConfig(eps_high=0.2, aggregation="seq_mean_token_mean", beta=0.04)
  (a, ga), (b, gb) = _run_many(
    _call(rl.dapo_loss, logp, old, adv, mask, ref_logp=ref, config=cfg),
    _call(rl.grpo_loss, logp, old, adv, mask, ref_logp=ref),
  )
  np.testing.assert_array_equal(a.loss, b.loss)
  np.testing.assert_array_equal(ga, gb)


def test_soft_overlong_punishment_spec_table():
  # rl.md 1.3: L_max = 20, L_cache = 4.
  r = rl.soft_overlong_punishment(jnp.array([16, 17, 18, 20, 21]), max_length=20, cache_length=4)
  np.testing.assert_allclose(r, [0.0, -0.25, -0.5, -1.0, -1.0])
  lengths = rl.response_lengths(jnp.asarray(np.arange(22)[None] < np.array([[16], [21]])))
  np.testing.assert_array_equal(lengths, [16, 21])
  with pytest.raises(ValueError, match="cache_length"):
    rl.soft_overlong_punishment(jnp.array([1]), max_length=4, cache_length=8)


def test_overlong_filter_removes_rows_from_loss():
  logp, old, _, mask, adv = _batch()
  truncated = jnp.array([0, 0, 0, 0, 0, 1, 0, 0], bool)
  filtered = rl.overlong_filter(mask, truncated)
  assert int(filtered[5].sum()) == 0
  keep = np.array([0, 1, 2, 3, 4, 6, 7])
  (out, _), (ref, _) = _run_many(
    _call(rl.dapo_loss, logp, old, adv, filtered),
    _call(rl.dapo_loss, logp[keep], old[keep], adv[keep], mask[keep]),
  )
  np.testing.assert_allclose(
    [out.loss_sum, out.denominator], [ref.loss_sum, ref.denominator], rtol=1e-6
  )


def test_dynamic_sampling_filter_and_refill():
  rewards = jnp.array([1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1.0])
  res = rl.dynamic_sampling_filter(rewards, group_size=4)
  np.testing.assert_array_equal(res.group_keep, [False, True, False, True])
  np.testing.assert_array_equal(res.row_keep, np.repeat([False, True, False, True], 4))
  by_ids = rl.dynamic_sampling_filter(rewards, group_ids=jnp.repeat(jnp.array([7, 3, 9, 1]), 4))
  np.testing.assert_array_equal(by_ids.row_keep, res.row_keep)
  # Over-sample, filter, refill until the batch holds `target` groups (rl.md 1.3 invariant).
  rng = np.random.default_rng(0)
  target, g, batch = 5, 4, []
  for _ in range(20):
    r = jnp.asarray(rng.integers(0, 2, 4 * g).astype(np.float32))
    keep = rl.dynamic_sampling_filter(r, group_size=g).group_keep
    idx, filled = rl.select_kept_groups(keep, 4)
    for k, ok in zip(np.asarray(idx), np.asarray(filled)):
      if ok and len(batch) < target:
        batch.append(np.asarray(r).reshape(4, g)[k])
    if len(batch) == target:
      break
  assert len(batch) == target
  for group in batch:
    assert 0 < group.sum() < g  # never an all-equal group
  with pytest.raises(ValueError, match="num_groups"):
    rl.select_kept_groups(keep, 5)


# ---- 1.4 Dr. GRPO -----------------------------------------------------------------------------


def test_dr_grpo_equals_grpo_when_std_is_one_and_c_is_length():
  # rl.md 1.4: with C = |o_i| for every row and std == 1, Dr. GRPO equals GRPO.
  rewards = jnp.array([0.0, np.sqrt(2.0), 1.0, 1.0 + np.sqrt(2.0)])  # ddof=1 std = 1
  rng = np.random.default_rng(1)
  logp = jnp.asarray(-rng.uniform(0.1, 2, (4, 6)).astype(np.float32))
  old = logp + jnp.asarray(rng.normal(0, 0.3, (4, 6)).astype(np.float32))
  mask = jnp.ones((4, 6))
  a_grpo = rl.grpo_advantages(rewards, group_size=2, eps=0.0)
  a_dr = rl.dr_grpo_advantages(rewards, group_size=2)
  np.testing.assert_allclose(a_grpo, a_dr, rtol=1e-6)
  grpo_cfg = rl.GRPOConfig(beta=0.0)
  dr_cfg = rl.DrGRPOConfig(norm_constant=6.0)
  (a, ga), (b, gb) = _run_many(
    _call(rl.grpo_loss, logp, old, a_grpo, mask, config=grpo_cfg),
    _call(rl.dr_grpo_loss, logp, old, a_dr, mask, config=dr_cfg),
  )
  np.testing.assert_allclose(a.loss, b.loss, rtol=1e-6)
  np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-8)


def test_dr_grpo_gradient_uses_constant_normaliser():
  logp, old = _tokens([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
  mask = jnp.array([[1, 0, 0], [1, 1, 1]])
  g = _grad(
    rl.dr_grpo_loss,
    logp,
    old,
    jnp.array([1.0, -1.0]),
    mask,
    config=rl.DrGRPOConfig(norm_constant=10.0),
  )
  np.testing.assert_allclose(g, np.array([[-1, 0, 0], [1, 1, 1]]) / 10 / 2, rtol=1e-6)


# ---- 1.5 CISPO --------------------------------------------------------------------------------


def test_cispo_gradient_is_clipped_weight_times_advantage():
  mask = jnp.ones((2, 3))
  adv = jnp.array([1.0, -1.0])
  logp, old = _tokens([[1.5, 0.5, 1.1]] * 2)
  logp_in, old_in = _tokens([[1.1, 0.9, 1.0]] * 2)
  (_, g), (_, g_cispo), (_, g_ppo) = _run_many(
    _call(rl.cispo_loss, logp, old, adv, mask),
    _call(rl.cispo_loss, logp_in, old_in, adv, mask),
    _call(rl.ppo_clip_loss, logp_in, old_in, adv, mask),
  )
  # eps_low = 1 (w >= 0), eps_high = 0.28 (w <= 1.28); token mean over 6 tokens.
  w = np.array([1.28, 0.5, 1.1])
  np.testing.assert_allclose(g, [-w / 6, w / 6], rtol=1e-6)
  # Inside the band CISPO's gradient equals PPO's; at r == 1 both are REINFORCE.
  np.testing.assert_allclose(g_cispo, g_ppo, rtol=1e-6)
  # Outside the PPO band (r = 1.5, A > 0) CISPO keeps a gradient where PPO has none.
  _, g_ppo_out = _run(rl.ppo_clip_loss, logp, old, adv, mask)
  assert float(g_ppo_out[0, 0]) == 0 and float(g[0, 0]) < 0


# ---- 4. DISPO ---------------------------------------------------------------------------------


def test_dispo_spec_weights():
  # rl.md 4.2: correct, r = [1.5, 0.5] -> w = [1.28, 0.80]; incorrect, r = 1.5 -> w = 1.5.
  w = rl.dispo_is_weights(jnp.array([[1.5, 0.5], [1.5, 0.5]]), jnp.array([1.0, -1.0]))
  np.testing.assert_allclose(w, [[1.28, 0.80], [1.5, 0.5]], rtol=1e-6)
  cfg = rl.DISPOConfig()
  assert (cfg.eps_pos_high, cfg.eps_pos_low, cfg.eps_neg_high, cfg.eps_neg_low) == (
    0.28,
    0.2,
    4.0,
    1.0,
  )
  assert (cfg.out_of_band, cfg.regime_key, cfg.aggregation) == ("clamp", "adv_sign", "token_mean")


def test_dispo_regime_gradients_and_metrics():
  # Row 0 correct (A = +1): r = 1.5 (pos_high, clipped to 1.28), 0.5 (pos_low, -> 0.8).
  # Row 1 incorrect (A = -1): r = 1.5 (neg_high, 1.5), 6 (neg_high, -> 5), 0.5 (neg_low, 0.5).
  logp, old = _tokens([[1.5, 0.5, 1.0], [1.5, 6.0, 0.5]])
  mask = jnp.array([[1, 1, 0], [1, 1, 1]])
  adv = jnp.array([1.0, -1.0])
  out, g = _run(rl.dispo_loss, logp, old, adv, mask)
  expected = np.array([[-1.28, -0.8, 0.0], [1.5, 5.0, 0.5]]) / 5
  np.testing.assert_allclose(g, expected, rtol=1e-6)
  m = rl.summarize_aux(out.aux)
  assert float(m["dispo_pos_high_frac"]) == pytest.approx(1 / 5)
  assert float(m["dispo_pos_low_frac"]) == pytest.approx(1 / 5)
  assert float(m["dispo_neg_high_frac"]) == pytest.approx(2 / 5)
  assert float(m["dispo_neg_low_frac"]) == pytest.approx(1 / 5)
  assert float(m["dispo_pos_high_clip_frac"]) == pytest.approx(1 / 5)
  assert float(m["dispo_pos_low_clip_frac"]) == pytest.approx(1 / 5)
  assert float(m["dispo_neg_high_clip_frac"]) == pytest.approx(1 / 5)
  assert float(m["dispo_neg_low_clip_frac"]) == 0.0
  np.testing.assert_allclose(m["dispo_neg_high_weight_mean"], 3.25, rtol=1e-6)
  np.testing.assert_allclose([m["clip_frac_high"], m["clip_frac_low"]], [0.4, 0.2], rtol=1e-6)


def test_dispo_with_equal_bounds_is_cispo():
  logp, old, ref, mask, adv = _batch()
  calls = []
  for eps in (0.2, 0.5):
    d = rl.DISPOConfig(eps_pos_high=eps, eps_pos_low=eps, eps_neg_high=eps, eps_neg_low=eps)
    c = rl.CISPOConfig(eps_low=eps, eps_high=eps)
    calls += [
      _call(rl.dispo_loss, logp, old, adv, mask, config=d),
      _call(rl.cispo_loss, logp, old, adv, mask, config=c),
    ]
  results = _run_many(*calls)
  for (a, ga), (b, gb) in zip(results[::2], results[1::2]):
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-6)
    np.testing.assert_allclose(ga, gb, rtol=1e-6)


def test_dispo_all_eps_zero_is_on_policy_reinforce():
  logp, old, _, mask, adv = _batch()
  zero = rl.DISPOConfig(eps_pos_high=0.0, eps_pos_low=0.0, eps_neg_high=0.0, eps_neg_low=0.0)
  g = _grad(rl.dispo_loss, logp, old, adv, mask, config=zero)
  expected = -np.asarray(adv)[:, None] * np.asarray(mask) / float(mask.sum())
  np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-8)


def test_dispo_gradient_never_uses_derivative_of_weight():
  # Perturbing old_logp inside the band scales the gradient by the weight ratio only.
  logp, old = _tokens([[1.1, 0.95]])
  mask, adv = jnp.ones((1, 2)), jnp.array([1.0])
  g1 = _grad(rl.dispo_loss, logp, old, adv, mask)
  g2 = _grad(rl.dispo_loss, logp, old - jnp.log(1.1), adv, mask)  # r *= 1.1 (same program)
  assert np.all(np.sign(g1) == np.sign(g2))
  np.testing.assert_allclose(g2 / g1, [[1.21 / 1.1, 1.045 / 0.95]], rtol=1e-5)


def test_dispo_mask_mode_and_correctness_key():
  logp, old = _tokens([[1.5, 0.5, 1.1]])
  mask, adv = jnp.ones((1, 3)), jnp.array([1.0])
  masked = rl.DISPOConfig(out_of_band="mask")
  # regime by correctness: an "incorrect" row with A > 0 (e.g. shaped reward) uses neg bounds.
  by_correct = rl.DISPOConfig(regime_key="correctness")
  (_, g), (_, g_corr) = _run_many(
    _call(rl.dispo_loss, logp, old, adv, mask, config=masked),
    _call(rl.dispo_loss, logp, old, adv, mask, config=by_correct, correct=jnp.array([False])),
  )
  np.testing.assert_allclose(g, [[0.0, 0.0, -1.1 / 3]], rtol=1e-6)
  np.testing.assert_allclose(g_corr, [[-1.5 / 3, -0.5 / 3, -1.1 / 3]], rtol=1e-6)
  with pytest.raises(ValueError, match="correct"):
    rl.dispo_loss(logp, old, adv, mask, config=by_correct)


# ---- 9. cross-method invariants ---------------------------------------------------------------


def test_identical_reward_group_contributes_zero_gradient():
  # rl.md 9 invariant 4 (GRPO / DAPO / DISPO and the rest of this family).
  logp, old, ref, mask, _ = _batch()
  rewards = jnp.array([1, 1, 1, 1, 0, 1, 0, 1.0])  # group 0 all correct
  calls = []
  for name in ALL_LOSSES:
    estimator = "dr_grpo" if name == "dr_grpo" else "grpo"
    adv = rl.compute_advantages(estimator, rewards, group_size=4)
    calls.append(_call(rl.make_loss(name), logp, old, adv, mask, **_kwargs(name, ref)))
  # GRPO without its KL term (the KL term alone still acts on the all-equal group).
  calls.append(_call(rl.make_loss("grpo", beta=0.0), logp, old, adv, mask))
  results = _run_many(*calls)
  for name, (_, g) in zip(ALL_LOSSES + ["grpo_pg_only"], results):
    assert np.all(np.isfinite(g)), name
    if name != "grpo":
      np.testing.assert_array_equal(g[:4], 0.0, err_msg=name)
    assert np.any(g[4:] != 0), name


def test_micro_batches_sum_to_full_batch():
  logp, old, ref, mask, adv = _batch()
  ent = jnp.abs(logp)
  chunks = [slice(i, i + 2) for i in range(0, 8, 2)]  # rows 2-3: a padding row + 1
  calls = []
  for name in ALL_LOSSES:
    loss = rl.make_loss(name)
    calls.append(_call(loss, logp, old, adv, mask, entropy=ent, **_kwargs(name, ref)))
    for c in chunks:
      kw = {"ref_logp": ref[c]} if name == "grpo" else {}
      calls.append(
        _call(loss, logp[c], old[c], adv[c], mask[c], entropy=ent[c], attr="loss_sum", **kw)
      )
  results = iter(_run_many(*calls))
  for name in ALL_LOSSES:
    full, g_full = next(results)
    parts = [next(results) for _ in chunks]
    sums = sum(p.loss_sum for p, _ in parts)
    denoms = sum(p.denominator for p, _ in parts)
    np.testing.assert_allclose(sums / denoms, full.loss, rtol=1e-5, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(denoms, full.denominator, err_msg=name)
    grads = jnp.concatenate([g for _, g in parts])
    np.testing.assert_allclose(grads / denoms, g_full, rtol=1e-5, atol=1e-7, err_msg=name)
    aux = parts[0][0].aux
    for p, _ in parts[1:]:
      aux = rl.merge_aux(aux, p.aux)
    merged, whole = rl.summarize_aux(aux), rl.summarize_aux(full.aux)
    assert merged.keys() == whole.keys()
    for k in whole:
      np.testing.assert_allclose(merged[k], whole[k], rtol=1e-5, atol=1e-6, err_msg=f"{name} {k}")


def test_jit_grad_vmap_and_static_bound_loss():
  logp, old, ref, mask, adv = _batch()
  losses = (rl.make_loss("grpo"), rl.make_loss("dispo"))

  @functools.partial(jax.jit, static_argnums=0)
  def values_and_grads(bound, logp, old, adv, mask, ref):
    return [
      jax.value_and_grad(
        lambda lp: lf(lp, old, adv, mask, **({"ref_logp": ref} if lf.name == "grpo" else {})).loss
      )(logp)
      for lf in bound
    ]

  stacked = [jnp.stack([a, a[::-1]]) for a in (logp, old, adv, mask, ref)]
  batched = jax.vmap(lambda *a: values_and_grads(losses, *a))(*stacked)
  for k, lf in enumerate(losses):
    kw = _kwargs(lf.name, ref)
    single, g = _run(lf, logp, old, adv, mask, **kw)
    np.testing.assert_allclose(batched[k][0][0], single.loss, rtol=1e-6)
    # Gradients of vmap(jit(...)) vs eager: fp32 tolerance (STYLE.md), since XLA may fuse the
    # two differently (a 1.1e-6 relative difference on one element was seen on JAX 0.12 CPU).
    np.testing.assert_allclose(batched[k][1][0], g, rtol=1e-5, atol=1e-10)
    kw_rev = {"ref_logp": ref[::-1]} if kw else {}
    flipped = _run(lf, logp[::-1], old[::-1], adv[::-1], mask[::-1], **kw_rev)
    np.testing.assert_allclose(batched[k][0][1], flipped[0].loss, rtol=1e-6)


def test_masked_slots_with_nan_or_inf_do_not_leak():
  logp, old, ref, mask, adv = _batch()
  pad = ~np.asarray(mask, bool)
  bad_logp = jnp.where(pad, -jnp.inf, logp)
  bad_old = jnp.where(pad, jnp.nan, old)
  calls = []
  for name in ALL_LOSSES:
    loss = rl.make_loss(name)
    calls += [
      _call(loss, logp, old, adv, mask, **_kwargs(name, ref)),
      _call(loss, bad_logp, bad_old, adv, mask, **_kwargs(name, ref)),
    ]
  results = _run_many(*calls)
  for name, (a, g_clean), (b, g) in zip(ALL_LOSSES, results[::2], results[1::2]):
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(g, g_clean, rtol=1e-6, err_msg=name)
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[pad] == 0), name


def test_bf16_inputs_compute_in_float32():
  logp, old, ref, mask, adv = _batch()
  out, g = _run(rl.dapo_loss, logp.astype(jnp.bfloat16), old.astype(jnp.bfloat16), adv, mask)
  assert out.loss_sum.dtype == jnp.float32
  assert g.dtype == jnp.bfloat16


def test_token_level_advantages_and_entropy_term():
  logp, old = _tokens([[1.0, 1.0]])
  adv_tok = jnp.array([[2.0, -1.0]])
  ent = jnp.array([[0.7, 0.3]])
  cfg = rl.DAPOConfig(entropy_coef=0.1)

  def loss_of_entropy(e):
    out = rl.dapo_loss(logp, old, adv_tok, jnp.ones((1, 2)), entropy=e, config=cfg)
    return out.loss, out

  (_, out), g_ent = jax.jit(jax.value_and_grad(loss_of_entropy, has_aux=True))(ent)
  np.testing.assert_allclose(out.loss, (-2 + 1 - 0.1 * 1.0) / 2, rtol=1e-6)
  np.testing.assert_allclose(g_ent, [[-0.05, -0.05]], rtol=1e-6)
  assert float(rl.summarize_aux(out.aux)["entropy_mean"]) == pytest.approx(0.5)
  with pytest.raises(ValueError, match="entropy is required"):
    rl.dapo_loss(logp, old, adv_tok, jnp.ones((1, 2)), config=cfg)


# ---- importance sampling correction ----------------------------------------------------------


def test_truncated_importance_weights_and_composition():
  old = jnp.log(jnp.array([[0.5, 0.9, 0.2]]))
  sampler = jnp.log(jnp.array([[0.5, 0.3, 0.4]]))
  mask = jnp.array([[1, 1, 1]])
  w = rl.truncated_importance_weights(old, sampler, mask)
  np.testing.assert_allclose(w, [[1.0, 2.0, 0.5]], rtol=1e-6)  # 3.0 truncated at C = 2
  w_mask = rl.truncated_importance_weights(old, sampler, mask, mode="mask")
  np.testing.assert_allclose(w_mask, [[1.0, 0.0, 0.5]], rtol=1e-6)
  logp = old  # r = 1
  adv = jnp.array([1.0])
  calls = [
    _call(
      rl.with_truncated_is(rl.make_loss(name, **({"beta": 0.0} if name == "grpo" else {}))),
      logp,
      old,
      adv,
      mask,
      sampler_logp=sampler,
    )
    for name in ALL_LOSSES
  ]
  results = _run_many(*calls)
  for name, (_, g) in zip(ALL_LOSSES, results):
    # Uncorrected gradient at r = 1 for one row of 3 tokens is -A/3 for every loss here.
    np.testing.assert_allclose(g, -1.0 / 3 * w, rtol=1e-6, err_msg=name)
  m = rl.summarize_aux(results[ALL_LOSSES.index("dapo")][0].aux)
  np.testing.assert_allclose(
    [m["tis_weight_mean"], m["tis_clip_frac"]], [3.5 / 3, 1 / 3], rtol=1e-6
  )
  g_sampler = jax.grad(lambda s: jnp.sum(rl.truncated_importance_weights(old, s, mask)))(sampler)
  np.testing.assert_array_equal(g_sampler, 0.0)
  with pytest.raises(ValueError, match=r"mode='clip'.*\['mask', 'truncate'\]"):
    rl.truncated_importance_weights(old, sampler, mask, mode="clip")
  with pytest.raises(ValueError, match="cap"):
    rl.truncated_importance_weights(old, sampler, mask, cap=0.0)


# ---- configs, registry and input validation --------------------------------------------------


def test_registry_names_and_config_defaults():
  assert set(ALL_LOSSES) <= set(rl.LOSSES.names())
  expected = {
    "ppo_clip": dict(eps_low=0.2, eps_high=0.2, aggregation="token_mean", beta=0.0),
    "grpo": dict(
      eps_low=0.2,
      eps_high=0.2,
      aggregation="seq_mean_token_mean",
      beta=0.04,
      kl_estimator="k3",
      kl_in_loss=True,
    ),
    "dapo": dict(eps_low=0.2, eps_high=0.28, aggregation="token_mean", beta=0.0),
    "dr_grpo": dict(
      eps_low=0.2, eps_high=0.2, aggregation="seq_mean_token_sum_norm", beta=0.0, norm_constant=None
    ),
    "cispo": dict(eps_low=1.0, eps_high=0.28, aggregation="token_mean", beta=0.0),
    "dispo": dict(aggregation="token_mean", beta=0.0),
  }
  for name, fields in expected.items():
    cfg = rl.loss_config(name)
    assert {k: getattr(cfg, k) for k in fields} == fields, name
  assert rl.make_loss("dapo", eps_high=0.3).config == rl.DAPOConfig(eps_high=0.3)
  hash(rl.make_loss("dispo"))


@pytest.mark.parametrize(
  "ctor,match",
  [
    (lambda: rl.PPOClipConfig(eps_low=-0.1), r"PPOClipConfig.eps_low must be >= 0"),
    (lambda: rl.DAPOConfig(eps_low=1.5), r"DAPOConfig.eps_low must be <= 1"),
    (lambda: rl.DAPOConfig(eps_high=float("nan")), r"DAPOConfig.eps_high must be finite"),
    (lambda: rl.GRPOConfig(beta=-1.0), r"GRPOConfig.beta must be >= 0"),
    (
      lambda: rl.GRPOConfig(aggregation="seq_sum"),
      r"GRPOConfig.aggregation='seq_sum'.*\['seq_mean_token_mean'",
    ),
    (lambda: rl.GRPOConfig(kl_estimator="k4"), r"GRPOConfig.kl_estimator='k4'.*\['k1'"),
    (lambda: rl.GRPOConfig(kl_clamp=-1.0), r"GRPOConfig.kl_clamp must be > 0"),
    (lambda: rl.DAPOConfig(norm_constant=8.0), r"norm_constant=8.0 is only used by"),
    (lambda: rl.DrGRPOConfig(norm_constant=0.0), r"norm_constant must be > 0"),
    (lambda: rl.DISPOConfig(eps_neg_low=2.0), r"DISPOConfig.eps_neg_low must be <= 1"),
    (lambda: rl.DISPOConfig(out_of_band="zero"), r"out_of_band='zero'.*\['clamp', 'mask'\]"),
    (lambda: rl.DISPOConfig(regime_key="sign"), r"regime_key='sign'"),
    (lambda: rl.make_loss("ppo"), r"name='ppo'.*'cispo', 'dapo'"),
    (lambda: rl.make_loss("dapo", eps=0.2), r"DAPOConfig has no field\(s\) \['eps'\]"),
  ],
)
def test_config_validation_errors(ctor, match):
  with pytest.raises(ValueError, match=match):
    ctor()


def test_config_type_errors_and_immutability():
  with pytest.raises(TypeError, match="kl_in_loss must be a bool"):
    rl.GRPOConfig(kl_in_loss=1)
  with pytest.raises(TypeError, match="config must be a DISPOConfig"):
    rl.dispo_loss(*_tokens([[1.0]]), jnp.array([1.0]), jnp.ones((1, 1)), config=rl.CISPOConfig())
  with pytest.raises(dataclasses.FrozenInstanceError):
    rl.DAPOConfig().eps_high = 0.5


@pytest.mark.parametrize(
  "override,match",
  [
    (dict(old_logp=jnp.zeros((8, 4))), "old_logp must have shape"),
    (dict(mask=jnp.ones((8, 4))), "mask must have shape"),
    (dict(advantages=jnp.zeros(7)), "advantages must have shape"),
    (dict(advantages=jnp.zeros((8, 5, 1))), "advantages must be 1-D or 2-D"),
    (dict(ref_logp=jnp.zeros((8, 4))), "ref_logp must have shape"),
    (dict(entropy=jnp.zeros((7, 5))), "entropy must have shape"),
    (dict(is_weights=jnp.zeros(8)), "is_weights must have shape"),
    (dict(mask=jnp.full((8, 5), 2)), "mask must contain only 0 and 1"),
    (dict(advantages=jnp.full(8, jnp.nan)), "advantages contains"),
    (dict(logp=jnp.zeros(5)), "logp must be 2-D"),
  ],
)
def test_input_errors_name_the_argument(override, match):
  logp, old, ref, mask, adv = _batch()
  args = dict(logp=logp, old_logp=old, advantages=adv, mask=mask, ref_logp=ref)
  args.update(override)
  with pytest.raises(ValueError, match=match):
    rl.grpo_loss(**args)


def test_extension_via_registry():
  """A new loss is a function + config registered by name (what ARM/MRPO-style modules do)."""

  @dataclasses.dataclass(frozen=True, kw_only=True)
  class ScaledConfig(rl.DAPOConfig):
    scale: float = 2.0

  name = "test_scaled_dapo"
  if name not in rl.LOSSES:

    @rl.register_loss(name, config_cls=ScaledConfig)
    def scaled(logp, old_logp, advantages, mask, *, config=None, **kwargs):
      config = config or ScaledConfig()
      return rl.dapo_loss(
        logp, old_logp, advantages * config.scale, mask, config=rl.DAPOConfig(), **kwargs
      )

  logp, old, _, mask, adv = _batch()
  a = rl.make_loss(name, scale=3.0)(logp, old, adv, mask)
  b = rl.dapo_loss(logp, old, adv * 3.0, mask)
  np.testing.assert_allclose(a.loss, b.loss, rtol=1e-6)
  with pytest.raises(ValueError, match="already registered"):
    rl.register_loss(name, config_cls=ScaledConfig)(lambda *a, **k: None)


# ---- hand-computed numbers with and without jit (chex variants) -------------------------------


class HandNumbersWithAndWithoutJit(chex.TestCase):
  """The spec numbers above, through `self.variant` (jax.jit and eager): the eager variant runs
  the concrete-value boundary checks, the jitted one the tracer path."""

  def _value_and_grad(self, loss_fn, logp, *args, config=None, **kwargs):
    def f(lp, *a):
      return loss_fn(lp, *a, config=config, **kwargs).loss

    return self.variant(jax.value_and_grad(f))(logp, *args)

  @chex.variants(with_jit=True, without_jit=True)
  def test_grpo_gradient_is_minus_a_over_len_over_n(self):
    lengths = np.array([1, 3, 2, 4])
    mask = jnp.asarray(np.arange(4)[None] < lengths[:, None])
    logp, old = _tokens(np.ones((4, 4)))
    adv = jnp.array([0.8660254, -0.8660254, -0.8660254, 0.8660254])
    loss, g = self._value_and_grad(
      rl.grpo_loss, logp, old, adv, mask, config=rl.GRPOConfig(beta=0.0)
    )
    expected = -np.asarray(adv)[:, None] / lengths[:, None] / 4 * np.asarray(mask)
    np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(loss, 0.0, atol=1e-6)  # r = 1: -mean_i(A_i) = 0.

  @chex.variants(with_jit=True, without_jit=True)
  def test_cispo_clipped_weight_gradient(self):
    logp, old = _tokens([[1.5, 0.5, 1.1]] * 2)
    _, g = self._value_and_grad(rl.cispo_loss, logp, old, jnp.array([1.0, -1.0]), jnp.ones((2, 3)))
    w = np.array([1.28, 0.5, 1.1])
    np.testing.assert_allclose(g, [-w / 6, w / 6], rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_dispo_regime_gradients(self):
    logp, old = _tokens([[1.5, 0.5, 1.0], [1.5, 6.0, 0.5]])
    mask = jnp.array([[1, 1, 0], [1, 1, 1]])
    _, g = self._value_and_grad(rl.dispo_loss, logp, old, jnp.array([1.0, -1.0]), mask)
    expected = np.array([[-1.28, -0.8, 0.0], [1.5, 5.0, 0.5]]) / 5
    np.testing.assert_allclose(g, expected, rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_dispo_spec_weights(self):
    w = self.variant(rl.dispo_is_weights)(
      jnp.array([[1.5, 0.5], [1.5, 0.5]]), jnp.array([1.0, -1.0])
    )
    np.testing.assert_allclose(w, [[1.28, 0.80], [1.5, 0.5]], rtol=1e-6)


# ---- non-finite log-probs at counted tokens ----------------------------------------------------


@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("argument", ["logp", "old_logp", "ref_logp"])
@pytest.mark.parametrize("bad", [jnp.inf, jnp.nan])
def test_non_finite_log_probs_at_valid_tokens_raise(name, argument, bad):
  logp, old, ref, mask, adv = _batch()
  args = dict(logp=logp, old_logp=old, ref_logp=ref)
  args[argument] = args[argument].at[0, 0].set(bad)  # mask[0, 0] == 1.
  with pytest.raises(ValueError, match=f"^{argument} has 1 non-finite"):
    rl.make_loss(name)(args["logp"], args["old_logp"], adv, mask, ref_logp=args["ref_logp"])


def test_non_finite_log_probs_are_not_checked_under_jit():
  """Under jit the arrays are tracers: no value check, as for the advantages."""
  logp, old, ref, mask, adv = _batch()
  bad_old = old.at[0, 0].set(jnp.nan)
  out = jax.jit(lambda o: rl.dapo_loss(logp, o, adv, mask).loss)(bad_old)
  assert not np.isfinite(out)


# ---- per-token [N, T] advantages ---------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_constant_token_advantages_equal_sequence_path(name):
  """[N, T] advantages constant over each row give the [N] path's loss and gradient bitwise
  and its aux to float rounding (XLA may sum a fused reduction in another order), in every
  aggregation mode; masked slots of the [N, T] array may hold NaN."""
  logp, old, ref, mask, _ = _batch()
  adv = jnp.array([0.5, -1.25, 2.0, 0.3, -0.7, 1.1, 0.0, -0.1])
  adv_tok = jnp.where(mask > 0, jnp.broadcast_to(adv[:, None], mask.shape), jnp.nan)
  fn = rl.LOSSES.get(name).fn
  calls = [
    _call(
      fn, logp, old, a, mask, config=rl.loss_config(name, aggregation=agg), **_kwargs(name, ref)
    )
    for agg in rl.AGGREGATIONS.names()
    for a in (adv, adv_tok)
  ]
  results = _run_many(*calls)
  for (seq, g_seq), (tok, g_tok) in zip(results[::2], results[1::2]):
    np.testing.assert_array_equal(tok.loss_sum, seq.loss_sum)
    np.testing.assert_array_equal(tok.denominator, seq.denominator)
    np.testing.assert_array_equal(g_tok, g_seq)
    assert set(tok.aux) == set(seq.aux)
    for k in seq.aux:
      np.testing.assert_allclose(tok.aux[k], seq.aux[k], rtol=1e-6, err_msg=k)


def test_token_grpo_advantages_through_a_loss():
  """token_grpo output feeds every loss: gradient -A_t / tokens at ratio 1 (token_mean), and
  the adv_* aux are statistics of the per-row masked token means."""
  rewards = jnp.array([[0.25, 0.75, 0.0], [0.0, 0.0, 0.0], [0.5, 0.1, 0.2], [1.0, 0.0, 0.0]])
  mask = jnp.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0]])
  adv = rl.token_grpo_advantages(rewards, mask=mask, group_size=2)
  logp = jnp.full(mask.shape, -1.0)
  out, g = _run(rl.dapo_loss, logp, logp, adv, mask)
  np.testing.assert_allclose(g, -adv / 8.0, rtol=1e-6, atol=1e-7)
  row_mean = jnp.sum(adv, -1) / jnp.sum(mask, -1)
  metrics = rl.summarize_aux(out.aux)
  np.testing.assert_allclose(metrics["adv_mean"], jnp.mean(row_mean), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(metrics["adv_abs_mean"], jnp.mean(jnp.abs(row_mean)), rtol=1e-5)


def test_token_advantages_shape_error_names_both_shapes():
  logp, old, _, mask, _ = _batch()
  with pytest.raises(
    ValueError, match=r"advantages must have shape \[N\]=\(8,\).*\[N, T\]=\(8, 5\)"
  ):
    rl.dapo_loss(logp, old, jnp.zeros((8, 4)), mask)
  with pytest.raises(ValueError, match="advantages contains 1 non-finite"):
    rl.dapo_loss(logp, old, jnp.zeros((8, 5)).at[0, 0].set(jnp.nan), mask)
