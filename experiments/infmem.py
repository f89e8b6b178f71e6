r"""InfMem vs MemAgent on generated multi-hop long documents, with a model trained here; a thin
absl main over `reasoning_jax.rl.infmem.experiment`.

  python -m experiments.infmem [--config=configs/infmem.py[:quick]]

"InfMem: Learning System-2 Memory Control for Long-Context Agent" (Wang et al.,
arXiv:2602.02704). Writes `<workdir>/results.md`, `results.json`, `accuracy_vs_length.png`,
`calls_vs_length.png`, `rl_curves.png`, `runs/` and `CITATIONS.bib`.
"""

import os

from absl import app

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "infmem.py")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax.rl.infmem.experiment import run

  run(_CONFIG.value)


if __name__ == "__main__":
  from ml_collections import config_flags

  _CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "InfMem config.")
  app.run(main)
