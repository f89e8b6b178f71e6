"""What `config.loss` names and what an RL config must hold: recipes and config validation.

A *recipe* is a loss, an advantage estimator and the data-side switches (DAPO's dynamic
sampling and overlong punishment, a judge model for the rewards) under one name (grpo, dapo,
drgrpo, cispo, dispo, arm, mrpo, rubric_grpo, grad2reward). `validate_config` checks an RL config before any work (keys, types, registered names,
numeric ranges, the nested SFT warm-start config) and raises `ConfigError` naming the key.
`reasoning_jax.rl.trainer.run_rl` calls it first.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import ml_collections
import optax

from reasoning_jax import rl
from reasoning_jax import sharding as sharding_lib
from reasoning_jax.rl.draft import draft_spec
from reasoning_jax.rl.judge_scorer import judge_spec
from reasoning_jax.train import lora_setup
from reasoning_jax.train.sft_config import ConfigError as SftConfigError
from reasoning_jax.train.sft_config import validate_config as validate_sft
from reasoning_jax.validation import check_config_types, check_float_in, check_positive_int


@dataclasses.dataclass(frozen=True)
class Recipe:
  """What `config.loss=<name>` means: a loss, an advantage estimator, data-side switches."""

  loss: str
  advantage: str
  dynamic_sampling: bool = False
  overlong_punishment: bool = False
  # A judge model gives the rewards ("sparse" rubric rewards or "dense" Grad2Reward token
  # rewards; `reasoning_jax.rl.judge_scorer`), None: the task's verifier.
  judge: str | None = None


RECIPES: dict[str, Recipe] = {
  "grpo": Recipe(loss="grpo", advantage="grpo"),
  "dapo": Recipe(loss="dapo", advantage="grpo", dynamic_sampling=True, overlong_punishment=True),
  "drgrpo": Recipe(loss="dr_grpo", advantage="dr_grpo"),
  "cispo": Recipe(loss="cispo", advantage="grpo"),
  "dispo": Recipe(loss="dispo", advantage="grpo"),
  "arm": Recipe(loss="grpo", advantage="arm"),
  "mrpo": Recipe(loss="grpo", advantage="mrpo"),
  # Grad2Reward (arXiv 2602.01791): rubric rewards from a frozen self-judge, as one sparse
  # number per response (GRPO, the paper's baseline) or as dense token rewards attributed by
  # one backward pass through the judge, with token-level GRPO advantages (rl.md 6.3).
  "rubric_grpo": Recipe(loss="grpo", advantage="grpo", judge="sparse"),
  "grad2reward": Recipe(loss="grpo", advantage="token_grpo", judge="dense"),
}
RECIPES["dr_grpo"] = RECIPES["drgrpo"]

REQUIRED_KEYS: dict[str, Any] = {
  "workdir": str,
  "seed": int,
  "loss": str,
  "loss_overrides": dict,
  "advantage_overrides": dict,
  "group_size": int,
  "prompts_per_step": int,
  "max_new_tokens": int,
  "temperature": (float, int, type(None)),  # None: the model source's default.
  "top_p": (float, int, type(None)),
  "num_steps": int,
  "learning_rate": float,
  "grad_clip": float,
  "ppo_epochs": int,
  "mini_batches": int,
  "micro_batches": int,
  "dynamic_sampling": (bool, type(None)),
  "max_dynamic_batches": int,
  "tis_cap": float,
  "eval_every": int,
  "eval_examples": int,
  "checkpoint_every": int,
  "keep_checkpoints": int,
  "mesh": dict,
  "log_every": int,
  "sft": ml_collections.ConfigDict,
}


# `config.optimizer`: name -> fn(learning_rate) -> optax transformation (after clipping).
# "sgd" is plain gradient descent: Adam's per-coordinate normalisation turns the noise of
# small-batch policy gradients into full-size (sign-like) steps on low-signal coordinates.
OPTIMIZERS: dict[str, Any] = {
  "adamw": lambda lr: optax.adamw(lr, b2=0.99, weight_decay=0.0),
  "sgd": optax.sgd,
}


class ConfigError(ValueError):
  """A launch-time configuration problem; the message names the key."""


# Integer fields: key -> smallest valid value.
_MIN_INTS = {
  "group_size": 2,  # Group-relative advantages need >= 2 samples per prompt.
  "prompts_per_step": 1,
  "max_new_tokens": 1,
  "num_steps": 1,
  "ppo_epochs": 1,
  "mini_batches": 1,
  "micro_batches": 1,
  "eval_every": 1,
  "eval_examples": 1,
  "checkpoint_every": 1,
  "keep_checkpoints": 1,
  "log_every": 1,
  "max_dynamic_batches": 1,
}
# Optional integer fields (None or absent: the default): key -> smallest valid value.
_OPTIONAL_MIN_INTS = {
  "warmup_steps": 0,
  "eval_samples": 0,
  "top_k": 0,
  "chunk_size": 0,
  "log_rollouts": 0,
}


def validate_numeric_fields(config: ml_collections.ConfigDict) -> None:
  """Range checks of the numeric fields: counts >= 1 (group_size >= 2), learning_rate,
  grad_clip, temperature and tis_cap > 0, top_p in (0, 1]; ConfigError naming the key."""
  try:
    for key, minimum in _MIN_INTS.items():
      check_positive_int(config[key], f"config.{key}", minimum=minimum)
    for key, minimum in _OPTIONAL_MIN_INTS.items():
      if config.get(key) is not None:
        check_positive_int(config[key], f"config.{key}", minimum=minimum)
    for key in ("learning_rate", "grad_clip", "temperature", "tis_cap"):
      if config[key] is not None:  # temperature None: the model source's default.
        check_float_in(config[key], f"config.{key}", 0.0, low_inclusive=False)
    if config.top_p is not None:
      check_float_in(config.top_p, "config.top_p", 0.0, 1.0, low_inclusive=False)
    eval_temperature = config.get("eval_temperature", None)
    if eval_temperature is not None:  # None: the rollout temperature.
      check_float_in(eval_temperature, "config.eval_temperature", 0.0, low_inclusive=False)
  except ValueError as e:
    raise ConfigError(str(e)) from None


def validate_config(config: ml_collections.ConfigDict) -> Recipe:
  """Checks keys, types, ranges and registry names; returns the recipe."""
  check_config_types(config, REQUIRED_KEYS, error=ConfigError)
  unknown = (
    set(config.keys())
    - set(REQUIRED_KEYS)
    - {
      "top_k",
      "chunk_size",
      "plot",
      "kl_in_reward",
      "warmup_steps",
      "optimizer",
      "eval_samples",
      "eval_temperature",
      "log_rollouts",
      "reuse_update_logp",
      "model",
      "warm_start",
      "lora",
      "draft",
      "judge",
    }
  )
  if unknown:
    raise ConfigError(f"unknown config keys: {sorted(unknown)}")
  if config.loss not in RECIPES:
    raise ConfigError(f"config.loss={config.loss!r}; choose one of {sorted(RECIPES)}")
  recipe = RECIPES[config.loss]
  try:
    rl.loss_config(recipe.loss, **dict(config.loss_overrides))
  except (ValueError, TypeError) as e:
    raise ConfigError(f"config.loss_overrides: {e}") from None
  validate_numeric_fields(config)
  if config.get("optimizer", "adamw") not in OPTIMIZERS:
    raise ConfigError(
      f"config.optimizer={config.get('optimizer')!r}; choose one of {sorted(OPTIMIZERS)}"
    )
  n = config.group_size * config.prompts_per_step
  if n % (config.mini_batches * config.micro_batches):
    raise ConfigError(
      f"group_size*prompts_per_step={n} must be divisible by "
      f"config.mini_batches*config.micro_batches"
    )
  try:
    mesh = sharding_lib.make_mesh(dict(config.mesh))
  except ValueError as e:
    raise ConfigError(f"config.mesh: {e}") from None
  shards = mesh.shape["data"] * mesh.shape["fsdp"]
  if (n // config.mini_batches // config.micro_batches) % shards:
    raise ConfigError(
      f"each micro-batch ({n // config.mini_batches // config.micro_batches} "
      f"rows) must be divisible by data*fsdp={shards} (config.mesh)"
    )

  lora_setup.lora_spec(config, error=ConfigError)  # config.lora: None or the adapter dict.
  draft_spec(config, error=ConfigError)  # config.draft: None or the draft model's folder.
  judge_spec(config, recipe, error=ConfigError)  # config.judge: the judge recipes' options.
  if config.get("warm_start", "sft") not in WARM_STARTS:
    raise ConfigError(
      f"config.warm_start={config.get('warm_start')!r}; choose one of {sorted(WARM_STARTS)}"
    )
  try:
    validate_sft(sft_config(config))
  except SftConfigError as e:  # One error type from run_rl, naming the RL config's keys.
    raise ConfigError(in_sft_config(str(e))) from None
  return recipe


def in_sft_config(message: str) -> str:
  """An SFT validation message with its keys named as in the RL config: `config.X` is
  `config.sft.X` there, except `config.model` (the RL config's own, copied into the SFT one);
  file names such as `config.json` are left alone."""
  return re.sub(r"(?<![\w/.-])config\.(?!model\b|sft\b|json\b)", "config.sft.", message)


# `config.warm_start`: "sft" trains (or loads) the SFT warm start from the model source first;
# "source" starts RL from the source itself (e.g. an instruction-tuned HF checkpoint).
WARM_STARTS = ("sft", "source")


def sft_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config.sft` with `model` taken from the RL config's `config.model` when it has one: the
  task, prompt and warm-start settings of the run, with the run's model source."""
  if config.get("model") is None:
    return config.sft
  sft = ml_collections.ConfigDict(config.sft.to_dict())
  sft.model = ml_collections.ConfigDict(
    config.model.to_dict() if hasattr(config.model, "to_dict") else dict(config.model)
  )
  return sft
