"""Prompt + completion rows: what a scorer, a log-prob pass or a trainer reads after `generate`."""

from __future__ import annotations

import numpy as np

__all__ = ["assemble_sequences"]


def assemble_sequences(
  prompts: np.ndarray,
  prompt_lengths: np.ndarray,
  completions: np.ndarray,
  completion_lengths: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
  """Left-aligned `prompt[:p] + completion[:c]` rows `[N, P + C]` and their completion mask."""
  n, p = prompts.shape
  c = completions.shape[1]
  tokens = np.zeros((n, p + c), np.int32)
  mask = np.zeros((n, p + c), np.float32)
  for i in range(n):
    pl, cl = int(prompt_lengths[i]), int(completion_lengths[i])
    tokens[i, :pl] = prompts[i, :pl]
    tokens[i, pl : pl + cl] = completions[i, :cl]
    mask[i, pl : pl + cl] = 1.0
  return tokens, mask
