r"""SFT on RFT data vs on TrajFusion data built from the same samples, over seeds.

  python -m experiments.trajfusion [--config=configs/trajfusion.py[:quick]] \
      [--config.pipeline.teacher.workdir=outputs/sft_arith] [--config.seeds="(0,1,2)"]

Thin absl main over `reasoning_jax.evaluate.trajfusion.run`: the teacher (an SFT workdir,
trained once when missing), per seed the RFT pipeline's samples and both datasets, a student
continued from the teacher on each with equal steps, and held-out greedy accuracy overall, by
difficulty (operands, digits) and response length ("Beyond Rejection Sampling: Trajectory
Fusion for Scaling Mathematical Reasoning", Deng et al., arXiv:2602.04391). Writes
`<workdir>/results.md`, `results.json`, `accuracy.png` and `CITATIONS.bib`.
"""

import os

from absl import app

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "trajfusion.py")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax.evaluate.trajfusion import run
  from reasoning_jax.train.metrics import quiet_library_logs, use_compilation_cache

  quiet_library_logs()
  use_compilation_cache(os.path.join(os.path.abspath(_CONFIG.value.workdir), "jax_cache"))
  try:
    run(_CONFIG.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  with open(os.path.join(_CONFIG.value.workdir, "results.md")) as f:
    print(f.read())


if __name__ == "__main__":
  from ml_collections import config_flags

  _CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "TrajFusion experiment config.")
  app.run(main)
