"""Config for `python -m experiments.remit`: plain vs ReMiT mid-training, then the same RL on each.

"ReMiT: RL-Guided Mid-Training for Iterative LLM Evolution", Huang et al., arXiv 2602.03075.

  python -m experiments.remit                                    # trains the guide first
  python -m experiments.remit --config.guide_workdir=outputs/rl_arith   # the main job's RL run
  python -m experiments.remit --config=configs/remit_experiment.py:flywheel
  python -m experiments.remit --config=configs/remit_experiment.py:quick

Per seed: a from-scratch model (`config.model`, an ordinary SFT config: configs/sft_arith.py
with the main job's noisy demonstrations, answer_noise=0.5) is "pre-trained" by plain SFT for
`pretrain_steps`; from that checkpoint it is mid-trained for `midtrain_steps` on the same data
twice, plain NTP and ReMiT (`config.remit`, guided by the main job's RL model); then the same RL
run (`config.rl`: the DISPO recipe of configs/rl_arith.py, shorter) starts from each mid-trained
model. The guide is `guide_workdir` when given, else the main job (`config.guide`:
configs/rl_arith.py as it is) trained once in `<workdir>/guide`. `flywheel_rounds=k > 1` (the
"flywheel" variant) repeats ReMiT mid-training from the same pre-trained checkpoint with the
previous round's ReMiT RL model as guide (ReMiT^2: mid-train -> RL -> re-mid-train).

Variants, CPU time on 2 shared cores estimated from step timings at full size (SFT ~1 s/step
at batch 64, ReMiT ~1.3 s/step with the guide's forward, RL ~4 s/step for 16 x 8 rollouts,
~40 s per run of compilation and evaluation): "" (3 seeds, 1 round: ~15 min per seed, ~47 min,
plus ~10 min for the guide when it is trained here); "flywheel" (3 seeds, 2 rounds: ~+7 min per
seed, ~70 min plus the guide); "quick" (a tiny model, 2 seeds, 2 rounds, a handful of steps:
the pipeline end to end for CI; measured 68 s with an empty compilation cache on an idle
machine, 45 s with a warm one; its numbers say nothing about ReMiT, and with 2 seeds it gives
no verdict).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import rl_arith, sft_arith  # noqa: E402

_VARIANTS = ("", "flywheel", "quick")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in _VARIANTS:
    raise ValueError(f"unknown remit_experiment variant {variant!r}; choose one of {_VARIANTS}")
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/remit_experiment"
  c.data_dir = ""  # Empty: <workdir>/data, shared by every run of the experiment.
  c.seeds = (0, 1, 2)
  c.flywheel_rounds = 1  # ReMiT mid-training -> RL rounds; round k+1's guide: round k's RL.
  # The guide: an RL run's workdir, or "" = train `config.guide` (the main job) once.
  c.guide_workdir = ""
  c.guide = rl_arith.get_config()  # Its workdirs: <workdir>/guide and <workdir>/guide_sft.
  # The learner: an SFT config (task, data, model, pre-training optimiser); workdir and seed
  # are set per run. The main job's demonstrations: half carry a wrong final answer.
  c.model = sft_arith.get_config()
  c.model.task_overrides = dict(c.model.task_overrides, answer_noise=0.5)
  c.model.eval_examples = 128
  c.model.plot = False
  c.pretrain_steps = 100
  # Mid-training: from the pre-trained checkpoint, a fresh schedule and another data order.
  c.midtrain_steps = 200
  c.midtrain_learning_rate = 1e-3
  c.midtrain_warmup_steps = 20
  # ReMiT's DESIGN CHOICES (reasoning_jax.train.remit.ReMiTConfig); the guide is set per run.
  c.remit = ml_collections.ConfigDict(
    {
      "delta_reference": "current",
      "weight_map": "sigmoid_clip",
      "tau": 1.0,
      "eps": 0.2,
      "centre": "segment",
    }
  )
  # The RL run from each mid-trained model: the main job's recipe (DISPO), shorter; its `sft`
  # section is the mid-training config (loaded from its workdir, never retrained).
  c.rl = rl_arith.get_config()
  del c.rl["sft"]
  c.rl.num_steps = 20
  c.rl.eval_every = c.rl.checkpoint_every = 20
  c.rl.eval_examples = 128
  c.rl.eval_samples = 4  # avg@k at the rollout temperature besides greedy.
  c.rl.plot = False
  c.plot = True
  if variant == "flywheel":
    c.workdir = "outputs/remit_flywheel"
    c.flywheel_rounds = 2
  if variant == "quick":
    c.workdir = "outputs/remit_quick"
    c.seeds = (0, 1)
    c.flywheel_rounds = 2
    c.pretrain_steps, c.midtrain_steps, c.midtrain_warmup_steps = 4, 3, 0
    c.model = _tiny(c.model, num_steps=4)
    c.guide.sft = _tiny(c.guide.sft, num_steps=4)
    for rl in (c.guide, c.rl):
      rl.num_steps = rl.eval_every = rl.checkpoint_every = 2
      rl.group_size, rl.prompts_per_step, rl.max_new_tokens = 2, 4, 8
      rl.eval_examples, rl.eval_samples = 4, 2
      rl.plot = False
  return c


def _tiny(sft: ml_collections.ConfigDict, *, num_steps: int) -> ml_collections.ConfigDict:
  """`sft` with a one-layer width-32 model, a few hundred examples and tiny evaluations."""
  sft.task_overrides = dict(sft.task_overrides, num_train=200, num_test=8)
  sft.model_overrides = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_layers": 1,
    "num_heads": 2,
    "num_kv_heads": 1,
    "head_dim": 16,
    "max_position_embeddings": 256,
  }
  sft.seq_len, sft.batch_size, sft.num_steps, sft.warmup_steps = 48, 8, num_steps, 0
  sft.log_every = sft.eval_every = sft.checkpoint_every = num_steps
  sft.eval_examples, sft.eval_max_new_tokens = 4, 8
  sft.plot = False
  return sft
