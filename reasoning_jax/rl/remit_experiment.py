"""Plain vs ReMiT mid-training of a from-scratch model, then the same RL run on each.

"ReMiT: RL-Guided Mid-Training for Iterative LLM Evolution", Huang et al., arXiv 2602.03075
(rl.md section 3). Pipeline (`configs/remit_experiment.py`):

  guide   the main job's RL model (`config.guide_workdir`, else `config.guide` trained once
          with `run_rl` in `<workdir>/guide`);
  per seed:
    pretrain   plain SFT of a fresh model for `pretrain_steps` (`<workdir>/seed<s>/pretrain`);
    mid-train  from that checkpoint (`config.init_workdir` of the SFT trainer) for
               `midtrain_steps`, plain NTP (`plain_mid`) and ReMiT with the guide (`remit_r1_mid`):
               same data, steps, schedule and seed;
    RL         the same run (`config.rl`) from each mid-trained model (`*_rl`): its `sft` section
               is the mid-training config, so `warm_start` loads that checkpoint (never retrains);
    flywheel   for `flywheel_rounds > 1`: round k+1 mid-trains from the same pre-trained
               checkpoint with round k's ReMiT RL model as guide, then RL again (ReMiT^2).

Accuracy before RL is the RL run's step-0 evaluation (the mid-trained model), after RL its final
one: greedy exact match and avg@k of `config.rl.eval_samples` samples at the rollout temperature,
on the same held-out questions. The ReMiT weight statistics are means over the logged steps of
the mid-training run's `train/remit_weight_std`, `remit_clip_frac` and `remit_weight_mean`.
Finished runs (their `final_metrics.json`) are reused; a workdir trained under other values of
the keys that define it is refused (ValueError naming the keys). On several processes
(`jax.distributed`) every process trains every run, process 0 decides what is reused and reads
the metrics files, and it alone writes the report.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from reasoning_jax import citations, distributed
from reasoning_jax.evaluate.outputs import shown_path, write_results
from reasoning_jax.evaluate.trained_model import MODEL_KEYS, saved_config
from reasoning_jax.train.config_match import same_value

# Per-run numbers of an arm, in the table's order.
METRICS = (
  "accuracy_before",
  "sampled_before",
  "accuracy_after",
  "sampled_after",
  "remit_weight_std",
  "remit_clip_frac",
  "remit_weight_mean",
)
# Fewer paired seeds than this give no verdict.
MIN_SEEDS = 3
WEIGHT_METRICS = ("remit_weight_std", "remit_clip_frac", "remit_weight_mean")
# Keys that define a finished run: another value in a reused workdir is another run.
SFT_KEYS = MODEL_KEYS + ("remit", "init_workdir", "warmup_steps")
RL_KEYS = (
  "loss",
  "loss_overrides",
  "num_steps",
  "learning_rate",
  "group_size",
  "prompts_per_step",
  "max_new_tokens",
  "temperature",
  "seed",
  "eval_examples",
  "eval_samples",
)


def validate(config: ml_collections.ConfigDict) -> None:
  """ValueError naming the key for a bad config (the runs' own configs are checked by their
  trainers before any work)."""
  from reasoning_jax.rl.recipes import RECIPES

  if not config.get("workdir"):
    raise ValueError("config.workdir must be set")
  seeds = tuple(config.seeds)
  if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
    raise ValueError(f"config.seeds must be distinct ints, got {config.seeds}")
  for key in ("pretrain_steps", "midtrain_steps", "flywheel_rounds"):
    if not isinstance(config[key], int) or config[key] < 1:
      raise ValueError(f"config.{key} must be an int >= 1, got {config[key]!r}")
  if config.guide_workdir and not os.path.isdir(os.path.join(config.guide_workdir, "checkpoints")):
    raise ValueError(f"config.guide_workdir={config.guide_workdir!r} has no checkpoints/ folder")
  if config.rl.loss not in RECIPES:
    raise ValueError(f"config.rl.loss={config.rl.loss!r}; choose one of {sorted(RECIPES)}")
  if not config.rl.get("eval_samples"):
    raise ValueError("config.rl.eval_samples must be >= 1 (avg@k before and after RL)")
  if "guide_workdir" in config.remit or "guide_hf_dir" in config.remit:
    raise ValueError("config.remit must not name the guide: it is set per run")


def check_reuse(saved: dict, wanted: ml_collections.ConfigDict, keys, workdir: str) -> None:
  """ValueError when the run saved in `workdir` differs from `wanted` in `keys`."""
  want = wanted.to_dict()
  differ = [k for k in keys if not same_value(saved.get(k), want.get(k))]
  if differ:
    details = "; ".join(f"{k}: saved {saved.get(k)!r}, config {want.get(k)!r}" for k in differ)
    raise ValueError(
      f"the run in {workdir!r} was trained under another config ({details}); point "
      "config.workdir elsewhere or restore those values"
    )


def _finished(workdir: str, steps: int) -> dict[str, Any] | None:
  path = os.path.join(workdir, "final_metrics.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    result = json.load(f)
  done = result.get("step") == steps and not result.get("preempted") and "accuracy" in result
  return result if done else None


def ensure_sft(sft: ml_collections.ConfigDict, role: str) -> dict[str, Any]:
  """`run_sft(sft)`'s result, or the saved one of a finished identical run in its workdir."""
  from reasoning_jax.train.sft import run_sft

  saved = saved_config(sft.workdir)
  if saved is not None:
    check_reuse(saved, sft, SFT_KEYS, sft.workdir)
    done = distributed.broadcast_json(_finished(sft.workdir, sft.num_steps))
    if done is not None:
      logging.info("%s: reused %s", role, sft.workdir)
      return done
  logging.info("%s: SFT for %d steps in %s", role, sft.num_steps, sft.workdir)
  return run_sft(sft)


def ensure_rl(rl: ml_collections.ConfigDict, role: str) -> dict[str, Any]:
  """`run_rl(rl)`'s result, or the saved one of a finished identical run in its workdir."""
  from reasoning_jax.rl.trainer import run_rl

  saved = saved_config(rl.workdir)
  if saved is not None:
    check_reuse(saved, rl, RL_KEYS, rl.workdir)
    done = distributed.broadcast_json(_finished(rl.workdir, rl.num_steps))
    if done is not None:
      logging.info("%s: reused %s", role, rl.workdir)
      return done
  logging.info("%s: RL (%s) for %d steps in %s", role, rl.loss, rl.num_steps, rl.workdir)
  return run_rl(rl)


def _copy(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(config.to_dict())


def _data_dir(config) -> str:
  return os.path.abspath(config.data_dir or os.path.join(config.workdir, "data"))


def guide_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config.guide` (an RL config) with its workdirs under `<workdir>` and the shared data."""
  guide = _copy(config.guide)
  guide.workdir = os.path.join(config.workdir, "guide")
  guide.sft.workdir = os.path.join(config.workdir, "guide_sft")
  guide.sft.data_dir = guide.sft.data_dir or _data_dir(config)
  return guide


def pretrain_config(config: ml_collections.ConfigDict, seed: int) -> ml_collections.ConfigDict:
  """Plain SFT of a fresh model (`config.model`, seed `seed`) for `pretrain_steps`."""
  sft = _copy(config.model)
  sft.workdir = os.path.join(config.workdir, f"seed{seed}", "pretrain")
  sft.data_dir = sft.data_dir or _data_dir(config)
  sft.seed, sft.num_steps = seed, config.pretrain_steps
  sft.eval_every = sft.checkpoint_every = sft.num_steps
  sft.log_every = min(sft.log_every, sft.num_steps)
  sft.warmup_steps = min(sft.warmup_steps, sft.num_steps // 2)
  sft.plot = False
  return sft


def midtrain_config(
  config: ml_collections.ConfigDict, seed: int, arm: str, guide: str | None
) -> ml_collections.ConfigDict:
  """Mid-training of arm `arm` from seed `seed`'s pre-trained checkpoint: plain NTP without a
  `guide` workdir, ReMiT with one. Another data order than pre-training (seed + 1000)."""
  pre = pretrain_config(config, seed)
  sft = _copy(pre)
  sft.workdir = os.path.join(config.workdir, f"seed{seed}", f"{arm}_mid")
  sft.init_workdir = pre.workdir
  sft.seed = seed + 1000
  sft.num_steps = sft.eval_every = sft.checkpoint_every = config.midtrain_steps
  sft.log_every = min(config.model.log_every, config.midtrain_steps)
  sft.learning_rate = float(config.midtrain_learning_rate)
  sft.warmup_steps = config.midtrain_warmup_steps
  if guide is not None:
    sft.remit = ml_collections.ConfigDict(dict(config.remit.to_dict(), guide_workdir=guide))
  return sft


def rl_config(
  config: ml_collections.ConfigDict, seed: int, arm: str, mid: ml_collections.ConfigDict
) -> ml_collections.ConfigDict:
  """`config.rl` from the mid-trained model `mid` (its `sft` section: loaded, not retrained)."""
  rl = _copy(config.rl)
  rl.workdir = os.path.join(config.workdir, f"seed{seed}", f"{arm}_rl")
  rl.seed = seed
  rl.sft = mid
  return rl


def weight_stats(workdir: str) -> dict[str, float]:
  """Means over the logged steps of the ReMiT weight metrics of an SFT run in `workdir`."""
  from reasoning_jax.train.metrics import read_metrics

  records = read_metrics(workdir)
  out = {}
  for name in WEIGHT_METRICS:
    values = [r[f"train/{name}"] for r in records if f"train/{name}" in r]
    out[name] = float(np.mean(values)) if values else math.nan
  return out


def arm_names(rounds: int) -> list[str]:
  """`plain`, then `remit_r1` ... `remit_r<rounds>`."""
  return ["plain"] + [f"remit_r{k}" for k in range(1, rounds + 1)]


def run_seed(config: ml_collections.ConfigDict, seed: int, guide: str) -> dict[str, dict]:
  """Every arm of one seed: `{arm: {metric: value, ...}}`."""
  pre = pretrain_config(config, seed)
  pre_result = ensure_sft(pre, f"seed {seed} pretrain")
  out: dict[str, dict] = {}
  guides = {"plain": None, "remit_r1": guide}
  for arm in arm_names(config.flywheel_rounds):
    mid = midtrain_config(config, seed, arm, guides[arm])
    start = time.perf_counter()
    ensure_sft(mid, f"seed {seed} {arm} mid-training")
    rl = rl_config(config, seed, arm, mid)
    after = ensure_rl(rl, f"seed {seed} {arm} RL")
    row = {
      "seed": seed,
      "guide": guides[arm],
      "pretrain_accuracy": pre_result.get("accuracy", math.nan),
      "accuracy_before": after.get("accuracy_warm_start", math.nan),
      "sampled_before": after.get("sampled_accuracy_warm_start", math.nan),
      "accuracy_after": after.get("accuracy", math.nan),
      "sampled_after": after.get("sampled_accuracy", math.nan),
      "pass_at_k_after": after.get("pass_at_k", math.nan),
      "seconds": time.perf_counter() - start,
    }
    row.update(weight_stats(mid.workdir) if guides[arm] else dict.fromkeys(WEIGHT_METRICS, None))
    out[arm] = row = distributed.broadcast_json(row)  # Process 0's metrics files and clock.
    if arm.startswith("remit_r"):  # The flywheel: this round's RL model guides the next.
      guides[f"remit_r{int(arm[len('remit_r') :]) + 1}"] = rl.workdir
    logging.info("seed %d %s: %s", seed, arm, {k: row[k] for k in METRICS})
  return out


def _mean_std(values) -> list[float] | None:
  v = np.asarray([x for x in values if x is not None], np.float64)
  if not len(v):
    return None
  return [float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0]


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict[str, list[float] | None]]:
  """`{arm: {metric: [mean, std over seeds] or None}}`."""
  return {arm: {m: _mean_std([r[m] for r in rows]) for m in METRICS} for arm, rows in runs.items()}


def compare(runs: dict[str, list[dict]], arm: str, metric: str) -> dict[str, Any]:
  """Paired per-seed difference `arm - plain` in `metric`: mean, std, seeds higher / lower, and
  the verdict: "beat" when every seed is higher, "lost" when every seed is lower, "tie" when
  every difference is 0, else "mixed"; "too few seeds" below `MIN_SEEDS`."""
  diffs = [a[metric] - p[metric] for a, p in zip(runs[arm], runs["plain"])]
  mean, std = _mean_std(diffs)
  higher, lower = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
  n = len(diffs)
  if n < MIN_SEEDS:
    verdict = "too few seeds"
  elif higher == n:
    verdict = "beat"
  elif lower == n:
    verdict = "lost"
  else:
    verdict = "tie" if not higher + lower else "mixed"
  return {"mean": mean, "std": std, "higher": higher, "lower": lower, "n": n, "verdict": verdict}


def _fmt(pair: list[float] | None, digits: int = 3) -> str:
  if pair is None or not all(math.isfinite(x) for x in pair):
    return "–"
  return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


_VERDICT = {
  "beat": "beat plain mid-training (higher in every seed)",
  "lost": "lost to plain mid-training (lower in every seed)",
  "tie": "tied with plain mid-training (equal in every seed)",
  "mixed": "did not consistently beat plain mid-training (higher in some seeds only)",
  "too few seeds": f"is not judged against plain mid-training (fewer than {MIN_SEEDS} seeds)",
}


def markdown(config, payload: dict[str, Any]) -> str:
  s, cmp = payload["summary"], payload["comparisons"]
  k = config.rl.eval_samples
  n = len(config.seeds)
  lines = [
    "# ReMiT vs plain mid-training, then RL",
    "",
    'ReMiT: Huang et al., "ReMiT: RL-Guided Mid-Training for Iterative LLM Evolution", '
    "arXiv 2602.03075.",
    "",
    f"Learner: {payload['model']}, pre-trained from scratch by plain SFT for "
    f"{config.pretrain_steps} steps on {config.model.task}/{config.model.task_config} "
    f"(answer_noise={dict(config.model.task_overrides).get('answer_noise', 0)}), then "
    f"mid-trained for {config.midtrain_steps} steps on the same data (lr "
    f"{config.midtrain_learning_rate:g}): plain NTP vs ReMiT ({payload['remit']}). Then "
    f"{config.rl.num_steps} steps of RL ({config.rl.loss}, {config.rl.prompts_per_step} prompts x "
    f"{config.rl.group_size} samples) from each. Guide of round 1: {shown_path(payload['guide']['workdir'], config.workdir)} "
    f"(held-out greedy {_num(payload['guide'].get('accuracy'))}, avg@k "
    f"{_num(payload['guide'].get('sampled_accuracy'))}). Pre-trained checkpoint: greedy "
    f"{_fmt(payload['pretrain_accuracy'])}. {n} seeds, mean ± std; accuracy on "
    f"{config.rl.eval_examples} held-out questions: greedy exact match and avg@{k} (samples at "
    f"temperature {config.rl.temperature:g}).",
    "",
    f"| arm | guide | greedy before RL | avg@{k} before RL | greedy after RL | avg@{k} after RL "
    "| weight std | clip frac | weight mean |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for arm, m in s.items():
    guide = "–" if arm == "plain" else _guide_label(int(arm[len("remit_r") :]))
    lines.append(
      f"| {arm} | {guide} | {_fmt(m['accuracy_before'])} | {_fmt(m['sampled_before'])} | "
      f"{_fmt(m['accuracy_after'])} | {_fmt(m['sampled_after'])} | {_fmt(m['remit_weight_std'])} "
      f"| {_fmt(m['remit_clip_frac'])} | {_fmt(m['remit_weight_mean'])} |"
    )
  lines += [
    "",
    "Weight statistics: means over the mid-training run's logged steps of the ReMiT token "
    "weights' std, the fraction clipped at 1 ± eps, and their mean (1 = NTP).",
    "",
    "### Verdict",
    "",
    'Paired per-seed differences ReMiT − plain (mean ± std; rule: "beat" only when higher in '
    f"every seed, and only with at least {MIN_SEEDS} seeds):",
    "",
  ]
  for arm in cmp:
    for metric, label in (
      ("sampled_after", f"avg@{k} after RL"),
      ("accuracy_after", "greedy after RL"),
      ("sampled_before", f"avg@{k} before RL"),
      ("accuracy_before", "greedy before RL"),
    ):
      c = cmp[arm][metric]
      lines.append(
        f"- {arm}, {label}: {c['mean']:+.3f} ± {c['std']:.3f} ({c['higher']}/{c['n']} seeds "
        f"higher, {c['lower']}/{c['n']} lower)"
      )
  head = cmp["remit_r1"]["sampled_after"]
  lines += [
    "",
    f"**At this scale ReMiT (round 1) {_VERDICT[head['verdict']]} on avg@{k} after RL**"
    f" ({head['mean']:+.3f} ± {head['std']:.3f}, {n} seeds).",
  ]
  if config.flywheel_rounds > 1:
    lines += ["", "### Flywheel (ReMiT²)", ""]
    lines += [
      f"| round | guide | avg@{k} before RL | avg@{k} after RL | avg@{k} after RL − plain |",
      "|---|---|---|---|---|",
    ]
    for r in range(1, config.flywheel_rounds + 1):
      arm = f"remit_r{r}"
      c = cmp[arm]["sampled_after"]
      guide = _guide_label(r)
      lines.append(
        f"| {r} | {guide} | {_fmt(s[arm]['sampled_before'])} | {_fmt(s[arm]['sampled_after'])} "
        f"| {c['mean']:+.3f} ± {c['std']:.3f} ({c['verdict']}) |"
      )
  lines += ["", f"Measured on {payload['device']} in {payload['seconds']:.0f} s."]
  return "\n".join(lines) + "\n"


def _guide_label(round_: int) -> str:
  return "main RL" if round_ == 1 else f"round {round_ - 1} ReMiT RL"


def _num(x) -> str:
  return "–" if x is None or not math.isfinite(x) else f"{x:.3f}"


def plot(config, payload: dict[str, Any]) -> list[str]:
  """`accuracy.png`: greedy and avg@k before / after RL per arm, mean ± std over seeds."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
  arms = list(payload["summary"])
  for ax, (before, after, label) in zip(
    axes,
    (
      ("accuracy_before", "accuracy_after", "greedy exact match"),
      ("sampled_before", "sampled_after", f"avg@{config.rl.eval_samples}"),
    ),
  ):
    for i, arm in enumerate(arms):
      m = payload["summary"][arm]
      x = np.array([0.0, 1.0]) + (i - (len(arms) - 1) / 2) * 0.04
      ax.errorbar(
        x, [m[before][0], m[after][0]], yerr=[m[before][1], m[after][1]], marker="o",
        capsize=3, label=arm,
      )  # fmt: skip
    ax.set_xticks([0, 1], ["mid-trained (before RL)", f"after {config.rl.num_steps} RL steps"])
    ax.set_ylabel(f"held-out {label}")
    ax.set_xlim(-0.4, 1.4)
    ax.legend()
  fig.suptitle(f"plain vs ReMiT mid-training, then RL ({len(config.seeds)} seeds, mean ± std)")
  fig.tight_layout()
  path = os.path.join(config.workdir, "accuracy.png")
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return [path]


def _guide(config) -> tuple[str, dict[str, Any]]:
  """The round-1 guide's workdir and its final metrics (trained first when not given)."""
  if config.guide_workdir:
    workdir = os.path.abspath(config.guide_workdir)
    path = os.path.join(workdir, "final_metrics.json")
    metrics = distributed.broadcast_json(
      json.loads(pathlib.Path(path).read_text()) if os.path.exists(path) else {}
    )
    logging.info("guide: %s (given)", workdir)
    return workdir, metrics
  guide = guide_config(config)
  return guide.workdir, ensure_rl(guide, "guide (the main job's RL run)")


def run(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The whole experiment; returns the payload also written to `results.json`."""
  from reasoning_jax.rl.recipes import RECIPES
  from reasoning_jax.train.sft_config import model_source

  validate(config)
  config = _copy(config)
  config.workdir = os.path.abspath(config.workdir)
  os.makedirs(config.workdir, exist_ok=True)
  start = time.perf_counter()
  guide_workdir, guide_metrics = _guide(config)
  runs: dict[str, list[dict]] = {arm: [] for arm in arm_names(config.flywheel_rounds)}
  for seed in config.seeds:
    for arm, row in run_seed(config, seed, guide_workdir).items():
      runs[arm].append(row)
  source = model_source(pretrain_config(config, config.seeds[0]))
  mc = source.model_config
  recipe = RECIPES[config.rl.loss]
  payload = {
    "config": config.to_dict(),
    "model": f"{config.model.preset} (layers: {mc.num_layers}, width {mc.hidden_size})",
    "remit": ", ".join(f"{k}={v}" for k, v in config.remit.to_dict().items()),
    "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
    "guide": {
      "workdir": guide_workdir,
      "accuracy": guide_metrics.get("accuracy"),
      "sampled_accuracy": guide_metrics.get("sampled_accuracy"),
    },
    "pretrain_accuracy": _mean_std([r["pretrain_accuracy"] for r in runs["plain"]]),
    "runs": runs,
    "summary": summarize(runs),
    "comparisons": {
      arm: {m: compare(runs, arm, m) for m in METRICS[:4]} for arm in runs if arm != "plain"
    },
  }
  payload["seconds"] = distributed.broadcast_json(time.perf_counter() - start)
  if not distributed.is_coordinator():  # Process 0 writes the report.
    return payload
  write_results(config.workdir, payload, markdown(config, payload))
  if config.get("plot", True):
    payload["plots"] = plot(config, payload)
  names = citations.run_components(
    loss=recipe.loss, advantage=recipe.advantage, model=mc, methods=("remit",)
  )
  citations.write_citations(names, os.path.join(config.workdir, "CITATIONS.bib"))
  logging.info("ReMiT experiment: %.0f s", payload["seconds"])
  return payload
