"""Universal adversarial triggers: one short token sequence prepended to every source.

"Universal Adversarial Triggers for Attacking and Analyzing NLP" (Wallace, Feng, Kandpal,
Gardner, Singh; arXiv:1908.07125), with the budget of "Monotonicity as an Architectural Bias
for Robust Language Models" (Cooper et al., arXiv:2602.02686) §5.2 / spec
`memory_attention.md` §5.2: coordinate search, 3 restarts, 50 iterations, learned on 80
examples, tested on 120.

`learn_trigger` is model-agnostic: it takes `loss_of` (the mean training loss of each of a
batch of triggers) and `grad_of` (the gradient of that loss w.r.t. one trigger's embeddings).
Each iteration updates one trigger position, cycling through them: candidates are ranked by
the averaged gradient, g_j . e_c (HotFlip's first-order rule; at a fixed position the same
ranking as g_j . (e_c - e_current)), the top `num_candidates` are evaluated by their true loss,
and the best replaces the current token if it raises the loss. The training loss therefore
never decreases. A restart stops early once a full sweep over the trigger positions improves
nothing: the trigger, hence its gradient and its candidates, would then repeat, so the
remaining iterations could not change it (an exact shortcut, not an approximation).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from reasoning_jax.evaluate.monotone_attack.task import IGNORE


def prepend_trigger(trigger: np.ndarray, inputs: np.ndarray) -> np.ndarray:
  """Triggers `[C, m]` before each source `[N, T]` -> `[C, N, m + T]`; one `[m]` -> `[N, m + T]`."""
  trigger = np.asarray(trigger)
  trig = trigger[None] if trigger.ndim == 1 else trigger
  (c, m), n = trig.shape, inputs.shape[0]
  ids = np.concatenate(
    [np.broadcast_to(trig[:, None, :], (c, n, m)), np.broadcast_to(inputs, (c,) + inputs.shape)],
    axis=-1,
  ).astype(inputs.dtype)
  return ids[0] if trigger.ndim == 1 else ids


def shift_targets(targets: np.ndarray, trigger_len: int) -> np.ndarray:
  """Targets `[N, T]` -> `[N, m + T]`, IGNORE under the trigger (scored tokens unchanged)."""
  pad = np.full((targets.shape[0], trigger_len), IGNORE, targets.dtype)
  return np.concatenate([pad, targets], axis=-1)


def learn_trigger(
  loss_of: Callable[[np.ndarray], np.ndarray],
  grad_of: Callable[[np.ndarray], np.ndarray],
  table: np.ndarray,
  candidate_ids: np.ndarray,
  *,
  trigger_len: int,
  num_restarts: int,
  num_iterations: int,
  num_candidates: int,
  seed: int,
) -> dict[str, Any]:
  """Coordinate search for the trigger that maximises the mean training loss.

  Args:
    loss_of: triggers `[C, m]` -> their mean loss over the training examples `[C]`.
    grad_of: a trigger `[m]` -> d(mean training loss) / d(trigger embeddings) `[m, H]`.
    table: the embedding table `[V, H]`.
    candidate_ids: the tokens a trigger may contain `[K]`.
    trigger_len: m; num_restarts; num_iterations (per restart, at most); num_candidates: the
      top tokens (by g . e_c) whose true loss is evaluated at each iteration.
    seed: the random initial triggers (uniform over `candidate_ids`); all else is
      deterministic given the loss.

  Returns:
    {"trigger" `[m]` (best over restarts), "loss" (its mean training loss), "initial_trigger",
     "initial_loss" (restart 0's random start: the effect of inserting any tokens),
     "restarts": [{"trigger", "loss", "initial_trigger", "initial_loss", "iterations",
     "history" (the training loss after each iteration)}]}.
  """
  for name, value in (
    ("trigger_len", trigger_len),
    ("num_restarts", num_restarts),
    ("num_iterations", num_iterations),
    ("num_candidates", num_candidates),
  ):
    if int(value) != value or value < 1:
      raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
  candidate_ids = np.asarray(candidate_ids)
  if candidate_ids.ndim != 1 or len(candidate_ids) < 2:
    raise ValueError(f"candidate_ids must be 1-D with >= 2 tokens, got shape {candidate_ids.shape}")
  table = np.asarray(table, np.float32)
  cand_table = table[candidate_ids]  # [K, H]
  rng = np.random.default_rng(seed)
  restarts = []
  for _ in range(num_restarts):
    trigger = start = rng.choice(candidate_ids, size=trigger_len)
    current = float(loss_of(trigger[None])[0])
    history, initial, stale, it = [current], current, 0, 0
    for it in range(1, num_iterations + 1):
      j = (it - 1) % trigger_len
      scores = cand_table @ np.asarray(grad_of(trigger), np.float32)[j]  # [K]
      scores[candidate_ids == trigger[j]] = -np.inf
      top = candidate_ids[
        np.argsort(-scores, kind="stable")[: min(num_candidates, len(scores) - 1)]
      ]
      trials = np.repeat(trigger[None], len(top), axis=0)
      trials[:, j] = top
      losses = np.asarray(loss_of(trials), np.float64)
      best = int(np.argmax(losses))
      if losses[best] > current:
        trigger, current, stale = trials[best], float(losses[best]), 0
      else:
        stale += 1
      history.append(current)
      if stale >= trigger_len:
        break
    restarts.append(
      {
        "trigger": trigger.tolist(),
        "loss": current,
        "initial_trigger": start.tolist(),
        "initial_loss": initial,
        "iterations": it,
        "history": history,
      }
    )
  best = max(restarts, key=lambda r: r["loss"])
  return {
    "trigger": np.asarray(best["trigger"]),
    "loss": best["loss"],
    "initial_trigger": np.asarray(restarts[0]["initial_trigger"]),
    "initial_loss": restarts[0]["initial_loss"],
    "restarts": restarts,
  }
