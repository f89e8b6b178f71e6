"""RL on countdown from a deliberately weak SFT warm start (CPU-sized): exploration matters.

  python -m experiments.rl_train --config=configs/rl_countdown.py                  # DISPO
  python -m experiments.rl_train --config=configs/rl_countdown.py --config.loss=dapo
  python -m experiments.compare_rl --config=configs/compare_rl.py:countdown   # 4 recipes x 5 seeds

Countdown (`reasoning_jax.data` builder "countdown", TinyZero's task): reach the target from
three numbers in [1, 10] with + - * / (each number at most once, verifier "countdown"). The
prompt is `Make 98 from [14, 2, 9].` and the completion is the bare expression (`14 * (9 - 2)`),
which the verifier reads from the last line: a dozen tokens with the byte tokenizer, so CPU
rollouts stay cheap. Unlike the arithmetic main job (`configs/rl_arith.py`: the warm start
knows the answer and RL removes imitated errors) the warm start here has seen few SFT steps:
it writes well-formed expressions but often over wrong numbers and rarely hits the target, so
RL has to find the hits by sampling (held-out sampled accuracy starts low but above zero).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import rl_arith  # noqa: E402


def get_config() -> ml_collections.ConfigDict:
  c = rl_arith.get_config()  # The main job's RL settings; the task and warm start differ.
  c.workdir = "outputs/rl_countdown"
  c.max_new_tokens = 24  # Expressions are <= 14 bytes here; the rest is room to ramble.
  # Probed from a weaker warm start (500 SFT steps, sampled accuracy 0.03): 5e-5 left held-out
  # accuracy flat over 30 steps, 3e-4 collapsed it (0.03 -> 0.004, greedy 0.12 -> 0.02).
  c.learning_rate = 1e-4
  c.sft.workdir = "outputs/rl_countdown_warmstart"
  c.sft.task = "countdown"
  c.sft.task_config = "default"
  c.sft.task_overrides = {
    "num_train": 20000,
    "num_test": 256,
    "min_numbers": 3,
    "max_numbers": 3,
    "max_value": 10,
    "max_target": 100,
  }
  c.sft.prompt_template = "Make {target} from {numbers}.\n"
  c.sft.target_field = "answer"
  c.sft.reward = "countdown"
  c.sft.seq_len = 48
  c.sft.eval_max_new_tokens = c.max_new_tokens
  # DESIGN CHOICE of this demo: a short SFT (weak warm start), so RL has room to explore.
  # Measured after 600 steps: held-out greedy accuracy 0.21, sampled (avg@4, T=1) 0.06,
  # pass@4 0.22 (500 steps: 0.12 / 0.03; 1000 steps: about 0.4 / 0.2).
  c.sft.num_steps = 600
  c.sft.warmup_steps = 20
  c.sft.eval_every = 1000
  c.sft.checkpoint_every = 1000
  return c
