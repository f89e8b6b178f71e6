r"""ROSA-Tuning at CPU scale: window, window + ROSA, global attention and a ROSA-tuned window
model on long-range copying; a thin absl main over `reasoning_jax.evaluate.rosa`.

  python -m experiments.rosa [--config=configs/rosa.py[:quick|:accelerator]]

"ROSA-Tuning: Enhancing Long-Context Modeling via Suffix Matching" (Zheng et al.,
arXiv:2602.02499). Writes `<workdir>/results.md`, `results.json`, `accuracy_vs_length.png`,
`perplexity_vs_length.png`, `runs/` and `CITATIONS.bib`.
"""

import os

from absl import app

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "rosa.py")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax.evaluate.rosa import run_rosa_experiment

  run_rosa_experiment(_CONFIG.value)


if __name__ == "__main__":
  from ml_collections import config_flags

  _CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "ROSA config.")
  app.run(main)
