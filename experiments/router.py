r"""R2-Router at CPU scale: a pool of three arithmetic models of different sizes, every model at
every output budget, and R2-Router vs the reactive, RouteLLM-style binary, random and oracle
routers; a thin absl main over `reasoning_jax.evaluate.router`.

  python -m experiments.router [--config=configs/router.py[:quick]]

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue et al., arXiv:2602.02823).
Writes `<workdir>/results.md`, `results.json`, `deferral_curves.png`, `anchor_ablation.png`,
`pool/` (the trained models) and `bench/` (the resumable table).
"""

import os

from absl import app

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "router.py")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax.evaluate.router import run_router_experiment

  run_router_experiment(_CONFIG.value)


if __name__ == "__main__":
  from ml_collections import config_flags

  _CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "R2-Router config.")
  app.run(main)
