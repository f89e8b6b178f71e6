"""Token-level credit: rubric judging and Grad2Reward dense rewards.

* the rubric format `(criterion, weight)` and the sparse rubric reward live with the other
  rewards (`reasoning_jax.rewards.rubric`) and are re-exported here;
* `judge`: the judge template, verdict tokens resolved through the tokenizer, and the exact
  map from judge positions to the policy's response tokens.
* `attribution`: Gradient x Embedding through a frozen judge (input-only backward) and the
  attribution softmax.
* `grad2reward`: `Grad2Reward`, which turns a policy batch into verdicts, sparse rewards and
  conserved per-token rewards (and the ORM variant).

Grad2Reward: From Sparse Judgment to Dense Rewards for Improving Open-Ended LLM Reasoning
(Zhang et al.), arXiv 2602.01791. The per-token advantage estimators that consume these rewards
are in `reasoning_jax.rl` (`token_grpo`, `token_rloo`).
"""

from reasoning_jax.credit.attribution import (
  ATTR_NORMS,
  JudgeFunctions,
  attribution_weights,
  grad_x_input,
)
from reasoning_jax.credit.grad2reward import (
  DenseRewards,
  Grad2Reward,
  Grad2RewardConfig,
  scatter_token_rewards,
)
from reasoning_jax.credit.judge import (
  DEFAULT_TEMPLATE,
  JudgeBatch,
  JudgeError,
  JudgeFormat,
  build_judge_batch,
  check_same_tokenizer,
  response_columns,
  verdict_token_id,
)
from reasoning_jax.rewards.rubric import (
  Rubric,
  RubricError,
  RubricItem,
  rubric_arrays,
  sparse_rubric_reward,
)

__all__ = [
  "ATTR_NORMS",
  "DEFAULT_TEMPLATE",
  "DenseRewards",
  "Grad2Reward",
  "Grad2RewardConfig",
  "JudgeBatch",
  "JudgeError",
  "JudgeFormat",
  "JudgeFunctions",
  "Rubric",
  "RubricError",
  "RubricItem",
  "attribution_weights",
  "build_judge_batch",
  "check_same_tokenizer",
  "grad_x_input",
  "response_columns",
  "rubric_arrays",
  "scatter_token_rewards",
  "sparse_rubric_reward",
  "verdict_token_id",
]
