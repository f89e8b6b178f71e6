"""Reward terms of InfMem's RL rollouts (memory_attention.md 1.2, section 1.3 test (f)).

The released rollout manager adds `0.6 * early_stop + 0.5 * tool_call_ok + 0.5 * memory_ok`;
how it is combined with the outcome reward inside verl was not traced, so the weighting here
is a DESIGN CHOICE: `total = outcome + 0.6 * early_stop + 0.5 * tool_ok + 0.5 * memory_ok`
(`RewardWeights`).

early_stop: the step counter is the number of writes done (the PreThink of chunk i runs at
step i). Let h be the step of the write that first put the gold answer into memory and s the
step of the PreThink that stopped the episode: `min(1, gamma ** (s - h - 1))` with gamma 0.6,
i.e. 1.0 when stopping right after the write that found it, 0.6 one step later, 0.36 two
steps later; 0 when it stopped before the answer reached memory; an episode that never stops
is measured to the end (s = N). The released code records h with 0 as "not found yet", so a
hit at step 0 is lost; here "not found" is None.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

from reasoning_jax.agents.infmem.episode import Episode


def _norm(text: str) -> str:
  return re.sub(r"\s+", " ", text).strip().lower()


def answer_in_memory(memory: str, answers: Sequence[str]) -> bool:
  """True when a gold answer (whitespace-normalised, lowercase) is a substring of memory."""
  mem = _norm(memory)
  return any(_norm(a) and _norm(a) in mem for a in answers)


def first_hit(writes: Sequence[tuple[int, str]], answers: Sequence[str]) -> int | None:
  """The step of the first write whose memory holds a gold answer, or None."""
  for step, memory in writes:
    if answer_in_memory(memory, answers):
      return step
  return None


def early_stop_reward(
  hit_step: int | None, stop_step: int | None, num_steps: int, gamma: float = 0.6
) -> float:
  """`min(1, gamma ** (d - 1))` with d = stop step - hit step (see the module docstring)."""
  if hit_step is None:
    return 0.0
  end = num_steps if stop_step is None else stop_step
  d = end - hit_step
  if d < 1:
    return 0.0
  return float(min(1.0, gamma ** (d - 1)))


@dataclasses.dataclass(frozen=True)
class RewardWeights:
  outcome: float = 1.0
  early_stop: float = 0.6
  tool_ok: float = 0.5
  memory_ok: float = 0.5
  gamma: float = 0.6


def episode_rewards(
  episode: Episode,
  answers: Sequence[str],
  outcome: float,
  weights: RewardWeights = RewardWeights(),
) -> dict[str, float]:
  """The terms and their weighted sum for one finished episode.

  tool_ok is 0 when some call's arguments were malformed; memory_ok is 0 when some write hit
  its budget before ending (the released code checks that the write's `</think>` closed; a
  model that does not think has nothing to close, so a cut-off write is the failure here).
  """
  hit = first_hit(episode.writes, answers)
  stop = early_stop_reward(hit, episode.stop_step, episode.num_chunks, weights.gamma)
  tool_ok = float(episode.stats.malformed_calls == 0)
  memory_ok = float(episode.stats.truncated_writes == 0)
  total = (
    weights.outcome * outcome
    + weights.early_stop * stop
    + weights.tool_ok * tool_ok
    + weights.memory_ok * memory_ok
  )
  return {
    "outcome": float(outcome),
    "early_stop": stop,
    "tool_ok": tool_ok,
    "memory_ok": memory_ok,
    "total": float(total),
    "hit_step": -1.0 if hit is None else float(hit),
  }
