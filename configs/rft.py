r"""Config for `python -m experiments.rft`: a teacher's verified samples -> RFT and TrajFusion
SFT datasets ("Beyond Rejection Sampling: Trajectory Fusion for Scaling Mathematical
Reasoning", Deng et al., arXiv:2602.04391).

  python -m experiments.rft                                   # the teacher is trained here
  python -m experiments.rft --config.teacher.workdir=outputs/sft_arith
  python -m experiments.rft --config.teacher.workdir= \
      --config.teacher.hf_dir=/m/Qwen3-0.6B --config.task=gsm8k --config.task_config= \
      --config.manual_dir=/data/gsm8k --config.reward=auto --config.prompt.chat=True \
      --config.prompt.answer_format=boxed --config.max_prompt_len=512 \
      --config.sampling.max_new_tokens=1024 --config.trajfusion.max_tokens=4096

The teacher (exactly one source): `teacher.workdir`, an SFT/RL run's workdir with checkpoints
(trained there first from `teacher.train`, an ordinary SFT config, when it has none), or
`teacher.hf_dir`, a local Hugging Face folder with its own tokenizer (`teacher.tokenizer`
overrides it) and chat template (`prompt.chat=True`).

Default (offline, CPU, a few minutes): a small `tiny-qwen3` SFT model trained first in
`<workdir>/teacher` (4 layers, width 128, 600 steps) on synthetic addition (1-3 digits, up to
3 addends: `medium` with `min_digits=1`; compact worked solutions) with 20% of the train
solutions' final answers corrupted (`answer_noise`), so its samples carry errors; then 8
samples per problem of 256 train problems at temperature 1. Variant "quick": a 2-layer teacher
(300 steps) on easy addition (1-2 digits, 2 operands), 4 samples of 16 problems.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import sft_arith  # noqa: E402

_VARIANTS = ("", "quick")

TASK_OVERRIDES = {
  "num_train": 4000,
  "num_test": 128,
  "ops": ("+",),
  "style": "compact",
  "answer_noise": 0.2,
  "min_digits": 1,
  "max_digits": 3,
}


def teacher_sft(variant: str = "") -> ml_collections.ConfigDict:
  """The default teacher: an ordinary SFT config (`configs/sft_arith.py`)."""
  if variant == "quick":
    c = sft_arith.sized(128, 2, 4, 2, num_steps=300, batch_size=32)
    c.task_overrides = dict(TASK_OVERRIDES, num_train=2000, num_test=32, max_digits=2)
    c.eval_examples, c.eval_max_new_tokens = 16, 48
  else:
    c = sft_arith.sized(128, 4, 4, 2, num_steps=600, batch_size=32)
    c.task_overrides = dict(TASK_OVERRIDES)
    c.eval_examples, c.eval_max_new_tokens = 64, 64
  c.task_config = "medium" if not variant else "easy"  # easy: 2 operands
  c.seq_len = 96
  c.log_every = min(c.log_every, c.num_steps)
  return c


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in _VARIANTS:
    raise ValueError(f"unknown rft variant {variant!r}; choose one of {_VARIANTS}")
  teacher = teacher_sft(variant)
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/rft" if not variant else f"outputs/rft_{variant}"
  c.teacher = ml_collections.ConfigDict()
  c.teacher.workdir = os.path.join(c.workdir, "teacher")  # An SFT/RL workdir, or "".
  c.teacher.hf_dir = ""  # A local Hugging Face folder, or "".
  c.teacher.tokenizer = ""  # hf_dir only: "" (the folder's), "byte", or a path.
  c.teacher.dtype = ""
  c.teacher.train = teacher  # Trains teacher.workdir when it has no checkpoint (None: never).
  # The task (as in the SFT config): the train split is sampled, the test split is copied.
  c.task = teacher.task
  c.task_config = teacher.task_config
  c.task_overrides = dict(teacher.task_overrides)
  c.data_dir = ""  # "": <workdir>/data.
  c.manual_dir = ""
  c.prompt_template = teacher.prompt_template
  c.reward = teacher.reward
  c.max_prompt_len = 64
  c.num_test = 0  # Test examples copied into each dataset (0: all).
  # Optional chat prompt (HF teachers), as in the SFT config: chat, system_prompt,
  # instruction, enable_thinking, answer_format, max_prompt_len.
  c.prompt = ml_collections.ConfigDict(
    {"chat": False, "system_prompt": "", "instruction": "", "answer_format": "",
     "max_prompt_len": 0}
  )  # fmt: skip
  # rft.SamplingConfig fields.
  c.sampling = ml_collections.ConfigDict(
    {
      "num_samples": 8,
      "problems_per_batch": 32,
      "max_new_tokens": 64,
      "temperature": 1.0,
      "top_p": 1.0,
      "top_k": 0,
      "seed": 0,
      "max_problems": 256,
    }
  )
  # rft.TrajFusionConfig fields (the spec's DESIGN CHOICEs; reflection: rft.DEFAULT_REFLECTION).
  c.trajfusion = ml_collections.ConfigDict(
    {
      "e_min": 0.125,
      "k_max": 3,
      "max_tokens": 32768,
      "seed": 0,
      "dedup_correct": True,
      "max_per_problem": 0,
    }
  )
  c.mesh = ml_collections.ConfigDict()  # Empty: no mesh; e.g. {"data": -1} shards prompts.
  if variant == "quick":
    c.sampling.num_samples, c.sampling.problems_per_batch = 4, 8
    c.sampling.max_new_tokens, c.sampling.max_problems = 48, 16
  return c
