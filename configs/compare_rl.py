"""Config for `python -m experiments.compare_rl`: every RL recipe at equal budget, several seeds."""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import rl_arith  # noqa: E402


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/compare_rl"
  c.losses = ("grpo", "dapo", "drgrpo", "cispo", "dispo", "arm", "mrpo")
  c.seeds = (0, 1, 2)
  c.threshold = 0.8  # "Steps to threshold": first eval step reaching this held-out accuracy.
  c.rl = rl_arith.get_config()  # Shared budget; the SFT warm start is trained once and reused.
  c.rl.workdir = ""  # Set per run.
  c.rl.plot = False
  return c
