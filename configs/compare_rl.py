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
  c.threshold = 0.5  # "Steps to threshold": first eval step whose sampled accuracy reaches it.
  c.rl = rl_arith.get_config()  # Shared budget; the SFT warm start is trained once and reused.
  c.rl.workdir = ""  # Set per run.
  c.rl.plot = False
  # Equal budget per recipe: 20 rollouts, each used for two updates (two mini-batches), so the
  # second update is off-policy and the ratio-dependent rules (PPO/DAPO clipping, CISPO/DISPO
  # weight bounds) engage; with one on-policy update they all reduce to REINFORCE.
  c.rl.num_steps = 20
  c.rl.mini_batches = 2
  c.rl.eval_every = 10
  return c
