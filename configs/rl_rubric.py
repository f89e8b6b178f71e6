"""Grad2Reward on the synthetic rubric task: a self-judging policy trained from scratch (CPU).

  python -m experiments.rl_train --config=configs/rl_rubric.py                # dense (Grad2Reward)
  python -m experiments.rl_train --config=configs/rl_rubric.py --config.loss=rubric_grpo

The warm start is SFT on the `rubric` task (reasoning_jax.data.rubric_builder): demonstration
responses of random quality (each rubric part present at random) plus judge demonstrations
(request -> Y/N, labelled by the items' checks), so the SFT model both answers imperfectly and
judges. RL then scores its rollouts with a frozen copy of that model (self-judging,
`config.judge.model="self"`): `rubric_grpo` gives GRPO the sparse rubric reward,
`grad2reward` spreads it over the response tokens by Gradient x Embedding through the judge
(arXiv 2602.01791) and uses token-level GRPO advantages. Held-out `eval/accuracy` is the mean
rubric score of greedy responses under the programmatic grader (`rubric_rules`), never seen in
training.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import rl_arith, sft_rubric  # noqa: E402
from reasoning_jax.data.rubric_task import FALSE_WORD, TRUE_WORD, judge_template  # noqa: E402


def get_config() -> ml_collections.ConfigDict:
  c = rl_arith.get_config()
  c.workdir = "outputs/rl_rubric"
  c.loss = "grad2reward"  # | rubric_grpo (sparse rubric reward, the paper's GRPO baseline).
  c.loss_overrides = ml_collections.ConfigDict({"beta": 0.0})
  c.max_new_tokens = 64
  c.num_steps = 40
  c.eval_every = 10
  c.checkpoint_every = 10
  c.eval_samples = 0
  # The judge (reasoning_jax.rl.judge_scorer): fields of credit.Grad2RewardConfig, plus
  # model = "self" (a frozen copy of the warm start) or a directory (an external judge).
  c.judge = ml_collections.ConfigDict(
    {
      "model": "self",
      "template": judge_template(),
      "true_word": TRUE_WORD,
      "false_word": FALSE_WORD,
      "tau": 1.0,
      "attr_norm": "none",
    }
  )
  c.sft = sft_rubric.get_config()
  return c
