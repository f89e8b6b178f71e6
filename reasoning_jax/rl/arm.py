"""ARM: advantage re-weighting by prompt perplexity and answer confidence (ProGRPO).

Paper: "Back to Basics: Revisiting Exploration in Reinforcement Learning for LLM
Reasoning via Generative Probabilities", Pengyi Li, Elizaveta Goncharova, Andrey
Kuznetsov, Ivan Oseledets, arXiv 2602.05281 (2026). The method is ProGRPO; its core
is the Advantage Re-weighting Mechanism (ARM), which reshapes GRPO advantages
("DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language
Models", Shao et al., arXiv 2402.03300):

    A~_i = A_i                                   if group g(i) has no correct answer
    A~_i = A_i + alpha * (c(q) - c(o_i | q))     otherwise

* `c(o|q)` (`answer_confidence`): geometric-mean probability of the
  `k = max(1, ceil(rho * |o|))` least probable response tokens under the rollout
  policy ("low-probability token length normalization").
* `c(q)` (`prompt_confidence`): DESIGN CHOICE (not recovered from the paper)
  `exp(mean_j log pi(q_j | q_<j)) = 1 / PPL(q)`, on the same probability scale as
  `c(o|q)`, so `c(q) - c(o|q)` lies in (-1, 1).

A correct answer the policy already produces confidently gets a smaller advantage;
a correct low-confidence path gets a larger one. The paper pairs ARM with the DAPO
token-mean clipped surrogate ("DAPO: An Open-Source LLM Reinforcement Learning
System at Scale", arXiv 2503.14476) with eps_low=0.2, eps_high=0.28; that loss is
not part of this module (it takes advantages, so `A~` plugs into it unchanged).

Everything here is a pure function of arrays and returns values under
`jax.lax.stop_gradient`: confidences are computed from the detached rollout
log-probs (`old_logp`) and are constants w.r.t. the parameters.

Shapes: `N` response rows in groups of one prompt (`group_size=G` with contiguous
rows, or `group_ids [N]`, as in `reasoning_jax.rl.advantages`), `T` response
length, `P` prompt length. Correctness is `correct > 0`, so 0/1 and +1/-1
outcome rewards can be passed directly.

Registered as `ADVANTAGES["arm"]` (`arm_group_advantages`) at import: a base
estimator (GRPO by default) followed by the ARM re-weighting.

Token-level advantages (broadcast rule). The shift `alpha * (c(q) - c(o_i|q))` is one
number per response; on `[N, T]` base advantages (e.g. `token_grpo` of
`reasoning_jax.rl.token_advantages`) it is added to every valid token of row i (tokens
outside `mask` keep their input value, 0 from the token estimators). So `[N, T]`
advantages that are constant over each row give exactly the `[N]` result broadcast.
`ADVANTAGES["arm"]` with a token-level `base_estimator` takes `[N, T]` token rewards (or
`[N]` sequence rewards, placed on the last token by `sequence_to_token_rewards`); a row
is correct when its sequence reward (the masked token sum) is `> 0`. `[N, T]` rewards
with a sequence-level base estimator are an error (`rewards`).

DESIGN CHOICE flags (`ARMConfig` defaults):
  alpha=0.5                  spec default; sweep {0.1, 0.25, 0.5, 1.0}.
  rho=0.2                    fraction of least-probable response tokens in c(o|q).
  all_correct_groups=True    all-correct groups (A = 0) receive alpha*(c(q)-c(o|q)),
                             as the reported equation implies; False re-weights only
                             mixed groups. With DAPO dynamic sampling all-correct
                             groups are filtered out before ARM acts, so the flag
                             has no effect there.
  targets="all"              shift every row of an active group; "correct_only"
                             shifts only correct rows (the paper's stated aim is to
                             equilibrate confidence across correct responses).
  include_template_tokens=False  c(q) over user-content tokens only (needs
                             `content_mask`); True uses every prompt token.
  exclude_first_token=True   the sequence's first prompt token has no conditional
                             log-prob (nothing predicts it) and is left out of c(q).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from reasoning_jax.rl.advantages import ADVANTAGES, Groups, make_groups
from reasoning_jax.rl.token_advantages import (
  TOKEN_LEVEL_ESTIMATORS,
  is_token_level,
  sequence_to_token_rewards,
)
from reasoning_jax.validation import (
  check_array,
  check_choice,
  check_finite_float,
  check_finite_where,
  check_float_in,
  check_log_probs,
  check_mask,
  is_concrete,
  shape_of,
)

__all__ = [
  "ARMConfig",
  "ARMOutput",
  "ARM_TARGETS",
  "answer_confidence",
  "arm_advantages",
  "arm_group_advantages",
  "arm_reweight_advantages",
  "low_probability_token_mask",
  "prompt_confidence",
]

ARM_TARGETS = ("all", "correct_only")

# ceil(rho * n) in float32 can land one above the exact integer (0.3 * 50 -> 16, as
# 0.3 is not exactly representable); shrinking by a relative 1e-6 removes that
# without touching genuine fractional parts for any realistic response length.
_CEIL_REL_TOL = 1e-6


@dataclasses.dataclass(frozen=True, kw_only=True)
class ARMConfig:
  """ARM hyper-parameters; defaults are the spec's (see the module docstring).

  Attributes:
    alpha: re-weighting strength (DESIGN CHOICE 0.5; not recovered from the paper).
    rho: fraction of least-probable response tokens in c(o|q).
    all_correct_groups: shift all-correct groups too (else only mixed groups).
    targets: "all" rows of an active group, or "correct_only".
    include_template_tokens: c(q) over every prompt token instead of user content.
    exclude_first_token: leave the sequence's first prompt token out of c(q).
  """

  alpha: float = 0.5
  rho: float = 0.2
  all_correct_groups: bool = True
  targets: str = "all"
  include_template_tokens: bool = False
  exclude_first_token: bool = True

  def __post_init__(self):
    check_finite_float(self.alpha, "ARMConfig.alpha")
    check_float_in(self.rho, "ARMConfig.rho", 0.0, 1.0, low_inclusive=False)
    check_choice(self.targets, ARM_TARGETS, "ARMConfig.targets")
    for name in ("all_correct_groups", "include_template_tokens", "exclude_first_token"):
      if not isinstance(getattr(self, name), bool):
        raise TypeError(f"ARMConfig.{name} must be a bool, got {getattr(self, name)!r}")


class ARMOutput(NamedTuple):
  """Result of `arm_advantages` (all arrays detached).

  Attributes:
    advantages: `[N]` re-weighted advantages A~.
    prompt_confidence: c(q), one per row of `prompt_logp` (`[N]`, or `[B]`).
    answer_confidence: `[N]` c(o|q).
    active: `[N]` bool, rows whose advantage was shifted.
  """

  advantages: jax.Array
  prompt_confidence: jax.Array
  answer_confidence: jax.Array
  active: jax.Array


# ----------------------------------------------------------------------------- confidences


def prompt_confidence(
  prompt_logp: jax.Array,
  prompt_mask: jax.Array,
  *,
  content_mask: jax.Array | None = None,
  include_template_tokens: bool = False,
  exclude_first_token: bool = True,
) -> jax.Array:
  """Prompt confidence `c(q) = exp(mean_j log pi(q_j | q_<j)) = 1 / PPL(q)`.

  DESIGN CHOICE of the ARM spec (arXiv 2602.05281 does not give c(q) exactly).

  Args:
    prompt_logp: `[R, P]` log-probs of the prompt tokens under the rollout policy
      (R = B prompts or N rows). Padding positions may hold anything, NaN included.
    prompt_mask: `[R, P]` 1 on every real prompt token (chat template included),
      0 on padding; left or right padding both work.
    content_mask: `[R, P]` 1 on user-content tokens. Required unless
      `include_template_tokens=True` (then it is ignored).
    include_template_tokens: DESIGN CHOICE, default False: average over
      user-content tokens only.
    exclude_first_token: DESIGN CHOICE, default True: drop the first real prompt
      token of each row (nothing predicts it), wherever the scope puts it.

  Returns:
    `[R]` float32 confidences in (0, 1], detached.

  Raises:
    ValueError: on shape mismatches, non-0/1 masks, NaN/inf or positive log-probs at
      scored positions, or (for concrete inputs) a row with no token left to score.
  """
  check_array(prompt_logp, "prompt_logp", 2, floating=True)
  check_mask(prompt_mask, "prompt_mask", prompt_logp.shape, "prompt_logp")
  if not include_template_tokens:
    if content_mask is None:
      raise ValueError(
        "content_mask is required when include_template_tokens=False (the default scores "
        "user-content tokens only); pass include_template_tokens=True to score every "
        "prompt token"
      )
    check_mask(content_mask, "content_mask", prompt_logp.shape, "prompt_logp")
    scope = jnp.asarray(content_mask) != 0
  else:
    scope = jnp.ones(prompt_logp.shape, bool)
  confidence, scored = _prompt_confidence_core(
    prompt_logp, jnp.asarray(prompt_mask) != 0, scope, exclude_first_token
  )
  check_log_probs(prompt_logp, scored, "prompt_logp")
  if is_concrete(scored) and scored.size:
    empty = np.flatnonzero(~np.asarray(scored).any(axis=-1)).tolist()
    if empty:
      raise ValueError(
        f"prompt_mask/content_mask leave no token to score in row(s) {empty[:8]} "
        f"(exclude_first_token={exclude_first_token}, "
        f"include_template_tokens={include_template_tokens})"
      )
  return confidence


@functools.partial(jax.jit, static_argnames=("exclude_first_token",))
def _prompt_confidence_core(
  prompt_logp: jax.Array, valid: jax.Array, scope: jax.Array, exclude_first_token: bool
) -> tuple[jax.Array, jax.Array]:
  if exclude_first_token:
    first = valid & (jnp.cumsum(valid.astype(jnp.int32), axis=-1) == 1)
    valid = valid & ~first
  valid = valid & scope
  count = jnp.sum(valid, axis=-1)
  logp = jnp.where(valid, jax.lax.stop_gradient(prompt_logp).astype(jnp.float32), 0.0)
  mean = jnp.sum(logp, axis=-1) / jnp.maximum(count, 1).astype(jnp.float32)
  return jax.lax.stop_gradient(jnp.exp(mean)), valid


def low_probability_token_mask(
  logp: jax.Array, mask: jax.Array, *, rho: float = 0.2
) -> tuple[jax.Array, jax.Array]:
  """The `k = max(1, ceil(rho * |o|))` least probable valid tokens of each row.

  Ranks come from a double stable argsort (jit-safe, per-row k), so ties are broken
  by position (earlier token first) and padding (set to +inf first) is never chosen.

  Args:
    logp: `[N, T]` token log-probs; padding may hold anything.
    mask: `[N, T]` 1 on response tokens.
    rho: fraction in (0, 1].

  Returns:
    `(selected [N, T] bool, k [N] int32)`; rows with no valid token select nothing
    and report k = 1.
  """
  check_array(logp, "logp", 2, floating=True)
  check_mask(mask, "mask", logp.shape, "logp")
  check_float_in(rho, "rho", 0.0, 1.0, low_inclusive=False)
  return _low_probability_core(logp, jnp.asarray(mask) != 0, rho)


@jax.jit
def _low_probability_core(
  logp: jax.Array, valid: jax.Array, rho: Any
) -> tuple[jax.Array, jax.Array]:
  key = jnp.where(valid, logp.astype(jnp.float32), jnp.inf)
  order = jnp.argsort(key, axis=-1, stable=True)
  rank = jnp.argsort(order, axis=-1, stable=True)  # 0 = least probable token.
  length = jnp.sum(valid, axis=-1).astype(jnp.float32)
  k = jnp.ceil(rho * length * (1.0 - _CEIL_REL_TOL)).astype(jnp.int32)
  k = jnp.maximum(k, 1)
  return (rank < k[:, None]) & valid, k


def answer_confidence(logp: jax.Array, mask: jax.Array, *, rho: float = 0.2) -> jax.Array:
  """Answer confidence `c(o|q) = exp(mean_{t in T_low} log pi(o_t | q, o_<t))`.

  `T_low` = the `k = max(1, ceil(rho * |o|))` least probable response tokens
  (`low_probability_token_mask`): the geometric-mean probability of the ~rho most
  uncertain tokens (ARM, arXiv 2602.05281).

  Args:
    logp: `[N, T]` rollout-policy log-probs (`old_logp`); detached here.
    mask: `[N, T]` 1 on response tokens (incl. EOS), 0 on prompt and padding.
    rho: DESIGN CHOICE default 0.2.

  Returns:
    `[N]` float32 in (0, 1]. A row with no valid token gets exp(0) = 1; such a row
    contributes no token to any loss, so its advantage is never used.
  """
  check_array(logp, "logp", 2, floating=True)
  check_mask(mask, "mask", logp.shape, "logp")
  check_float_in(rho, "rho", 0.0, 1.0, low_inclusive=False)
  check_log_probs(logp, mask, "logp")
  return _answer_confidence_core(logp, jnp.asarray(mask) != 0, rho)


@jax.jit
def _answer_confidence_core(logp: jax.Array, valid: jax.Array, rho: Any) -> jax.Array:
  selected, k = _low_probability_core(logp, valid, rho)
  logp = jnp.where(selected, jax.lax.stop_gradient(logp).astype(jnp.float32), 0.0)
  return jax.lax.stop_gradient(jnp.exp(jnp.sum(logp, axis=-1) / k.astype(jnp.float32)))


# ----------------------------------------------------------------------------- re-weighting


def arm_reweight_advantages(
  advantages: jax.Array,
  correct: jax.Array,
  prompt_confidence: jax.Array,
  answer_confidence: jax.Array,
  *,
  group_size: int | None = None,
  group_ids: jax.Array | None = None,
  valid: jax.Array | None = None,
  alpha: float = 0.5,
  all_correct_groups: bool = True,
  targets: str = "all",
  return_active: bool = False,
  mask: jax.Array | None = None,
) -> Any:
  """ARM re-weighting `A~ = A + alpha * (c(q) - c(o|q))` on groups with a correct answer.

  Advantages in, advantages out: `advantages` is any GRPO-style group advantage
  (e.g. `reasoning_jax.rl.advantages.grpo_advantages`); `alpha = 0` returns it exactly.

  Args:
    advantages: `[N]` per-response advantages, or `[N, T]` per-token ones (the row's
      shift is added to each of its tokens).
    correct: `[N]` bool, or outcome rewards read as correct where `> 0`.
    prompt_confidence: `[N]` (one per row) c(q) in [0, 1], or `[B]` (one per prompt)
      when `group_size` is given.
    answer_confidence: `[N]` c(o|q) in [0, 1].
    group_size / group_ids: the grouping, exactly one (as in
      `reasoning_jax.rl.advantages`): `G` with rows of a prompt contiguous, or `[N]`
      int ids.
    valid: optional `[N]` rows that exist; invalid rows neither make a group active
      nor get shifted (their advantage is returned unchanged) and may hold NaN.
    alpha: re-weighting strength (spec default 0.5).
    all_correct_groups: also shift all-correct groups (default True, see module doc).
    targets: "all" (default) or "correct_only".
    return_active: also return the `[N]` bool mask of shifted rows.
    mask: optional `[N, T]` response mask, only with `[N, T]` advantages: tokens outside
      it are not shifted (and may hold NaN).

  Returns:
    Re-weighted advantages of the shape of `advantages` (float32, detached), or
    `(advantages, active)`.
  """
  check_array(advantages, "advantages", (1, 2), floating=True)
  n = advantages.shape[0]
  if mask is not None:
    if advantages.ndim != 2:
      raise ValueError(
        f"mask is only for [N, T] advantages; advantages has shape {tuple(advantages.shape)}"
      )
    check_mask(mask, "mask", advantages.shape, "advantages")
  groups = make_groups(n, group_ids=group_ids, group_size=group_size)
  check_finite_float(alpha, "alpha")
  check_choice(targets, ARM_TARGETS, "targets")
  if not isinstance(all_correct_groups, bool):
    raise TypeError(f"all_correct_groups must be a bool, got {all_correct_groups!r}")
  if valid is None:
    valid = jnp.ones((n,), bool)
  check_mask(valid, "valid", (n,), "advantages")
  if not hasattr(correct, "shape") or tuple(correct.shape) != (n,):
    raise ValueError(f"correct must have shape [N]=({n},), got {shape_of(correct)}")
  check_array(answer_confidence, "answer_confidence", 1, floating=True)
  if answer_confidence.shape != (n,):
    raise ValueError(
      f"answer_confidence must have shape [N]=({n},), got {tuple(answer_confidence.shape)}"
    )
  check_array(prompt_confidence, "prompt_confidence", 1, floating=True)
  shapes = ((n,),) if group_size is None else ((n // group_size,), (n,))
  if prompt_confidence.shape not in shapes:
    raise ValueError(
      f"prompt_confidence must have shape {' or '.join(map(str, shapes))} ([B] needs "
      f"group_size), got {tuple(prompt_confidence.shape)}"
    )
  adv_valid = jnp.asarray(valid) != 0
  if mask is not None:
    adv_valid = adv_valid[:, None] & (jnp.asarray(mask) != 0)
  check_finite_where(advantages, adv_valid, "advantages")
  check_finite_where(correct, valid, "correct")
  for name, conf in (
    ("prompt_confidence", prompt_confidence),
    ("answer_confidence", answer_confidence),
  ):
    rows = valid if conf.shape == (n,) else jnp.ones((), bool)
    check_finite_where(conf, rows, name)
    if is_concrete(conf) and is_concrete(valid) and conf.size:
      values = np.asarray(conf, np.float32)[np.broadcast_to(np.asarray(rows) != 0, conf.shape)]
      if values.size and (values.min() < 0 or values.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1], got range [{values.min()}, {values.max()}]")
  if prompt_confidence.shape != (n,):
    prompt_confidence = jnp.repeat(prompt_confidence, group_size)
  out, active = _reweight_core(
    advantages,
    jnp.asarray(correct),
    prompt_confidence,
    answer_confidence,
    jnp.asarray(valid) != 0,
    None if mask is None else jnp.asarray(mask) != 0,
    groups,
    alpha,
    all_correct_groups,
    targets,
  )
  return (out, active) if return_active else out


@functools.partial(jax.jit, static_argnames=("all_correct_groups", "targets"))
def _reweight_core(
  advantages: jax.Array,
  correct: jax.Array,
  prompt_confidence: jax.Array,
  answer_confidence: jax.Array,
  valid: jax.Array,
  tokens: jax.Array | None,
  groups: Groups,
  alpha: Any,
  all_correct_groups: bool,
  targets: str,
) -> tuple[jax.Array, jax.Array]:
  is_correct = correct > 0
  hits = jnp.where(valid, is_correct, False).astype(jnp.int32)
  rows = valid.astype(jnp.int32)
  num_correct = jax.ops.segment_sum(hits, groups.index, num_segments=groups.num_groups)
  num_rows = jax.ops.segment_sum(rows, groups.index, num_segments=groups.num_groups)
  active_group = num_correct > 0
  if not all_correct_groups:
    active_group = active_group & (num_correct < num_rows)
  active = groups.broadcast(active_group) & valid
  if targets == "correct_only":
    active = active & is_correct
  shift = alpha * (prompt_confidence.astype(jnp.float32) - answer_confidence.astype(jnp.float32))
  base = advantages.astype(jnp.float32)
  shifted = active
  if base.ndim == 2:  # Broadcast rule: the row's shift on each of its (masked) tokens.
    shift, shifted = shift[:, None], active[:, None]
    if tokens is not None:
      shifted = shifted & tokens
  return jax.lax.stop_gradient(jnp.where(shifted, base + shift, base)), active


def arm_advantages(
  advantages: jax.Array,
  correct: jax.Array,
  old_logp: jax.Array,
  mask: jax.Array,
  prompt_logp: jax.Array,
  prompt_mask: jax.Array,
  *,
  group_size: int | None = None,
  group_ids: jax.Array | None = None,
  valid: jax.Array | None = None,
  content_mask: jax.Array | None = None,
  config: ARMConfig = ARMConfig(),
) -> ARMOutput:
  """Full ARM step: confidences from detached log-probs, then re-weighting.

  Args:
    advantages: `[N]` GRPO group advantages, or `[N, T]` token-level ones (of the shape
      of `old_logp`; the shift goes on every token of `mask`).
    correct: `[N]` bool, or outcome rewards (correct where `> 0`).
    old_logp: `[N, T]` rollout-policy log-probs of the response tokens.
    mask: `[N, T]` response mask.
    prompt_logp: `[N, P]` (or `[B, P]` with `group_size`) prompt-token log-probs under
      the rollout policy.
    prompt_mask: same shape, 1 on real prompt tokens.
    group_size / group_ids: the grouping, exactly one (see `arm_reweight_advantages`).
    valid: optional `[N]` rows that exist.
    content_mask: same shape as `prompt_logp`, 1 on user-content tokens (required
      with the default `config.include_template_tokens=False`).
    config: `ARMConfig`.

  Returns:
    `ARMOutput(advantages, prompt_confidence, answer_confidence, active)`.
  """
  if not isinstance(config, ARMConfig):
    raise TypeError(f"config must be an ARMConfig, got {type(config).__name__}")
  check_array(old_logp, "old_logp", 2, floating=True)
  if old_logp.shape[0] != jnp.shape(advantages)[0]:
    raise ValueError(
      f"old_logp has {old_logp.shape[0]} rows but advantages has {jnp.shape(advantages)[0]}"
    )
  if valid is not None:
    check_mask(valid, "valid", old_logp.shape[:1], "old_logp[:, 0]")
    # Rows that do not exist may hold garbage log-probs; they are never shifted.
    mask = jnp.where((jnp.asarray(valid) != 0)[:, None], mask, 0)
  c_o = answer_confidence(old_logp, mask, rho=config.rho)
  c_q = prompt_confidence(
    prompt_logp,
    prompt_mask,
    content_mask=content_mask,
    include_template_tokens=config.include_template_tokens,
    exclude_first_token=config.exclude_first_token,
  )
  out, active = arm_reweight_advantages(
    advantages,
    correct,
    c_q,
    c_o,
    group_size=group_size,
    group_ids=group_ids,
    valid=valid,
    alpha=config.alpha,
    all_correct_groups=config.all_correct_groups,
    targets=config.targets,
    return_active=True,
    mask=mask if jnp.ndim(advantages) == 2 else None,
  )
  return ARMOutput(out, c_q, c_o, active)


@ADVANTAGES.register("arm")
def arm_group_advantages(
  rewards: jax.Array,
  *,
  group_ids: jax.Array | None = None,
  group_size: int | None = None,
  valid: jax.Array | None = None,
  old_logp: jax.Array,
  mask: jax.Array,
  prompt_logp: jax.Array,
  prompt_mask: jax.Array,
  content_mask: jax.Array | None = None,
  config: ARMConfig = ARMConfig(),
  base_estimator: str = "grpo",
  **base_options: Any,
) -> jax.Array:
  """`ADVANTAGES["arm"]`: a base group advantage (GRPO by default) re-weighted by ARM.

  Same signature as the other estimators in `reasoning_jax.rl.advantages` plus the
  log-probs ARM needs; `rewards > 0` defines correctness. `base_options` (e.g. `ddof`,
  `eps`) go to the base estimator. The paper trains the result with the DAPO
  token-mean clipped surrogate (`LOSSES["dapo"]`).

  With a token-level `base_estimator` (`token_grpo`, `token_rloo`) the result is
  `[N, T]`: `rewards` may be `[N, T]` token rewards (correct where the masked row sum is
  `> 0`) or `[N]` sequence rewards (placed on the last token); see the module docstring.
  """
  if base_estimator in ("arm", "mrpo"):
    raise ValueError(f"base_estimator={base_estimator!r} must be a plain estimator, e.g. 'grpo'")
  ADVANTAGES.validate(base_estimator, argument="base_estimator")
  correct = rewards
  if is_token_level(base_estimator):
    rewards, correct = _token_rewards(rewards, mask, valid)
    base_options = dict(base_options, mask=mask)
  elif jnp.ndim(rewards) != 1:
    raise ValueError(
      f"rewards must be [N] sequence rewards for base_estimator={base_estimator!r}, got "
      f"shape {shape_of(rewards)}; [N, T] token rewards need a token-level base_estimator "
      f"({sorted(TOKEN_LEVEL_ESTIMATORS)})"
    )
  base = ADVANTAGES.get(base_estimator)(
    rewards, group_ids=group_ids, group_size=group_size, valid=valid, **base_options
  )
  return arm_advantages(
    base,
    correct,
    old_logp,
    mask,
    prompt_logp,
    prompt_mask,
    group_size=group_size,
    group_ids=group_ids,
    valid=valid,
    content_mask=content_mask,
    config=config,
  ).advantages


def _token_rewards(rewards: Any, mask: Any, valid: Any) -> tuple[jax.Array, jax.Array]:
  """`(token rewards [N, T], sequence rewards [N])` from `[N]` or `[N, T]` rewards."""
  check_array(rewards, "rewards", (1, 2))
  if rewards.ndim == 1:
    return sequence_to_token_rewards(rewards, mask, valid=valid), rewards
  check_mask(mask, "mask", rewards.shape, "rewards")
  tokens = jnp.asarray(mask) != 0
  return rewards, jnp.sum(jnp.where(tokens, jnp.asarray(rewards, jnp.float32), 0.0), axis=-1)
