"""SemanticSpec's probe stage of the speculative-decoding experiment (spec `inference.md` 2.2).

"Beyond Tokens: Semantic-Aware Speculative Decoding for Efficient Inference by Probing Internal
States" (Dong et al., arXiv:2602.03708). Run by `experiment.run` once, before the table, when
a `semantic*` decoder is listed in `config.decoders`:

  1. traces: the target's greedy completions of `config.semantic.probe_prompts` prompts of
     the task's TRAINING split (never the held-out prompts the table decodes);
  2. prefixes: each trace (prompt + completion) cut after every boundary id
     (`steps.step_prefix_lengths`), from the prompt's end on (the prompt ends in a newline,
     so the first step's prefix is the prompt itself), the finished trace excluded;
  3. data: `build_probe_dataset` on those prefixes (`label_mode`, `num_samples` per prefix
     and model, steps of at most `max_step_tokens`); `label_mode="verifier"` scores
     `num_continuations` target continuations of each sampled step (up to the experiment's
     `max_new_tokens`) with the task's reward against the trace's answer;
  4. probes: `train_probe` for each model (hidden sizes `config.semantic.target_hidden` /
     `draft_hidden`), saved with `save_probe` under `<workdir>/probes/{target,draft}` with
     `probes/report.json` (validation MSE, dataset sizes, mean steps per trace); a rerun
     loads them (`load_probe`), and refuses probes built under other `config.semantic` keys.

Step boundary (`config.semantic.boundary`, DESIGN CHOICE): the pair's solutions are compact
column sums, one line, columns separated by ", " then "Answer: N" ("8+9=17, 7+6+1=14, 1=1\\n
Answer: 147"). A line (`"newline"`, the byte-level rule of `steps.py`) would give two steps,
the whole sum and the answer; `"comma_newline"` (default) also ends a step at ",", so each
column is a step (3 to 4 steps a solution). `boundary` may also be a tuple of token ids.
"""

from __future__ import annotations

import json
import os
import time
import types
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from reasoning_jax.evaluate.speculative.pair import Pair, sft_workdirs
from reasoning_jax.generate import generate
from reasoning_jax.speculative import (
  build_probe_dataset,
  load_probe,
  save_probe,
  step_prefix_lengths,
  train_probe,
)
from reasoning_jax.speculative.steps import (
  BOUNDARY_RULES,
  boundary_ids_from_tokenizer,
  check_boundary_ids,
  split_steps,
)

__all__ = ["boundary_ids", "needs_probes", "pair_task", "prepare_probes", "task_prompts"]

# `config.semantic` keys that define the probes: saved probes built under other values are
# other probes.
PROBE_KEYS = (
  "boundary",
  "label_mode",
  "num_samples",
  "probe_prompts",
  "max_step_tokens",
  "target_hidden",
  "draft_hidden",
  "max_epochs",
  "patience",
  "seed",
  "num_continuations",
)


def needs_probes(config: ml_collections.ConfigDict) -> bool:
  """Whether a decoder of `config.decoders` is step-level (family `semantic*`)."""
  return any(str(n).partition("@")[0].startswith("semantic") for n in config.decoders)


def boundary_ids(tokenizer: Any, boundary: Any) -> tuple[int, ...]:
  """Step-ending ids: a rule of `steps.BOUNDARY_RULES`, `"comma_newline"` (ids whose text
  ends in "," or a newline) or an explicit sequence of ids."""
  if isinstance(boundary, str):
    if boundary in BOUNDARY_RULES:
      return boundary_ids_from_tokenizer(tokenizer, rule=boundary)
    if boundary == "comma_newline":
      ids = boundary_ids_from_tokenizer(tokenizer, rule="newline")
      comma = [i for i in tokenizer.encode(",") if tokenizer.decode([i]).endswith(",")]
      return tuple(sorted(set(ids) | set(comma)))
    raise ValueError(
      f"config.semantic.boundary must be one of {BOUNDARY_RULES + ('comma_newline',)} or a "
      f"tuple of token ids, got {boundary!r}"
    )
  return check_boundary_ids(boundary, tokenizer.vocab_size, "config.semantic.boundary")


def pair_task(config: ml_collections.ConfigDict, pair: Pair):
  """The prepared task of `config.target` (its data where the pair's target was trained)."""
  from reasoning_jax.train.task import prepare_task

  task_config = ml_collections.ConfigDict(config.target.to_dict())
  workdir = sft_workdirs(config)["target"] if pair.source == "trained" else config.workdir
  source = types.SimpleNamespace(tokenizer=pair.tokenizer)
  return prepare_task(task_config, source, workdir=workdir, check=False)


def task_prompts(config, pair: Pair, task, examples) -> dict[str, Any]:
  """One batch (right-padded `prompts`, `prompt_lengths`, `answer`, ...) of `examples`."""
  from reasoning_jax.data import make_prompt_dataset

  ds = make_prompt_dataset(
    list(examples),
    pair.tokenizer,
    batch_size=len(examples),
    max_prompt_len=config.max_prompt_len,
    prompt_template=task.prompt,
    shard_index=0,
    shard_count=1,
    truncate=True,
    add_bos=task.add_bos,
  )
  return next(iter(ds))


def _prefixes(config, pair: Pair, bounds: tuple[int, ...]) -> dict[str, Any]:
  """Step prefixes of the target's greedy traces on training prompts (`prefixes`), steps per
  trace (`steps`), each prefix's answer and other reward fields (`answers`, `fields`, for
  verifier labels) and the task's `reward`."""
  from reasoning_jax.rewards import REWARD_FIELDS

  task = pair_task(config, pair)
  train = task.train_source
  n = min(config.semantic.probe_prompts, len(train))
  rows = np.random.default_rng(config.semantic.seed).choice(len(train), n, replace=False)
  batch = task_prompts(config, pair, task, [train[int(i)] for i in rows])
  prompts, lengths = np.asarray(batch["prompts"]), np.asarray(batch["prompt_lengths"])
  out = generate(
    pair.target,
    prompts,
    lengths,
    max_new_tokens=config.max_new_tokens,
    temperature=0.0,
    eos_id=pair.eos_id,
  )
  tokens, gen = np.asarray(out.tokens), np.asarray(out.lengths)
  prefixes, steps, answers, fields = [], [], [], []
  for r in range(n):
    p = int(lengths[r])
    ids = prompts[r, :p].tolist() + tokens[r, : gen[r]].tolist()
    cuts = [c for c in step_prefix_lengths(ids, bounds) if p <= c < len(ids)]
    cuts = sorted(set([p] + cuts))
    prefixes += [ids[:c] for c in cuts]
    answers += [str(batch["answer"][r])] * len(cuts)
    fields += [{k: batch[k][r] for k in REWARD_FIELDS if k in batch}] * len(cuts)
    steps.append(len(split_steps(tokens[r, : gen[r]].tolist(), bounds)))
  return dict(prefixes=prefixes, steps=steps, answers=answers, fields=fields, reward=task.reward)


def _settings(config) -> dict[str, Any]:
  s = config.semantic
  as_json = lambda v: json.loads(json.dumps(v, default=list))  # noqa: E731 (tuples == lists)
  return {k: as_json(s.get(k)) for k in PROBE_KEYS}


def prepare_probes(config: ml_collections.ConfigDict, pair: Pair) -> dict[str, Any]:
  """Probes for `pair` (built, trained and saved once; loaded afterwards); fills
  `pair.extras` (`probes`, `boundary_ids`) and returns the report (also `report.json`)."""
  s = config.semantic
  bounds = boundary_ids(pair.tokenizer, s.boundary)
  root = os.path.abspath(os.path.join(config.workdir, "probes"))  # orbax wants absolute.
  report_path = os.path.join(root, "report.json")
  settings = _settings(config)
  if os.path.isfile(report_path):
    with open(report_path) as f:
      report = json.load(f)
    differ = [k for k in PROBE_KEYS if report["settings"].get(k) != settings[k]]
    if differ:
      raise ValueError(
        f"the probes in {root!r} were built under other config.semantic values ("
        + "; ".join(
          f"{k}: saved {report['settings'].get(k)!r}, config {settings[k]!r}" for k in differ
        )
        + "); delete that folder or point config.workdir elsewhere"
      )
    probes = {role: load_probe(os.path.join(root, role)) for role in ("target", "draft")}
    report["loaded"] = True
    logging.info("probes loaded from %s", root)
  else:
    start = time.perf_counter()
    traces = _prefixes(config, pair, bounds)
    prefixes, steps = traces["prefixes"], traces["steps"]
    data = build_probe_dataset(
      pair.target,
      pair.draft,
      prefixes,
      tokenizer=pair.tokenizer,
      boundary_ids=bounds,
      num_samples=s.num_samples,
      label_mode=s.label_mode,
      max_step_tokens=s.max_step_tokens,
      eos_id=pair.eos_id,
      answers=traces["answers"],
      example_fields=traces["fields"],
      reward=traces["reward"],
      num_continuations=s.get("num_continuations", 4),
      max_continuation_tokens=config.max_new_tokens,
      key=jax.random.key(s.seed),
    )
    data_seconds = time.perf_counter() - start
    probes, trained = {}, {}
    for role, hidden in (("target", s.target_hidden), ("draft", s.draft_hidden)):
      x, y = data[role]
      probes[role], fit = train_probe(
        x,
        y,
        hidden_sizes=tuple(hidden),
        max_epochs=s.max_epochs,
        patience=s.patience,
        seed=s.seed,
      )
      trained[role] = {
        "examples": int(x.shape[0]),
        "label_mean": float(y.mean()),
        "label_var": float(y.var()),
        "best_epoch": int(fit["best_epoch"]),
        "val_mse": float(fit["best_val_mse"]),
        "test_mse": float(fit["test_mse"]),
        "sizes": list(fit["sizes"]),
      }
    os.makedirs(root, exist_ok=True)
    for role in ("target", "draft"):
      save_probe(os.path.join(root, role), probes[role])
    report = {
      "settings": settings,
      "boundary_ids": list(bounds),
      "traces": len(steps),
      "prefixes": len(prefixes),
      "mean_steps": float(np.mean(steps)) if steps else float("nan"),
      "data_seconds": data_seconds,
      "seconds": time.perf_counter() - start,
      "probes": trained,
    }
    with open(report_path, "w") as f:
      json.dump(report, f, indent=2)
    report["loaded"] = False
    logging.info("probes trained in %.0f s: %s", report["seconds"], trained)
  pair.extras.update(probes=probes, boundary_ids=bounds)
  return report
