"""CISPO: REINFORCE with a clipped, stop-gradient importance-sampling weight on every token.

MiniMax-M1: Scaling Test-Time Compute Efficiently with Lightning Attention, arXiv 2506.13585
(rl.md 1.5): `l_t = -sg(clip(r_t, 1-eps_low, 1+eps_high)) A_t logp_t`, so no token loses its
gradient to clipping (unlike PPO-clip); only the weight is bounded.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from reasoning_jax.rl.losses.base import (
  LossOutput,
  PolicyInputs,
  PolicyLossConfig,
  clipped_weight_aux,
  run_loss,
  weighted_reinforce,
)
from reasoning_jax.rl.losses.registry import register_loss

__all__ = ["CISPOConfig", "cispo_loss"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CISPOConfig(PolicyLossConfig):
  """CISPO (MiniMax-M1: Scaling Test-Time Compute Efficiently with Lightning Attention,
  arXiv 2506.13585; rl.md 1.5): IS-weight band `[1 - eps_low, 1 + eps_high]`, token_mean.

  DESIGN CHOICE (values not in the spec): MiniMax set eps_IS_low "large" (no lower
  bound), here eps_low = 1.0 (w >= 0, equivalent since r > 0), and tuned only
  eps_IS_high; default eps_high = 0.28 (as DISPO's eps_pos_high).
  """

  eps_low: float = 1.0
  eps_high: float = 0.28

  def validate(self) -> None:
    super().validate()
    self._check_eps_low("eps_low")
    self._check_eps_high("eps_high")


@register_loss("cispo", config_cls=CISPOConfig)
def cispo_loss(
  logp,
  old_logp,
  advantages,
  mask,
  *,
  config: CISPOConfig | None = None,
  ref_logp=None,
  entropy=None,
  is_weights=None,
  correct=None,
) -> LossOutput:
  """CISPO: `l_t = -sg(clip(r_t, 1-eps_low, 1+eps_high)) A_t logp_t`, token mean.

  MiniMax-M1: Scaling Test-Time Compute Efficiently with Lightning Attention, arXiv
  2506.13585; rl.md 1.5. Every token keeps a gradient `-clip(r) A`; the loss *value* is
  not meaningful, only its gradient. `r` is computed from detached logp.
  Config: `CISPOConfig`. `clip_frac_low/high` count tokens (A != 0) whose weight was clipped.
  """
  return run_loss(
    _cispo_term,
    config,
    CISPOConfig,
    CISPOConfig,
    "cispo",
    logp,
    old_logp,
    advantages,
    mask,
    ref_logp,
    entropy,
    is_weights,
    correct,
  )


def _cispo_term(x: PolicyInputs, config: CISPOConfig):
  ratio = jnp.exp(jax.lax.stop_gradient(x.log_ratio))
  lo, hi = 1.0 - config.eps_low, 1.0 + config.eps_high
  weight = jnp.where(x.advantages == 0, 1.0, jnp.clip(ratio, lo, hi))
  return weighted_reinforce(x, weight), ratio, clipped_weight_aux(x, ratio, weight, lo, hi)
