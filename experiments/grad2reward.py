r"""GRPO on sparse rubric rewards vs Grad2Reward dense token rewards, on the rubric task.

  python -m experiments.grad2reward [--config=configs/grad2reward.py[:quick]]

Thin absl main over `reasoning_jax.rl.grad2reward_compare.run`: one SFT warm start (imperfect
demonstrations + judge demonstrations; the frozen self-judge), then the same RL budget per seed
under `rubric_grpo` and `grad2reward`, measured on held-out prompts by a programmatic grader.
Grad2Reward: Zhang et al., arXiv:2602.01791. Writes `<workdir>/results.md`, `results.json`,
`curves.csv`, `accuracy.png`, `curves.png`, `token_rewards.png` and `CITATIONS.bib`.
"""

import os

from absl import app

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "grad2reward.py")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax.rl.grad2reward_compare import run
  from reasoning_jax.train.metrics import quiet_library_logs

  quiet_library_logs()
  try:
    run(_CONFIG.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  with open(os.path.join(_CONFIG.value.workdir, "results.md")) as f:
    print(f.read())


if __name__ == "__main__":
  from ml_collections import config_flags

  _CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "Grad2Reward config.")
  app.run(main)
