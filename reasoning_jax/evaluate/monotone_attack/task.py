"""The frequency-summary task: a synthetic seq2seq summary whose answer rests on aggregate evidence.

Why this task (issue 21): with a short source and a few keywords, five flips always erase a
keyword, so HotFlip succeeds on every example against every model and cannot tell models
apart. Here the reference summary is decided by token counts spread over a long source, the
count gaps vary per example (so the attack is graded: some examples need more than five flips
to move the answer, some need fewer), and most positions are filler, so meaning-preserving
flips (filler -> filler, the reference summary unchanged) exist.
"""

from __future__ import annotations

import math

import numpy as np

SEP, EOS = 0, 1
IGNORE = -100
FIRST_FILLER = 2


def task_vocab(num_filler: int, num_content: int) -> tuple[int, int, int]:
  """(vocab_size, first filler id, first content id) of the task's vocabulary.

  Layout: 0 SEP, 1 EOS, filler [2, 2+F), content [2+F, 2+F+C), summary tokens
  [2+F+C, 2+F+3C) (content i is written as 2+F+C+2i or 2+F+C+2i+1, two synonyms).
  """
  return FIRST_FILLER + num_filler + 3 * num_content, FIRST_FILLER, FIRST_FILLER + num_filler


def _check(name: str, value: int, low: int) -> None:
  if int(value) != value or value < low:
    raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def frequency_summary_task(
  num_examples: int,
  *,
  num_filler: int = 16,
  num_content: int = 12,
  source_len: int = 64,
  num_topics: int = 3,
  summary_len: int = 2,
  min_count: int = 2,
  max_gap: int = 16,
  min_filler: int = 16,
  seed: int = 0,
) -> dict[str, np.ndarray]:
  """Summarise a source by its most frequent content tokens, most frequent first.

  Source: `source_len` tokens; `num_topics` distinct content tokens ("topics"), topic r
  (0 = most frequent) occurring `counts[r]` times at random positions; the other positions
  are random filler tokens (at least `min_filler`). Counts: the least frequent topic occurs
  `min_count` times and consecutive gaps `counts[r] - counts[r+1]` are uniform on
  `[1, max_gap]`, redrawn until the filler fits. Summary: the `summary_len` most frequent
  topics in order of frequency, each written as one of two synonyms chosen at random (a floor
  of ln 2 nats on each summary token's loss, so the clean loss is O(1) as in real
  summarisation and "relative loss increase > 10%" is meaningful), then EOS. Sequence
  `[source, SEP, summary, EOS]`; the model sees it minus the last token.

  Margin: the smallest count gap that decides the summary, `min_{r < summary_len} counts[r] -
  counts[r+1]` (0 past the last topic). One flip changes a gap by at most 2 (one topic token
  turned into its rival), so `ceil(margin / 2)` flips are needed to even tie the ranking: with
  `margin > 2 * num_flips` the attack cannot change the reference summary.

  Returns:
    inputs, targets (IGNORE outside the summary), alt_targets (the other synonym; the target
    itself for EOS), source_mask (attackable positions), filler_mask: `[N, T]`, T =
    source_len + summary_len + 1; counts, topics (content index, most frequent first):
    `[N, num_topics]`; margin `[N]`.
  """
  for name, value, low in (
    ("num_examples", num_examples, 1),
    ("num_filler", num_filler, 2),
    ("num_content", num_content, 1),
    ("source_len", source_len, 1),
    ("num_topics", num_topics, 1),
    ("summary_len", summary_len, 1),
    ("min_count", min_count, 1),
    ("max_gap", max_gap, 1),
    ("min_filler", min_filler, 0),
  ):
    _check(name, value, low)
  if num_topics > num_content:
    raise ValueError(f"num_topics={num_topics} must be <= num_content={num_content}")
  if summary_len > num_topics:
    raise ValueError(f"summary_len={summary_len} must be <= num_topics={num_topics}")
  # The smallest source: every gap 1.
  smallest = num_topics * min_count + num_topics * (num_topics - 1) // 2
  if smallest + min_filler > source_len:
    raise ValueError(
      f"source_len={source_len} cannot hold {num_topics} topics with min_count={min_count} "
      f"and gaps >= 1 ({smallest} tokens) plus min_filler={min_filler} filler tokens"
    )
  rng = np.random.default_rng(seed)
  n, L, m, k, F, C = num_examples, source_len, num_topics, summary_len, num_filler, num_content
  gaps = rng.integers(1, max_gap + 1, size=(n, m - 1))
  while True:  # Redraw the gaps of rows whose topics leave fewer than min_filler fillers.
    counts = min_count + np.concatenate(
      [np.cumsum(gaps[:, ::-1], axis=1)[:, ::-1], np.zeros((n, 1), int)], axis=1
    )
    bad = counts.sum(1) > L - min_filler
    if not bad.any():
      break
    gaps[bad] = rng.integers(1, max_gap + 1, size=(int(bad.sum()), m - 1))
  topics = np.argsort(rng.random((n, C)), axis=1)[:, :m]
  first_content = FIRST_FILLER + F
  source = rng.integers(FIRST_FILLER, first_content, size=(n, L))
  order = np.argsort(rng.random((n, L)), axis=1)  # A random permutation of positions per row.
  for i in range(n):
    tokens = np.repeat(first_content + topics[i], counts[i])
    source[i, order[i, : len(tokens)]] = tokens
  synonym = rng.integers(0, 2, size=(n, k))
  base = first_content + C + 2 * topics[:, :k]
  summary, alt = base + synonym, base + (1 - synonym)
  seq = np.concatenate([source, np.full((n, 1), SEP), summary, np.full((n, 1), EOS)], axis=1)
  t = L + k + 1
  inputs, targets = seq[:, :-1], np.full((n, t), IGNORE)
  targets[:, L:] = seq[:, L + 1 :]
  alt_targets = targets.copy()
  alt_targets[:, L : L + k] = alt
  source_mask = np.zeros((n, t), bool)
  source_mask[:, :L] = True
  next_counts = np.concatenate([counts[:, 1:], np.zeros((n, 1), int)], axis=1)
  margin = (counts - next_counts)[:, :k].min(axis=1)
  return {
    "inputs": inputs.astype(np.int32),
    "targets": targets.astype(np.int32),
    "alt_targets": alt_targets.astype(np.int32),
    "source_mask": source_mask,
    "filler_mask": source_mask & (inputs < first_content),
    "counts": counts.astype(np.int32),
    "topics": topics.astype(np.int32),
    "margin": margin.astype(np.int32),
  }


def flips_to_tie(margin: np.ndarray) -> np.ndarray:
  """Token flips needed to tie the ranking that decides the summary: ceil(margin / 2)."""
  return np.ceil(np.asarray(margin) / 2).astype(np.int32)


def bayes_loss_floor(summary_len: int) -> float:
  """The Bayes-optimal clean loss (nats/token): ln 2 on each synonym token, 0 on EOS."""
  return summary_len * math.log(2) / (summary_len + 1)
