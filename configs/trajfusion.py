r"""Config for `python -m experiments.trajfusion`: SFT on RFT data vs on TrajFusion data.

"Beyond Rejection Sampling: Trajectory Fusion for Scaling Mathematical Reasoning", Deng et
al., arXiv:2602.04391.

  python -m experiments.trajfusion                               # teacher trained here once
  python -m experiments.trajfusion --config=configs/trajfusion.py:quick
  python -m experiments.trajfusion --config.pipeline.teacher.workdir=outputs/sft_arith

`config.pipeline` is the RFT pipeline's config (`configs/rft.py`): the teacher (an SFT
workdir, trained from `pipeline.teacher.train` when it has no checkpoint), the task, sampling
and TrajFusion's construction; per seed it samples into `<workdir>/seed<s>/samples`.
`config.student` are the SFT settings both arms share (the student continues the teacher's
checkpoint); `config.eval` the held-out greedy decoding.

DEVIATION (CPU scale): the reflection text is shorter than `rft.DEFAULT_REFLECTION` (one
line), so that fused samples of k <= 3 wrong trajectories fit the student's 288-token
sequences; `trajfusion.max_tokens` drops wrong segments from the front of longer ones.

Variants: "" (3 seeds; the `configs/rft.py` teacher, 4-5 min of SFT, trained once; 1024
problems x 8 samples per seed; 150-step students of batch 16 at lr 1e-4: a first run with
256 problems and lr 1e-3 lost 20 points of the teacher's accuracy in the RFT arm as well);
"quick" (2 seeds, the quick teacher on easy addition, 10-step students: the pipeline end to end in about 2 min; its
numbers say nothing about the methods).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import rft  # noqa: E402

_VARIANTS = ("", "quick")

REFLECTION = "\nWait, that answer is wrong. Let me solve it again.\n"


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in _VARIANTS:
    raise ValueError(f"unknown trajfusion variant {variant!r}; choose one of {_VARIANTS}")
  c = ml_collections.ConfigDict()
  c.workdir = "outputs/trajfusion" if not variant else f"outputs/trajfusion_{variant}"
  c.seeds = (0, 1, 2)  # Sampling, construction and SFT seed of each run.
  c.pipeline = rft.get_config(variant)
  c.pipeline.teacher.workdir = os.path.join(c.workdir, "teacher")
  c.pipeline.trajfusion.reflection = REFLECTION
  if not variant:  # ~700 RFT samples per seed (256 problems gave ~170).
    c.pipeline.sampling.max_problems = 1024
  c.student = ml_collections.ConfigDict(
    {
      "num_steps": 150,
      "batch_size": 16,
      "seq_len": 288,
      "learning_rate": 1e-4,
      "warmup_steps": 20,
      "eval_examples": 8,  # The trainer's own end-of-run check (the experiment evaluates).
    }
  )
  # Fused responses fit the student's sequences (the prompt takes < 40 tokens).
  c.pipeline.trajfusion.max_tokens = c.student.seq_len - 40
  c.eval = ml_collections.ConfigDict({"num_examples": 128, "max_new_tokens": 256, "batch_size": 64})
  c.plot = True
  if variant == "quick":
    c.seeds = (0, 1)
    c.student.num_steps, c.student.batch_size, c.student.seq_len = 10, 8, 160
    c.pipeline.trajfusion.max_tokens = c.student.seq_len - 40
    c.eval.num_examples, c.eval.max_new_tokens, c.eval.batch_size = 16, 96, 16
  return c
