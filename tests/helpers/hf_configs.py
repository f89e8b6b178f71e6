"""The `tiny` SFT / RL configs (configs/{sft,rl}_{gsm8k,math}.py) pointed at a tiny HF folder.

`sft_hf_config(hf_dir, root, dataset="gsm8k", **changes)` and `rl_hf_config(...)` write
everything under `root` and shrink the runs further (steps, evaluation) for tests.
"""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _configs(kind: str, dataset: str):
  sys.path.insert(0, REPO)
  from configs import rl_gsm8k, rl_math, sft_gsm8k, sft_math

  modules = {
    ("sft", "gsm8k"): sft_gsm8k,
    ("sft", "math"): sft_math,
    ("rl", "gsm8k"): rl_gsm8k,
    ("rl", "math"): rl_math,
  }
  return modules[kind, dataset]


def sft_hf_config(hf_dir, root, dataset: str = "gsm8k", **changes):
  """configs/sft_<dataset>.py:tiny on `hf_dir`, 6 steps, workdir and data under `root`."""
  c = _configs("sft", dataset).get_config("tiny")
  c.model.hf_dir = str(hf_dir)
  c.workdir, c.data_dir = str(root / "sft"), str(root / "data")
  c.num_steps, c.eval_examples, c.eval_max_new_tokens = 6, 2, 4
  for key, value in changes.items():
    c[key] = value
  return c


def rl_hf_config(hf_dir, root, dataset: str = "gsm8k", **changes):
  """configs/rl_<dataset>.py:tiny on `hf_dir`, 8-token rollouts, 2-step SFT warm start."""
  c = _configs("rl", dataset).get_config("tiny")
  c.model.hf_dir = str(hf_dir)
  c.workdir, c.sft.workdir, c.sft.data_dir = str(root / "rl"), str(root / "ws"), str(root / "d")
  c.max_new_tokens, c.checkpoint_every = 8, 2
  c.sft.num_steps, c.sft.eval_examples, c.sft.eval_max_new_tokens = 2, 2, 4
  for key, value in changes.items():
    c[key] = value
  return c
