"""Per-token KL estimators between the policy and a frozen reference, and their placement.

With `x = ref_logp - logp = log(pi_ref / pi_theta)` at a token sampled from the
policy (rl.md section 1.2; J. Schulman, "Approximating KL Divergence", 2020 blog):

| name | value | unbiased for | gradient when used as a loss (on-policy samples) |
|---|---|---|---|
| `k1` | `-x` | KL(pi_theta, pi_ref) (can be < 0) | zero in expectation |
| `k2` | `x**2 / 2` | (biased) | grad of KL(pi_theta, pi_ref) |
| `k3` | `exp(x) - x - 1` (>= 0; verl "low_var_kl") | KL(pi_theta, pi_ref) | grad of KL(pi_ref, pi_theta) |

(`KL(p, q) = E_p[log p - log q]`.)

Aliases registered for readers of verl/tunix configs: `kl` = k1, `mse_kl` = k2,
`low_var_kl` = k3. `k3` is evaluated as `expm1(x) - x` (less cancellation than
`exp(x) - x - 1` for small `x`).

Optional `clamp` clips the per-token value to `[-clamp, clamp]` (verl clamps k3
to [-10, 10]; DESIGN CHOICE here: `clamp=None`, the plain formula).

Two placements of the KL penalty (rl.md section 1.2):

* KL in the loss (GRPO, verl `use_kl_loss`): the loss configs in
  `reasoning_jax.rl.losses` carry `beta`, `kl_estimator`, `kl_clamp` and
  `kl_in_loss=True` and add `beta * KL_t` to every token's loss.
* KL in the reward (PPO-RLHF): `kl_penalized_rewards` folds `-beta * KL` into the
  rewards before advantages are computed; set `kl_in_loss=False` in the loss
  config so it is not counted twice.

Add an estimator with `@KL_ESTIMATORS.register("name")` on `fn(logp, ref_logp) -> [N, T]`.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

from reasoning_jax.registry import Registry
from reasoning_jax.rl.aggregation import compute_dtype
from reasoning_jax.validation import as_array, as_mask, check_finite, check_scalar

__all__ = [
  "KL_ESTIMATORS",
  "k1",
  "k2",
  "k3",
  "kl_divergence",
  "kl_penalized_rewards",
  "validate_kl",
]

# fn(logp [..], ref_logp [..]) -> per-token estimate [..], elementwise.
KL_ESTIMATORS: Registry[Callable[[jax.Array, jax.Array], jax.Array]] = Registry("KL estimator")


@KL_ESTIMATORS.register("k1")
@KL_ESTIMATORS.register("kl")
def k1(logp: jax.Array, ref_logp: jax.Array) -> jax.Array:
  """k1 = logp - ref_logp: unbiased, high variance, can be negative."""
  return logp - ref_logp


@KL_ESTIMATORS.register("k2")
@KL_ESTIMATORS.register("mse_kl")
def k2(logp: jax.Array, ref_logp: jax.Array) -> jax.Array:
  """k2 = (ref_logp - logp)**2 / 2."""
  return 0.5 * jnp.square(ref_logp - logp)


@KL_ESTIMATORS.register("k3")
@KL_ESTIMATORS.register("low_var_kl")
def k3(logp: jax.Array, ref_logp: jax.Array) -> jax.Array:
  """k3 = exp(x) - x - 1 with x = ref_logp - logp; >= 0, unbiased, low variance."""
  x = ref_logp - logp
  return jnp.expm1(x) - x


def validate_kl(
  estimator, clamp, *, estimator_arg: str = "estimator", clamp_arg: str = "clamp"
) -> None:
  """Checks the estimator name against `KL_ESTIMATORS` and the clamp (> 0 or None)."""
  KL_ESTIMATORS.validate(estimator, argument=estimator_arg)
  if clamp is not None:
    check_scalar(clamp, clamp_arg, low=0.0, low_inclusive=False)


def kl_core(logp: jax.Array, ref_logp: jax.Array, estimator: str, clamp: float | None) -> jax.Array:
  """Per-token estimate on already validated, float32 inputs (no masking)."""
  value = KL_ESTIMATORS.get(estimator)(logp, ref_logp)
  if clamp is not None:
    value = jnp.clip(value, -clamp, clamp)
  return value


def kl_divergence(
  logp: jax.Array,
  ref_logp: jax.Array,
  mask: jax.Array | None = None,
  *,
  estimator: str = "k3",
  clamp: float | None = None,
) -> jax.Array:
  """Per-token KL estimate `[N, T]` (float32), 0 where `mask == 0`.

  Args:
    logp: `[N, T]` log-probs of the sampled tokens under the policy (gradient flows).
    ref_logp: `[N, T]` log-probs under the frozen reference (treated as data).
    mask: optional `[N, T]` 0/1; masked entries are exactly 0 (even if inputs are inf there).
    estimator: a name in `KL_ESTIMATORS` (k1, k2, k3 and aliases).
    clamp: clip the per-token value to `[-clamp, clamp]`; None = no clamp.
  """
  validate_kl(estimator, clamp)
  logp = as_array(logp, "logp", ndim=2)
  ref_logp = as_array(ref_logp, "ref_logp", shape=logp.shape)
  if mask is not None:
    mask = as_mask(mask, "mask", shape=logp.shape)
  return _kl_jit(logp, ref_logp, mask, estimator=estimator, clamp=clamp)


@functools.partial(jax.jit, static_argnames=("estimator", "clamp"))
def _kl_jit(logp, ref_logp, mask, *, estimator, clamp):
  dtype = compute_dtype(logp, ref_logp)
  logp, ref_logp = logp.astype(dtype), jax.lax.stop_gradient(ref_logp.astype(dtype))
  if mask is None:
    return kl_core(logp, ref_logp, estimator, clamp)
  mask = mask.astype(bool)
  logp, ref_logp = jnp.where(mask, logp, 0), jnp.where(mask, ref_logp, 0)
  return jnp.where(mask, kl_core(logp, ref_logp, estimator, clamp), 0)


def kl_penalized_rewards(
  rewards: jax.Array,
  logp: jax.Array,
  ref_logp: jax.Array,
  mask: jax.Array,
  *,
  beta: float,
  estimator: str = "k1",
  clamp: float | None = None,
) -> jax.Array:
  """KL-in-reward placement: folds `-beta * KL` into the rewards (no gradient).

  PPO-RLHF style (`token_reward -= beta * k1`, rl.md section 1.2). `logp` is the
  behaviour (rollout) policy's log-probs; everything is detached, because the
  penalty is part of the data the policy is then trained on.

  Args:
    rewards: `[N]` sequence rewards (the penalty summed over the response's tokens
      is subtracted) or `[N, T]` token rewards (subtracted per token, 0 off-mask).
    logp, ref_logp, mask: `[N, T]`.
    beta: penalty coefficient >= 0.
    estimator: DESIGN CHOICE default `k1` (the PPO-RLHF convention).
    clamp: see `kl_divergence`.

  Returns:
    Penalised rewards, same shape as `rewards`, float32 (or wider).
  """
  check_scalar(beta, "beta", low=0.0)
  validate_kl(estimator, clamp)
  logp = as_array(logp, "logp", ndim=2)
  ref_logp = as_array(ref_logp, "ref_logp", shape=logp.shape)
  mask = as_mask(mask, "mask", shape=logp.shape)
  rewards = as_array(rewards, "rewards", ndim=(1, 2), kind="number")
  if rewards.ndim == 1:
    as_array(rewards, "rewards", shape=logp.shape[:1], kind="number")
    check_finite(rewards, "rewards")
  else:
    as_array(rewards, "rewards", shape=logp.shape, kind="number")
    check_finite(rewards, "rewards", where=mask)
  return _penalized_jit(
    rewards, logp, ref_logp, mask, beta=float(beta), estimator=estimator, clamp=clamp
  )


@functools.partial(jax.jit, static_argnames=("beta", "estimator", "clamp"))
def _penalized_jit(rewards, logp, ref_logp, mask, *, beta, estimator, clamp):
  sg = jax.lax.stop_gradient
  kl = sg(_kl_jit(logp, ref_logp, mask, estimator=estimator, clamp=clamp))
  rewards = sg(rewards.astype(kl.dtype))
  if rewards.ndim == 1:
    return rewards - beta * jnp.sum(kl, axis=-1)
  return jnp.where(mask.astype(bool), rewards, 0) - beta * kl
