"""SFT warm start of the rubric task: imperfect demonstrations + judge demonstrations (CPU).

  python -m experiments.sft --config=configs/sft_rubric.py

The `rubric` builder (reasoning_jax.data.rubric_builder) writes `train` (prompts with a
demonstration response whose rubric parts are each present at random) and an SFT-only `judge`
split (judge request -> Y/N from the items' checks); SFT reads both, so the model answers
imperfectly and judges: it is the self-judge of configs/rl_rubric.py. Held-out
`eval/accuracy` is the mean rubric score of greedy responses (grader `rubric_rules`).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import sft_arith  # noqa: E402


def get_config() -> ml_collections.ConfigDict:
  c = sft_arith.get_config()
  c.workdir = "outputs/rl_rubric_warmstart"
  c.task = "rubric"
  c.task_config = "default"
  c.task_overrides = {"num_train": 4000, "num_test": 128, "num_judge": 8000}
  c.reward = "rubric_rules"
  c.seq_len = 192  # Judge requests are ~150 bytes.
  c.num_steps = 800
  c.eval_every = 400
  c.checkpoint_every = 400
  c.eval_max_new_tokens = 64
  return c
