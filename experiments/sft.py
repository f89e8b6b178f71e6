r"""SFT launcher: `python -m experiments.sft --config=configs/sft_arith.py [--config.key=value]`.

Thin absl main: initialises multi-host JAX when configured, then calls
`reasoning_jax.train.sft.run_sft`. Config errors (unknown key, wrong type, a mesh
that does not fit the devices) fail here, before any work, naming the key.
"""

import json
import os

from absl import app, logging
from ml_collections import config_flags

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "sft_arith.py")
_CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "SFT config file.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax import distributed
  from reasoning_jax.train.metrics import quiet_library_logs

  quiet_library_logs()
  distributed.initialize()
  from reasoning_jax.train.sft import run_sft
  from reasoning_jax.train.sft_config import ConfigError

  try:
    result = run_sft(_CONFIG.value)
  except ConfigError as e:
    raise app.UsageError(str(e)) from None
  logging.info("done: %s", result)
  print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
  app.run(main)
