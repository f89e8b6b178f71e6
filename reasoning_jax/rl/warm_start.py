"""The RL warm start: the policy RL starts from, and the check that a saved one still fits.

`config.warm_start="sft"` (the default) loads the SFT checkpoint in `config.sft.workdir`,
trained there first when missing (and finished first when the newest checkpoint is from an
interrupted run, short of `config.sft.num_steps`) (from the run's model source: a preset from scratch or a
Hugging Face folder); `"source"` starts from the model source itself (HF weights, placed on the
mesh shard by shard), skipping SFT.
"""

from __future__ import annotations

from typing import Any, Mapping

import ml_collections
from absl import logging
from flax import nnx

from reasoning_jax.lora import lora_kernels, merge_adapters
from reasoning_jax.models.source import ModelSource, build_model
from reasoning_jax.rl.recipes import ConfigError, sft_config
from reasoning_jax.train.config_match import same_value


# Keys of `config.sft` that define the warm start's data, model and training: a checkpoint
# in `sft.workdir` written under other values is not the warm start this config asks for.
WARM_START_KEYS = (
  "task",
  "task_config",
  "task_overrides",
  "prompt_template",
  "target_field",
  "preset",
  "model_overrides",
  "model",
  "lora",
  "prompt",
  "num_steps",
  "learning_rate",
  "batch_size",
  "seq_len",
  "seed",
)


def check_warm_start_config(
  saved: Mapping[str, Any], wanted: ml_collections.ConfigDict, workdir: str
) -> None:
  """Raises ConfigError when the SFT checkpoint in `workdir` was trained under another config."""
  wanted = wanted.to_dict()
  differ = [
    k for k in WARM_START_KEYS if k in saved and k in wanted and not same_value(saved[k], wanted[k])
  ]
  if differ:
    details = "; ".join(f"{k}: saved {saved[k]!r}, config {wanted[k]!r}" for k in differ)
    raise ConfigError(
      f"the SFT checkpoint in config.sft.workdir={workdir!r} was trained with a "
      f"different config.sft ({details}); point config.sft.workdir at a new "
      f"directory (it is trained there first) or restore those values"
    )


def warm_start(
  config, source: ModelSource, mesh: Any = None, *, train_missing: bool = True
) -> nnx.Module:
  """The policy RL starts from: the model source itself (`warm_start="source"`), or the SFT
  model loaded from `config.sft.workdir` (checked against the SFT config) or trained there
  first. With `train_missing=False` (loading a finished run's base) a missing or unfinished
  SFT checkpoint is a ValueError instead."""
  from reasoning_jax.train.sft import load_sft_params, newest_checkpoint, run_sft

  if config.get("warm_start", "sft") == "source":
    logging.info("warm start: the model source (%s), no SFT", source.hf_dir or source.kind)
    return build_model(source, seed=config.seed, mesh=mesh)
  sft = sft_config(config)
  newest = newest_checkpoint(sft.workdir)
  step = None if newest is None else newest[0]
  if newest is not None:
    check_warm_start_config(newest[1], sft, sft.workdir)
  if not train_missing and (step is None or step < int(sft.num_steps)):
    raise ValueError(
      f"the SFT warm start in {sft.workdir} has no finished checkpoint (newest: {step}); "
      "point config.sft.workdir at it"
    )
  if step is None:
    logging.info("no SFT checkpoint in %s: training the warm start first", sft.workdir)
    run_sft(sft)
  elif step < int(sft.num_steps):  # An interrupted SFT run: finish it, never start from it.
    logging.info(
      "the SFT checkpoint in %s is step %d of %d: resuming the warm start's training",
      sft.workdir,
      step,
      int(sft.num_steps),
    )
    run_sft(sft)
  model = load_sft_params(sft.workdir, sft)[0]
  if lora_kernels(model):  # A LoRA warm start: RL starts from its merged weights.
    merge_adapters(model)
  return model
