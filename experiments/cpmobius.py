r"""CPMöbius coach-player self-play vs a fixed curriculum, "no coach update" and "no filter".

  python -m experiments.cpmobius [--config=configs/cpmobius.py[:quick]] \
      [--config.seeds="(0,1,2)"] [--config.arms="('coach','generator')"] \
      [--config.selfplay.num_steps=30]

Thin absl main over `reasoning_jax.rl.cpmobius.experiment.run` ("CPMöbius: Iterative
Coach-Player Reasoning for Data-Free Reinforcement Learning", Li et al., arXiv:2602.02979).
Every run is resumable (rerun the same command). Writes `<workdir>/results.md`,
`results.json`, `accuracy.png`, `proposals.png` and `CITATIONS.bib`.
"""

import os

from absl import app

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "cpmobius.py")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax.rl.cpmobius.experiment import run
  from reasoning_jax.train.metrics import quiet_library_logs, use_compilation_cache

  quiet_library_logs()
  use_compilation_cache(os.path.join(os.path.abspath(_CONFIG.value.workdir), "jax_cache"))
  try:
    out = run(_CONFIG.value)
  except ValueError as e:  # Config errors name the key.
    raise app.UsageError(str(e)) from None
  print(out["markdown"])


if __name__ == "__main__":
  from ml_collections import config_flags

  _CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "CPMöbius experiment config.")
  app.run(main)
