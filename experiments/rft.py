r"""The RFT pipeline: a teacher's verified samples -> RFT and TrajFusion SFT datasets.

  python -m experiments.rft [--config=configs/rft.py[:quick]] \
      [--config.teacher.workdir=outputs/sft_arith] \
      [--config.teacher.workdir= --config.teacher.hf_dir=/m/Qwen3]

Thin absl main over `reasoning_jax.evaluate.trajfusion.run_pipeline`: resolves the teacher
(an SFT/RL workdir, trained first when the default config's is missing, or a Hugging Face
folder), samples the task's train split into `<workdir>/samples` (resumable: a rerun continues),
and builds `<workdir>/datasets/{rft,trajfusion}` from the same samples ("Beyond Rejection
Sampling: Trajectory Fusion for Scaling Mathematical Reasoning", Deng et al.,
arXiv:2602.04391). Prints `stats.md` and the SFT trainer's flags for each dataset.
"""

import os

from absl import app

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "rft.py")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax.evaluate.trajfusion import run_pipeline
  from reasoning_jax.train.metrics import quiet_library_logs

  quiet_library_logs()
  try:
    stats = run_pipeline(_CONFIG.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  with open(os.path.join(_CONFIG.value.workdir, "datasets", "stats.md")) as f:
    print(f.read())
  print("SFT trainer flags for each dataset (with the teacher's SFT config, so that the model")
  print("matches the teacher's checkpoint that config.init_workdir continues):")
  for name, flags in stats["flags"].items():
    print(f"  {name}: python -m experiments.sft --config=<the teacher's config> {flags}")


if __name__ == "__main__":
  from ml_collections import config_flags

  _CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "RFT pipeline config.")
  app.run(main)
