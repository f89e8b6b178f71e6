"""ReMiT mid-training of a from-scratch tiny model, guided by a frozen RL model (CPU-sized).

"ReMiT: RL-Guided Mid-Training for Iterative LLM Evolution", Huang et al., arXiv 2602.03075.

  python -m experiments.rl_train                                   # the guide: outputs/rl_arith
  python -m experiments.sft --config=configs/remit.py
  python -m experiments.sft --config=configs/remit.py --config.remit.weight_map=tanh \
      --config.remit.eps=0.5 --config.remit.delta_reference=frozen_base

The SFT trainer (configs/sft_arith.py: the same data, model shape and schedule) with
`config.remit`: each target token's NTP loss is weighted by how much more likely the guide
(the RL run's newest checkpoint, byte tokenizer like the learner) finds it than the learner
does (`reasoning_jax.train.remit`). Without `config.remit` (`--config.remit=None`) this is
plain SFT, the baseline.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import sft_arith  # noqa: E402


def get_config() -> ml_collections.ConfigDict:
  c = sft_arith.get_config()
  c.workdir = "outputs/remit_arith"
  c.remit = ml_collections.ConfigDict(
    {
      # The frozen guide: a workdir with checkpoints/ of an SFT or RL run with the learner's
      # tokenizer (guide_hf_dir: a Hugging Face folder instead).
      "guide_workdir": "outputs/rl_arith",
      "guide_hf_dir": "",
      # DESIGN CHOICES (reasoning_jax.train.remit.ReMiTConfig), with their defaults.
      "delta_reference": "current",  # current | frozen_base
      "weight_map": "sigmoid_clip",  # sigmoid_clip | tanh
      "tau": 1.0,
      "eps": 0.2,  # The paper sweeps {0.1, 0.2, 0.5}.
      "centre": "segment",  # segment (packed documents) | sequence
      # frozen_base only: empty = the run's own initial parameters.
      "base_workdir": "",
      "base_hf_dir": "",
    }
  )
  return c
