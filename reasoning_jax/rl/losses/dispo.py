"""DISPO: CISPO-style clipped IS weights with a separate band for each of four regimes.

DISPO: Enhancing Training Efficiency and Stability in Reinforcement Learning for Large Language
Model Mathematical Reasoning, arXiv 2602.00983 (rl.md section 4): `l_t = -sg(w_t) A_t logp_t`,
where `w_t` is the ratio bounded by the band of its regime, correct (A > 0) / incorrect (A < 0)
x r > 1 / r < 1. With all four eps equal it is CISPO (`reasoning_jax.rl.losses.cispo`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp

from reasoning_jax.registry import Registry
from reasoning_jax.rl.aggregation import compute_dtype
from reasoning_jax.validation import as_array, as_mask
from reasoning_jax.rl.losses.base import (
  LossOutput,
  PolicyInputs,
  PolicyLossConfig,
  clipped_weight_aux,
  count_where,
  resolve_config,
  run_loss,
  weighted_reinforce,
)
from reasoning_jax.rl.losses.registry import register_loss

__all__ = [
  "DISPO_REGIMES",
  "DISPO_REGIME_KEYS",
  "DISPOConfig",
  "IS_WEIGHT_BANDS",
  "dispo_is_weights",
  "dispo_loss",
]


# How a weight outside its band [lo, hi] is treated: fn(ratio, lo, hi) -> weight.
IS_WEIGHT_BANDS: Registry[Callable[[jax.Array, jax.Array, jax.Array], jax.Array]] = Registry(
  "out-of-band rule"
)


@IS_WEIGHT_BANDS.register("clamp")
def _band_clamp(ratio, lo, hi):
  return jnp.clip(ratio, lo, hi)


@IS_WEIGHT_BANDS.register("mask")
def _band_mask(ratio, lo, hi):
  return jnp.where((ratio < lo) | (ratio > hi), 0, ratio)


DISPO_REGIME_KEYS = ("adv_sign", "correctness")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DISPOConfig(PolicyLossConfig):
  """DISPO (DISPO: Enhancing Training Efficiency and Stability in Reinforcement Learning
  for Large Language Model Mathematical Reasoning, arXiv 2602.00983; rl.md section 4).

  Four regimes, correct (A > 0) / incorrect (A < 0) x r > 1 / r < 1, each with its own
  bound. DESIGN CHOICE defaults (the paper's values were not recovered):
  eps_pos_high 0.28, eps_pos_low 0.2, eps_neg_high 4.0 (w <= 5), eps_neg_low 1.0
  (w >= 0); `out_of_band="clamp"` (weight clipped to the band, as both sources state)
  or "mask" (weight 0 outside the band); `regime_key="adv_sign"` (regime by sign(A))
  or "correctness" (by the `correct` input). token_mean, no KL.
  """

  eps_pos_high: float = 0.28
  eps_pos_low: float = 0.2
  eps_neg_high: float = 4.0
  eps_neg_low: float = 1.0
  out_of_band: str = "clamp"
  regime_key: str = "adv_sign"

  def validate(self) -> None:
    super().validate()
    self._check_eps_low("eps_pos_low")
    self._check_eps_low("eps_neg_low")
    self._check_eps_high("eps_pos_high")
    self._check_eps_high("eps_neg_high")
    IS_WEIGHT_BANDS.validate(self.out_of_band, argument=self._arg("out_of_band"))
    if self.regime_key not in DISPO_REGIME_KEYS:
      raise ValueError(
        f"{self._arg('regime_key')}={self.regime_key!r}; choose one of {list(DISPO_REGIME_KEYS)}"
      )


# The four regimes, named in the per-regime metrics `dispo_<regime>_...`: pos/neg = correct
# (A > 0) / incorrect (A < 0), high/low = ratio above / below 1.
DISPO_REGIMES = ("pos_high", "pos_low", "neg_high", "neg_low")


def _dispo_bands(advantages: jax.Array, config: DISPOConfig, correct: jax.Array | None):
  """(pos, neg, lo, hi) per token: regime side and the band [lo, hi] of its IS weight."""
  if config.regime_key == "adv_sign":
    pos, neg = advantages > 0, advantages < 0
  else:
    pos = jnp.broadcast_to(correct[:, None], advantages.shape)
    neg = ~pos
  lo = jnp.where(pos, 1.0 - config.eps_pos_low, 1.0 - config.eps_neg_low)
  hi = jnp.where(pos, 1.0 + config.eps_pos_high, 1.0 + config.eps_neg_high)
  return pos, neg, lo, hi


def _dispo_weight(ratio, advantages, config: DISPOConfig, correct):
  _, _, lo, hi = _dispo_bands(advantages, config, correct)
  w = IS_WEIGHT_BANDS.get(config.out_of_band)(ratio, lo, hi)
  return jnp.where(advantages == 0, 1.0, w)


@functools.partial(jax.jit, static_argnames=("config",))
def _dispo_weight_jit(ratio, advantages, correct, *, config):
  adv = advantages[:, None] if advantages.ndim == 1 else advantages
  adv = jnp.broadcast_to(adv, ratio.shape).astype(ratio.dtype)
  return _dispo_weight(ratio, adv, config, None if correct is None else correct.astype(bool))


def dispo_is_weights(
  ratio: jax.Array,
  advantages: jax.Array,
  *,
  config: DISPOConfig | None = None,
  correct: jax.Array | None = None,
) -> jax.Array:
  """DISPO's per-token weight `w` (rl.md 4.1), `ratio [N, T]`, `advantages [N]` or `[N, T]`.

  `w = band(r, 1-eps_pos_low, 1+eps_pos_high)` if the token is on the correct side
  (A > 0, or `correct` with regime_key="correctness"), `band(r, 1-eps_neg_low,
  1+eps_neg_high)` otherwise, and `w = 1` where `A == 0` (no contribution).
  `band` clamps (out_of_band="clamp") or zeroes out-of-band weights ("mask").
  """
  config = resolve_config(config, DISPOConfig, DISPOConfig, "dispo_is_weights")
  ratio = as_array(ratio, "ratio", ndim=2)
  advantages = as_array(advantages, "advantages", ndim=(1, 2), kind="number")
  if advantages.shape != ratio.shape and advantages.shape != ratio.shape[:1]:
    raise ValueError(
      f"advantages must have shape {ratio.shape[:1]} or {ratio.shape}, got {advantages.shape}"
    )
  if config.regime_key == "correctness":
    if correct is None:
      raise ValueError("correct is required when regime_key='correctness'")
    correct = as_mask(correct, "correct", shape=ratio.shape[:1])
  else:
    correct = None
  return _dispo_weight_jit(ratio.astype(compute_dtype(ratio)), advantages, correct, config=config)


@register_loss("dispo", config_cls=DISPOConfig)
def dispo_loss(
  logp,
  old_logp,
  advantages,
  mask,
  *,
  config: DISPOConfig | None = None,
  ref_logp=None,
  entropy=None,
  is_weights=None,
  correct=None,
) -> LossOutput:
  """DISPO: `l_t = -sg(w_t) A_t logp_t`, w clipped with a per-regime band, token mean.

  DISPO: Enhancing Training Efficiency and Stability in Reinforcement Learning for Large
  Language Model Mathematical Reasoning (Karaman et al.), arXiv 2602.00983; rl.md 4.1-4.2.
  Regimes: correct/incorrect (sign of A, or `correct` with regime_key="correctness") x
  r > 1 / r < 1, bounded by eps_pos_high, eps_pos_low, eps_neg_high, eps_neg_low. With all
  four eps equal it is CISPO. Gradient w.r.t. logp: `-w A` per token (never the
  derivative of w). Extra metrics per regime R in {pos_high, pos_low, neg_high, neg_low}:
  `dispo_R_frac` (share of tokens in R; r == 1 is in no regime), `dispo_R_clip_frac`
  (share of tokens clipped/masked in R) and `dispo_R_weight_mean` (mean w in R).
  Config: `DISPOConfig`.
  """
  cfg = resolve_config(config, DISPOConfig, DISPOConfig, "dispo")
  if cfg.regime_key == "correctness" and correct is None:
    raise ValueError("dispo: correct ([N] bool) is required when regime_key='correctness'")
  return run_loss(
    _dispo_term,
    cfg,
    DISPOConfig,
    DISPOConfig,
    "dispo",
    logp,
    old_logp,
    advantages,
    mask,
    ref_logp,
    entropy,
    is_weights,
    correct if cfg.regime_key == "correctness" else None,
  )


def _dispo_term(x: PolicyInputs, config: DISPOConfig):
  ratio = jnp.exp(jax.lax.stop_gradient(x.log_ratio))
  pos, neg, lo, hi = _dispo_bands(x.advantages, config, x.correct)
  weight = _dispo_weight(ratio, x.advantages, config, x.correct)
  active = x.valid & (x.advantages != 0)
  dtype = ratio.dtype
  policy_aux = clipped_weight_aux(x, ratio, weight, lo, hi)
  side = {"pos": active & pos, "neg": active & neg}
  for regime in DISPO_REGIMES:
    sign, level = regime.split("_")
    in_regime = side[sign] & ((ratio > 1) if level == "high" else (ratio < 1))
    clipped = in_regime & ((ratio > hi) if level == "high" else (ratio < lo))
    policy_aux[f"dispo_{regime}_frac_token_sum"] = count_where(in_regime, dtype)
    policy_aux[f"dispo_{regime}_clip_frac_token_sum"] = count_where(clipped, dtype)
    policy_aux[f"dispo_{regime}_weight_mean_num"] = jnp.sum(jnp.where(in_regime, weight, 0))
    policy_aux[f"dispo_{regime}_weight_mean_den"] = count_where(in_regime, dtype)
  return weighted_reinforce(x, weight), ratio, policy_aux
