"""Pure, optax-compatible RL losses for reasoning LLMs (functions of arrays, never of a model).

Modules:
  advantages    group-relative advantage estimators (`ADVANTAGES`: grpo, dr_grpo, rloo).
  token_advantages  token-level estimators for dense rewards (`ADVANTAGES`: token_grpo,
                token_rloo; `[N, T]` in and out) and `sequence_to_token_rewards`.
  kl            per-token KL estimators (`KL_ESTIMATORS`: k1, k2, k3) and KL-in-reward.
  aggregation   (sum, denominator) aggregation modes (`AGGREGATIONS`).
  losses        PPO-clip / GRPO / DAPO / Dr. GRPO / CISPO / DISPO (`LOSSES`, `make_loss`).
  dapo_filters  DAPO overlong handling and dynamic sampling (data-side, not losses).
  importance    truncated importance sampling for the sampler/trainer mismatch.
  arm, mrpo     ARM and MRPO advantage estimators, registered into `ADVANTAGES` on import.
  rollout, trainer  sampling and the RL training loop (imported on use, not here).
"""

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
from reasoning_jax.rl.token_advantages import (
  TOKEN_LEVEL_ESTIMATORS,
  is_token_level,
  returns_to_go,
  sequence_to_token_rewards,
  token_grpo_advantages,
  token_rloo_advantages,
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
from reasoning_jax.rl.dapo_filters import (
  DynamicSamplingResult,
  dynamic_sampling_filter,
  overlong_filter,
  response_lengths,
  select_kept_groups,
  soft_overlong_punishment,
)
from reasoning_jax.rl.losses import (
  LOSSES,
  BoundLoss,
  CISPOConfig,
  DAPOConfig,
  DISPOConfig,
  DrGRPOConfig,
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
  grpo_loss,
  loss_config,
  make_loss,
  merge_aux,
  policy_loss_output,
  ppo_clip_loss,
  prepare_policy_inputs,
  register_loss,
  summarize_aux,
)


# Registered last: they import the modules above and add their estimators to ADVANTAGES.
from reasoning_jax.rl import arm, mrpo
