"""RL recipes at equal budget over several seeds: a results table, a plot and the citations.

`run_comparison(config)` runs `run_rl` once per (recipe, seed) of `config.losses` x
`config.seeds` on `config.rl` (one shared budget; the SFT warm start is trained once and
reused), and writes into `config.workdir`:

* `results.json`: per recipe, per seed: final and warm-start held-out sampled accuracy (avg@k
  at the rollout temperature, the quantity RL optimises), greedy accuracy, pass@k and the
  evaluation curve;
* `results.md`: mean ± std over seeds of those, the gain over the warm start, and the first
  evaluation step whose sampled accuracy reaches `config.threshold`;
* `accuracy.png` (mean ± std curves per recipe) and `CITATIONS.bib` (every run's methods).

Each run lives in `<workdir>/<loss>_seed<seed>/` and resumes from its checkpoints, so a
stopped comparison continues where it was. `python -m experiments.compare_rl` is the absl
main; `experiments.reproduce` runs it as the `compare_rl` and `main_job` reproductions.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from absl import logging

__all__ = ["results_table", "run_comparison"]


def _series(workdir: str, key: str) -> list[tuple[int, float]]:
  from reasoning_jax.train.metrics import read_metrics

  return [(r["step"], r[key]) for r in read_metrics(workdir) if key in r]


# Response length is reported as the mean over this many final rollouts (Dr. GRPO's claim is
# about length; one rollout is too noisy).
_LENGTH_WINDOW = 5


def _mean_std(values) -> str:
  values = np.asarray(values, np.float64)
  return f"{values.mean():.3f} ± {values.std():.3f}"


def _metric_name(rl_config) -> str:
  k = rl_config.get("eval_samples", 0)
  if not k:
    return "held-out greedy accuracy"
  return f"held-out sampled accuracy (avg@{k}, T={rl_config.temperature})"


def results_table(results: dict[str, list[dict[str, Any]]], rl_config, threshold: float) -> str:
  """The markdown table of `run_comparison`'s per-recipe, per-seed results."""
  k = rl_config.get("eval_samples", 0)
  lines = [
    f"| method | final {_metric_name(rl_config)} | gain over warm start | greedy accuracy "
    f"(warm start → final) | pass@{k or 1} | steps to {threshold:.0%} | response length "
    f"(tokens, last {_LENGTH_WINDOW} rollouts) | seeds |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for loss, runs in results.items():
    final = np.array([r["final"] for r in runs])
    gain = final - np.array([r["start"] for r in runs])
    reached = [next((s for s, a in r["curve"] if a >= threshold), None) for r in runs]
    hit = [s for s in reached if s is not None]
    steps = f"{np.mean(hit):.0f} ({len(hit)}/{len(runs)} runs)" if hit else "not reached"
    greedy = (
      f"{_mean_std([r['greedy_start'] for r in runs])} → {_mean_std([r['greedy'] for r in runs])}"
    )
    lines.append(
      f"| {loss} | {_mean_std(final)} | {gain.mean():+.3f} ± {gain.std():.3f} | "
      f"{greedy} | {_mean_std([r['pass_at_k'] for r in runs])} | {steps} | "
      f"{_mean_std([r['response_length'] for r in runs])} | {len(runs)} |"
    )
  return "\n".join(lines)


def _plot(results, path: str, metric: str) -> None:
  from matplotlib.figure import Figure  # No pyplot: leaves the caller's backend alone.

  fig = Figure(figsize=(6, 4))
  ax = fig.subplots()
  for loss, runs in results.items():
    steps = [s for s, _ in runs[0]["curve"]]
    acc = np.array([[a for _, a in r["curve"]] for r in runs if len(r["curve"]) == len(steps)])
    ax.plot(steps, acc.mean(0), marker="o", label=loss)
    ax.fill_between(steps, acc.mean(0) - acc.std(0), acc.mean(0) + acc.std(0), alpha=0.15)
  ax.set(xlabel="RL step", ylabel=metric, title="RL recipes")
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def run_comparison(config) -> dict[str, Any]:
  """Every (recipe, seed) run of `config`; writes the files listed in the module docstring.

  Args:
    config: `configs/compare_rl.py`'s ConfigDict: `workdir`, `losses` (recipe names),
      `seeds`, `threshold` and `rl` (an `rl_arith`-style run config; its `workdir`, `loss`
      and `seed` are set per run).

  Returns:
    `{"results": {loss: [per-seed dicts]}, "wall_s": ..., "config": ...}` (also written to
    `results.json`).
  """
  import time

  from reasoning_jax import citations
  from reasoning_jax.rl.recipes import ConfigError
  from reasoning_jax.rl.trainer import run_rl
  from reasoning_jax.train.metrics import quiet_library_logs

  quiet_library_logs()
  if not config.losses or not config.seeds:
    raise ConfigError(
      f"config.losses and config.seeds must be non-empty, got {config.losses!r}, {config.seeds!r}"
    )
  os.makedirs(config.workdir, exist_ok=True)
  start = time.time()
  results: dict[str, list[dict[str, Any]]] = {}
  cited: list[str] = []  # What every run used ("category:name"), for CITATIONS.bib.
  for loss in config.losses:
    for seed in config.seeds:
      run = config.rl.copy_and_resolve_references()
      run.loss, run.seed = loss, int(seed)
      run.workdir = os.path.join(config.workdir, f"{loss}_seed{seed}")
      logging.info("=== %s seed %d ===", loss, seed)
      result = run_rl(run)
      cited.extend(result["citations"])
      sampled = "sampled_accuracy" in result
      results.setdefault(loss, []).append(
        {
          "seed": int(seed),
          "greedy": result["accuracy"],
          "greedy_start": result["accuracy_warm_start"],
          "final": result["sampled_accuracy"] if sampled else result["accuracy"],
          "start": (
            result["sampled_accuracy_warm_start"] if sampled else result["accuracy_warm_start"]
          ),
          "pass_at_k": result.get("pass_at_k", float("nan")),
          "curve": _series(run.workdir, "eval/sampled_accuracy" if sampled else "eval/accuracy"),
          "response_length": float(
            np.mean(
              [v for _, v in _series(run.workdir, "rollout/response_length")][-_LENGTH_WINDOW:]
              or [np.nan]
            )
          ),
        }
      )
  total = time.time() - start
  payload = {"results": results, "wall_s": total, "config": config.to_dict()}
  with open(os.path.join(config.workdir, "results.json"), "w") as f:
    json.dump(payload, f, indent=2, default=str)
  citations.write_citations(cited, os.path.join(config.workdir, "CITATIONS.bib"))
  table = results_table(results, config.rl, float(config.threshold))
  rl = config.rl
  with open(os.path.join(config.workdir, "results.md"), "w") as f:
    f.write(
      f"RL comparison: {rl.num_steps} steps x {rl.prompts_per_step} prompts x "
      f"{rl.group_size} samples, {rl.ppo_epochs} epoch(s) x {rl.mini_batches} "
      f"mini-batch(es) per rollout, lr {rl.learning_rate}, seeds {tuple(config.seeds)}; "
      f"held-out: {rl.eval_examples} test questions. Wall time {total:.0f} s.\n\n{table}\n"
    )
  _plot(results, os.path.join(config.workdir, "accuracy.png"), _metric_name(rl))
  logging.info("results in %s (%.0f s)\n%s", config.workdir, total, table)
  return payload
