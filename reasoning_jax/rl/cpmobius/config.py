"""The CPMöbius config (`configs/cpmobius.py`): keys, types and ranges, checked at launch.

Defaults in the config file are the spec's (rl.md 8.1) where it gives them: n = 16 answers per
problem and m = 16 problems per step (CPU configs shrink both), coach sampling temperature 0.7
/ top-p 1.0, player temperature 0.7 / top-p 0.9, filter [0.2, 0.8], PPO clip 0.2, player KL
(k3) 0.001 and entropy coefficient -0.01 (verl's sign: a penalty), `coach_reward =
success_rate_x_delta`, `player_reward_values = (1, 0)` (the paper's; the code's is (1, -1)).
"""

from __future__ import annotations

from typing import Any

import ml_collections

from reasoning_jax.rl.cpmobius.labels import COACH_REWARDS
from reasoning_jax.validation import check_config_types

__all__ = ["CpmConfigError", "PROPOSERS", "validate_config"]

PROPOSERS = ("coach", "generator")

_TYPES: dict[str, Any] = {
  "workdir": str,
  "seed": int,
  "num_steps": int,
  "proposer": str,
  "update_coach": bool,
  "use_filter": bool,
  "filter_low": float,
  "filter_high": float,
  "problems_per_step": int,
  "samples_per_problem": int,
  "proposals_per_round": int,
  "max_proposal_rounds": int,
  "max_empty_steps": int,
  "instruction": str,
  "player_reward_values": (tuple, list),
  "coach_reward": str,
  "delta_scale": float,
  "player_temperature": float,
  "player_top_p": float,
  "player_max_new_tokens": int,
  "player_max_prompt_len": int,
  "coach_temperature": float,
  "coach_top_p": float,
  "coach_max_new_tokens": int,
  "coach_max_prompt_len": int,
  "player_learning_rate": float,
  "coach_learning_rate": float,
  "grad_clip": float,
  "clip_eps": float,
  "player_kl_coef": float,
  "player_entropy_coef": float,
  "coach_kl_coef": float,
  "coach_entropy_coef": float,
  "coach_aggregation": str,
  "best_player_safeguard": bool,
  "safeguard_after": int,
  "safeguard_patience": int,
  "validation_examples": int,
  "heldout_examples": int,
  "heldout_every": int,
  "heldout_samples": int,
  "checkpoint_every": int,
  "keep_checkpoints": int,
  "mesh": dict,
  "player": dict,
  "coach": dict,
  "problems": dict,
}

_POSITIVE = (
  "num_steps",
  "problems_per_step",
  "samples_per_problem",
  "proposals_per_round",
  "max_proposal_rounds",
  "max_empty_steps",
  "player_max_new_tokens",
  "player_max_prompt_len",
  "coach_max_new_tokens",
  "coach_max_prompt_len",
  "safeguard_patience",
  "validation_examples",
  "heldout_examples",
  "heldout_every",
  "checkpoint_every",
  "keep_checkpoints",
)


class CpmConfigError(ValueError):
  """A CPMöbius configuration problem; the message names the key."""


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Keys, types and ranges of a CPMöbius config; CpmConfigError naming the key."""
  missing = [k for k in _TYPES if k not in config]
  if missing:
    raise CpmConfigError(f"config is missing {missing}")
  unknown = sorted(set(config.keys()) - set(_TYPES))
  if unknown:
    raise CpmConfigError(f"unknown config keys: {unknown}")
  check_config_types(config, _TYPES, error=CpmConfigError)
  for key in _POSITIVE:
    if config[key] < 1:
      raise CpmConfigError(f"config.{key} must be >= 1, got {config[key]}")
  if config.proposer not in PROPOSERS:
    raise CpmConfigError(f"config.proposer={config.proposer!r}; choose one of {PROPOSERS}")
  if config.coach_reward not in COACH_REWARDS:
    raise CpmConfigError(
      f"config.coach_reward={config.coach_reward!r}; choose one of {COACH_REWARDS}"
    )
  if not 0.0 <= config.filter_low <= config.filter_high <= 1.0:
    raise CpmConfigError(
      f"config.filter_low={config.filter_low} and config.filter_high={config.filter_high} "
      "must satisfy 0 <= low <= high <= 1"
    )
  if len(config.player_reward_values) != 2:
    raise CpmConfigError(
      f"config.player_reward_values must be (agree, other), got {config.player_reward_values!r}"
    )
  if config.heldout_samples < 0:
    raise CpmConfigError(f"config.heldout_samples must be >= 0, got {config.heldout_samples}")
  for key in ("player_temperature", "coach_temperature"):
    if config[key] <= 0:
      raise CpmConfigError(f"config.{key} must be > 0 (sampling), got {config[key]}")
  for key in ("player_top_p", "coach_top_p"):
    if not 0 < config[key] <= 1:
      raise CpmConfigError(f"config.{key} must be in (0, 1], got {config[key]}")
  for key in ("player_learning_rate", "coach_learning_rate", "grad_clip", "clip_eps"):
    if config[key] <= 0:
      raise CpmConfigError(f"config.{key} must be > 0, got {config[key]}")
  for key in ("player_kl_coef", "coach_kl_coef"):
    if config[key] < 0:
      raise CpmConfigError(f"config.{key} must be >= 0, got {config[key]}")
  if config.samples_per_problem < 2:
    raise CpmConfigError(
      f"config.samples_per_problem={config.samples_per_problem}: a plurality label and a GRPO "
      "group need at least 2 answers per problem"
    )
  if config.proposer == "coach" and not config.instruction.strip():
    raise CpmConfigError("config.instruction must be non-empty (the coach's only prompt)")
  if "sft" not in config.player:
    raise CpmConfigError("config.player.sft is missing (the player's warm start / task)")
  if config.proposer == "coach" and "sft" not in config.coach:
    raise CpmConfigError("config.coach.sft is missing (the coach's warm-up / model source)")
  for key in ("task", "task_config", "task_overrides"):
    if key not in config.problems:
      raise CpmConfigError(f"config.problems.{key} is missing (the task generator)")
