"""Shared machinery of the policy losses: inputs, output, the common config and the loss shell.

Every loss in `reasoning_jax.rl.losses` is a thin per-token policy term on top of this module:

* `PolicyLossConfig`: the fields every loss config shares (aggregation, KL, entropy), validated
  on construction; method configs subclass it.
* `validate_policy_inputs` / `prepare_policy_inputs` / `PolicyInputs`: the eager boundary checks
  of the shared loss signature and the cleaned float32 inputs a policy term reads.
* `run_loss`: config check, input check, then one `jax.jit`-compiled core that calls the policy
  term and `policy_loss_output` (IS weights, KL and entropy terms, aggregation, aux statistics).
* `LossOutput`, `merge_aux`, `summarize_aux`: the output convention and its metrics.

Advantages are `[N]` (one per sequence, broadcast over its tokens) or `[N, T]` (per token,
e.g. `reasoning_jax.rl.token_advantages`); every loss reads only the broadcast `[N, T]`
values, so an `[N, T]` array whose rows are constant over their tokens gives the same loss,
gradient and aux as the `[N]` path, in every aggregation mode. The `adv_*` aux statistics
are per sequence: the masked token mean of each row.

The registry (`LOSSES`, `register_loss`, `make_loss`) is in `reasoning_jax.rl.losses.registry`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from reasoning_jax.rl.aggregation import AGGREGATIONS, compute_dtype, validate_aggregation
from reasoning_jax.validation import (
  as_array,
  as_mask,
  check_finite,
  check_finite_where,
  check_scalar,
  concrete_values,
)
from reasoning_jax.rl.kl import kl_core, validate_kl
from reasoning_jax.train.step import merge_aux  # noqa: F401 (re-exported: the loss API)

__all__ = [
  "LossOutput",
  "PolicyInputs",
  "PolicyLossConfig",
  "merge_aux",
  "policy_loss_output",
  "prepare_policy_inputs",
  "summarize_aux",
  "validate_policy_inputs",
]


# --------------------------------------------------------------------------------------------
# Output convention.
# --------------------------------------------------------------------------------------------


class LossOutput(NamedTuple):
  """`(loss_sum, denominator, aux)`; unpacks like the train step's loss triple."""

  loss_sum: jax.Array
  denominator: jax.Array
  aux: dict[str, jax.Array]

  @property
  def loss(self) -> jax.Array:
    """`loss_sum / denominator` (0 when the denominator is 0)."""
    d = self.denominator
    return jnp.where(d > 0, self.loss_sum / jnp.where(d > 0, d, 1), 0)


def summarize_aux(aux: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
  """Raw (merged) aux -> metrics. Rules by key suffix:

  `X_token_sum` -> `X = value / token_count`; `X_seq_sum` -> `X = value / seq_count`;
  `X_loss_sum` -> `X_loss = value / loss_denominator`; `X_num` with `X_den` -> `X = num / den`;
  `X_min`, `X_max` and the counts pass through. `adv_std` is derived from `adv_mean` and
  `adv_sq_mean`. A ratio with a zero denominator is NaN (no tokens of that kind).
  """

  def div(num, den):
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1), jnp.nan)

  out = {}
  for k, v in aux.items():
    if k.endswith("_token_sum"):
      out[k[: -len("_token_sum")]] = div(v, aux["token_count"])
    elif k.endswith("_seq_sum"):
      out[k[: -len("_seq_sum")]] = div(v, aux["seq_count"])
    elif k.endswith("_loss_sum"):
      out[k[: -len("_sum")]] = div(v, aux["loss_denominator"])
    elif k.endswith("_num"):
      out[k[: -len("_num")]] = div(v, aux[k[: -len("_num")] + "_den"])
    elif k.endswith("_den"):
      continue
    else:
      out[k] = v
  if "adv_mean" in out and "adv_sq_mean" in out:
    out["adv_std"] = jnp.sqrt(jnp.maximum(out.pop("adv_sq_mean") - out["adv_mean"] ** 2, 0))
  return out


# --------------------------------------------------------------------------------------------
# The config fields every policy loss shares.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class PolicyLossConfig:
  """Fields shared by every policy loss; validated on construction (against the registries).

  Attributes:
    aggregation: a name in `AGGREGATIONS` (token_mean | seq_mean_token_mean |
      seq_mean_token_sum_norm | ...).
    norm_constant: C of `seq_mean_token_sum_norm`; None = T. Error for other modes.
    beta: KL coefficient >= 0.
    kl_estimator: a name in `KL_ESTIMATORS` (k1 | k2 | k3 | aliases).
    kl_clamp: clip the per-token KL estimate to [-kl_clamp, kl_clamp]; None = no clamp.
    kl_in_loss: True: add `beta * KL_t` to the loss (GRPO, verl use_kl_loss). False: the
      KL is placed in the reward (`reasoning_jax.rl.kl.kl_penalized_rewards`) and the loss
      only reports it.
    entropy_coef: subtract `entropy_coef * H_t` (needs `entropy` with gradient); verl's
      convention, so a negative value penalises entropy. Default 0.
  """

  aggregation: str = "token_mean"
  norm_constant: float | None = None
  beta: float = 0.0
  kl_estimator: str = "k3"
  kl_clamp: float | None = None
  kl_in_loss: bool = True
  entropy_coef: float = 0.0

  def __post_init__(self):
    self.validate()

  def _arg(self, field: str) -> str:
    return f"{type(self).__name__}.{field}"

  def validate(self) -> None:
    """Raises ValueError/TypeError naming the offending field; subclasses call super()."""
    validate_aggregation(
      self.aggregation, argument=self._arg("aggregation"), norm_constant=self.norm_constant
    )
    check_scalar(self.beta, self._arg("beta"), low=0.0)
    validate_kl(
      self.kl_estimator,
      self.kl_clamp,
      estimator_arg=self._arg("kl_estimator"),
      clamp_arg=self._arg("kl_clamp"),
    )
    if not isinstance(self.kl_in_loss, bool):
      raise TypeError(f"{self._arg('kl_in_loss')} must be a bool, got {self.kl_in_loss!r}")
    check_scalar(self.entropy_coef, self._arg("entropy_coef"))

  def _check_eps_low(self, field: str) -> None:
    # 1 - eps_low is the lower bound of a ratio r > 0: eps_low = 1 already removes it.
    check_scalar(getattr(self, field), self._arg(field), low=0.0, high=1.0)

  def _check_eps_high(self, field: str) -> None:
    check_scalar(getattr(self, field), self._arg(field), low=0.0, allow_inf=True)

  def replace(self, **overrides) -> "PolicyLossConfig":
    return dataclasses.replace(self, **overrides)


# --------------------------------------------------------------------------------------------
# Shared input preparation and output assembly.
# --------------------------------------------------------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PolicyInputs:
  """Validated float32 inputs; masked slots are 0 and everything but `logp` (and `entropy`)
  is detached. A pytree, so it can cross a jit boundary."""

  logp: jax.Array  # [N, T], gradient flows
  old_logp: jax.Array  # [N, T]
  advantages: jax.Array  # [N, T]: [N] advantages broadcast over tokens, 0 on masked slots
  adv_seq: jax.Array  # [N] per-sequence advantage (masked token mean if per-token), 0 on empty rows
  valid: jax.Array  # [N, T] bool
  row_valid: jax.Array  # [N] bool, rows with >= 1 token
  ref_logp: jax.Array | None
  entropy: jax.Array | None
  is_weights: jax.Array | None
  correct: jax.Array | None

  @property
  def log_ratio(self) -> jax.Array:
    return self.logp - self.old_logp


def validate_policy_inputs(
  logp, old_logp, advantages, mask, *, ref_logp=None, entropy=None, is_weights=None, correct=None
) -> tuple:
  """Eager boundary checks for the shared loss signature (errors name the argument).

  Shapes and dtypes are always checked; values (0/1 mask, finite advantages, and finite
  `logp`, `old_logp`, `ref_logp` where the mask is set) only when the arrays are concrete,
  not tracers under jit. Returns the inputs as arrays, in signature order, untransformed.
  """
  logp = as_array(logp, "logp", ndim=2)
  shape = tuple(logp.shape)
  old_logp = as_array(old_logp, "old_logp", shape=shape)
  mask = as_mask(mask, "mask", shape=shape)
  advantages = as_array(advantages, "advantages", ndim=(1, 2), kind="number")
  if tuple(advantages.shape) not in (shape[:1], shape):
    raise ValueError(
      f"advantages must have shape [N]={shape[:1]} (per sequence) or [N, T]={shape} "
      f"(per token, the shape of logp), got {tuple(advantages.shape)}"
    )
  if advantages.ndim == 1:
    mask_values = concrete_values(mask)
    if mask_values is not None:
      check_finite(advantages, "advantages", where=np.any(mask_values != 0, axis=-1))
  else:
    check_finite(advantages, "advantages", where=mask)
  optional = [
    None if x is None else as_array(x, name, shape=shape)
    for name, x in (("ref_logp", ref_logp), ("entropy", entropy), ("is_weights", is_weights))
  ]
  if concrete_values(mask) is not None:
    # A NaN/inf log-prob on a counted token makes the loss (or its gradient) NaN/inf.
    for name, x in (("logp", logp), ("old_logp", old_logp), ("ref_logp", optional[0])):
      if x is not None and concrete_values(x) is not None:
        check_finite_where(x, mask, name)
  if correct is not None:
    correct = as_mask(correct, "correct", shape=shape[:1])
  return (logp, old_logp, advantages, mask, *optional, correct)


def _clean_policy_inputs(
  logp, old_logp, advantages, mask, ref_logp, entropy, is_weights, correct
) -> PolicyInputs:
  """Traceable: float32 (or wider) copies, 0 on masked slots, data detached."""
  valid = mask.astype(bool)
  dtype = compute_dtype(logp, old_logp, ref_logp, entropy, is_weights)
  sg = jax.lax.stop_gradient

  def clean(x, detach=True):
    if x is None:
      return None
    x = jnp.where(valid, x.astype(dtype), 0)
    return sg(x) if detach else x

  adv = sg(advantages.astype(dtype))
  adv_tok = jnp.where(valid, adv[:, None] if adv.ndim == 1 else adv, 0)
  row_tokens = jnp.sum(valid, axis=-1)
  row_valid = row_tokens > 0
  if adv.ndim == 1:
    adv_seq = jnp.where(row_valid, adv, 0)
  else:
    # Masked token mean; a row that is constant over its tokens reports that value exactly
    # (the float mean of n copies of c need not be c), so its aux equals the [N] path's.
    adv_seq = jnp.sum(adv_tok, axis=-1) / jnp.maximum(row_tokens, 1).astype(dtype)
    hi = jnp.max(jnp.where(valid, adv, -jnp.inf), axis=-1)
    lo = jnp.min(jnp.where(valid, adv, jnp.inf), axis=-1)
    adv_seq = jnp.where(row_valid & (hi == lo), hi, adv_seq)
  return PolicyInputs(
    logp=clean(logp, detach=False),
    old_logp=clean(old_logp),
    advantages=adv_tok,
    adv_seq=adv_seq,
    valid=valid,
    row_valid=row_valid,
    ref_logp=clean(ref_logp),
    # entropy keeps its gradient: the entropy_coef term differentiates through it.
    entropy=clean(entropy, detach=False),
    is_weights=clean(is_weights),
    correct=None if correct is None else correct.astype(bool),
  )


_clean_policy_inputs_jit = jax.jit(_clean_policy_inputs)


def prepare_policy_inputs(
  logp, old_logp, advantages, mask, *, ref_logp=None, entropy=None, is_weights=None, correct=None
) -> PolicyInputs:
  """Validated, cleaned `PolicyInputs` for a custom loss built on `policy_loss_output`."""
  return _clean_policy_inputs_jit(
    *validate_policy_inputs(
      logp,
      old_logp,
      advantages,
      mask,
      ref_logp=ref_logp,
      entropy=entropy,
      is_weights=is_weights,
      correct=correct,
    )
  )


def resolve_config(config, default_cls, expected_cls, loss_name: str):
  if config is None:
    return default_cls()
  if not isinstance(config, expected_cls):
    raise TypeError(
      f"{loss_name}: config must be a {expected_cls.__name__}, got {type(config).__name__}"
    )
  return config


def _check_requirements(config: PolicyLossConfig, loss_name: str, *, ref_logp, entropy) -> None:
  if config.kl_in_loss and config.beta > 0 and ref_logp is None:
    raise ValueError(
      f"{loss_name}: ref_logp is required when beta > 0 and kl_in_loss "
      f"(beta={config.beta}); pass ref_logp or set beta=0 / kl_in_loss=False"
    )
  if config.entropy_coef != 0 and entropy is None:
    raise ValueError(
      f"{loss_name}: entropy is required when entropy_coef != 0 "
      f"(entropy_coef={config.entropy_coef})"
    )


@functools.partial(jax.jit, static_argnames=("term", "config", "loss_name"))
def _loss_core(
  logp,
  old_logp,
  advantages,
  mask,
  ref_logp,
  entropy,
  is_weights,
  correct,
  *,
  term,
  config,
  loss_name,
) -> "LossOutput":
  x = _clean_policy_inputs(logp, old_logp, advantages, mask, ref_logp, entropy, is_weights, correct)
  pg, ratio, policy_aux = term(x, config)
  return policy_loss_output(pg, x, config, ratio, policy_aux, loss_name=loss_name)


def run_loss(
  term,
  config,
  default_cls,
  expected_cls,
  loss_name,
  logp,
  old_logp,
  advantages,
  mask,
  ref_logp,
  entropy,
  is_weights,
  correct,
) -> "LossOutput":
  """Shared shell: config and input validation (eager), then the jitted core."""
  config = resolve_config(config, default_cls, expected_cls, loss_name)
  _check_requirements(config, loss_name, ref_logp=ref_logp, entropy=entropy)
  arrays = validate_policy_inputs(
    logp,
    old_logp,
    advantages,
    mask,
    ref_logp=ref_logp,
    entropy=entropy,
    is_weights=is_weights,
    correct=correct,
  )
  return _loss_core(*arrays, term=term, config=config, loss_name=loss_name)


def policy_loss_output(
  pg: jax.Array,
  inputs: PolicyInputs,
  config: PolicyLossConfig,
  ratio: jax.Array,
  policy_aux: Mapping[str, jax.Array] | None = None,
  *,
  loss_name: str = "loss",
) -> LossOutput:
  """Adds IS weights, KL and entropy terms to a per-token policy term `pg [N, T]`,
  aggregates, and assembles the shared aux statistics."""
  valid = inputs.valid
  sg = jax.lax.stop_gradient
  dtype = pg.dtype
  if inputs.is_weights is not None:
    pg = pg * inputs.is_weights
  need_kl_term = config.kl_in_loss and config.beta > 0
  _check_requirements(config, loss_name, ref_logp=inputs.ref_logp, entropy=inputs.entropy)
  agg = AGGREGATIONS.get(config.aggregation)
  agg_kwargs = {} if config.norm_constant is None else {"norm_constant": config.norm_constant}

  def aggregate(values):
    return agg(values, valid, **agg_kwargs)

  per_token = pg
  aux: dict[str, jax.Array] = {}
  kl = None
  if inputs.ref_logp is not None:
    kl = jnp.where(
      valid, kl_core(inputs.logp, inputs.ref_logp, config.kl_estimator, config.kl_clamp), 0
    )
  if need_kl_term:
    per_token = per_token + config.beta * kl
    aux["kl_loss_sum"] = sg(aggregate(config.beta * kl)[0])
  if config.entropy_coef != 0:
    per_token = per_token - config.entropy_coef * inputs.entropy
  loss_sum, denominator = aggregate(jnp.where(valid, per_token, 0))

  fvalid = valid.astype(dtype)
  ratio = sg(ratio)
  aux.update(
    {
      "token_count": jnp.sum(fvalid),
      "seq_count": jnp.sum(inputs.row_valid).astype(dtype),
      "loss_denominator": sg(denominator),
      "pg_loss_sum": sg(aggregate(jnp.where(valid, pg, 0))[0]),
      "ratio_mean_token_sum": jnp.sum(jnp.where(valid, ratio, 0)),
      "ratio_min": jnp.min(jnp.where(valid, ratio, jnp.inf)),
      "ratio_max": jnp.max(jnp.where(valid, ratio, -jnp.inf)),
      "adv_mean_seq_sum": jnp.sum(inputs.adv_seq),
      "adv_sq_mean_seq_sum": jnp.sum(jnp.square(inputs.adv_seq)),
      "adv_abs_mean_seq_sum": jnp.sum(jnp.abs(inputs.adv_seq)),
      "response_length_seq_sum": jnp.sum(fvalid),
    }
  )
  if kl is not None:
    aux["kl_mean_token_sum"] = sg(jnp.sum(kl))
  if inputs.entropy is not None:
    aux["entropy_mean_token_sum"] = sg(jnp.sum(inputs.entropy))
  if inputs.is_weights is not None:
    aux["is_weight_mean_token_sum"] = jnp.sum(inputs.is_weights)
  for k, v in (policy_aux or {}).items():
    aux[k] = sg(v)
  return LossOutput(loss_sum, denominator, aux)


def count_where(x: jax.Array, dtype) -> jax.Array:
  return jnp.sum(x).astype(dtype)


def weighted_reinforce(x: PolicyInputs, weight: jax.Array) -> jax.Array:
  """`-sg(w) A logp`: only logp carries gradient, so d/dlogp = -w A for every token."""
  return jnp.where(x.valid, -jax.lax.stop_gradient(weight) * x.advantages * x.logp, 0)


def clipped_weight_aux(
  x: PolicyInputs, ratio: jax.Array, weight: jax.Array, lo: jax.Array, hi: jax.Array
) -> dict[str, jax.Array]:
  """Aux of a clipped-IS-weight term: tokens (A != 0) below/above the band, mean weight."""
  active = x.valid & (x.advantages != 0)
  dtype = ratio.dtype
  return {
    "clip_frac_low_token_sum": count_where(active & (ratio < lo), dtype),
    "clip_frac_high_token_sum": count_where(active & (ratio > hi), dtype),
    "is_clip_weight_mean_token_sum": jnp.sum(jnp.where(x.valid, weight, 0)),
  }
