r"""Held-out accuracy of a model: `python -m experiments.evaluate --config.run=outputs/rl_gsm8k`.

Thin absl main: the model is the newest checkpoint of an SFT or RL run (`--config.run`,
`rl.trained_policy.load_run`) or a Hugging Face folder (`--config.sft.model.hf_dir`); the
evaluation is `evaluate.accuracy.evaluate_on_task` (configs/evaluate.py says what it writes).
"""

import json
import os

import ml_collections
from absl import app, logging
from ml_collections import config_flags

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "evaluate.py")
_CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "Evaluation config file.")


def run(config: ml_collections.ConfigDict) -> dict:
  """Loads the model `config` names, evaluates it, returns the summary (see the config)."""
  from reasoning_jax.evaluate.accuracy import evaluate_on_task
  from reasoning_jax.models.source import build_model
  from reasoning_jax.rl.trained_policy import load_run
  from reasoning_jax.train.sft import model_source

  if config.run:
    model, sft, describe = load_run(config.run)
    out_dir = config.out_dir or os.path.join(config.run, "evaluation")
  else:
    sft = config.sft
    if not sft.model.get("hf_dir"):
      raise ValueError(
        "nothing to evaluate: pass --config.run=<an SFT or RL workdir> or "
        "--config.sft.model.hf_dir=<a Hugging Face folder>"
      )
    model = build_model(model_source(sft), seed=config.seed)
    describe = {"hf_dir": sft.model.hf_dir}
    out_dir = config.out_dir or "outputs/evaluate"
  if config.sft_overrides:
    sft = ml_collections.ConfigDict({**sft.to_dict(), **config.sft_overrides.to_dict()})
  return evaluate_on_task(
    model,
    sft,
    out_dir=out_dir,
    num_examples=config.num_examples,
    num_samples=config.num_samples,
    temperature=config.temperature,
    top_p=config.top_p,
    top_k=config.top_k,
    max_new_tokens=config.max_new_tokens,
    batch_size=config.batch_size,
    seed=config.seed,
    describe={**describe, "out_dir": out_dir},
  )


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax import distributed
  from reasoning_jax.train.metrics import quiet_library_logs

  quiet_library_logs()
  distributed.initialize()
  try:
    summary = run(_CONFIG.value)
  except (ValueError, FileNotFoundError) as e:  # Config, task and checkpoint problems.
    raise app.UsageError(str(e)) from None
  logging.info("done: %s", summary)
  print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
  app.run(main)
