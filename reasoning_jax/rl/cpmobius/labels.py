"""CPMöbius' pseudo-labels, difficulty filter, player rewards and coach rewards (pure).

"CPMöbius: Iterative Coach-Player Reasoning for Data-Free Reinforcement Learning", Ran Li,
Zeyuan Liu, Yinghao Chen, Bingxiang He, Jiarui Yuan, Zixuan Fu, Weize Chen, Jinyi Hu, Zhiyuan
Liu, Maosong Sun, arXiv:2602.02979 (ICML 2026); spec rl.md section 8.

For a proposed problem x_i the player samples n answers y_ij (the verifier's extraction,
`rewards.answer_key`; None when there is none). The pseudo-label y*_i is the unique most
frequent answer (`rewards.unique_mode`: a tie or no answer gives no label). Then

    agreement_i = mean_j 1[y_ij = y*_i]            (0 without a label)
    accepted    = low <= agreement_i <= high        ([0.2, 0.8]; the filter)
    r_ij        = r_agree if y_ij = y*_i else r_other      (player_reward_values)
    R^P_i       = mean_j 1[y_ij = y*_i]             (the success rate)
    R^C_i       = R^P_i * Delta_t                   (coach_reward="success_rate_x_delta")

`Delta_t` is one scalar per step (the change of greedy validation accuracy after the player's
update). With the paper's (1, 0) player rewards every accepted problem has R^P >= 0.2 > 0, so
sign(R^C_i) = sign(Delta_t), and Delta_t = 0 gives a zero coach gradient.
"""

from __future__ import annotations

from typing import Hashable, Optional, Sequence

import numpy as np

from reasoning_jax.rewards.answers import unique_mode
from reasoning_jax.validation import check_float_in

__all__ = [
  "COACH_REWARDS",
  "GroupLabel",
  "coach_rewards",
  "in_band",
  "label_group",
  "player_rewards",
]

# The coach reward variants (spec 8.1 code-vs-paper flags).
COACH_REWARDS = ("success_rate_x_delta", "delta_only", "mean_adv_x_delta")


class GroupLabel:
  """The pseudo-label of one problem's n answers and the agreement with it."""

  __slots__ = ("label", "agreement", "matches")

  def __init__(self, answers: Sequence[Optional[Hashable]]):
    self.label = unique_mode(answers)
    self.matches = np.asarray(
      [self.label is not None and a == self.label for a in answers], dtype=bool
    )
    self.agreement = float(self.matches.mean()) if len(answers) else 0.0

  def __repr__(self) -> str:
    return f"GroupLabel(label={self.label!r}, agreement={self.agreement:.4f})"


def label_group(answers: Sequence[Optional[Hashable]]) -> GroupLabel:
  """The unique-mode pseudo-label of `answers` and the agreement rate with it."""
  return GroupLabel(answers)


def in_band(agreement: float, low: float = 0.2, high: float = 0.8) -> bool:
  """The difficulty filter: `low <= agreement <= high` (inclusive; with n = 16 the counts 3
  (0.1875) and 13 (0.8125) are rejected, 4 and 12 accepted)."""
  check_float_in(low, "filter_low", 0.0, 1.0)
  check_float_in(high, "filter_high", low, 1.0)
  return low <= agreement <= high


def player_rewards(label: GroupLabel, values: tuple[float, float] = (1.0, 0.0)) -> np.ndarray:
  """`[n]` rewards: `values[0]` where the answer equals the pseudo-label, else `values[1]`
  (missing answers, ties without a label and disagreeing answers alike). `(1, 0)` is the
  paper's, `(1, -1)` the released code's."""
  agree, other = values
  return np.where(label.matches, np.float32(agree), np.float32(other)).astype(np.float32)


def coach_rewards(
  success_rates: Sequence[float],
  delta: float,
  *,
  mode: str = "success_rate_x_delta",
  mean_advantages: Sequence[Optional[float]] | None = None,
) -> np.ndarray:
  """`[m]` coach rewards of the accepted problems of one step.

  Args:
    success_rates: R^P_i, the player's agreement rate with the pseudo-label per problem.
    delta: Delta_t, the step's change of validation accuracy (one scalar for all problems).
    mode: `success_rate_x_delta` (paper, default): R^P_i * Delta; `delta_only` (released
      code, 1.5B script): Delta for every problem; `mean_adv_x_delta` (code, 7B scripts):
      Delta times the mean token-level player advantage of the problem's group, -1 for a
      group without tokens (`mean_advantages[i] is None`).
    mean_advantages: needed by `mean_adv_x_delta`.
  """
  if mode not in COACH_REWARDS:
    raise ValueError(f"coach_reward={mode!r}; choose one of {COACH_REWARDS}")
  rates = np.asarray(success_rates, np.float64)
  if not np.isfinite(delta):
    raise ValueError(f"delta must be finite, got {delta!r}")
  if mode == "success_rate_x_delta":
    out = rates * delta
  elif mode == "delta_only":
    out = np.full_like(rates, delta)
  else:
    if mean_advantages is None or len(mean_advantages) != len(rates):
      raise ValueError("coach_reward='mean_adv_x_delta' needs one mean advantage per problem")
    out = np.asarray([-1.0 if a is None else a * delta for a in mean_advantages], np.float64)
  return out.astype(np.float32)
