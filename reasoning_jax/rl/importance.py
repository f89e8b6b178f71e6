"""Truncated importance sampling (TIS) for the sampler/trainer log-prob mismatch.

Rollouts come from a sampler (vLLM, SGLang, a bf16 decode loop) whose log-probs
differ from the trainer's recomputation of the *same* policy (different kernels,
precision, batch shapes). The loss's ratio `exp(logp - old_logp)` uses the
trainer's `old_logp`, but the tokens were drawn from the sampler, so the
policy-gradient term is re-weighted per token by

    w_t = min( exp(old_logp_t - sampler_logp_t), C )          (stop-gradient)

("truncate", TIS), or `w_t = exp(...)` if it is `<= C` and 0 otherwise ("mask",
MIS). Source: F. Yao et al., "Your Efficient RL Framework Secretly Brings You
Off-Policy RL Training" (2025 blog post, fengyao.notion.site/off-policy-rl; not an
arXiv paper). Not part of the rl.md spec, so both defaults are DESIGN CHOICEs:
`cap=2.0` (a commonly used truncation level; TRL/verl expose it as a setting) and
`mode="truncate"`.

The weight multiplies only the policy-gradient term of a loss (not the KL or
entropy terms), through the `is_weights` argument every loss in `LOSSES`
accepts, so TIS composes with every loss:

    w = truncated_importance_weights(old_logp, sampler_logp, mask)
    out = grpo_loss(logp, old_logp, adv, mask, ref_logp=ref, is_weights=w)
    # or: loss = with_truncated_is(make_loss("grpo")); loss(..., sampler_logp=s)

`sampler_logp` must be normalised over the same support as the trainer's
log-probs: with top-p/top-k sampling, renormalise the trainer's distribution over
the sampler's kept tokens (or return full-vocabulary log-probs from the sampler),
otherwise `w` absorbs the kept probability mass, which is not a policy change.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from reasoning_jax.registry import Registry
from reasoning_jax.rl.aggregation import compute_dtype
from reasoning_jax.validation import as_array, as_mask, check_scalar

__all__ = ["IS_CORRECTIONS", "truncated_importance_weights", "with_truncated_is"]

# fn(raw_weight [N, T], cap) -> corrected weight [N, T].
IS_CORRECTIONS: Registry[Callable[[jax.Array, float], jax.Array]] = Registry(
  "importance-sampling correction"
)


@IS_CORRECTIONS.register("truncate")
def _truncate(weight: jax.Array, cap: float) -> jax.Array:
  return jnp.minimum(weight, cap)


@IS_CORRECTIONS.register("mask")
def _mask(weight: jax.Array, cap: float) -> jax.Array:
  return jnp.where(weight > cap, 0, weight)


def truncated_importance_weights(
  old_logp: jax.Array,
  sampler_logp: jax.Array,
  mask: jax.Array,
  *,
  cap: float = 2.0,
  mode: str = "truncate",
) -> jax.Array:
  """Per-token sampler-correction weights `[N, T]`, stop-gradient, 0 where `mask == 0`.

  Args:
    old_logp: `[N, T]` trainer log-probs of the rollout tokens under the behaviour params.
    sampler_logp: `[N, T]` log-probs reported by the sampler for the same tokens.
    mask: `[N, T]` 0/1 completion mask.
    cap: C > 0, the truncation level (DESIGN CHOICE default 2.0).
    mode: a name in `IS_CORRECTIONS`: "truncate" (TIS, min(w, C)) or "mask" (w > C -> 0).
  """
  IS_CORRECTIONS.validate(mode, argument="mode")
  check_scalar(cap, "cap", low=0.0, low_inclusive=False, allow_inf=True)
  old_logp = as_array(old_logp, "old_logp", ndim=2)
  sampler_logp = as_array(sampler_logp, "sampler_logp", shape=old_logp.shape)
  mask = as_mask(mask, "mask", shape=old_logp.shape)
  return _tis_jit(old_logp, sampler_logp, mask, cap=float(cap), mode=mode)[0]


@functools.partial(jax.jit, static_argnames=("cap", "mode"))
def _tis_jit(old_logp, sampler_logp, mask, *, cap, mode):
  """(weights, aux statistics) on validated inputs."""
  valid = mask.astype(bool)
  dtype = compute_dtype(old_logp, sampler_logp)
  sg = jax.lax.stop_gradient
  log_w = sg(jnp.where(valid, old_logp.astype(dtype) - sampler_logp.astype(dtype), 0))
  raw = jnp.exp(log_w)
  weight = jnp.where(valid, IS_CORRECTIONS.get(mode)(raw, cap), 0)
  aux = {
    "tis_weight_mean_token_sum": jnp.sum(weight),
    "tis_clip_frac_token_sum": jnp.sum(valid & (raw > cap)).astype(dtype),
    # k3 with x = log(trainer / sampler): estimates KL(sampler || trainer) on sampler tokens.
    "tis_mismatch_k3_token_sum": jnp.sum(jnp.where(valid, jnp.expm1(log_w) - log_w, 0)),
  }
  return weight, aux


def with_truncated_is(
  loss_fn: Callable[..., Any], *, cap: float = 2.0, mode: str = "truncate"
) -> Callable[..., Any]:
  """Wraps a loss of the `LOSSES` signature so it takes `sampler_logp` and applies TIS.

  The wrapped loss has the signature
  `(logp, old_logp, advantages, mask, *, sampler_logp, **loss_kwargs)`; an
  `is_weights` passed by the caller is multiplied with the TIS weights. Adds aux
  metrics `tis_weight_mean`, `tis_clip_frac` (tokens where the raw weight exceeds
  C) and `tis_mismatch_k3` (k3 estimate of KL(sampler || trainer) per token).
  """
  IS_CORRECTIONS.validate(mode, argument="mode")
  check_scalar(cap, "cap", low=0.0, low_inclusive=False, allow_inf=True)

  @functools.wraps(loss_fn)
  def wrapped(logp, old_logp, advantages, mask, *, sampler_logp, is_weights=None, **kwargs):
    old_logp = as_array(old_logp, "old_logp", ndim=2)
    sampler_logp = as_array(sampler_logp, "sampler_logp", shape=old_logp.shape)
    mask = as_mask(mask, "mask", shape=old_logp.shape)
    weight, tis_aux = _tis_jit(old_logp, sampler_logp, mask, cap=float(cap), mode=mode)
    if is_weights is not None:
      weight = weight * as_array(is_weights, "is_weights", shape=old_logp.shape)
    out = loss_fn(logp, old_logp, advantages, mask, is_weights=weight, **kwargs)
    return out._replace(aux={**out.aux, **tis_aux})

  return wrapped
