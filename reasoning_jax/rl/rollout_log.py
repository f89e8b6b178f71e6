"""Sample rollouts written for people to read: `<workdir>/rollouts.jsonl` and TensorBoard text.

RL goes wrong in ways its scalar curves hide: an answer format the verifier never accepts,
completions cut off by the budget, a chat template that did not render, a reward the policy
learns to game. The first thing to open is therefore a few rollouts. Every `log_every`
steps the RL trainer writes `config.log_rollouts` rows of the batch it just trained on (0
turns it off): the prompt and completion text, the reference answer, the reward, the row's
advantage, its length and whether the budget cut it off.

Rows are taken one per group first (group 0, 1, ... then the second row of each group), so a
handful of lines shows different prompts; the choice is deterministic. Nothing here changes
what is trained: `config.log_rollouts` is one of `reproduce.records.OUTPUT_ONLY_KEYS`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reasoning_jax.rl.rollout import RolloutBatch
from reasoning_jax.tokenizers.base import Tokenizer

__all__ = ["ROLLOUTS_FILE", "rollout_records", "select_rows"]

ROLLOUTS_FILE = "rollouts"  # MetricWriter.write_records(name=...) -> rollouts.jsonl


def select_rows(group_ids: np.ndarray, num: int) -> np.ndarray:
  """Up to `num` row indices: each group's first row in group order, then each second row, ...

  >>> select_rows(np.array([0, 0, 1, 1, 2, 2]), 4).tolist()
  [0, 2, 4, 1]
  """
  group_ids = np.asarray(group_ids)
  if num <= 0 or group_ids.size == 0:
    return np.zeros((0,), np.int64)
  rank = np.zeros(group_ids.shape, np.int64)  # A row's position inside its group.
  seen: dict[int, int] = {}
  for i, g in enumerate(group_ids.tolist()):
    rank[i] = seen.get(g, 0)
    seen[g] = rank[i] + 1
  order = np.lexsort((np.arange(group_ids.size), group_ids, rank))
  return order[:num]


def _row_advantage(advantages: Any, mask: np.ndarray, row: int) -> float:
  """A row's advantage: the value of a sequence-level `[N]` estimator, or the mean over the
  completion tokens of a token-level `[N, L]` one."""
  adv = np.asarray(advantages, np.float64)
  if adv.ndim == 1:
    return float(adv[row])
  weights = np.asarray(mask[row], np.float64)
  return float((adv[row] * weights).sum() / max(weights.sum(), 1.0))


def rollout_records(
  batch: RolloutBatch,
  tokenizer: Any,
  *,
  step: int,
  num: int,
  advantages: Any = None,
) -> list[dict[str, Any]]:
  """JSON-ready records of `num` rows of `batch` (see the module docstring).

  Args:
    batch: the trained batch (`collect_rollouts` / `collect_dynamic`).
    tokenizer: decodes the prompts (`decode_batch(ids, lengths)`); a `tokenizers.Tokenizer`
      keeps special tokens, so a chat-templated prompt reads as the model saw it.
    step: the RL step, stored in every record.
    num: how many rows (0: none).
    advantages: the `[N]` or `[N, L]` advantages trained on, or None to leave them out.
  """
  rows = select_rows(batch.group_ids, num)
  if rows.size == 0:
    return []
  prompts = None
  if batch.prompt_lengths is not None:
    lengths = np.asarray(batch.prompt_lengths)[rows]
    ids = np.asarray(batch.tokens)[rows]
    if isinstance(tokenizer, Tokenizer):  # The chat template's special tokens kept.
      prompts = tokenizer.decode_batch(ids, lengths, skip_special_tokens=False)
    else:  # Any object with the rollout's `decode_batch(ids, lengths)`.
      prompts = tokenizer.decode_batch(ids, lengths)
  records = []
  for k, row in enumerate(rows.tolist()):
    record: dict[str, Any] = {"step": int(step), "row": row, "group": int(batch.group_ids[row])}
    if prompts is not None:
      record["prompt"] = prompts[k]
    record["completion"] = batch.completions[row]
    if batch.answers is not None:
      record["answer"] = batch.answers[row]
    record["reward"] = float(batch.rewards[row])
    if advantages is not None:
      record["advantage"] = _row_advantage(advantages, batch.mask, row)
    record["completion_length"] = int(batch.completion_lengths[row])
    record["truncated"] = bool(batch.truncated[row])
    records.append(record)
  return records
