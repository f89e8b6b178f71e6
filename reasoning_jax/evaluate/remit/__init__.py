"""The ReMiT experiment (`python -m experiments.remit`): plain vs ReMiT mid-training, then RL."""

from reasoning_jax.evaluate.remit.experiment import (
  arm_names,
  compare,
  markdown,
  midtrain_config,
  pretrain_config,
  rl_config,
  run,
  summarize,
)

__all__ = [
  "arm_names",
  "compare",
  "markdown",
  "midtrain_config",
  "pretrain_config",
  "rl_config",
  "run",
  "summarize",
]
