r"""ReMiT vs plain mid-training of a from-scratch model, then the same RL run on each.

  python -m experiments.remit [--config=configs/remit_experiment.py[:flywheel|:quick]] \
      [--config.guide_workdir=outputs/rl_arith] [--config.seeds="(0,1,2)"]

Thin absl main over `reasoning_jax.rl.remit_experiment.run`: the guide (the main job's RL model:
`guide_workdir`, else trained once), then per seed a model pre-trained from scratch, mid-trained
from that checkpoint plain and with ReMiT ("ReMiT: RL-Guided Mid-Training for Iterative LLM
Evolution", Huang et al., arXiv 2602.03075), and the same RL run from each; with
`flywheel_rounds > 1` the ReMiT RL model guides the next round's mid-training (ReMiT^2).
Writes `<workdir>/results.md`, `results.json`, `accuracy.png` and `CITATIONS.bib`; compiled
steps are cached in `<workdir>/jax_cache` (unless JAX_COMPILATION_CACHE_DIR names another).
"""

import os

from absl import app

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "remit_experiment.py")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax.rl.remit_experiment import run
  from reasoning_jax.train.metrics import quiet_library_logs, use_compilation_cache

  quiet_library_logs()
  use_compilation_cache(os.path.join(os.path.abspath(_CONFIG.value.workdir), "jax_cache"))
  try:
    run(_CONFIG.value)
  except ValueError as e:  # ConfigError of the trainers included: it names the key.
    raise app.UsageError(str(e)) from None
  with open(os.path.join(os.path.abspath(_CONFIG.value.workdir), "results.md")) as f:
    print(f.read())


if __name__ == "__main__":
  from ml_collections import config_flags

  _CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "ReMiT experiment config.")
  app.run(main)
