r"""Every RL recipe at equal budget over several seeds: a markdown table and a plot.

  python -m experiments.compare_rl [--config=configs/compare_rl.py] \
      [--config.losses="('grpo','dispo')"] [--config.rl.num_steps=20]

All runs share one SFT warm start (trained once) and the same rollout/update budget.
Writes `<workdir>/results.md` (mean +/- std over seeds of the final held-out sampled accuracy
(avg@k at the rollout temperature, the quantity RL optimises), its gain over the warm start,
greedy accuracy, pass@k, and the first evaluation step whose sampled accuracy reaches
`threshold`) and `<workdir>/accuracy.png` (mean +/- std curves per method), and `<workdir>/CITATIONS.bib` for
the methods of every run.
Reports what the runs show, whatever it shows.
"""

import json
import os

import numpy as np
from absl import app, logging
from ml_collections import config_flags

_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "configs", "compare_rl.py")
_CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "Comparison config.")


def _eval_curve(workdir, key="eval/accuracy"):
  from reasoning_jax.train.metrics import read_metrics

  return [(r["step"], r[key]) for r in read_metrics(workdir) if key in r]


def _mean_std(values) -> str:
  values = np.asarray(values, np.float64)
  return f"{values.mean():.3f} ± {values.std():.3f}"


def main(argv):
  del argv
  from reasoning_jax import citations
  from reasoning_jax.rl.trainer import run_rl
  from reasoning_jax.train.metrics import quiet_library_logs

  quiet_library_logs()
  config = _CONFIG.value
  os.makedirs(config.workdir, exist_ok=True)
  results = {}
  cited = []  # What every run used ("category:name"), for CITATIONS.bib.
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
          "seed": seed,
          "greedy": result["accuracy"],
          "greedy_start": result["accuracy_warm_start"],
          "final": result["sampled_accuracy"] if sampled else result["accuracy"],
          "start": (
            result["sampled_accuracy_warm_start"] if sampled else result["accuracy_warm_start"]
          ),
          "pass_at_k": result.get("pass_at_k", float("nan")),
          "curve": _eval_curve(
            run.workdir, "eval/sampled_accuracy" if sampled else "eval/accuracy"
          ),
        }
      )
  with open(os.path.join(config.workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  citations.write_citations(cited, os.path.join(config.workdir, "CITATIONS.bib"))

  k = config.rl.get("eval_samples", 0)
  metric = (
    f"held-out sampled accuracy (avg@{k}, T={config.rl.temperature})"
    if k
    else "held-out greedy accuracy"
  )
  lines = [
    f"| method | final {metric} | gain over warm start | greedy accuracy (warm start "
    f"→ final) | pass@{k or 1} | steps to {config.threshold:.0%} | seeds |",
    "|---|---|---|---|---|---|---|",
  ]
  for loss, runs in results.items():
    final = np.array([r["final"] for r in runs])
    gain = final - np.array([r["start"] for r in runs])
    reached = [next((s for s, a in r["curve"] if a >= config.threshold), None) for r in runs]
    hit = [s for s in reached if s is not None]
    steps = f"{np.mean(hit):.0f} ({len(hit)}/{len(runs)} runs)" if hit else "not reached"
    greedy = (
      f"{_mean_std([r['greedy_start'] for r in runs])} → {_mean_std([r['greedy'] for r in runs])}"
    )
    lines.append(
      f"| {loss} | {_mean_std(final)} | {gain.mean():+.3f} ± {gain.std():.3f} | "
      f"{greedy} | {_mean_std([r['pass_at_k'] for r in runs])} | {steps} | "
      f"{len(runs)} |"
    )
  table = "\n".join(lines)
  rl = config.rl
  with open(os.path.join(config.workdir, "results.md"), "w") as f:
    f.write(
      f"RL comparison: {rl.num_steps} steps x {rl.prompts_per_step} prompts x "
      f"{rl.group_size} samples, {rl.ppo_epochs} epoch(s) x {rl.mini_batches} "
      f"mini-batch(es) per rollout, lr {rl.learning_rate}, seeds {tuple(config.seeds)}; "
      f"held-out: {rl.eval_examples} test questions\n\n{table}\n"
    )
  print(table)

  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4))
  for loss, runs in results.items():
    steps = [s for s, _ in runs[0]["curve"]]
    acc = np.array([[a for _, a in r["curve"]] for r in runs if len(r["curve"]) == len(steps)])
    ax.plot(steps, acc.mean(0), marker="o", label=loss)
    ax.fill_between(steps, acc.mean(0) - acc.std(0), acc.mean(0) + acc.std(0), alpha=0.15)
  ax.set(xlabel="RL step", ylabel=metric, title="RL recipes")
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(config.workdir, "accuracy.png"), dpi=100)


if __name__ == "__main__":
  app.run(main)
