"""Config for `python -m experiments.compare_rl`: every RL recipe at equal budget, several seeds.

Variants (`--config=configs/compare_rl.py:<variant>`):
  * "" (default): all seven recipes x 3 seeds, 20 rollouts with two updates each;
  * "main_job": the main job (`configs/rl_arith.py`, DISPO, unchanged budget) over 3 seeds;
  * "countdown": GRPO, DAPO, CISPO and DISPO x 5 seeds on countdown from a weak SFT warm
    start (`configs/rl_countdown.py`), where RL has to find the solutions by sampling;
    four updates per rollout (2 epochs x 2 mini-batches), so the ratio-dependent clipping
    engages;
  * "countdown_hf": the same four recipes, budget and task through the Hugging Face path: the
    model is a folder (`config.fresh_hf`, built once: a byte-level BPE trained on the task's
    text with ChatML specials and chat template, and a random model of the warm start's size
    in Qwen3 format), the SFT warm start trains from it with its tokenizer and chat template,
    and RL reads `rl.model.hf_dir`. `--config.rl.model.hf_dir=/m/Qwen2.5-0.5B` runs the
    comparison on a real checkpoint instead (nothing is built);
  * "countdown_hf_offpolicy": countdown_hf with each rollout used for eight updates (4 epochs
    x 2 mini-batches), so the ratio-dependent bounds bind more often; same folder and warm
    start; "countdown_hf_offpolicy_dispo_mask": its DISPO runs with weights outside the band
    zeroed and the incorrect band's floor at 0.8 (a trust region on incorrect answers);
  * "quick" / "main_job_quick" / "countdown_quick" / "countdown_hf_quick": the same at tiny
    sizes (a 1-layer width-32 model, 2 RL steps, 2 seeds): what `python -m
    experiments.reproduce --suite=quick` runs. They check the pipeline end to end; their numbers say nothing
    about the methods.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import rl_arith, rl_countdown, sft_gsm8k  # noqa: E402


_VARIANTS = (
  "",
  "main_job",
  "quick",
  "main_job_quick",
  "countdown",
  "countdown_quick",
  "countdown_hf",
  "countdown_hf_quick",
  "countdown_hf_offpolicy",
  "countdown_hf_offpolicy_dispo_mask",
)


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
  if variant.startswith("countdown_hf"):
    c.workdir = "outputs/compare_rl_countdown_hf"
    c.rl.sft.workdir = c.workdir + "/warmstart"
    c.rl.model = sft_gsm8k.model_source("")  # Set to fresh_hf.dir unless given.
    c.rl.sft.prompt = sft_gsm8k.prompt_config()
    c.rl.sft.prompt.instruction = ""  # The user turn is the countdown question itself.
    c.rl.sft.prompt.answer_format = ""  # Targets stay bare expressions (verifier "countdown").
    c.rl.sft.prompt.enable_thinking = None
    c.rl.sft.prompt.max_prompt_len = 0  # 0: sft.seq_len.
    c.rl.sft.prompt_template = "Make {target} from {numbers}."
    # The same 600 SFT steps give a stronger warm start through the BPE (an expression is
    # ~9 BPE tokens where it was ~12 bytes): measured greedy 0.37, sampled 0.19 (byte: 0.21,
    # 0.06), so "steps to" is read at 0.3.
    c.threshold = 0.3
    c.fresh_hf = ml_collections.ConfigDict(
      {
        "dir": "",  # "": <workdir>/fresh_hf.
        "vocab_size": 320,  # BPE ids: 256 bytes + 3 specials + merges learnt on the task.
        "preset": c.rl.sft.preset,
        "model_overrides": dict(c.rl.sft.model_overrides),  # The byte warm start's size.
        "corpus_examples": 20000,
        "seed": 0,
      }
    )
  if variant.startswith("countdown_hf_offpolicy"):
    # Do DISPO's per-regime bounds help when they bind? Each rollout used for eight updates
    # (4 epochs x 2 mini-batches) instead of four, so the ratio drifts further from 1; the
    # same folder and warm start as countdown_hf (trained there first if missing).
    c.workdir = "outputs/compare_rl_countdown_hf_offpolicy"
    c.fresh_hf.dir = "outputs/compare_rl_countdown_hf/fresh_hf"
    c.rl.ppo_epochs = 4
  if variant == "countdown_hf_offpolicy_dispo_mask":
    # The reading of countdown_hf_offpolicy under test: DISPO with a trust region on the
    # incorrect regime (weights outside the band zeroed, incorrect band [0.8, 5]).
    c.workdir += "_dispo_mask"
    c.losses = ("dispo",)
    c.rl.loss_overrides = ml_collections.ConfigDict({"out_of_band": "mask", "eps_neg_low": 0.2})
  if variant.endswith("quick"):
    c.workdir += "_quick"
    c.seeds = (0, 1)
    if variant in ("quick", "countdown_hf_quick"):
      c.losses = ("grpo", "dispo")
    elif variant == "countdown_quick":
      c.losses = ("grpo", "dapo", "dispo")
    c.rl.sft.workdir = c.workdir + "/warmstart"
    shrink_to_quick(c.rl)
    if variant == "countdown_hf_quick":
      c.fresh_hf.model_overrides = dict(c.rl.sft.model_overrides)
      c.fresh_hf.corpus_examples = c.rl.sft.task_overrides["num_train"]
  return c
