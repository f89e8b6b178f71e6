r"""Held-out accuracy of a model: `python -m experiments.evaluate --config.run=outputs/rl_gsm8k`.

Thin absl main over `reasoning_jax.rl.evaluation.run_evaluation`: the model is the newest
checkpoint of an SFT or RL run (`--config.run`) or a Hugging Face folder
(`--config.sft.model.hf_dir`); configs/evaluate.py says what it writes.
"""

import json
import os

from absl import app, logging
from ml_collections import config_flags

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "evaluate.py")
_CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "Evaluation config file.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax import distributed
  from reasoning_jax.train.metrics import quiet_library_logs

  quiet_library_logs()
  distributed.initialize()
  from reasoning_jax.rl.evaluation import run_evaluation

  try:
    summary = run_evaluation(_CONFIG.value)
  except (ValueError, FileNotFoundError) as e:  # Config, task and checkpoint problems.
    raise app.UsageError(str(e)) from None
  logging.info("done: %s", summary)
  print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
  app.run(main)
