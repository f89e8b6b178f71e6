"""`python -m experiments.evaluate`: held-out accuracy of a Hugging Face folder or of a run.

`run_evaluation(config)` (config: `configs/evaluate.py`) loads the model the config names, the
newest checkpoint of an SFT or RL run (`config.run`, `rl.trained_policy.load_run`: the run's
own task, prompt and verifier) or a folder (`config.sft.model.hf_dir`), and evaluates it with
`evaluate.accuracy.evaluate_on_task`, which writes `results.jsonl` and `summary.json`. It sits
on the RL floor because loading an RL run's policy does. The model's params are laid out on
`config.mesh` by the partition rules and each batch's questions are split over its batch
axes (every device by default, data-parallel).
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections

__all__ = ["run_evaluation"]


def run_evaluation(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Loads the model `config` names, evaluates it, returns the summary.

  Raises:
    ValueError: neither `run` nor `sft.model.hf_dir` given, or a bad task / sampling setting.
    FileNotFoundError: `run` holds no checkpoint.
  """
  from reasoning_jax import sharding as sharding_lib
  from reasoning_jax.evaluate.accuracy import evaluate_on_task
  from reasoning_jax.models.source import build_model, place_model
  from reasoning_jax.rl.trained_policy import load_run
  from reasoning_jax.train.sft_config import model_source

  try:
    mesh = sharding_lib.make_mesh(dict(config.mesh))
  except ValueError as e:
    raise ValueError(f"config.mesh: {e}") from None
  if config.run:
    model, sft, describe = load_run(config.run)
    place_model(model, mesh)
    out_dir = config.out_dir or os.path.join(config.run, "evaluation")
  else:
    sft = config.sft
    if not sft.model.get("hf_dir"):
      raise ValueError(
        "nothing to evaluate: pass --config.run=<an SFT or RL workdir> or "
        "--config.sft.model.hf_dir=<a Hugging Face folder>"
      )
    model = build_model(model_source(sft), seed=config.seed, mesh=mesh)  # Placed shard by shard.
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
    mesh=mesh,
  )
