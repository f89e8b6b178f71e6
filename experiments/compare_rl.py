r"""Every RL recipe at equal budget over several seeds: a markdown table and a plot.

  python -m experiments.compare_rl [--config=configs/compare_rl.py] \
      [--config.losses="('grpo','dispo')"] [--config.rl.num_steps=20]
  python -m experiments.compare_rl --config=configs/compare_rl.py:main_job  # DISPO, 3 seeds

Thin absl main over `reasoning_jax.rl.compare.run_comparison`: all runs share one SFT warm
start (trained once) and the same rollout/update budget. Writes `<workdir>/results.md` (mean
± std over seeds of the final held-out sampled accuracy, its gain over the warm start, greedy
accuracy, pass@k, steps to `threshold`), `results.json`, `accuracy.png` and `CITATIONS.bib`.
Reports what the runs show, whatever it shows.
"""

import os

from absl import app
from ml_collections import config_flags

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "compare_rl.py")
_CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "Comparison config.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax.rl.compare import run_comparison
  from reasoning_jax.rl.trainer import ConfigError

  try:
    run_comparison(_CONFIG.value)
  except ConfigError as e:
    raise app.UsageError(str(e)) from None
  with open(os.path.join(_CONFIG.value.workdir, "results.md")) as f:
    print(f.read())


if __name__ == "__main__":
  app.run(main)
