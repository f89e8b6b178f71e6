"""Config for `python -m experiments.compare_rl`: every RL recipe at equal budget, several seeds.

Variants (`--config=configs/compare_rl.py:<variant>`):
  * "" (default): all seven recipes x 3 seeds, 20 rollouts with two updates each;
  * "main_job": the main job (`configs/rl_arith.py`, DISPO, unchanged budget) over 3 seeds;
  * "countdown": GRPO, DAPO, CISPO and DISPO x 5 seeds on countdown from a weak SFT warm
    start (`configs/rl_countdown.py`), where RL has to find the solutions by sampling;
    two updates per rollout, so the ratio-dependent clipping engages;
  * "quick" / "main_job_quick" / "countdown_quick": the same at tiny sizes (a 1-layer
    width-32 model, 2 RL steps, 2 seeds): what `python -m experiments.reproduce
    --suite=quick` runs in CI. They check the pipeline end to end; their numbers say nothing
    about the methods.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import rl_arith, rl_countdown  # noqa: E402


_VARIANTS = ("", "main_job", "quick", "main_job_quick", "countdown", "countdown_quick")


def shrink_to_quick(rl: ml_collections.ConfigDict) -> None:
  """Tiny sizes for an `rl_arith`-style config (in place): seconds per run after compiling."""
  rl.sft.task_overrides = dict(rl.sft.task_overrides, num_train=256, num_test=16)
  rl.sft.model_overrides = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_layers": 1,
    "num_heads": 2,
    "num_kv_heads": 1,
    "head_dim": 16,
  }
  rl.sft.seq_len, rl.sft.batch_size, rl.sft.num_steps = 48, 8, 20
  rl.sft.log_every, rl.sft.eval_every, rl.sft.checkpoint_every = 10, 1000, 20
  rl.sft.eval_examples, rl.sft.eval_max_new_tokens = 8, 16
  rl.sft.plot = False
  rl.group_size, rl.prompts_per_step, rl.max_new_tokens = 2, 4, 16
  rl.num_steps, rl.eval_every, rl.eval_examples, rl.eval_samples = 2, 1, 8, 2
  rl.checkpoint_every = 2


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in _VARIANTS:
    raise ValueError(f"unknown compare_rl variant {variant!r}; choose one of {_VARIANTS}")
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
  if variant.startswith("main_job"):
    c.workdir = "outputs/main_job"
    c.losses = ("dispo",)
    c.rl = rl_arith.get_config()  # The main job's own budget (one update per rollout).
    c.rl.workdir = ""
    c.rl.plot = False
  if variant.startswith("countdown"):
    c.workdir = "outputs/compare_rl_countdown"
    c.losses = ("grpo", "dapo", "cispo", "dispo")
    c.seeds = (0, 1, 2, 3, 4)
    c.threshold = 0.1  # The warm start's sampled accuracy is about 0.06.
    c.rl = rl_countdown.get_config()  # Its weak warm start, trained once for all 20 runs.
    c.rl.workdir = ""
    c.rl.plot = False
    # Equal budget per recipe, sized so 4 recipes x 5 seeds + the warm start take about
    # 45 min on 2 CPU cores: 25 rollouts of 16 prompts x 8 samples, each used for four
    # updates (2 epochs x 2 mini-batches), held-out accuracy every 5 steps. With two
    # updates per rollout the ratio barely leaves 1 at this learning rate (clip fractions
    # <= 0.1% of tokens); the second epoch revisits rows already updated once (0.5-1.5%).
    # DAPO's dynamic sampling still draws up to max_dynamic_batches=3 rollout batches a step.
    c.rl.num_steps = 25
    c.rl.mini_batches = 2
    c.rl.ppo_epochs = 2
    c.rl.eval_every = 5
  if variant.endswith("quick"):
    c.workdir += "_quick"
    c.seeds = (0, 1)
    if variant == "quick":
      c.losses = ("grpo", "dispo")
    elif variant == "countdown_quick":
      c.losses = ("grpo", "dapo", "dispo")
    c.rl.sft.workdir = c.workdir + "/warmstart"
    shrink_to_quick(c.rl)
  return c
