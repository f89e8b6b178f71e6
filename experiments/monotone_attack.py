r"""Monotone FFNs vs unconstrained FFNs under HotFlip and UAT attacks (CPU-sized).

  python -m experiments.monotone_attack [--config=configs/monotone_attack.py] \
      [--config.seeds="(0,1,2)"] [--config.protocol.init=scratch]

Thin absl main over `reasoning_jax.evaluate.monotone_attack.run` (the protocol, task and
attacks are documented in that package): "Monotonicity as an Architectural Bias for Robust
Language Models" (Cooper, Nadali, Trivedi, Velasquez; arXiv:2602.02686), spec
`memory_attention.md` §5.

Writes `<workdir>/results.md`, `<workdir>/results.json`, `<workdir>/attack.png` and
`<workdir>/CITATIONS.bib`.
"""

import os

from absl import app

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "monotone_attack.py")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax.evaluate.monotone_attack import run

  run(_CONFIG.value)


if __name__ == "__main__":
  from ml_collections import config_flags

  _CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "Monotone attack config.")
  app.run(main)
