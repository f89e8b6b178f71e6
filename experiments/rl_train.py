r"""The main job: `python -m experiments.rl_train [--config=configs/rl_arith.py] [--config.loss=dapo]`.

Thin absl main over `reasoning_jax.rl.trainer.run_rl`: RL on synthetic arithmetic from an
SFT warm start (trained first when missing), writing metrics, checkpoints, curves.png and
CITATIONS.bib (what to cite for the run) to `--config.workdir`. Config errors fail at launch naming the key.
"""

import json
import os

from absl import app, logging
from ml_collections import config_flags

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "rl_arith.py")
_CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "RL config file.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax import distributed
  from reasoning_jax.train.metrics import quiet_library_logs

  quiet_library_logs()
  distributed.initialize()
  from reasoning_jax.rl.trainer import ConfigError, run_rl

  try:
    result = run_rl(_CONFIG.value)
  except ConfigError as e:
    raise app.UsageError(str(e)) from None
  logging.info("done: %s", result)
  print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
  app.run(main)
