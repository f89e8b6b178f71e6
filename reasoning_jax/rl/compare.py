"""RL recipes at equal budget over several seeds: a results table, a plot and the citations.

`run_comparison(config)` runs `run_rl` once per (recipe, seed) of `config.losses` x
`config.seeds` on `config.rl` (one shared budget; the SFT warm start is trained once and
reused), and writes into `config.workdir`:

* `results.json`: per recipe, per seed: final and warm-start held-out sampled accuracy (avg@k
  at the rollout temperature, the quantity RL optimises), greedy accuracy, pass@k and the
  evaluation curve;
* `results.md`: mean ± std over seeds of those, the gain over the warm start, and the first
  evaluation step whose sampled accuracy reaches `config.threshold`; then the training
  diagnostics per recipe: final sampled accuracy with its standard error over seeds, policy
  entropy and clip fractions (`DIAGNOSTICS`, read from every run's `metrics.jsonl`);
* `curves.csv`: per recipe and RL step, mean and std over seeds of the held-out sampled
  accuracy and of every diagnostic;
* `accuracy.png` (mean ± std curves per recipe), `curves.png` (one panel per quantity:
  accuracy, entropy, clip fractions, DISPO's four regimes) and `CITATIONS.bib`.

Each run lives in `<workdir>/<loss>_seed<seed>/` and resumes from its checkpoints, so a
stopped comparison continues where it was. On several processes (`jax.distributed`) every
process runs every update and returns the same payload; process 0 writes the files. `python -m experiments.compare_rl` is the absl
main; `experiments.reproduce` runs it as the `compare_rl` and `main_job` reproductions.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any

import numpy as np
from absl import logging

from reasoning_jax import distributed
from reasoning_jax.rl.losses.dispo import DISPO_REGIMES

__all__ = ["DIAGNOSTICS", "diagnostics_table", "results_table", "run_comparison"]

# What the trainer logs per RL step that the comparison reports: name -> (metrics.jsonl key,
# label). Values are from the last update of each step (with mini_batches=2 the off-policy
# one, where the ratio-dependent rules act). Clip fractions are shares of the update's
# completion tokens: for GRPO/DAPO (PPO clip) `low` counts A < 0 with r < 1 - eps_low and
# `high` counts A > 0 with r > 1 + eps_high (the tokens whose gradient the clip removes); for
# CISPO/DISPO they count tokens (A != 0) whose weight was clamped below/above its band; DISPO
# also splits them by regime (correct = A > 0 / incorrect x ratio above / below 1). A recipe
# whose loss does not log a key has no value for it.
_REGIME_LABELS = {"pos": "correct", "neg": "incorrect", "high": "r > 1", "low": "r < 1"}
DIAGNOSTICS: dict[str, tuple[str, str]] = {
  "entropy": ("train/entropy_mean", "policy entropy (nats/token)"),
  "clip_frac_low": ("train/clip_frac_low", "clipped below (token share)"),
  "clip_frac_high": ("train/clip_frac_high", "clipped above (token share)"),
  **{
    f"dispo_{r}_clip_frac": (
      f"train/dispo_{r}_clip_frac",
      "DISPO clipped, " + ", ".join(_REGIME_LABELS[part] for part in r.split("_")),
    )
    for r in DISPO_REGIMES
  },
}


def _series(workdir: str, key: str) -> list[tuple[int, float]]:
  from reasoning_jax.train.metrics import read_metrics

  return [(r["step"], r[key]) for r in read_metrics(workdir) if key in r]


# Response length is reported as the mean over this many final rollouts (Dr. GRPO's claim is
# about length; one rollout is too noisy).
_LENGTH_WINDOW = 5


def _mean_std(values, digits: int = 3) -> str:
  values = np.asarray(values, np.float64)
  if not np.isfinite(values).any():
    return "—"  # Not measured (e.g. pass@k without sampled evaluation).
  return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def _standard_error(values) -> float:
  """std / sqrt(n) over seeds (ddof 1; 0 for one seed), the spread the verdicts compare to."""
  values = np.asarray(values, np.float64)
  return float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0


def _metric_name(rl_config, label: str | None = None) -> str:
  if label:
    return label
  k = rl_config.get("eval_samples", 0)
  if not k:
    return "held-out greedy accuracy"
  return f"held-out sampled accuracy (avg@{k}, T={rl_config.temperature})"


def results_table(
  results: dict[str, list[dict[str, Any]]], rl_config, threshold: float, label: str | None = None
) -> str:
  """The markdown table of `run_comparison`'s per-recipe, per-seed results."""
  k = rl_config.get("eval_samples", 0)
  lines = [
    f"| method | final {_metric_name(rl_config, label)} | gain over warm start | greedy accuracy "
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


def _curve(run: dict[str, Any], name: str) -> list:
  """A run's `[(step, value)]` of "accuracy" (held-out) or of a `DIAGNOSTICS` name."""
  return run["curve"] if name == "accuracy" else run.get("diagnostics", {}).get(name, [])


def _over_seeds(runs, name: str):
  """(steps, mean, std) over the seeds of `runs` at the steps every seed logged, or None."""
  curves = [dict((int(s), float(v)) for s, v in _curve(r, name)) for r in runs]
  curves = [c for c in curves if c]
  if not curves:
    return None
  steps = sorted(set.intersection(*(set(c) for c in curves)))
  values = np.array([[c[s] for s in steps] for c in curves], np.float64).reshape(len(curves), -1)
  return np.array(steps), values.mean(0), values.std(0)


def _step_mean(run: dict[str, Any], name: str, last: int | None = None) -> float:
  """Mean of a run's diagnostic over its RL steps (the `last` ones only if given); NaN if
  the run did not log it."""
  values = [v for _, v in _curve(run, name)][-last if last else None :]
  return float(np.mean(values)) if values else float("nan")


def diagnostics_table(
  results: dict[str, list[dict[str, Any]]],
  rl_config,
  label: str | None = None,
  diagnostics: dict[str, tuple[str, str]] | None = None,
) -> str:
  """Per recipe: final accuracy (mean ± std, standard error), entropy and clip fractions.

  Entropy is the mean over RL steps and over the last `_LENGTH_WINDOW` steps; clip fractions
  (and `diagnostics`, more quantities of the same form) are means over RL steps; each cell is
  mean ± std over seeds ("—": the loss does not log it).
  """
  table = {**DIAGNOSTICS, **(diagnostics or {})}
  clip_names = [n for n in table if n != "entropy"]
  header = [
    "method",
    f"final {_metric_name(rl_config, label)}",
    "standard error",
    "entropy (mean over steps)",
    f"entropy (last {_LENGTH_WINDOW} steps)",
    *[table[n][1] for n in clip_names],
    "seeds",
  ]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

  def cell(values, digits=3):
    values = [v for v in values if np.isfinite(v)]
    return _mean_std(values, digits) if values else "—"

  for loss, runs in results.items():
    final = [r["final"] for r in runs]
    row = [
      loss,
      _mean_std(final),
      f"{_standard_error(final):.3f}",
      cell([_step_mean(r, "entropy") for r in runs]),
      cell([_step_mean(r, "entropy", _LENGTH_WINDOW) for r in runs]),
      *[cell([_step_mean(r, n) for r in runs], 4) for n in clip_names],
      str(len(runs)),
    ]
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines)


def _write_curves(results, path: str, diagnostics=None) -> None:
  """`curves.csv`: recipe, step, then mean and std over seeds of every quantity logged."""
  names = ["accuracy", *DIAGNOSTICS, *(diagnostics or {})]
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(
      f, ["recipe", "step", *(f"{n}_{s}" for n in names for s in ("mean", "std"))], restval=""
    )
    writer.writeheader()
    for loss, runs in results.items():
      rows: dict[int, dict[str, Any]] = {}
      for name in names:
        for step, mean, std in zip(*(_over_seeds(runs, name) or ((), (), ()))):
          row = rows.setdefault(int(step), {"recipe": loss, "step": int(step)})
          row.update({f"{name}_mean": f"{mean:.6g}", f"{name}_std": f"{std:.6g}"})
      writer.writerows(rows[step] for step in sorted(rows))


def _plot(results, path: str, panels: list[tuple[str, list[tuple[str, list, str]]]]) -> None:
  """One panel per (ylabel, series); a series is (label, runs, quantity name): mean ± std
  over the runs' seeds against RL step."""
  from matplotlib.figure import Figure  # No pyplot: leaves the caller's backend alone.

  cols = min(3, len(panels))
  rows = -(-len(panels) // cols)
  fig = Figure(figsize=(5 * cols, 3.6 * rows))
  axes = fig.subplots(rows, cols, squeeze=False).ravel()
  for ax, (ylabel, series) in zip(axes, panels):
    for label, runs, name in series:
      stats = _over_seeds(runs, name)
      if stats is None:
        continue
      steps, mean, std = stats
      ax.plot(steps, mean, marker="o" if name == "accuracy" else None, label=label)
      ax.fill_between(steps, mean - std, mean + std, alpha=0.15)
    ax.set(xlabel="RL step", ylabel=ylabel)
    ax.legend(fontsize="small")
  for ax in axes[len(panels) :]:
    ax.set_axis_off()
  fig.suptitle("RL recipes (mean ± std over seeds)")
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def _panels(results, metric: str, *, diagnostics: bool, extra=None):
  """The accuracy panel, then (with `diagnostics`) one per diagnostic some recipe logged,
  DISPO's four regimes in one panel."""
  panels = [(metric, [(loss, runs, "accuracy") for loss, runs in results.items()])]
  if not diagnostics:
    return panels
  table = {**DIAGNOSTICS, **(extra or {})}
  for name in ("entropy", "clip_frac_low", "clip_frac_high", *(extra or {})):
    series = [(loss, runs, name) for loss, runs in results.items()]
    if any(_over_seeds(runs, name) is not None for _, runs, _ in series):
      panels.append((table[name][1], series))
  regimes = [
    (DIAGNOSTICS[n][1].removeprefix("DISPO clipped, "), runs, n)
    for loss, runs in results.items()
    for n in DIAGNOSTICS
    if n.startswith("dispo_") and _over_seeds(runs, n) is not None
  ]
  if regimes:
    panels.append(("DISPO clipped (token share) per regime", regimes))
  return panels


def run_comparison(config, *, diagnostics: dict[str, tuple[str, str]] | None = None):
  """Every (recipe, seed) run of `config`; writes the files listed in the module docstring.

  Args:
    config: `configs/compare_rl.py`'s ConfigDict: `workdir`, `losses` (recipe names),
      `seeds`, `threshold` and `rl` (an `rl_arith`-style run config; its `workdir`, `loss`
      and `seed` are set per run); optional `metric_label` (what the held-out score is, e.g.
      a rubric score, for the tables and plots); optional `fresh_hf` (a Hugging Face folder
      built here for `rl.model.hf_dir`, `reasoning_jax.rl.fresh_start`).
    diagnostics: more per-step quantities to report, like `DIAGNOSTICS` (name -> (metrics
      key, label)), e.g. the judge's logs of the Grad2Reward comparison.

  Returns:
    `{"results": {loss: [per-seed dicts]}, "wall_s": ..., "config": ...}` (also written to
    `results.json`).
  """
  import time

  from reasoning_jax import citations
  from reasoning_jax.rl.fresh_start import prepare_fresh_start
  from reasoning_jax.rl.recipes import ConfigError
  from reasoning_jax.rl.trainer import run_rl
  from reasoning_jax.train.metrics import quiet_library_logs

  quiet_library_logs()
  config = prepare_fresh_start(config)  # `config.fresh_hf`: build the HF folder RL starts from.
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
      entry = None
      if distributed.is_coordinator():  # Process 0 wrote the metrics and reads them back.
        entry = {
          "seed": int(seed),
          "greedy": float(result["accuracy"]),
          "greedy_start": float(result["accuracy_warm_start"]),
          "final": float(result["sampled_accuracy"] if sampled else result["accuracy"]),
          "start": float(
            result["sampled_accuracy_warm_start"] if sampled else result["accuracy_warm_start"]
          ),
          "pass_at_k": float(result.get("pass_at_k", float("nan"))),
          "curve": _series(run.workdir, "eval/sampled_accuracy" if sampled else "eval/accuracy"),
          "response_length": float(
            np.mean(
              [v for _, v in _series(run.workdir, "rollout/response_length")][-_LENGTH_WINDOW:]
              or [np.nan]
            )
          ),
          "diagnostics": {
            name: series
            for name, (key, _) in {**DIAGNOSTICS, **(diagnostics or {})}.items()
            if (series := _series(run.workdir, key))
          },
        }
      results.setdefault(loss, []).append(distributed.broadcast_json(entry))
  total = distributed.broadcast_json(time.time() - start)
  payload = {"results": results, "wall_s": total, "config": config.to_dict()}
  if not distributed.is_coordinator():  # Process 0 writes the report.
    return payload
  with open(os.path.join(config.workdir, "results.json"), "w") as f:
    json.dump(payload, f, indent=2, default=str)
  citations.write_citations(cited, os.path.join(config.workdir, "CITATIONS.bib"))
  label = config.get("metric_label")
  table = results_table(results, config.rl, float(config.threshold), label)
  extra = diagnostics
  diagnostics = diagnostics_table(results, config.rl, label, extra)
  rl = config.rl
  with open(os.path.join(config.workdir, "results.md"), "w") as f:
    f.write(
      f"RL comparison: {rl.num_steps} steps x {rl.prompts_per_step} prompts x "
      f"{rl.group_size} samples, {rl.ppo_epochs} epoch(s) x {rl.mini_batches} "
      f"mini-batch(es) per rollout, lr {rl.learning_rate}, seeds {tuple(config.seeds)}; "
      f"held-out: {rl.eval_examples} test questions. Wall time {total:.0f} s.\n\n{table}\n\n"
      f"Training diagnostics (per RL step, from the last update of the step; standard error "
      f"= std / sqrt(seeds), ddof 1; curves in `curves.csv` and `curves.png`):\n\n"
      f"{diagnostics}\n"
    )
  _write_curves(results, os.path.join(config.workdir, "curves.csv"), extra)
  metric = _metric_name(rl, label)
  _plot(
    results,
    os.path.join(config.workdir, "accuracy.png"),
    _panels(results, metric, diagnostics=False),
  )
  _plot(
    results,
    os.path.join(config.workdir, "curves.png"),
    _panels(results, metric, diagnostics=True, extra=extra),
  )
  logging.info("results in %s (%.0f s)\n%s\n%s", config.workdir, total, table, diagnostics)
  return payload
