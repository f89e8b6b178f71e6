r"""RL (DISPO) of a local Hugging Face checkpoint on MATH, prompts in its chat template.

  python -m experiments.rl_train --config=configs/rl_math.py \
      --config.model.hf_dir=/data/Qwen3-0.6B --config.sft.manual_dir=/data/math
  python -m experiments.rl_train --config=configs/rl_math.py:tiny \
      --config.model.hf_dir=/tmp/tiny_qwen3                  # CI size, fixture data

The GSM8K RL config (configs/rl_gsm8k.py, same variants and settings) with its task swapped
to MATH by `sft_math.use_math` (data, prompt limits, `warm_start="sft"` target) and longer
rollouts. Rewards come from the `boxed` verifier against the example's `answer` (MATH-500's
`answer` field, else the last `\boxed{}` of the reference solution).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import rl_gsm8k, sft_math  # noqa: E402


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = rl_gsm8k.get_config(variant)
  c.workdir = c.workdir.replace("gsm8k", "math")
  sft_math.use_math(c.sft, variant)
  if variant not in ("tiny", "tiny_lora"):
    c.max_new_tokens = 1024
  return c
