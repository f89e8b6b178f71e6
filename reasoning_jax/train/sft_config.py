"""The SFT trainer's configuration: its keys and types, the launch-time checks, and what the
config builds before anything is trained (the model source, the preset's `ModelConfig`, the
optimizer).

`validate_config` runs before any file beyond the small ones (config, tokenizer, model config)
is read, so a wrong key, type, range, mesh or batch split fails in a second with a
`ConfigError` naming the key. The RL trainer (`reasoning_jax.rl.config`) and the launchers
reuse the model-source part (`validate_model_config`, `model_source`).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections
import optax

from reasoning_jax import sharding as sharding_lib
from reasoning_jax.data.stages import packing_available
from reasoning_jax.models import get_preset
from reasoning_jax.models.source import ModelSource, SourceError, resolve_from_config
from reasoning_jax.train import lora_setup, remit_setup
from reasoning_jax.train.memory.policy import optimizer_state_dtype, with_model_state_dtype
from reasoning_jax.train.task import TaskError, validate_prompt_config
from reasoning_jax.validation import check_config_types, check_float_in, check_positive_int

# Keys of the optional `config.model` (the model source) with their types.
MODEL_KEYS: dict[str, Any] = {
  "hf_dir": str,
  "tokenizer": str,
  "dtype": str,
  "param_dtype": str,
  "remat": str,  # "" | none | full | dots_saveable (all blocks), or "full,none,..." per block.
  "opt_state_dtype": str,  # "": the parameters' dtype; e.g. float32 moments for bf16 params.
  "eos_ids": (tuple, list),
}

# Keys every SFT config must have, with their types (validated at launch).
REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
  "workdir": str,
  "seed": int,
  "task": str,
  "task_config": str,
  "task_overrides": dict,
  "preset": str,
  "model_overrides": dict,
  "seq_len": int,
  "batch_size": int,
  "num_steps": int,
  "learning_rate": float,
  "warmup_steps": int,
  "weight_decay": float,
  "grad_clip": float,
  "micro_batches": int,
  "mesh": dict,
  "log_every": int,
  "eval_every": int,
  "eval_examples": int,
  "eval_max_new_tokens": int,
  "checkpoint_every": int,
  "keep_checkpoints": int,
  "prompt_template": str,
  "target_field": str,
  "reward": str,
  "worker_count": int,
}


class ConfigError(ValueError):
  """A launch-time configuration problem; the message names the key."""


# Integer fields: key -> smallest valid value.
_MIN_INTS = {
  "seq_len": 1,
  "batch_size": 1,
  "num_steps": 1,
  "micro_batches": 1,
  "log_every": 1,
  "eval_every": 1,
  "eval_examples": 1,
  "checkpoint_every": 1,
  "keep_checkpoints": 1,
  "eval_max_new_tokens": 1,
  "warmup_steps": 0,
  "worker_count": 0,
}


def validate_numeric_fields(config: ml_collections.ConfigDict) -> None:
  """Range checks of the numeric fields: counts >= 1 (warmup_steps, worker_count, chunk_size
  >= 0), learning_rate and grad_clip > 0, weight_decay and eval_temperature >= 0;
  ConfigError naming the key."""
  try:
    for key, minimum in _MIN_INTS.items():
      check_positive_int(config[key], f"config.{key}", minimum=minimum)
    if config.get("chunk_size") is not None:
      check_positive_int(config.chunk_size, "config.chunk_size", minimum=0)
    for key in ("learning_rate", "grad_clip"):
      check_float_in(config[key], f"config.{key}", 0.0, low_inclusive=False)
    check_float_in(config.weight_decay, "config.weight_decay", 0.0)
    if config.get("eval_temperature") is not None:
      check_float_in(config.eval_temperature, "config.eval_temperature", 0.0)
  except ValueError as e:
    raise ConfigError(str(e)) from None


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks keys, types and ranges before anything expensive happens."""
  check_config_types(config, REQUIRED_KEYS, error=ConfigError)
  unknown = (
    set(config.keys())
    - set(REQUIRED_KEYS)
    - {
      "chunk_size",
      "data_dir",
      "manual_dir",
      "eval_temperature",
      "plot",
      "model",
      "prompt",
      "lora",
      "remit",
      "init_workdir",
      "pack",
    }
  )
  if unknown:
    raise ConfigError(f"unknown config keys: {sorted(unknown)}")
  validate_numeric_fields(config)
  if not isinstance(config.get("pack", False), bool):
    raise ConfigError(
      f"config.pack must be a bool (True: pack several examples per seq_len row), got "
      f"{config.pack!r}"
    )
  if config.get("pack", False) and not packing_available():
    raise ConfigError(
      "config.pack=True needs grain.experimental.FirstFitPackIterDataset (a newer grain)"
    )
  validate_init_workdir(config)
  validate_model_config(config)
  lora_setup.lora_spec(config, error=ConfigError)
  remit_setup.remit_spec(config, error=ConfigError)
  try:
    validate_prompt_config(config)
  except TaskError as e:
    raise ConfigError(str(e)) from None
  from reasoning_jax.rewards import REWARDS

  if config.reward != "auto":  # "auto": from config.prompt.answer_format.
    try:  # A registered name, or the user's own by import path ("my_rewards:strict").
      REWARDS.validate(config.reward, argument="config.reward")
    except ValueError as e:
      raise ConfigError(f"{e} (or 'auto': from config.prompt.answer_format)") from None
  try:
    mesh = sharding_lib.make_mesh(
      config.mesh.to_dict() if hasattr(config.mesh, "to_dict") else dict(config.mesh)
    )
  except ValueError as e:
    raise ConfigError(f"config.mesh: {e}") from None
  batch_shards = mesh.shape["data"] * mesh.shape["fsdp"]
  if config.batch_size % (batch_shards * config.micro_batches):
    raise ConfigError(
      f"config.batch_size={config.batch_size} must be divisible by data*fsdp={batch_shards} "
      f"times config.micro_batches={config.micro_batches}"
    )
  if config.batch_size % jax.process_count():
    raise ConfigError(
      f"config.batch_size={config.batch_size} must be divisible by the "
      f"{jax.process_count()} processes"
    )


def validate_init_workdir(config: ml_collections.ConfigDict) -> None:
  """`config.init_workdir`: "" / None, or a workdir with `checkpoints/`; not with LoRA."""
  init = config.get("init_workdir")
  if not init:
    return
  if not isinstance(init, str):
    raise ConfigError(f"config.init_workdir must be a str (a run's workdir), got {init!r}")
  if not os.path.isdir(os.path.join(init, "checkpoints")):
    raise ConfigError(f"config.init_workdir={init!r} has no checkpoints/ folder")
  if config.get("lora"):
    raise ConfigError(
      "config.init_workdir with config.lora is not supported: start LoRA from a Hugging Face "
      "folder (config.model.hf_dir) instead"
    )


def validate_model_config(config: ml_collections.ConfigDict, prefix: str = "config") -> None:
  """Keys and types of the optional `config.model`; the preset name when no `hf_dir`."""
  model = config.get("model")
  if model is not None:
    model = model.to_dict() if hasattr(model, "to_dict") else dict(model)
    unknown = set(model) - set(MODEL_KEYS)
    if unknown:
      raise ConfigError(
        f"unknown {prefix}.model keys: {sorted(unknown)}; known: {list(MODEL_KEYS)}"
      )
    for key, kind in MODEL_KEYS.items():
      if key in model and not isinstance(model[key], kind):
        raise ConfigError(f"{prefix}.model.{key} must be {kind}, got {model[key]!r}")
    try:
      optimizer_state_dtype(model, f"{prefix}.model.opt_state_dtype")
    except ValueError as e:
      raise ConfigError(str(e)) from None
  if not (model or {}).get("hf_dir"):
    try:
      get_preset(config.preset)
    except ValueError as e:
      raise ConfigError(f"{prefix}.preset: {e}") from None


def model_source(config: ml_collections.ConfigDict, prefix: str = "config") -> ModelSource:
  """The resolved model source of `config` (`config.model`, else the preset); ConfigError
  naming the file and the flag on bad input."""
  try:
    return resolve_from_config(config, flag=f"{prefix}.model")
  except (SourceError, FileNotFoundError) as e:
    raise ConfigError(str(e)) from None


def model_config(config, vocab_size: int):
  """The preset's `ModelConfig` with `config.model_overrides` (vocab_size: the tokenizer's)."""
  overrides = dict(config.model_overrides)
  overrides.setdefault("vocab_size", vocab_size)
  return get_preset(config.preset, **overrides)


def make_optimizer(config) -> optax.GradientTransformation:
  warmup = min(config.warmup_steps, config.num_steps // 2)
  schedule = optax.warmup_cosine_decay_schedule(
    0.0,
    config.learning_rate,
    warmup_steps=warmup,
    decay_steps=max(config.num_steps, warmup + 1),
    end_value=config.learning_rate * 0.1,
  )
  # Monotone FFNs keep softplus-space raw weights; decaying those drives W to ln 2, so
  # the mask exempts them (reasoning_jax.layers.monotone).
  from reasoning_jax.layers import monotone_weight_decay_mask

  return with_model_state_dtype(
    optax.chain(
      optax.clip_by_global_norm(config.grad_clip),
      optax.adamw(schedule, weight_decay=config.weight_decay, mask=monotone_weight_decay_mask),
    ),
    config,
  )
