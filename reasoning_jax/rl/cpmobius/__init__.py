"""CPMöbius: cooperative coach-player self-play without external data.

"CPMöbius: Iterative Coach-Player Reasoning for Data-Free Reinforcement Learning", Ran Li et
al., arXiv:2602.02979 (ICML 2026); spec rl.md section 8.

* `labels`: plurality pseudo-labels, the difficulty filter, player and coach rewards (pure);
* `grammar`: validity, difficulty bucket and true value of a proposed arithmetic question
  (diagnostics only);
* `config`: the config's keys and ranges; `models`: the player, the coach (with its warm-up)
  and the task generator's problems;
* `step`: one step of the game (propose, solve, filter, the player's and the coach's updates);
* `selfplay`: `run_cpmobius`, the loop, checkpointed as one state.
"""

from reasoning_jax.rl.cpmobius.config import PROPOSERS, CpmConfigError, validate_config
from reasoning_jax.rl.cpmobius.grammar import ProblemInfo, parse_problem, problem_text
from reasoning_jax.rl.cpmobius.labels import (
  COACH_REWARDS,
  GroupLabel,
  coach_rewards,
  in_band,
  label_group,
  player_rewards,
)

__all__ = [
  "COACH_REWARDS",
  "PROPOSERS",
  "CpmConfigError",
  "GroupLabel",
  "ProblemInfo",
  "coach_rewards",
  "in_band",
  "label_group",
  "parse_problem",
  "player_rewards",
  "problem_text",
  "run_cpmobius",
  "validate_config",
]


def __getattr__(name):
  if name == "run_cpmobius":  # The loop imports models and trainers: loaded on first use.
    from reasoning_jax.rl.cpmobius.selfplay import run_cpmobius

    return run_cpmobius
  raise AttributeError(f"module 'reasoning_jax.rl.cpmobius' has no attribute {name!r}")
