"""Token-reward pictures of Grad2Reward (arXiv 2602.01791): a self-judge's token rewards over
its own responses, as data and as coloured text; and which rubric criteria the judge can
check (`judge_probe`). The comparison with GRPO is
`reasoning_jax.rl.grad2reward_compare` (it runs RL)."""

from reasoning_jax.evaluate.grad2reward.judge_probe import (
  judge_probe_lines,
  probe_judge,
  warm_start_probe,
)
from reasoning_jax.evaluate.grad2reward.heatmap import (
  judge_examples,
  plot_heatmap,
  token_reward_examples,
)

__all__ = [
  "judge_examples",
  "judge_probe_lines",
  "plot_heatmap",
  "probe_judge",
  "token_reward_examples",
  "warm_start_probe",
]
