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

DAPO's data-side pieces are pure functions in `reasoning_jax.rl.dapo_filters`
(re-exported here): `soft_overlong_punishment` (from token counts), `overlong_filter`,
`dynamic_sampling_filter` and `select_kept_groups` (rl.md 1.3).

Modules: `base` (inputs, output, `PolicyLossConfig`, the shared loss shell),
`registry` (`LOSSES`, `register_loss`, `loss_config`, `make_loss`), `ppo_clip`
(ppo_clip, grpo, dapo, dr_grpo), `cispo`, `dispo`.

Extension: a loss is a function with the signature above plus a frozen config
dataclass (subclass `PolicyLossConfig` to inherit the aggregation/KL/entropy
fields and their validation), registered with
`register_loss("name", config_cls=...)(fn)`; `make_loss("name", **overrides)`
then builds it. `policy_loss_output` assembles KL, entropy, aggregation and the
shared metrics around a custom per-token policy term.
"""

from reasoning_jax.rl.dapo_filters import (
  DynamicSamplingResult,
  dynamic_sampling_filter,
  overlong_filter,
  response_lengths,
  select_kept_groups,
  soft_overlong_punishment,
)
from reasoning_jax.rl.losses.base import (
  LossOutput,
  PolicyInputs,
  PolicyLossConfig,
  merge_aux,
  policy_loss_output,
  prepare_policy_inputs,
  summarize_aux,
  validate_policy_inputs,
)
from reasoning_jax.rl.losses.registry import (
  LOSSES,
  BoundLoss,
  LossSpec,
  loss_config,
  make_loss,
  register_loss,
)

# The method modules register their losses in LOSSES when imported, in this order.
from reasoning_jax.rl.losses.ppo_clip import (
  DAPOConfig,
  DrGRPOConfig,
  GRPOConfig,
  PPOClipConfig,
  dapo_loss,
  dr_grpo_loss,
  grpo_loss,
  ppo_clip_loss,
)
from reasoning_jax.rl.losses.cispo import CISPOConfig, cispo_loss
from reasoning_jax.rl.losses.dispo import (
  DISPO_REGIME_KEYS,
  DISPO_REGIMES,
  IS_WEIGHT_BANDS,
  DISPOConfig,
  dispo_is_weights,
  dispo_loss,
)

__all__ = [
  "BoundLoss",
  "CISPOConfig",
  "DAPOConfig",
  "DISPOConfig",
  "DISPO_REGIME_KEYS",
  "DISPO_REGIMES",
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
