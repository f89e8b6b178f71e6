"""RFT vs TrajFusion: the sampling pipeline and the SFT comparison built on it.

"Beyond Rejection Sampling: Trajectory Fusion for Scaling Mathematical Reasoning", Deng et
al., arXiv:2602.04391.

  * `pipeline`: `run_pipeline(config)`, a teacher (SFT/RL workdir or Hugging Face folder)
    sampled into resumable samples and the RFT / TrajFusion SFT datasets built from them
    (`python -m experiments.rft`, `configs/rft.py`);
  * `experiment`: `run(config)`, SFT of the teacher on each dataset over seeds, held-out
    accuracy overall and by difficulty, response lengths (`python -m experiments.trajfusion`,
    `configs/trajfusion.py`).
"""

from reasoning_jax.evaluate.trajfusion.experiment import (
  bucket_accuracy,
  difficulty,
  markdown,
  run,
  score_rows,
  summarize,
  verdict,
)
from reasoning_jax.evaluate.trajfusion.pipeline import (
  PipelineError,
  Teacher,
  load_teacher,
  run_pipeline,
  sft_flags,
  validate,
)

__all__ = [
  "PipelineError",
  "Teacher",
  "bucket_accuracy",
  "difficulty",
  "load_teacher",
  "markdown",
  "run",
  "run_pipeline",
  "score_rows",
  "sft_flags",
  "summarize",
  "validate",
  "verdict",
]
