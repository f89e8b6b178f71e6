"""Config for `python -m experiments.grad2reward`: GRPO on sparse rubric rewards vs Grad2Reward.

  python -m experiments.grad2reward                       # 3 seeds x 2 arms, trains the warm start
  python -m experiments.grad2reward --config=configs/grad2reward.py:quick
  python -m experiments.grad2reward --config.rl.judge.tau=0.5 --config.rl.judge.attr_norm=zscore

A `configs/compare_rl.py`-style comparison (`reasoning_jax.rl.grad2reward_compare` runs
`rl.compare.run_comparison` over `config.losses`). `config.rl` is an ordinary RL config
(`configs/rl_rubric.py`): the rubric task, its SFT warm start (demonstrations + judge
demonstrations; trained once in `config.rl.sft.workdir` and shared by every run) and the self-judge (`config.rl.judge`, fields of
`reasoning_jax.credit.Grad2RewardConfig`). Each arm runs the same RL budget from it for every
seed; only the rewards differ: `rubric_grpo` (sparse) or `grad2reward` (dense token rewards,
token-level GRPO). A Hugging Face folder instead of the model trained here:
`--config.rl.model.hf_dir=/m/Qwen3-0.6B --config.rl.warm_start=source
--config.rl.judge.chat=True --config.rl.judge.true_word=True --config.rl.judge.false_word=False`
(an instruction-tuned model judges with its chat template; the task's prompts are unchanged).

Variants: "" (3 seeds x 2 arms x 20 RL steps; 15 min on 2 CPU cores after a 14 min warm
start, 2026-12-05; `--config.rl.judge.attr_norm=zscore` is the arm whose attribution is not
flat under this small judge, see docs/methods/grad2reward.md);
"quick" (a tiny model, 2 seeds, 2 steps: the pipeline end to end for CI; its numbers say
nothing about the method).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import rl_rubric  # noqa: E402

_VARIANTS = ("", "quick")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in _VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; choose one of {_VARIANTS}")
  c = ml_collections.ConfigDict()
  c.variant = variant
  c.workdir = "outputs/grad2reward"
  c.losses = ("rubric_grpo", "grad2reward")  # The arms (recipes), at equal budget.
  c.seeds = (0, 1, 2)
  c.threshold = 0.8  # "Steps to threshold" of the comparison table (held-out rubric score).
  c.metric_label = "held-out rubric score (grader, greedy)"
  c.heatmap_examples = 3
  c.probe_examples = 64  # Held-out prompts x 8 demonstration-like responses the judge is probed on.
  c.plot = True
  c.rl = rl_rubric.get_config()
  c.rl.workdir = ""  # Set per run.
  c.rl.plot = False
  c.rl.sft.workdir = "outputs/grad2reward/warmstart"  # Shared by every run.
  # Equal budget per arm: 20 rollouts of 8 prompts x 8 samples (each judged on 4 items).
  c.rl.prompts_per_step = 8
  c.rl.group_size = 8
  c.rl.learning_rate = 1e-4
  c.rl.eval_examples = 128
  c.rl.num_steps = 20
  c.rl.eval_every = 5
  c.rl.checkpoint_every = 5
  if variant == "quick":
    c.workdir = "outputs/grad2reward_quick"
    c.rl.sft.workdir = "outputs/grad2reward_quick/warmstart"
    c.seeds = (0, 1)
    c.heatmap_examples = 1
    c.probe_examples = 2
    c.rl.sft.task_overrides = {"num_train": 32, "num_test": 4, "num_judge": 32}
    c.rl.sft.model_overrides = {
      "hidden_size": 32,
      "intermediate_size": 64,
      "num_layers": 1,
      "num_heads": 2,
      "num_kv_heads": 1,
      "head_dim": 16,
    }
    c.rl.sft.seq_len, c.rl.sft.batch_size, c.rl.sft.num_steps = 160, 8, 2
    c.rl.sft.eval_examples, c.rl.sft.eval_max_new_tokens = 4, 8
    c.rl.sft.eval_every = c.rl.sft.checkpoint_every = 2
    c.rl.group_size, c.rl.prompts_per_step, c.rl.max_new_tokens = 2, 4, 12
    c.rl.num_steps, c.rl.eval_every, c.rl.eval_examples, c.rl.checkpoint_every = 2, 1, 4, 2
    c.rl.judge.length_bucket = 32
  return c
