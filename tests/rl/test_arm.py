"""ARM / ProGRPO (arXiv 2602.05281): spec numbers, invariants, validation, jit/vmap."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax.rl import arm
from reasoning_jax.rl.advantages import ADVANTAGES


def grpo_advantages(rewards, group_size, *, ddof=1, delta=1e-6):
  """Reference GRPO group advantage (spec 1.2): (R - mean_g) / (std_g + delta)."""
  r = jnp.asarray(rewards, jnp.float32).reshape(-1, group_size)
  mean = jnp.mean(r, axis=-1, keepdims=True)
  std = jnp.std(r, axis=-1, keepdims=True, ddof=ddof)
  return ((r - mean) / (std + delta)).reshape(-1)


def _batch(seed=0, groups=3, group_size=4, t=7, p=5):
  """Random rollout batch with ragged response and prompt lengths."""
  rng = np.random.default_rng(seed)
  n = groups * group_size
  old_logp = np.log(rng.uniform(0.05, 1.0, size=(n, t))).astype(np.float32)
  lengths = rng.integers(1, t + 1, size=n)
  mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float32)
  prompt_logp = np.log(rng.uniform(0.05, 1.0, size=(groups, p))).astype(np.float32)
  prompt_mask = np.ones((groups, p), np.float32)
  prompt_mask[0, :1] = 0  # Left padding on the first prompt.
  content_mask = np.ones((groups, p), np.float32)
  content_mask[:, 1] = 0  # One template token per prompt.
  return dict(
    old_logp=jnp.asarray(old_logp),
    mask=jnp.asarray(mask),
    prompt_logp=jnp.asarray(prompt_logp),
    prompt_mask=jnp.asarray(prompt_mask),
    content_mask=jnp.asarray(content_mask),
  )


# ----------------------------------------------------------------------------- spec numbers


def test_spec_reweighting_example():
  rewards = jnp.array([1.0, 1.0, 0.0, 0.0])
  adv = grpo_advantages(rewards, 4)
  np.testing.assert_allclose(adv, [0.8660254, 0.8660254, -0.8660254, -0.8660254], atol=2e-6)
  out = arm.arm_reweight_advantages(
    adv, rewards, jnp.array([0.5]), jnp.array([0.9, 0.3, 0.4, 0.6]), group_size=4, alpha=0.5
  )
  np.testing.assert_allclose(out, [0.666, 0.966, -0.816, -0.916], atol=5e-4)  # Spec, 3 d.p.
  np.testing.assert_allclose(out, adv + 0.5 * (0.5 - jnp.array([0.9, 0.3, 0.4, 0.6])), atol=1e-6)


@pytest.mark.parametrize("rho, expected", [(0.2, 0.1), (0.4, 0.2236068)])  # sqrt(0.1 * 0.5)
def test_spec_answer_confidence(rho, expected):
  logp = jnp.log(jnp.array([[0.9, 0.1, 0.8, 0.5, 0.95]]))
  c = arm.answer_confidence(logp, jnp.ones_like(logp), rho=rho)
  np.testing.assert_allclose(c, [expected], rtol=1e-5)


def test_answer_confidence_padding_never_selected():
  probs = jnp.array(
    [
      [0.9, 0.1, 0.8, 0.5, 0.95, 1.0, 1.0],  # right padded
      [1.0, 1.0, 0.9, 0.1, 0.8, 0.5, 0.95],
    ]
  )  # left padded
  mask = jnp.array([[1, 1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1, 1]], jnp.float32)
  # Padding holds garbage that would be "least probable" if it were ranked.
  logp = jnp.where(mask > 0, jnp.log(probs), jnp.array([[-50.0], [jnp.nan]]))
  selected, k = arm.low_probability_token_mask(logp, mask, rho=0.4)
  np.testing.assert_array_equal(k, [2, 2])
  assert not bool(jnp.any(selected & (mask == 0)))
  np.testing.assert_allclose(arm.answer_confidence(logp, mask, rho=0.4), [0.2236068] * 2, rtol=1e-5)


def test_low_probability_ties_stable_and_short_rows():
  logp = jnp.log(
    jnp.array([[0.5, 0.5, 0.5, 0.9, 0.5], [0.3, 1.0, 1.0, 1.0, 1.0], [0.3, 0.2, 1.0, 1.0, 1.0]])
  )
  mask = jnp.array([[1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], jnp.float32)
  selected, k = arm.low_probability_token_mask(logp, mask, rho=0.4)
  np.testing.assert_array_equal(k, [2, 1, 1])  # k = max(1, ceil(rho |o|)) >= 1.
  np.testing.assert_array_equal(selected[0], [True, True, False, False, False])  # First ties.
  np.testing.assert_array_equal(selected[1], [True, False, False, False, False])
  assert not bool(jnp.any(selected[2]))
  c = arm.answer_confidence(logp, mask, rho=0.4)
  np.testing.assert_allclose(c, [0.5, 0.3, 1.0], rtol=1e-6)  # Empty row: exp(0) = 1.


def test_k_is_exact_ceil():
  # Naive float32 ceil(rho * n) is one too large for e.g. rho=0.3, n=50 or rho=0.15, n=100.
  lengths = np.arange(1, 201)
  mask = jnp.asarray(np.arange(200)[None, :] < lengths[:, None], jnp.float32)
  logp = jnp.full(mask.shape, -1.0)
  for rho in (0.1, 0.15, 0.2, 0.3, 0.25, 0.7, 1.0):
    _, k = arm.low_probability_token_mask(logp, mask, rho=rho)
    exact = [max(1, math.ceil(Fraction(str(rho)) * int(n))) for n in lengths]
    np.testing.assert_array_equal(k, exact, err_msg=f"rho={rho}")


def test_prompt_confidence_is_inverse_perplexity():
  probs = jnp.array([[0.7, 0.5, 0.2, 0.4, 0.8]])
  logp = jnp.log(probs)
  mask = jnp.ones_like(logp)
  content = jnp.array([[1, 1, 0, 1, 1]], jnp.float32)
  # First token excluded; template token (index 2) excluded by default.
  c = arm.prompt_confidence(logp, mask, content_mask=content)
  np.testing.assert_allclose(c, [(0.5 * 0.4 * 0.8) ** (1 / 3)], rtol=1e-6)
  c_all = arm.prompt_confidence(logp, mask, include_template_tokens=True)
  np.testing.assert_allclose(c_all, [(0.5 * 0.2 * 0.4 * 0.8) ** 0.25], rtol=1e-6)
  c_first = arm.prompt_confidence(
    logp, mask, include_template_tokens=True, exclude_first_token=False
  )
  np.testing.assert_allclose(c_first, [float(np.prod(probs)) ** 0.2], rtol=1e-6)
  # Left padding (NaN there): the first *real* token is the one dropped.
  padded = jnp.concatenate([jnp.full((1, 2), jnp.nan), logp], axis=1)
  pmask = jnp.concatenate([jnp.zeros((1, 2)), mask], axis=1)
  np.testing.assert_allclose(
    arm.prompt_confidence(padded, pmask, include_template_tokens=True), c_all, rtol=1e-6
  )


# ----------------------------------------------------------------------------- invariants


def test_alpha_zero_is_grpo_exactly():
  b = _batch()
  rewards = jnp.array([1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0], jnp.float32)
  adv = grpo_advantages(rewards, 4)
  out = arm.arm_advantages(
    adv,
    rewards,
    b["old_logp"],
    b["mask"],
    b["prompt_logp"],
    b["prompt_mask"],
    content_mask=b["content_mask"],
    group_size=4,
    config=arm.ARMConfig(alpha=0.0),
  )
  np.testing.assert_array_equal(out.advantages, adv)
  assert bool(jnp.any(out.active))  # The shift was applied, it is just zero.


def test_group_handling_flags():
  rewards = jnp.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0], jnp.float32)  # all/none/mixed
  adv = grpo_advantages(rewards, 4)
  c_q = jnp.array([0.6, 0.6, 0.6])
  c_o = jnp.array([0.9, 0.2, 0.5, 0.6, 0.1, 0.9, 0.3, 0.4, 0.8, 0.3, 0.2, 0.7])
  base = adv + 0.5 * (jnp.repeat(c_q, 4) - c_o)

  out = arm.arm_reweight_advantages(adv, rewards, c_q, c_o, group_size=4)
  np.testing.assert_array_equal(adv[:8], 0.0)
  np.testing.assert_allclose(out[:4], base[:4], atol=1e-7)  # All-correct group becomes active.
  assert float(jnp.abs(out[:4]).sum()) > 0
  np.testing.assert_array_equal(out[4:8], 0.0)  # All-wrong group: A~ == A == 0.
  np.testing.assert_allclose(out[8:], base[8:], atol=1e-7)

  mixed_only = arm.arm_reweight_advantages(
    adv, rewards, c_q, c_o, group_size=4, all_correct_groups=False
  )
  np.testing.assert_array_equal(mixed_only[:8], 0.0)
  np.testing.assert_allclose(mixed_only[8:], base[8:], atol=1e-7)

  correct_only, active = arm.arm_reweight_advantages(
    adv, rewards, jnp.repeat(c_q, 4), c_o, group_size=4, targets="correct_only", return_active=True
  )
  np.testing.assert_array_equal(active, rewards > 0)
  np.testing.assert_array_equal(correct_only[9::2], adv[9::2])  # Wrong rows untouched.
  np.testing.assert_allclose(correct_only[8::2], base[8::2], atol=1e-7)

  # +1/-1 rewards mean the same correctness as 1/0.
  pm = arm.arm_reweight_advantages(adv, 2 * rewards - 1, c_q, c_o, group_size=4)
  np.testing.assert_array_equal(pm, out)


def test_group_ids_and_valid_rows():
  rewards = jnp.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0], jnp.float32)
  adv = grpo_advantages(rewards, 4)
  c_o = jnp.linspace(0.1, 0.9, 12)
  c_q = jnp.repeat(jnp.array([0.2, 0.5, 0.7]), 4)
  ref = arm.arm_reweight_advantages(adv, rewards, c_q, c_o, group_size=4)
  perm = jnp.array([11, 0, 5, 3, 8, 1, 10, 2, 7, 4, 9, 6])
  ids = (jnp.arange(12) // 4 + 7)[perm]
  got = arm.arm_reweight_advantages(adv[perm], rewards[perm], c_q[perm], c_o[perm], group_ids=ids)
  np.testing.assert_array_equal(got, ref[perm])
  # The only correct row of group 2 is invalid: the group is inactive, and the invalid
  # row (NaN advantage allowed) is returned untouched.
  valid = jnp.ones(12).at[8].set(0).at[10].set(0)
  out = arm.arm_reweight_advantages(
    adv.at[8].set(jnp.nan), rewards, c_q, c_o, group_size=4, valid=valid
  )
  np.testing.assert_array_equal(out[9:], adv[9:])
  np.testing.assert_array_equal(out[:8], ref[:8])


def test_registered_estimator():
  assert ADVANTAGES.get("arm") is arm.arm_group_advantages
  b = _batch(seed=4)
  rewards = jnp.array([1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0], jnp.float32)
  kw = dict(
    group_size=4,
    old_logp=b["old_logp"],
    mask=b["mask"],
    prompt_logp=b["prompt_logp"],
    prompt_mask=b["prompt_mask"],
    content_mask=b["content_mask"],
  )
  grpo = ADVANTAGES.get("grpo")(rewards, group_size=4)
  np.testing.assert_array_equal(
    ADVANTAGES.get("arm")(rewards, config=arm.ARMConfig(alpha=0.0), **kw), grpo
  )
  got = ADVANTAGES.get("arm")(rewards, **kw)
  c_o = arm.answer_confidence(b["old_logp"], b["mask"])
  c_q = arm.prompt_confidence(b["prompt_logp"], b["prompt_mask"], content_mask=b["content_mask"])
  want = grpo_advantages(rewards, 4) + 0.5 * (jnp.repeat(c_q, 4) - c_o) * jnp.repeat(
    jnp.array([1.0, 1.0, 0.0]), 4
  )
  np.testing.assert_allclose(got, want, atol=1e-5)
  ddof0 = ADVANTAGES.get("arm")(rewards, ddof=0, config=arm.ARMConfig(alpha=0.0), **kw)
  np.testing.assert_allclose(ddof0[:4], [1, -1, -1, 1], atol=1e-5)  # base_options reach GRPO.
  with pytest.raises(ValueError, match="base_estimator"):
    ADVANTAGES.get("arm")(rewards, base_estimator="nope", **kw)


def test_padding_never_enters_confidences():
  b = _batch(seed=1)
  rewards = jnp.array([1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 0], jnp.float32)
  adv = grpo_advantages(rewards, 4)
  kw = dict(group_size=4, content_mask=b["content_mask"])
  clean = arm.arm_advantages(
    adv, rewards, b["old_logp"], b["mask"], b["prompt_logp"], b["prompt_mask"], **kw
  )
  dirty = arm.arm_advantages(
    adv,
    rewards,
    jnp.where(b["mask"] > 0, b["old_logp"], jnp.nan),
    b["mask"],
    jnp.where(b["prompt_mask"] > 0, b["prompt_logp"], -1e4),
    b["prompt_mask"],
    **kw,
  )
  for a, c in zip(clean, dirty):
    np.testing.assert_array_equal(a, c)


def test_gradient_treats_confidences_as_constants():
  """Surrogate grad wrt logp is -A~/#tokens even if confidences are built from logp."""
  b = _batch(seed=2)
  rewards = jnp.array([1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 0], jnp.float32)
  adv = grpo_advantages(rewards, 4)
  mask = b["mask"]

  def loss(logp):
    a = arm.arm_advantages(
      adv,
      rewards,
      logp,
      mask,
      b["prompt_logp"],
      b["prompt_mask"],
      group_size=4,
      content_mask=b["content_mask"],
    ).advantages
    ratio = jnp.exp(logp - jax.lax.stop_gradient(logp))
    return -jnp.sum(mask * ratio * a[:, None]) / jnp.sum(mask)

  a = arm.arm_advantages(
    adv,
    rewards,
    b["old_logp"],
    mask,
    b["prompt_logp"],
    b["prompt_mask"],
    group_size=4,
    content_mask=b["content_mask"],
  ).advantages
  grad = jax.grad(loss)(b["old_logp"])
  assert bool(jnp.all(jnp.isfinite(grad)))
  np.testing.assert_allclose(grad, -mask * a[:, None] / jnp.sum(mask), atol=1e-7)


def test_jit_and_vmap():
  b = _batch(seed=3)
  rewards = jnp.array([1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 0], jnp.float32)
  adv = grpo_advantages(rewards, 4)
  eager = arm.arm_advantages(
    adv,
    rewards,
    b["old_logp"],
    b["mask"],
    b["prompt_logp"],
    b["prompt_mask"],
    group_size=4,
    content_mask=b["content_mask"],
  )
  jitted = jax.jit(arm.arm_advantages, static_argnames=("group_size", "config"))(
    adv,
    rewards,
    b["old_logp"],
    b["mask"],
    b["prompt_logp"],
    b["prompt_mask"],
    group_size=4,
    content_mask=b["content_mask"],
  )
  for e, j in zip(eager, jitted):
    np.testing.assert_allclose(e, j, atol=1e-6)
  # vmap over two micro-batches of two groups each.
  adv2 = jnp.concatenate([adv, adv[:4]])
  rew2 = jnp.concatenate([rewards, rewards[:4]])
  c_o = arm.answer_confidence(b["old_logp"], b["mask"])
  c_o2 = jnp.concatenate([c_o, c_o[:4]])
  c_q2 = jnp.array([0.3, 0.5, 0.7, 0.4])
  fn = lambda a, r, q, o: arm.arm_reweight_advantages(a, r, q, o, group_size=4)
  batched = jax.vmap(fn)(
    adv2.reshape(2, 8), rew2.reshape(2, 8), c_q2.reshape(2, 2), c_o2.reshape(2, 8)
  )
  np.testing.assert_allclose(batched.reshape(-1), fn(adv2, rew2, c_q2, c_o2), atol=1e-7)


# ----------------------------------------------------------------------------- validation


def test_config_defaults_and_validation():
  c = arm.ARMConfig()
  assert (
    c.alpha,
    c.rho,
    c.all_correct_groups,
    c.targets,
    c.include_template_tokens,
    c.exclude_first_token,
  ) == (0.5, 0.2, True, "all", False, True)
  with pytest.raises(ValueError, match="ARMConfig.alpha"):
    arm.ARMConfig(alpha=float("nan"))
  with pytest.raises(ValueError, match="ARMConfig.rho"):
    arm.ARMConfig(rho=0.0)
  with pytest.raises(ValueError, match="ARMConfig.targets"):
    arm.ARMConfig(targets="wrong_only")
  with pytest.raises(TypeError, match="ARMConfig.all_correct_groups"):
    arm.ARMConfig(all_correct_groups=1)
  with pytest.raises(dataclasses.FrozenInstanceError):
    c.alpha = 1.0  # type: ignore[misc]


def test_errors_name_the_argument():
  adv = jnp.zeros(4)
  good = dict(group_size=4)
  ones = jnp.ones(4)
  with pytest.raises(ValueError, match="group_size"):
    arm.arm_reweight_advantages(adv, ones, ones[:1], ones * 0.5, group_size=3)
  with pytest.raises(ValueError, match="prompt_confidence"):
    arm.arm_reweight_advantages(adv, ones, ones[:2], ones * 0.5, **good)
  with pytest.raises(ValueError, match="exactly one of group_ids"):
    arm.arm_reweight_advantages(adv, ones, ones, ones * 0.5)
  with pytest.raises(ValueError, match=r"prompt_confidence must have shape \(4,\) \(\[B\]"):
    arm.arm_reweight_advantages(adv, ones, ones[:1], ones * 0.5, group_ids=jnp.zeros(4, int))
  with pytest.raises(ValueError, match="valid must have the shape"):
    arm.arm_reweight_advantages(adv, ones, ones, ones * 0.5, valid=ones[:3], **good)
  with pytest.raises(ValueError, match="answer_confidence"):
    arm.arm_reweight_advantages(adv, ones, ones[:1], ones[:3], **good)
  with pytest.raises(ValueError, match="answer_confidence must lie in"):
    arm.arm_reweight_advantages(adv, ones, ones[:1], ones * 1.5, **good)
  with pytest.raises(ValueError, match="advantages has 1 non-finite"):
    arm.arm_reweight_advantages(adv.at[0].set(jnp.nan), ones, ones[:1], ones * 0.5, **good)
  with pytest.raises(ValueError, match="correct must have shape"):
    arm.arm_reweight_advantages(adv, ones[:2], ones[:1], ones * 0.5, **good)
  with pytest.raises(ValueError, match="alpha"):
    arm.arm_reweight_advantages(adv, ones, ones[:1], ones * 0.5, alpha=float("inf"), **good)
  with pytest.raises(ValueError, match="advantages must have 1 or 2 dims"):
    arm.arm_reweight_advantages(adv[None, None], ones, ones[:1], ones * 0.5, **good)
  with pytest.raises(ValueError, match=r"mask must have the shape of advantages \(4, 3\)"):
    arm.arm_reweight_advantages(
      jnp.zeros((4, 3)), ones, ones[:1], ones * 0.5, mask=jnp.ones((4, 2)), **good
    )

  logp = jnp.log(jnp.full((2, 3), 0.5))
  with pytest.raises(ValueError, match="mask must have the shape of logp"):
    arm.answer_confidence(logp, jnp.ones((2, 4)))
  with pytest.raises(ValueError, match="mask must hold only 0/1"):
    arm.answer_confidence(logp, jnp.full((2, 3), 0.5))
  with pytest.raises(ValueError, match="logp has 1 non-finite"):
    arm.answer_confidence(logp.at[0, 1].set(jnp.nan), jnp.ones((2, 3)))
  with pytest.raises(ValueError, match="did you pass probabilities"):
    arm.answer_confidence(jnp.exp(logp) + 0.1, jnp.ones((2, 3)))
  with pytest.raises(ValueError, match="rho"):
    arm.answer_confidence(logp, jnp.ones((2, 3)), rho=1.5)
  with pytest.raises(TypeError, match="logp must be a floating"):
    arm.answer_confidence(jnp.ones((2, 3), jnp.int32), jnp.ones((2, 3)))

  with pytest.raises(ValueError, match="content_mask is required"):
    arm.prompt_confidence(logp, jnp.ones((2, 3)))
  with pytest.raises(ValueError, match="prompt_logp has 1 non-finite"):
    arm.prompt_confidence(
      logp.at[1, 2].set(jnp.nan), jnp.ones((2, 3)), include_template_tokens=True
    )
  with pytest.raises(ValueError, match=r"leave no token to score in row\(s\) \[1\]"):
    arm.prompt_confidence(logp, jnp.array([[1, 1, 1], [0, 0, 1]]), include_template_tokens=True)
  with pytest.raises(TypeError, match="config must be an ARMConfig"):
    arm.arm_advantages(
      adv, ones, logp, jnp.ones((2, 3)), logp, jnp.ones((2, 3)), group_size=2, config={"alpha": 0.5}
    )


# ----------------------------------------------------------------------------- token level


def test_token_level_broadcast_rule():
  """[N, T] advantages: each row's shift lands on its masked tokens; rows constant over
  their tokens give exactly the [N] result broadcast."""
  b = _batch(seed=5)
  rewards = jnp.array([1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0], jnp.float32)
  adv = grpo_advantages(rewards, 4)
  mask = b["mask"] > 0
  args = (rewards, b["old_logp"], b["mask"], b["prompt_logp"], b["prompt_mask"])
  kw = dict(group_size=4, content_mask=b["content_mask"])
  seq = arm.arm_advantages(adv, *args, **kw)
  adv_tok = jnp.where(mask, adv[:, None], jnp.nan)  # Masked slots may hold anything.
  tok = arm.arm_advantages(adv_tok, *args, **kw)
  assert tok.advantages.shape == mask.shape
  np.testing.assert_array_equal(
    tok.advantages[mask], jnp.broadcast_to(seq.advantages[:, None], mask.shape)[mask]
  )
  assert bool(jnp.all(jnp.isnan(tok.advantages[~mask])))  # Untouched outside the mask.
  np.testing.assert_array_equal(tok.active, seq.active)
  with pytest.raises(ValueError, match="mask is only for"):
    arm.arm_reweight_advantages(
      adv, rewards, seq.prompt_confidence, seq.answer_confidence, group_size=4, mask=b["mask"]
    )


def test_registered_estimator_with_token_level_base():
  from reasoning_jax import rl

  b = _batch(seed=6)
  rewards = jnp.array([1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0], jnp.float32)
  kw = dict(
    group_size=4,
    old_logp=b["old_logp"],
    mask=b["mask"],
    prompt_logp=b["prompt_logp"],
    prompt_mask=b["prompt_mask"],
    content_mask=b["content_mask"],
  )
  tok_rewards = rl.sequence_to_token_rewards(rewards, b["mask"])
  from_seq = ADVANTAGES.get("arm")(rewards, base_estimator="token_grpo", **kw)
  from_tok = ADVANTAGES.get("arm")(tok_rewards, base_estimator="token_grpo", **kw)
  np.testing.assert_array_equal(from_seq, from_tok)
  base = rl.token_grpo_advantages(tok_rewards, mask=b["mask"], group_size=4)
  out = arm.arm_advantages(
    base,
    rewards,
    b["old_logp"],
    b["mask"],
    b["prompt_logp"],
    b["prompt_mask"],
    group_size=4,
    content_mask=b["content_mask"],
  )
  np.testing.assert_array_equal(from_tok, out.advantages)
  shift = 0.5 * (jnp.repeat(out.prompt_confidence, 4) - out.answer_confidence)
  want = jnp.where(b["mask"] > 0, base + (shift * out.active)[:, None], 0)
  np.testing.assert_allclose(from_tok, want, atol=1e-6)
  with pytest.raises(ValueError, match=r"rewards must be \[N\] sequence rewards"):
    ADVANTAGES.get("arm")(tok_rewards, **kw)
