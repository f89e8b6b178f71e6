"""Policy-gradient losses of the GRPO family as pure functions of per-token log-probs.

Every loss in `LOSSES` has one signature and never sees a model:

    loss_fn(logp, old_logp, advantages, mask, *, config=None, ref_logp=None,
            entropy=None, is_weights=None, correct=None) -> LossOutput

| argument | shape | meaning |
|---|---|---|
| `logp` | `[N, T]` | log pi_theta of the sampled tokens; the only input that carries gradient |
| `old_logp` | `[N, T]` | log pi_old (behaviour policy) of the same tokens; detached |
| `advantages` | `[N]` or `[N, T]` | per-sequence (broadcast to its tokens) or per-token; detached |
| `mask` | `[N, T]` | 1 on completion tokens that count (incl. EOS), 0 on prompt/padding |
| `config` | frozen dataclass | the loss's hyper-parameters; None = that loss's defaults |
| `ref_logp` | `[N, T]` | log pi_ref; required when `beta > 0` and `kl_in_loss` |
| `entropy` | `[N, T]` | per-token policy entropy: metrics, and the `entropy_coef` term |
| `is_weights` | `[N, T]` | extra per-token weights on the policy-gradient term, e.g. TIS (`reasoning_jax.rl.importance`); detached |
| `correct` | `[N]` bool | only for DISPO `regime_key="correctness"` |

`LossOutput(loss_sum, denominator, aux)`: the mean loss is `loss_sum /
denominator` (`.loss`); both are exact under micro-batching and sharding (sum
the pairs; see `reasoning_jax.rl.aggregation`). `aux` holds raw, mergeable
statistics (`merge_aux` combines micro-batches, `summarize_aux` turns them into
the logged metrics: clip fractions by side, ratio min/mean/max, advantage
mean/std/|A|, KL mean, entropy mean, response length, DISPO per-regime
fractions). Per-token loss (to minimise):

    l_t = is_w_t * pg_t + beta * KL_t [if kl_in_loss] - entropy_coef * H_t

aggregated with the config's `aggregation` mode. Computation is float32 (or
wider) whatever the input dtype; entries where `mask == 0` are ignored even if
they hold NaN/inf.

Registered losses (config dataclass -> defaults, with the rl.md section):

| name | pg_t | config | defaults |
|---|---|---|---|
| `ppo_clip` | `-min(r A, clip(r, 1-eps_low, 1+eps_high) A)` | `PPOClipConfig` | eps 0.2/0.2, token_mean, beta 0 (1.1) |
| `grpo` | same | `GRPOConfig` | eps 0.2/0.2, seq_mean_token_mean, beta 0.04, k3 in loss (1.2) |
| `dapo` | same | `DAPOConfig` | eps_low 0.2, eps_high 0.28, token_mean, beta 0 (1.3) |
| `dr_grpo` | same | `DrGRPOConfig` | eps 0.2/0.2, seq_mean_token_sum_norm (C = T), beta 0 (1.4) |
| `cispo` | `-sg(clip(r, 1-eps_low, 1+eps_high)) A logp` | `CISPOConfig` | eps_low 1.0 (no lower bound), eps_high 0.28 [DESIGN CHOICE], token_mean (1.5) |
| `dispo` | `-sg(w) A logp`, w clipped per regime | `DISPOConfig` | eps_pos_high 0.28, eps_pos_low 0.2, eps_neg_high 4.0, eps_neg_low 1.0, out_of_band clamp, regime_key adv_sign [DESIGN CHOICEs of rl.md 4.1], token_mean |

Every config field is a keyword with the default above; configs validate on
construction (eps ranges, names against `AGGREGATIONS` / `KL_ESTIMATORS`), and the
error names the field. Each public function checks its inputs eagerly (shapes and
dtypes always; values such as NaN advantages or non-0/1 masks when they are
concrete) and then runs a `jax.jit`-compiled core with the config static, so eager
calls are fast and calls inside an outer `jit`/`grad`/`vmap` trace normally.

DAPO's data-side pieces are pure functions here too: `soft_overlong_punishment`
(from token counts), `overlong_filter`, `dynamic_sampling_filter` and
`select_kept_groups` (rl.md 1.3).

Extension: a loss is a function with the signature above plus a frozen config
dataclass (subclass `PolicyLossConfig` to inherit the aggregation/KL/entropy
fields and their validation), registered with
`register_loss("name", config_cls=...)(fn)`; `make_loss("name", **overrides)`
then builds it. `policy_loss_output` assembles KL, entropy, aggregation and the
shared metrics around a custom per-token policy term.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from reasoning_jax.registry import Registry
from reasoning_jax.rl.advantages import _check_group_inputs, group_all_equal, group_count
from reasoning_jax.rl.advantages import _prepare as _prepare_groups
from reasoning_jax.rl.aggregation import (
  AGGREGATIONS,
  check_array,
  check_finite,
  check_mask,
  check_scalar,
  compute_dtype,
  concrete_values,
  validate_aggregation,
)
from reasoning_jax.rl.kl import kl_core, validate_kl

__all__ = [
  "BoundLoss",
  "CISPOConfig",
  "DAPOConfig",
  "DISPOConfig",
  "DrGRPOConfig",
  "DynamicSamplingResult",
  "GRPOConfig",
  "IS_WEIGHT_BANDS",
  "LOSSES",
  "LossOutput",
  "LossSpec",
  "PPOClipConfig",
  "PolicyInputs",
  "PolicyLossConfig",
  "cispo_loss",
  "dapo_loss",
  "dispo_is_weights",
  "dispo_loss",
  "dr_grpo_loss",
  "dynamic_sampling_filter",
  "grpo_loss",
  "loss_config",
  "make_loss",
  "merge_aux",
  "overlong_filter",
  "policy_loss_output",
  "ppo_clip_loss",
  "prepare_policy_inputs",
  "register_loss",
  "response_lengths",
  "select_kept_groups",
  "soft_overlong_punishment",
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


def merge_aux(a: Mapping[str, jax.Array], b: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
  """Combines the raw aux of two micro-batches: `*_min` by min, `*_max` by max, others add."""
  if set(a) != set(b):
    raise ValueError(f"merge_aux: aux keys differ: {sorted(set(a) ^ set(b))}")
  out = {}
  for k in a:
    if k.endswith("_min"):
      out[k] = jnp.minimum(a[k], b[k])
    elif k.endswith("_max"):
      out[k] = jnp.maximum(a[k], b[k])
    else:
      out[k] = a[k] + b[k]
  return out


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
# Configs.
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
  advantages: jax.Array  # [N, T] (broadcast)
  adv_seq: jax.Array  # [N] per-sequence advantage (masked token mean if per-token)
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

  Returns the inputs as arrays, in signature order, untransformed.
  """
  logp = check_array(logp, "logp", ndim=2)
  shape = tuple(logp.shape)
  old_logp = check_array(old_logp, "old_logp", shape=shape)
  mask = check_mask(mask, "mask", shape=shape)
  advantages = check_array(advantages, "advantages", ndim=(1, 2), kind="number")
  if advantages.ndim == 1:
    check_array(advantages, "advantages", shape=shape[:1], kind="number")
    mask_values = concrete_values(mask)
    if mask_values is not None:
      check_finite(advantages, "advantages", where=np.any(mask_values != 0, axis=-1))
  else:
    check_array(advantages, "advantages", shape=shape, kind="number")
    check_finite(advantages, "advantages", where=mask)
  optional = [
    None if x is None else check_array(x, name, shape=shape)
    for name, x in (("ref_logp", ref_logp), ("entropy", entropy), ("is_weights", is_weights))
  ]
  if correct is not None:
    correct = check_mask(correct, "correct", shape=shape[:1])
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
    adv_seq = jnp.sum(adv_tok, axis=-1) / jnp.maximum(row_tokens, 1).astype(dtype)
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


def _check_config(config, default_cls, expected_cls, loss_name: str):
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


def _run_loss(
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
  config = _check_config(config, default_cls, expected_cls, loss_name)
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


def _count(x: jax.Array, dtype) -> jax.Array:
  return jnp.sum(x).astype(dtype)


# --------------------------------------------------------------------------------------------
# PPO-clip family: PPO, GRPO, DAPO, Dr. GRPO.
# --------------------------------------------------------------------------------------------


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
    "clip_frac_low_token_sum": _count(x.valid & (a < 0) & (r < lo), dtype),
    "clip_frac_high_token_sum": _count(x.valid & (a > 0) & (r > hi), dtype),
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
  return _run_loss(
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


# --------------------------------------------------------------------------------------------
# Clipped-IS-weight REINFORCE family: CISPO, DISPO.
# --------------------------------------------------------------------------------------------


def _weighted_reinforce(x: PolicyInputs, weight: jax.Array) -> jax.Array:
  """`-sg(w) A logp`: only logp carries gradient, so d/dlogp = -w A for every token."""
  return jnp.where(x.valid, -jax.lax.stop_gradient(weight) * x.advantages * x.logp, 0)


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
  return _run_loss(
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
  active = x.valid & (x.advantages != 0)
  dtype = ratio.dtype
  policy_aux = {
    "clip_frac_low_token_sum": _count(active & (ratio < lo), dtype),
    "clip_frac_high_token_sum": _count(active & (ratio > hi), dtype),
    "is_clip_weight_mean_token_sum": jnp.sum(jnp.where(x.valid, weight, 0)),
  }
  return _weighted_reinforce(x, weight), ratio, policy_aux


_DISPO_REGIMES = ("pos_high", "pos_low", "neg_high", "neg_low")


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
  config = _check_config(config, DISPOConfig, DISPOConfig, "dispo_is_weights")
  ratio = check_array(ratio, "ratio", ndim=2)
  advantages = check_array(advantages, "advantages", ndim=(1, 2), kind="number")
  if advantages.shape != ratio.shape and advantages.shape != ratio.shape[:1]:
    raise ValueError(
      f"advantages must have shape {ratio.shape[:1]} or {ratio.shape}, got {advantages.shape}"
    )
  if config.regime_key == "correctness":
    if correct is None:
      raise ValueError("correct is required when regime_key='correctness'")
    correct = check_mask(correct, "correct", shape=ratio.shape[:1])
  else:
    correct = None
  return _dispo_weight_jit(ratio.astype(compute_dtype(ratio)), advantages, correct, config=config)


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
  cfg = _check_config(config, DISPOConfig, DISPOConfig, "dispo")
  if cfg.regime_key == "correctness" and correct is None:
    raise ValueError("dispo: correct ([N] bool) is required when regime_key='correctness'")
  return _run_loss(
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
  policy_aux = {
    "clip_frac_low_token_sum": _count(active & (ratio < lo), dtype),
    "clip_frac_high_token_sum": _count(active & (ratio > hi), dtype),
    "is_clip_weight_mean_token_sum": jnp.sum(jnp.where(x.valid, weight, 0)),
  }
  side = {"pos": active & pos, "neg": active & neg}
  for regime in _DISPO_REGIMES:
    sign, level = regime.split("_")
    in_regime = side[sign] & ((ratio > 1) if level == "high" else (ratio < 1))
    clipped = in_regime & ((ratio > hi) if level == "high" else (ratio < lo))
    policy_aux[f"dispo_{regime}_frac_token_sum"] = _count(in_regime, dtype)
    policy_aux[f"dispo_{regime}_clip_frac_token_sum"] = _count(clipped, dtype)
    policy_aux[f"dispo_{regime}_weight_mean_num"] = jnp.sum(jnp.where(in_regime, weight, 0))
    policy_aux[f"dispo_{regime}_weight_mean_den"] = _count(in_regime, dtype)
  return _weighted_reinforce(x, weight), ratio, policy_aux


# --------------------------------------------------------------------------------------------
# Registry, construction by name.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """A `LOSSES` entry: the loss function and its config dataclass."""

  name: str
  fn: Callable[..., LossOutput]
  config_cls: type


LOSSES: Registry[LossSpec] = Registry("loss")


def register_loss(
  name: str, *, config_cls: type, override: bool = False
) -> Callable[[Callable[..., LossOutput]], Callable[..., LossOutput]]:
  """Decorator registering `fn` (the shared loss signature) with its config dataclass."""
  if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)):
    raise TypeError(
      f"register_loss({name!r}): config_cls must be a dataclass type, got {config_cls!r}"
    )

  def decorator(fn):
    LOSSES.register(name, override=override)(LossSpec(name, fn, config_cls))
    return fn

  return decorator


for _name, _fn, _cls in (
  ("ppo_clip", ppo_clip_loss, PPOClipConfig),
  ("grpo", grpo_loss, GRPOConfig),
  ("dapo", dapo_loss, DAPOConfig),
  ("dr_grpo", dr_grpo_loss, DrGRPOConfig),
  ("cispo", cispo_loss, CISPOConfig),
  ("dispo", dispo_loss, DISPOConfig),
):
  register_loss(_name, config_cls=_cls)(_fn)


def loss_config(name: str, **overrides) -> Any:
  """The config of the loss registered as `name`, with `overrides` applied and validated."""
  LOSSES.validate(name, argument="name")
  spec = LOSSES.get(name)
  fields = {f.name for f in dataclasses.fields(spec.config_cls)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(
      f"{spec.config_cls.__name__} has no field(s) {unknown}; fields: {sorted(fields)}"
    )
  return spec.config_cls(**overrides)


@dataclasses.dataclass(frozen=True)
class BoundLoss:
  """A registered loss with its config bound; hashable, so usable as a static jit argument."""

  name: str
  fn: Callable[..., LossOutput]
  config: Any

  def __call__(self, logp, old_logp, advantages, mask, **kwargs) -> LossOutput:
    return self.fn(logp, old_logp, advantages, mask, config=self.config, **kwargs)


def make_loss(name: str, **overrides) -> BoundLoss:
  """`make_loss("dapo", eps_high=0.3)(logp, old_logp, adv, mask)` -> LossOutput."""
  config = loss_config(name, **overrides)
  return BoundLoss(name=name, fn=LOSSES.get(name).fn, config=config)


# --------------------------------------------------------------------------------------------
# DAPO data-side pieces (rl.md 1.3): overlong handling and dynamic sampling.
# --------------------------------------------------------------------------------------------


def response_lengths(mask: jax.Array) -> jax.Array:
  """`|o_i|` = number of completion tokens per row `[N]` (int32) from a `[N, T]` mask."""
  mask = check_mask(mask, "mask", ndim=2)
  return jnp.sum(mask.astype(bool), axis=-1).astype(jnp.int32)


def soft_overlong_punishment(
  lengths: jax.Array, *, max_length: int = 20480, cache_length: int = 4096
) -> jax.Array:
  """DAPO soft overlong punishment `R_len(|y|)` `[N]` float32, from token counts.

  `0` if `|y| <= L_max - L_cache`; `((L_max - L_cache) - |y|) / L_cache` if
  `L_max - L_cache < |y| <= L_max`; `-1` if `|y| > L_max`. Added to the correctness
  reward. Defaults L_max = 20480, L_cache = 4096 (DAPO's reported setup).
  DAPO: An Open-Source LLM Reinforcement Learning System at Scale, arXiv 2503.14476.

  Args:
    lengths: `[N]` integer response lengths (`response_lengths(mask)`).
  """
  check_scalar(max_length, "max_length", low=1, integer=True)
  check_scalar(cache_length, "cache_length", low=1, integer=True)
  if cache_length > max_length:
    raise ValueError(f"cache_length={cache_length} must be <= max_length={max_length}")
  lengths = check_array(lengths, "lengths", ndim=1, kind="number")
  expected = max_length - cache_length
  ln = lengths.astype(jnp.float32)
  ramp = (expected - ln) / cache_length
  return jnp.where(ln <= expected, 0.0, jnp.where(ln <= max_length, ramp, -1.0))


def overlong_filter(mask: jax.Array, truncated: jax.Array) -> jax.Array:
  """DAPO overlong filtering: zero the mask of truncated rows so they leave the loss.

  With every aggregation mode they then drop out of both the sum and the denominator.
  Args: `mask [N, T]`; `truncated [N]` bool (the row hit the length limit without EOS).
  """
  mask = check_mask(mask, "mask", ndim=2)
  truncated = check_mask(truncated, "truncated", shape=mask.shape[:1]).astype(bool)
  return jnp.where(truncated[:, None], jnp.zeros((), mask.dtype), mask)


class DynamicSamplingResult(NamedTuple):
  """`group_keep [num_groups]` (dense group order, see `Groups`) and `row_keep [N]`."""

  group_keep: jax.Array
  row_keep: jax.Array


def dynamic_sampling_filter(
  rewards: jax.Array,
  *,
  group_ids: jax.Array | None = None,
  group_size: int | None = None,
  valid: jax.Array | None = None,
) -> DynamicSamplingResult:
  """DAPO dynamic sampling: keep only groups with mixed outcomes (`0 < #correct < G`).

  A group is kept iff it has valid rows and its valid rewards are not all equal (for 0/1
  correctness that is exactly `0 < #correct < G`; pass the correctness, not a shaped
  reward, to follow DAPO literally). Pure: the caller over-samples prompts, filters, and
  refills the batch (`select_kept_groups`). rl.md 1.3, arXiv 2503.14476.

  Returns:
    `DynamicSamplingResult(group_keep, row_keep)`; with `group_size`, `group_keep` is in
    prompt order (`[N // G]`); with `group_ids`, groups are ordered by ascending id
    (`[N]`, trailing empty slots False).
  """
  rewards, group_ids, group_size, valid = _check_group_inputs(rewards, group_ids, group_size, valid)
  return _dynamic_sampling_core(rewards, group_ids, valid, group_size=group_size)


@functools.partial(jax.jit, static_argnames=("group_size",))
def _dynamic_sampling_core(rewards, group_ids, valid, *, group_size):
  rewards, groups, valid = _prepare_groups(rewards, group_ids, group_size, valid)
  nonempty = group_count(groups, valid) > 0
  keep = nonempty & ~group_all_equal(rewards, groups, valid)
  return DynamicSamplingResult(group_keep=keep, row_keep=groups.broadcast(keep) & valid)


def select_kept_groups(group_keep: jax.Array, num_groups: int) -> tuple[jax.Array, jax.Array]:
  """Indices of the first `num_groups` kept groups (stable), for refilling a batch.

  Returns `(indices [num_groups] int32, filled [num_groups] bool)`; `filled[k]` is False
  when fewer than `k + 1` groups were kept (sample more prompts). jit-compatible.
  """
  check_scalar(num_groups, "num_groups", low=1, integer=True)
  group_keep = check_mask(group_keep, "group_keep", ndim=1)
  num_groups = int(num_groups)
  if num_groups > group_keep.shape[0]:
    raise ValueError(
      f"num_groups={num_groups} exceeds the number of groups {group_keep.shape[0]} in group_keep"
    )
  return _select_core(group_keep.astype(bool), num_groups=num_groups)


@functools.partial(jax.jit, static_argnames=("num_groups",))
def _select_core(group_keep, *, num_groups):
  order = jnp.argsort(~group_keep, stable=True)[:num_groups].astype(jnp.int32)
  filled = jnp.arange(num_groups) < jnp.sum(group_keep)
  return order, filled
