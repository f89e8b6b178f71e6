r"""Recall sweeps: every (task, model, seed) of a config, resumable, with tables and a plot.

`run_recall_experiment(config)` trains each run with `reasoning_jax.train.recall.train_and_eval`
(the recall tasks and their papers are named there) and writes

  * `<workdir>/runs/<task>__<mixer-layers[-heads]>__s<seed>.json` as each run finishes:
    `{"fingerprint", "result"}`; with `config.resume` (default True) a rerun reuses every
    file whose fingerprint (model config, task, seed, training config) matches;
  * `<workdir>/results.md`: mean ± std of final accuracy, best accuracy, steps to
    `config.threshold`, per task;
  * `<workdir>/results.json`: every curve, wall times and the config;
  * `<workdir>/accuracy.png`: accuracy vs steps, mean ± std over seeds, with chance level.

Used by `experiments/induction.py` and `experiments/mqar.py`.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Mapping

import numpy as np
from absl import logging

from reasoning_jax import citations
from reasoning_jax.train import recall
from reasoning_jax.train.metrics import quiet_library_logs


def steps_to_threshold(curve, threshold: float):
  """The first step of `curve` ([[step, accuracy], ...]) with accuracy >= threshold, or None."""
  return next((s for s, a in curve if a >= threshold), None)


def summary_table(results: Mapping[str, Mapping[str, list]], threshold: float) -> str:
  """Markdown tables (one per task): mean ± std final/best accuracy, steps to threshold."""
  out = []
  for task, models in results.items():
    out.append(f"### {task}\n")
    out.append(
      f"| model | params | final accuracy | best accuracy | steps to {threshold:.0%} | seeds |"
    )
    out.append("|---|---|---|---|---|---|")
    for label, runs in models.items():
      final = np.array([r["final_accuracy"] for r in runs])
      best = np.array([r["best_accuracy"] for r in runs])
      hit = [s for s in (steps_to_threshold(r["curve"], threshold) for r in runs) if s is not None]
      steps = (
        f"{np.mean(hit):.0f} ({len(hit)}/{len(runs)} runs)"
        if hit
        else f"not reached (0/{len(runs)})"
      )
      out.append(
        f"| {label} | {runs[0]['num_params']:,} | {final.mean():.3f} ± "
        f"{final.std():.3f} | {best.mean():.3f} ± {best.std():.3f} | {steps} | "
        f"{len(runs)} |"
      )
    out.append("")
  return "\n".join(out)


def plot_curves(results, path: str, *, threshold: float, chance: Mapping[str, float]):
  """Accuracy vs step per task (mean ± std over seeds) into `path`."""
  from matplotlib.figure import Figure  # No pyplot: leaves the caller's backend alone.

  tasks = list(results)
  fig = Figure(figsize=(6 * len(tasks), 4))
  axes = fig.subplots(1, len(tasks), squeeze=False)
  for ax, task in zip(axes[0], tasks):
    for label, runs in results[task].items():
      steps = [s for s, _ in runs[0]["curve"]]
      acc = np.array([[a for _, a in r["curve"]] for r in runs if len(r["curve"]) == len(steps)])
      ax.plot(steps, acc.mean(0), marker=".", label=label)
      ax.fill_between(steps, acc.mean(0) - acc.std(0), acc.mean(0) + acc.std(0), alpha=0.15)
    ax.axhline(threshold, color="gray", ls=":", lw=1)
    if task in chance:
      ax.axhline(chance[task], color="k", ls="--", lw=0.8, label="chance")
    ax.set(xlabel="training step", ylabel="test accuracy", title=task, ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def chance_accuracy(task: Mapping[str, Any]) -> float:
  """Accuracy of a uniform guess over the tokens that can be a scored target."""
  v = recall.task_vocab_size(task)
  if task["name"] == "induction":
    return 1.0 / (v - 2)
  if task["name"] == "mqar":
    return 2.0 / v  # Uniform over the V/2 value ids.
  return 1.0 / v


def run_fingerprint(model_config, task: Mapping[str, Any], seed: int, config) -> str:
  """A stable text naming everything that determines one run's result."""
  return json.dumps(
    {
      "model": repr(model_config),
      "task": task,
      "seed": seed,
      "train": config.train.to_dict() if hasattr(config.train, "to_dict") else dict(config.train),
    },
    sort_keys=True,
    default=str,
  )


def load_finished_run(path: str, fingerprint: str) -> dict[str, Any] | None:
  """The saved result in run file `path` if its fingerprint matches, else None."""
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    logging.warning("ignoring unreadable run file %s (%s); training it again", path, e)
    return None
  if saved.get("fingerprint") != fingerprint:
    logging.info("run file %s was made with another config; training it again", path)
    return None
  return saved["result"]


def write_json_atomic(path: str, payload) -> None:
  """Writes `payload` as JSON to `path` through a temporary file and a rename."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f, default=str)
  os.replace(tmp, path)


def run_recall_experiment(config) -> dict[str, Any]:
  """Every (task, model, seed) of `config`; writes results.{md,json}, accuracy.png and
  CITATIONS.bib (the papers of every model's mixers and FFNs)."""
  quiet_library_logs()
  recall.register_momentum_variants(config.get("momentum_variants", {}) or {})
  recall.register_mixer_variants(config.get("mixer_variants", {}) or {})
  os.makedirs(config.workdir, exist_ok=True)
  # Every finished (task, model, seed) run is written to <workdir>/runs/ at once, so a sweep
  # that is stopped (SIGTERM, pre-emption, a crash) loses at most the run in progress; with
  # `config.resume` (default True) a rerun reuses each file whose fingerprint (model config,
  # task, seed, training config) matches and trains only the rest.
  run_dir = os.path.join(config.workdir, "runs")
  os.makedirs(run_dir, exist_ok=True)
  resume = bool(config.get("resume", True))
  results: dict[str, dict[str, list]] = {}
  cited: list[str] = []  # "category:name" of every model's mixers and FFNs.
  timings = {}
  start = time.time()
  for task_name in config.tasks:
    task = dict(config.task_configs[task_name])
    # A task entry may name its generator ("generator": "mqar") so one generator can appear
    # under several names (e.g. a sweep over MQAR's number of key-value pairs).
    task["name"] = task.pop("generator", task_name)
    task["kwargs"] = dict(task.get("kwargs", {}))
    probe, _ = recall.make_task_data({**task, "num_train": 1, "num_test": 1}, 0)
    vocab = recall.task_vocab_size(task)
    t_task = time.time()
    for spec in config.models:
      model = recall.model_for_spec(config.model, config.get("model_overrides"), spec)
      model_config = recall.build_model_config(
        spec, vocab_size=vocab, max_len=probe.seq_len, model=model
      )
      cited.extend(citations.run_components(model=model_config))
      for seed in config.seeds:
        logging.info("=== %s / %s / seed %d ===", task_name, spec, seed)
        run_path = os.path.join(run_dir, f"{task_name}__{spec.replace('@', '-')}__s{seed}.json")
        fingerprint = run_fingerprint(model_config, task, int(seed), config)
        result = load_finished_run(run_path, fingerprint) if resume else None
        if result is None:
          result = recall.train_and_eval(
            model_config, task, int(seed), config.train, label=f"{task_name}/{spec}"
          )
          result["seed"] = int(seed)
          write_json_atomic(run_path, {"fingerprint": fingerprint, "result": result})
        else:
          logging.info("reusing the finished run in %s", run_path)
        results.setdefault(task_name, {}).setdefault(spec, []).append(result)
    timings[task_name] = time.time() - t_task
  total = time.time() - start
  payload = {
    "results": results,
    "wall_s": total,
    "wall_s_per_task": timings,
    "config": config.to_dict(),
  }
  with open(os.path.join(config.workdir, "results.json"), "w") as f:
    json.dump(payload, f, indent=2, default=str)
  table = summary_table(results, float(config.threshold))
  run_seconds = sum(r["wall_s"] for runs in results.values() for rs in runs.values() for r in rs)
  header = (
    f"{config.get('title', 'Recall experiment')}: {config.train.num_steps} steps x "
    f"batch {config.train.batch_size}, width {config.model.hidden_size}, FFN "
    f"{config.model.ffn!r}, seeds {tuple(config.seeds)}; accuracy on held-out "
    f"examples (test seed = seed + 10). Wall time {total:.0f} s; training time of "
    f"all runs {run_seconds:.0f} s (runs reused from <workdir>/runs count here).\n"
  )
  notes = config.get("notes", "")
  with open(os.path.join(config.workdir, "results.md"), "w") as f:
    f.write(header + "\n" + table + ("\n" + notes + "\n" if notes else ""))
  citations.write_citations(cited, os.path.join(config.workdir, "CITATIONS.bib"))
  plot_curves(
    results,
    os.path.join(config.workdir, "accuracy.png"),
    threshold=float(config.threshold),
    chance={
      t: chance_accuracy(
        {**dict(config.task_configs[t]), "name": dict(config.task_configs[t]).get("generator", t)}
      )
      for t in results
    },
  )
  logging.info("results in %s (%.0f s)\n%s", config.workdir, total, table)
  return payload
