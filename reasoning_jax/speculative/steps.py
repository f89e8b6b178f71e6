"""Reasoning-step segmentation by token id (SemanticSpec, spec `inference.md` section 2.2).

"Beyond Tokens: Semantic-Aware Speculative Decoding for Efficient Inference by Probing Internal
States" (Dong, Wang, Lin, Chen, Hassan; arXiv:2602.03708). A *step* is the text up to and
including the next *boundary token*; the boundary token belongs to the step it ends. Steps are
cut by token id, never by re-tokenising text, so the draft, the target and the probes see the
same ids.

Boundary ids (DESIGN CHOICE, a flag of every caller: `boundary_ids`, an explicit id set):

  * `boundary_ids_from_tokenizer(tok)`: the paper's rule, "tokens whose text ends in a blank
    line" (in the Qwen2.5 vocabulary: 271 "\\n\\n", 4710 " \\n\\n", 382 ".\\n\\n", ...);
  * byte-level vocabularies (`ByteTokenizer`) have no token for a blank line, only the byte
    "\\n"; `boundary_ids_from_tokenizer(tok, rule="newline")` returns the ids whose text ends
    in a newline (for `ByteTokenizer`, the single id of "\\n", i.e. 10 + 3 = 13): a step is a
    line. Blank-line steps cannot be expressed by one byte id; a line is the nearest unit.

  >>> split_steps([5, 13, 6, 7, 13, 8], boundary_ids=(13,))
  [[5, 13], [6, 7, 13], [8]]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

BOUNDARY_RULES = ("blank_line", "newline")


def check_boundary_ids(boundary_ids: Any, vocab_size: int, argument: str = "boundary_ids"):
  """`boundary_ids` as a sorted tuple of ints in `[0, vocab_size)`; ValueError naming it."""
  if boundary_ids is None:
    raise ValueError(f"{argument} must be a non-empty set of token ids, got None")
  try:
    ids = tuple(sorted({int(i) for i in boundary_ids}))
  except TypeError as error:
    raise TypeError(f"{argument} must be an iterable of ints, got {boundary_ids!r}") from error
  if not ids:
    raise ValueError(f"{argument} must be a non-empty set of token ids (the step ends)")
  bad = [i for i in ids if not 0 <= i < vocab_size]
  if bad:
    raise ValueError(f"{argument} {bad} are outside the vocabulary [0, {vocab_size})")
  return ids


def boundary_ids_from_tokenizer(tokenizer: Any, rule: str = "blank_line") -> tuple[int, ...]:
  """Ids whose decoded text ends in a blank line (`rule="blank_line"`) or a newline.

  Scans the whole vocabulary with `tokenizer.decode([i])` (special tokens skipped).
  Byte-level tokenizers have no blank-line token; use `rule="newline"` for them (a step is a
  line). Raises ValueError when no id qualifies.
  """
  if rule not in BOUNDARY_RULES:
    raise ValueError(f"rule must be one of {BOUNDARY_RULES}, got {rule!r}")
  suffix = "\n\n" if rule == "blank_line" else "\n"
  ids = []
  for i in range(int(tokenizer.vocab_size)):
    try:
      text = tokenizer.decode([i])
    except Exception:  # noqa: BLE001 - ids without text (reserved, byte fragments) are no boundary.
      continue
    # Some tokenizers render a blank line as "\n\n" after stripping a leading space.
    if isinstance(text, str) and text.endswith(suffix):
      ids.append(i)
  if not ids:
    raise ValueError(
      f"no token of this tokenizer decodes to text ending in {suffix!r} (rule={rule!r}); "
      "pass boundary_ids explicitly, or rule='newline' for a byte-level vocabulary"
    )
  return tuple(ids)


def split_steps(ids: Sequence[int], boundary_ids: Iterable[int]) -> list[list[int]]:
  """Cuts `ids` after every boundary id; the boundary stays in its step; a tail without a
  boundary is the last (unfinished) step."""
  bounds = set(int(b) for b in boundary_ids)
  steps, current = [], []
  for token in ids:
    current.append(int(token))
    if int(token) in bounds:
      steps.append(current)
      current = []
  if current:
    steps.append(current)
  return steps


def step_prefix_lengths(ids: Sequence[int], boundary_ids: Iterable[int]) -> list[int]:
  """Lengths `l` such that `ids[:l]` ends at a step boundary (every `l` with
  `ids[l - 1]` a boundary id): the prefixes of spec 2.2 step 1."""
  bounds = np.asarray(sorted(set(int(b) for b in boundary_ids)))
  arr = np.asarray(list(ids), np.int64)
  return [int(i) + 1 for i in np.flatnonzero(np.isin(arr, bounds))]


def first_boundary(tokens: np.ndarray, boundary_ids: Iterable[int]) -> np.ndarray:
  """`[B]` index of the first boundary id in each row of `tokens [B, T]`, `T` where none."""
  tokens = np.asarray(tokens)
  hit = np.isin(tokens, np.asarray(sorted(set(int(b) for b in boundary_ids))))
  return np.where(hit.any(axis=1), hit.argmax(axis=1), tokens.shape[1])
