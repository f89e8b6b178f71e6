"""Pure, optax-compatible RL losses for reasoning LLMs (functions of arrays, never of a model).

Modules:
  advantages   group-relative advantage estimators (`ADVANTAGES`: grpo, dr_grpo, rloo).
  kl           per-token KL estimators (`KL_ESTIMATORS`: k1, k2, k3) and KL-in-reward.
  aggregation  (sum, denominator) aggregation modes (`AGGREGATIONS`).
  losses       PPO-clip / GRPO / DAPO / Dr. GRPO / CISPO / DISPO (`LOSSES`, `make_loss`),
               DAPO overlong handling and dynamic sampling.
  importance   truncated importance sampling for the sampler/trainer mismatch.

Method modules written separately (`arm`, `mrpo`) are imported when present and
register themselves into these registries; the package works without them.
"""

import importlib as _importlib

from reasoning_jax.rl.advantages import (
  ADVANTAGES,
  Groups,
  compute_advantages,
  dr_grpo_advantages,
  group_all_equal,
  group_count,
  group_sum,
  grpo_advantages,
  make_groups,
  rloo_advantages,
  validate_group_inputs,
  zero_variance_group_fraction,
)
from reasoning_jax.rl.aggregation import (
  AGGREGATIONS,
  aggregate,
  seq_mean_token_mean,
  seq_mean_token_sum_norm,
  token_mean,
)
from reasoning_jax.rl.importance import (
  IS_CORRECTIONS,
  truncated_importance_weights,
  with_truncated_is,
)
from reasoning_jax.rl.kl import KL_ESTIMATORS, k1, k2, k3, kl_divergence, kl_penalized_rewards
from reasoning_jax.rl.losses import (
  LOSSES,
  BoundLoss,
  CISPOConfig,
  DAPOConfig,
  DISPOConfig,
  DrGRPOConfig,
  DynamicSamplingResult,
  GRPOConfig,
  LossOutput,
  LossSpec,
  PolicyLossConfig,
  PPOClipConfig,
  cispo_loss,
  dapo_loss,
  dispo_is_weights,
  dispo_loss,
  dr_grpo_loss,
  dynamic_sampling_filter,
  grpo_loss,
  loss_config,
  make_loss,
  merge_aux,
  overlong_filter,
  policy_loss_output,
  ppo_clip_loss,
  prepare_policy_inputs,
  register_loss,
  response_lengths,
  select_kept_groups,
  soft_overlong_punishment,
  summarize_aux,
)


def _import_optional(name: str):
  """Imports `reasoning_jax.rl.<name>` if the file exists; real errors inside it propagate."""
  qualified = f"{__name__}.{name}"
  try:
    return _importlib.import_module(qualified)
  except ModuleNotFoundError as e:
    if e.name == qualified:
      return None
    raise


# Registered last, so they can import everything above from this package.
arm = _import_optional("arm")
mrpo = _import_optional("mrpo")
