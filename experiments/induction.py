r"""Single-layer induction: momentum attention vs 1- and 2-layer softmax attention.

  python -m experiments.induction [--config=configs/induction.py] [--config.seeds="(0,1,2)"]

Thin absl main over `reasoning_jax.train.sweeps.run_recall_experiment` (training loop:
`reasoning_jax.train.recall`). Protocol (spec `memory_attention.md` §0.4, §4.2-4.3 (g)):
attention-only models (FFN "none"), same width, trained from scratch on the H3 induction-head
task ("Hungry Hungry Hippos", Fu et al., arXiv:2212.14052) and on repeated random tokens
("In-context Learning and Induction Heads", Olsson et al. 2022, arXiv:2209.11895); accuracy vs
training steps over several seeds. Momentum attention: "Momentum Attention: The Physics of
In-Context Learning and Spectral Forensics for Mechanistic Interpretability" (Kingsuk Maitra,
arXiv:2602.04902).

Writes `<workdir>/results.md` (mean ± std of final accuracy, best accuracy, steps to
`threshold`), `<workdir>/results.json` (every curve), `<workdir>/accuracy.png` and one file per
finished run in `<workdir>/runs/` (reused on a rerun with the same config), and
`<workdir>/CITATIONS.bib` (the papers of the models' mixers and FFNs).
"""

import os

from absl import app

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "induction.py")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax.train.sweeps import run_recall_experiment

  run_recall_experiment(_CONFIG.value)


if __name__ == "__main__":
  from ml_collections import config_flags

  _CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "Induction config.")
  app.run(main)
