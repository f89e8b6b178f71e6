"""The PPO-clip family: PPO-clip, GRPO, DAPO and Dr. GRPO losses and their configs.

All four share one per-token term, `pg_t = -min(r_t A_t, clip(r_t, 1-eps_low, 1+eps_high) A_t)`
with `r_t = exp(logp_t - old_logp_t)`, and differ in defaults (clip band, aggregation, KL):

* `ppo_clip`: Proximal Policy Optimization Algorithms, arXiv 1707.06347 (rl.md 1.1).
* `grpo`: DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models,
  arXiv 2402.03300 (rl.md 1.2).
* `dapo`: DAPO: An Open-Source LLM Reinforcement Learning System at Scale, arXiv 2503.14476
  (rl.md 1.3); its data-side filters are in `reasoning_jax.rl.dapo_filters`.
* `dr_grpo`: Understanding R1-Zero-Like Training: A Critical Perspective, arXiv 2503.20783
  (rl.md 1.4).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from reasoning_jax.rl.losses.base import (
  LossOutput,
  PolicyInputs,
  PolicyLossConfig,
  count_where,
  run_loss,
)
from reasoning_jax.rl.losses.registry import register_loss

__all__ = [
  "DAPOConfig",
  "DrGRPOConfig",
  "GRPOConfig",
  "PPOClipConfig",
  "dapo_loss",
  "dr_grpo_loss",
  "grpo_loss",
  "ppo_clip_loss",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PPOClipConfig(PolicyLossConfig):
  """PPO clipped surrogate (Proximal Policy Optimization Algorithms, arXiv 1707.06347; rl.md 1.1).

  eps_low / eps_high: ratio band `[1 - eps_low, 1 + eps_high]`; eps_low in [0, 1],
  eps_high >= 0. Defaults 0.2 / 0.2, token_mean, no KL.
  """

  eps_low: float = 0.2
  eps_high: float = 0.2

  def validate(self) -> None:
    super().validate()
    self._check_eps_low("eps_low")
    self._check_eps_high("eps_high")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GRPOConfig(PPOClipConfig):
  """GRPO (DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language
  Models, arXiv 2402.03300; rl.md 1.2): symmetric eps 0.2, `seq_mean_token_mean`,
  `beta=0.04` (DeepSeekMath default) with the k3 estimator (the unbiased, non-negative
  estimator of DeepSeekMath's GRPO objective) as a per-token loss term."""

  aggregation: str = "seq_mean_token_mean"
  beta: float = 0.04


@dataclasses.dataclass(frozen=True, kw_only=True)
class DAPOConfig(PPOClipConfig):
  """DAPO (DAPO: An Open-Source LLM Reinforcement Learning System at Scale, arXiv
  2503.14476; rl.md 1.3): clip-higher eps_low 0.2 / eps_high 0.28, `token_mean`, no KL."""

  eps_high: float = 0.28


@dataclasses.dataclass(frozen=True, kw_only=True)
class DrGRPOConfig(PPOClipConfig):
  """Dr. GRPO (Understanding R1-Zero-Like Training: A Critical Perspective, arXiv
  2503.20783; rl.md 1.4): `seq_mean_token_sum_norm` with a constant C (`norm_constant`,
  None = T: pass the generation budget), no KL, PPO clip 0.2. Pair with
  `dr_grpo_advantages` (no std division)."""

  aggregation: str = "seq_mean_token_sum_norm"


def _clip_term(x: PolicyInputs, config: PPOClipConfig):
  a = x.advantages
  ratio = jnp.exp(x.log_ratio)
  lo, hi = 1.0 - config.eps_low, 1.0 + config.eps_high
  # -min(rA, clip(r)A) = max(-rA, -clip(r)A): the clipped branch wins exactly when the
  # token's gradient is zero (A > 0 and r > hi, or A < 0 and r < lo).
  pg = jnp.maximum(-ratio * a, -jnp.clip(ratio, lo, hi) * a)
  r = jax.lax.stop_gradient(ratio)
  dtype = pg.dtype
  policy_aux = {
    "clip_frac_low_token_sum": count_where(x.valid & (a < 0) & (r < lo), dtype),
    "clip_frac_high_token_sum": count_where(x.valid & (a > 0) & (r > hi), dtype),
  }
  return jnp.where(x.valid, pg, 0), ratio, policy_aux


def _clip_loss(
  logp,
  old_logp,
  advantages,
  mask,
  *,
  config,
  default_cls,
  loss_name,
  ref_logp,
  entropy,
  is_weights,
  correct,
) -> LossOutput:
  return run_loss(
    _clip_term,
    config,
    default_cls,
    PPOClipConfig,
    loss_name,
    logp,
    old_logp,
    advantages,
    mask,
    ref_logp,
    entropy,
    is_weights,
    correct,
  )


@register_loss("ppo_clip", config_cls=PPOClipConfig)
def ppo_clip_loss(
  logp,
  old_logp,
  advantages,
  mask,
  *,
  config: PPOClipConfig | None = None,
  ref_logp=None,
  entropy=None,
  is_weights=None,
  correct=None,
) -> LossOutput:
  """PPO clipped surrogate, `l_t = -min(r_t A_t, clip(r_t, 1-eps_low, 1+eps_high) A_t)`.

  Proximal Policy Optimization Algorithms (Schulman et al.), arXiv 1707.06347; rl.md 1.1.
  Gradient w.r.t. logp: `-A r` on the unclipped branch, 0 when clipped (A > 0, r > 1+eps_high
  or A < 0, r < 1-eps_low); no upper cap for A < 0. Config: `PPOClipConfig`.
  """
  return _clip_loss(
    logp,
    old_logp,
    advantages,
    mask,
    config=config,
    default_cls=PPOClipConfig,
    loss_name="ppo_clip",
    ref_logp=ref_logp,
    entropy=entropy,
    is_weights=is_weights,
    correct=correct,
  )


@register_loss("grpo", config_cls=GRPOConfig)
def grpo_loss(
  logp,
  old_logp,
  advantages,
  mask,
  *,
  config: PPOClipConfig | None = None,
  ref_logp=None,
  entropy=None,
  is_weights=None,
  correct=None,
) -> LossOutput:
  """GRPO: PPO-clip with per-sequence token means and a k3 KL loss term (beta 0.04).

  DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models
  (Shao et al.), arXiv 2402.03300; rl.md 1.2. Use with `grpo_advantages`. Needs
  `ref_logp` unless `beta=0` or `kl_in_loss=False`. Config: `GRPOConfig`.
  """
  return _clip_loss(
    logp,
    old_logp,
    advantages,
    mask,
    config=config,
    default_cls=GRPOConfig,
    loss_name="grpo",
    ref_logp=ref_logp,
    entropy=entropy,
    is_weights=is_weights,
    correct=correct,
  )


@register_loss("dapo", config_cls=DAPOConfig)
def dapo_loss(
  logp,
  old_logp,
  advantages,
  mask,
  *,
  config: PPOClipConfig | None = None,
  ref_logp=None,
  entropy=None,
  is_weights=None,
  correct=None,
) -> LossOutput:
  """DAPO: clip-higher (eps_low 0.2, eps_high 0.28) PPO-clip with token-level mean, no KL.

  DAPO: An Open-Source LLM Reinforcement Learning System at Scale (Yu et al.), arXiv
  2503.14476; rl.md 1.3. With `eps_high == eps_low` it is GRPO clipping. Dynamic sampling
  and overlong handling: `dynamic_sampling_filter`, `select_kept_groups`,
  `soft_overlong_punishment`, `overlong_filter`. Config: `DAPOConfig`.
  """
  return _clip_loss(
    logp,
    old_logp,
    advantages,
    mask,
    config=config,
    default_cls=DAPOConfig,
    loss_name="dapo",
    ref_logp=ref_logp,
    entropy=entropy,
    is_weights=is_weights,
    correct=correct,
  )


@register_loss("dr_grpo", config_cls=DrGRPOConfig)
def dr_grpo_loss(
  logp,
  old_logp,
  advantages,
  mask,
  *,
  config: PPOClipConfig | None = None,
  ref_logp=None,
  entropy=None,
  is_weights=None,
  correct=None,
) -> LossOutput:
  """Dr. GRPO: PPO-clip with a constant normaliser C instead of 1/|o_i|, no KL.

  Understanding R1-Zero-Like Training: A Critical Perspective (Liu et al.), arXiv
  2503.20783; rl.md 1.4. Use with `dr_grpo_advantages`. Config: `DrGRPOConfig`
  (`norm_constant` = the generation budget; None = T).
  """
  return _clip_loss(
    logp,
    old_logp,
    advantages,
    mask,
    config=config,
    default_cls=DrGRPOConfig,
    loss_name="dr_grpo",
    ref_logp=ref_logp,
    entropy=entropy,
    is_weights=is_weights,
    correct=correct,
  )
