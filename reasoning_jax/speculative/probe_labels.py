"""Offline probe data for SemanticSpec: sampled steps, their pooled states and their labels.

Spec `inference.md` section 2.2 ("Beyond Tokens", Dong et al., arXiv:2602.03708):

  1. cut reasoning traces at every step boundary (`steps.step_prefix_lengths`);
  2. for each prefix sample `num_samples` next steps from the target and as many from the
     draft (spec 20 each; a step stops after a boundary id, which it keeps);
  3. label each sample (DESIGN CHOICE `label_mode`):

     * "cluster" (the paper): pool the valid samples of both models (those that ended at a
       boundary or EOS), cluster them greedily with a pluggable `equivalent(a, b)` (each
       unassigned sample opens a cluster and absorbs every later equivalent one; the paper
       uses bidirectional NLI entailment with deberta-v2-xlarge-mnli, which is not available
       here: the default `same_text` compares whitespace-normalised text), label =
       `|cluster| / n_valid`;
     * "verifier" (the issue's mode): the fraction of `num_continuations` continuations
       from `prefix + step` (sampled from the target) that a registered reward of
       `reasoning_jax.rewards` judges correct against the example's answer;

  4. features: each model's own mean-pooled final-layer states over its own samples, at the
     positions that predicted the step's tokens (`probe.pool_hidden`, the online loop's
     convention), from a teacher-forced pass.

The target probe trains on the target's samples, the draft probe on the draft's (spec 2.5.3:
the target probe is later applied to draft steps; the asymmetry is kept).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reasoning_jax.generate.generate import generate
from reasoning_jax.rewards.verifiers import score_batch
from reasoning_jax.speculative.probe import pool_hidden
from reasoning_jax.speculative.steps import check_boundary_ids

LABEL_MODES = ("cluster", "verifier")


def same_text(a: str, b: str) -> bool:
  """Default step equivalence: equal after collapsing whitespace (NLI stand-in)."""
  return " ".join(a.split()) == " ".join(b.split())


def greedy_clusters(items: Sequence[Any], equivalent: Callable[[Any, Any], bool]) -> list[int]:
  """Cluster id per item: each unassigned item opens a cluster and absorbs every later item
  equivalent to it (semantic entropy's procedure; spec 2.2 step 3)."""
  ids = [-1] * len(items)
  n = 0
  for i, item in enumerate(items):
    if ids[i] >= 0:
      continue
    ids[i] = n
    for j in range(i + 1, len(items)):
      if ids[j] < 0 and equivalent(item, items[j]):
        ids[j] = n
    n += 1
  return ids


def cluster_share_labels(
  items: Sequence[Any], equivalent: Callable[[Any, Any], bool]
) -> np.ndarray:
  """`|cluster(j)| / n` for each of the `n` items."""
  ids = np.asarray(greedy_clusters(items, equivalent))
  if ids.size == 0:
    return np.zeros((0,), np.float32)
  sizes = np.bincount(ids)
  return (sizes[ids] / ids.size).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _features_fn(model_def: Any, pooling: str):
  def fn(state, ids, context_lengths, step_lengths):
    hidden, _ = nnx.merge(model_def, state).forward(ids)
    return pool_hidden(hidden, context_lengths, step_lengths, pooling)

  return jax.jit(fn)


def step_features(
  model: nnx.Module,
  ids: Any,
  context_lengths: Any,
  step_lengths: Any,
  pooling: str = "mean",
) -> np.ndarray:
  """Pooled final-layer states `[B, H]` of `ids [B, S]` (context then step, right-padded)
  over the positions that predicted each step's tokens (one teacher-forced pass)."""
  model_def, state = nnx.split(model)
  out = _features_fn(model_def, pooling)(
    state,
    jnp.asarray(ids, jnp.int32),
    jnp.asarray(context_lengths, jnp.int32),
    jnp.asarray(step_lengths, jnp.int32),
  )
  return np.asarray(out)


def sample_steps(
  model: nnx.Module,
  prefix: Sequence[int],
  *,
  num_samples: int,
  boundary_ids: Any,
  max_step_tokens: int = 500,
  temperature: float = 0.6,
  top_p: float = 0.95,
  eos_id: Any = None,
  key: jax.Array,
  pooling: str = "mean",
) -> tuple[list[list[int]], np.ndarray, np.ndarray]:
  """`num_samples` next steps after `prefix` from `model`, with their pooled states.

  Returns `(steps, features [N, H], valid [N])`; `valid` is True where the step ended at a
  boundary id or EOS (not cut by `max_step_tokens`).
  """
  boundary_ids = check_boundary_ids(boundary_ids, model.config.vocab_size)
  eos = () if eos_id is None else tuple(np.atleast_1d(eos_id).tolist())
  prefix = np.asarray(list(prefix), np.int32)
  c = prefix.size
  prompts = np.broadcast_to(prefix, (num_samples, c))
  lengths = np.full((num_samples,), c, np.int32)
  out = generate(
    model,
    prompts,
    lengths,
    max_new_tokens=max_step_tokens,
    temperature=temperature,
    top_p=top_p,
    eos_id=boundary_ids + eos,
    key=key,
  )
  tokens, step_lengths = np.asarray(out.tokens), np.asarray(out.lengths)
  ids = np.concatenate([prompts, tokens], axis=1)
  features = step_features(model, ids, lengths, step_lengths, pooling)
  steps = [tokens[i, : step_lengths[i]].tolist() for i in range(num_samples)]
  return steps, features, np.asarray(out.done)


def verifier_labels(
  model: nnx.Module,
  prefix: Sequence[int],
  steps: Sequence[Sequence[int]],
  *,
  tokenizer: Any,
  reward: str,
  answer: str,
  num_continuations: int = 4,
  max_new_tokens: int = 256,
  temperature: float = 0.6,
  top_p: float = 0.95,
  eos_id: Any = None,
  key: jax.Array,
  example_fields: dict[str, Any] | None = None,
) -> np.ndarray:
  """Per step: the fraction of `num_continuations` continuations of `prefix + step` (sampled
  from `model`) whose text (prefix's generated part excluded; step + continuation) the
  registered `reward` scores 1 against `answer` (`example_fields`: the example's other reward
  fields, one value each, e.g. countdown's numbers).

  All steps' continuations are one batched `generate` call (`len(steps) * num_continuations`
  right-padded rows; the width is rounded up to a multiple of 16 so calls with nearby prefix
  lengths share a compiled program)."""
  if not steps:
    return np.zeros((0,), np.float32)
  contexts = [list(prefix) + list(step) for step in steps]
  width = -(-max(len(c) for c in contexts) // 16) * 16
  rows = len(contexts) * num_continuations
  prompts = np.zeros((rows, width), np.int32)
  lengths = np.zeros((rows,), np.int32)
  for i, context in enumerate(contexts):
    for j in range(num_continuations):
      prompts[i * num_continuations + j, : len(context)] = context
      lengths[i * num_continuations + j] = len(context)
  out = generate(
    model,
    prompts,
    lengths,
    max_new_tokens=max_new_tokens,
    temperature=temperature,
    top_p=top_p,
    eos_id=eos_id,
    key=key,
  )
  tokens, gen = np.asarray(out.tokens), np.asarray(out.lengths)
  texts = [
    tokenizer.decode(list(steps[r // num_continuations]) + tokens[r, : gen[r]].tolist())
    for r in range(rows)
  ]
  fields = {k: [v] * rows for k, v in (example_fields or {}).items()}
  scores = np.asarray(score_batch(reward, texts, [answer] * rows, **fields), np.float32)
  return scores.reshape(len(contexts), num_continuations).mean(axis=1)


def build_probe_dataset(
  target: nnx.Module,
  draft: nnx.Module,
  prefixes: Sequence[Sequence[int]],
  *,
  tokenizer: Any,
  boundary_ids: Any,
  num_samples: int = 20,
  label_mode: str = "cluster",
  equivalent: Callable[[str, str], bool] = same_text,
  max_step_tokens: int = 500,
  temperature: float = 0.6,
  top_p: float = 0.95,
  eos_id: Any = None,
  pooling: str = "mean",
  keep_truncated: bool = False,
  answers: Sequence[str] | None = None,
  example_fields: Sequence[dict[str, Any]] | None = None,
  reward: str = "math_exact",
  num_continuations: int = 4,
  max_continuation_tokens: int = 256,
  key: jax.Array,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Features and labels for both probes: `{"target": (X_T, y_T), "draft": (X_D, y_D)}`.

  `prefixes` are token-id lists cut at step boundaries; `label_mode` "cluster" clusters the
  decoded text of each prefix's valid samples of both models with `equivalent`; "verifier"
  needs `answers` (one per prefix; `example_fields` optionally one dict of other reward fields
  per prefix) and scores continuations with `reward`. Only valid samples
  (ended at a boundary or EOS) are kept, unless `keep_truncated` (DESIGN CHOICE, default
  False) also keeps steps cut by `max_step_tokens` (untrained models rarely end a step).
  """
  if label_mode not in LABEL_MODES:
    raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
  if label_mode == "verifier" and (answers is None or len(answers) != len(prefixes)):
    raise ValueError("label_mode='verifier' needs answers, one per prefix")
  data: dict[str, tuple[list, list]] = dict(target=([], []), draft=([], []))
  for p, prefix in enumerate(prefixes):
    key_p = jax.random.fold_in(key, p)
    sampled = {}
    for m, (name, model) in enumerate((("target", target), ("draft", draft))):
      steps, feats, valid = sample_steps(
        model,
        prefix,
        num_samples=num_samples,
        boundary_ids=boundary_ids,
        max_step_tokens=max_step_tokens,
        temperature=temperature,
        top_p=top_p,
        eos_id=eos_id,
        key=jax.random.fold_in(key_p, m),
        pooling=pooling,
      )
      keep = valid | keep_truncated
      sampled[name] = ([s for s, v in zip(steps, keep) if v], feats[keep])
    if label_mode == "cluster":
      pool = [tokenizer.decode(s) for s in sampled["target"][0] + sampled["draft"][0]]
      labels = cluster_share_labels(pool, equivalent)
      split = len(sampled["target"][0])
      by_model = dict(target=labels[:split], draft=labels[split:])
    else:
      by_model = {
        name: verifier_labels(
          target,
          prefix,
          sampled[name][0],
          tokenizer=tokenizer,
          reward=reward,
          answer=answers[p],
          num_continuations=num_continuations,
          max_new_tokens=max_continuation_tokens,
          temperature=temperature,
          top_p=top_p,
          eos_id=eos_id,
          key=jax.random.fold_in(key_p, 2 + i),
          example_fields=example_fields[p] if example_fields else None,
        )
        for i, name in enumerate(("target", "draft"))
      }
    for name in ("target", "draft"):
      data[name][0].append(sampled[name][1])
      data[name][1].append(by_model[name])
  return {
    name: (np.concatenate(x, axis=0), np.concatenate(y, axis=0)) for name, (x, y) in data.items()
  }
