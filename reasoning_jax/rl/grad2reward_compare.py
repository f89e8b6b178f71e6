"""Grad2Reward vs GRPO on sparse rubric rewards: the comparison behind `experiments.grad2reward`.

Grad2Reward: From Sparse Judgment to Dense Rewards for Improving Open-Ended LLM Reasoning
(Zhang et al.), arXiv 2602.01791; rl.md section 6.

`run(config)` is `rl.compare.run_comparison` over the two judge recipes (`rubric_grpo`: the
self-judge's sparse rubric reward with GRPO; `grad2reward`: the same verdicts spread over the
tokens, token-level GRPO) at equal budget from one warm start, with the judge's logs as extra
diagnostics (`JUDGE_DIAGNOSTICS`), and adds:

* the steps each Grad2Reward seed needs to reach GRPO's final mean held-out level, against
  the step GRPO's mean curve first reaches it (the paper: 1.7-1.9x fewer);
* a plain verdict sentence (a difference beyond the seeds' spread, or not);
* `token_rewards.png`: the warm start judging its own samples on held-out prompts, each token
  coloured by its reward (`reasoning_jax.evaluate.grad2reward`);
* which criteria the self-judge can check: its verdicts on fresh demonstration-like
  responses of `config.probe_examples` held-out prompts (8 each) against the items' checks,
  per item (`evaluate.grad2reward.warm_start_probe`).

The held-out score is the programmatic grader's rubric score of greedy responses
(`rubric_rules`), which training never sees. On several processes every process runs the
comparison and the warm-start probes, and process 0 alone writes the report.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from reasoning_jax import distributed
from reasoning_jax.rl.compare import run_comparison

__all__ = ["JUDGE_DIAGNOSTICS", "run", "steps_to_reach", "steps_to_grpo_level", "verdict"]

# The judge's per-step logs (`rl.judge_scorer`), reported like the comparison's diagnostics.
JUDGE_DIAGNOSTICS: dict[str, tuple[str, str]] = {
  "judge_reward": ("rollout/reward", "judge's rubric reward of rollouts"),
  "grader_reward": ("rollout/judge_grader_reward", "grader's rubric reward of rollouts"),
  "judge_accuracy": ("rollout/judge_judge_accuracy", "judge agrees with grader (items)"),
  "judge_true_rate": ("rollout/judge_judge_true_rate", "judge says True (items)"),
  "grader_true_rate": ("rollout/judge_grader_true_rate", "grader says True (items)"),
  "attribution_entropy": ("rollout/judge_attribution_entropy", "attribution entropy (nats)"),
  "judge_seconds": ("rollout/seconds_judge", "judge seconds per step"),
  "rollout_seconds": ("rollout/seconds", "rollout seconds per step (judge included)"),
}
ARMS = ("rubric_grpo", "grad2reward")


def steps_to_reach(curve, level: float) -> int | None:
  """First evaluation step after the start whose score is >= `level` (None: never)."""
  for step, value in curve:
    if step > 0 and value >= level - 1e-9:
      return int(step)
  return None


def steps_to_grpo_level(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
  """GRPO's final mean level, the step its mean curve reaches it, each Grad2Reward seed's."""
  if not set(ARMS) <= set(results):
    return None
  grpo = results["rubric_grpo"]
  level = float(np.mean([r["final"] for r in grpo]))
  steps = sorted({int(s) for r in grpo for s, _ in r["curve"]})
  mean_curve = [
    (s, float(np.mean([v for r in grpo for t, v in r["curve"] if int(t) == s]))) for s in steps
  ]
  grpo_step = steps_to_reach(mean_curve, level)
  dense = [steps_to_reach(r["curve"], level) for r in results["grad2reward"]]
  speedup = None
  if grpo_step and dense and all(s is not None for s in dense):
    speedup = grpo_step / float(np.mean(dense))
  return {"level": level, "grpo_step": grpo_step, "grad2reward_steps": dense, "speedup": speedup}


def verdict(results: dict[str, list[dict[str, Any]]]) -> str:
  """One sentence: does Grad2Reward end above GRPO beyond the seeds' spread?"""
  if not set(ARMS) <= set(results):
    return "one arm only: no comparison."
  grpo = {r["seed"]: r["final"] for r in results["rubric_grpo"]}
  dense = {r["seed"]: r["final"] for r in results["grad2reward"]}
  d = np.asarray([dense[s] - grpo[s] for s in sorted(set(grpo) & set(dense))], np.float64)
  se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else float("inf")
  if d.size and d.mean() > 2 * se:
    return (
      f"Grad2Reward ends above GRPO by {d.mean():+.3f} (paired, ± {se:.3f} SE over {d.size} "
      "seeds): the paper's direction reproduces at this scale."
    )
  if d.size and d.mean() < -2 * se:
    return f"Grad2Reward ends below GRPO by {d.mean():+.3f} (± {se:.3f} SE): not reproduced."
  return (
    f"the arms end within the seeds' spread (paired difference {d.mean():+.3f} ± {se:.3f} SE "
    f"over {d.size} seeds): the paper's advantage is not resolved at this scale."
  )


def run(config) -> dict[str, Any]:
  """The comparison, the steps-to-level figure, the verdict and the token-reward picture.

  Args:
    config: `configs/grad2reward.py`'s ConfigDict: a `configs/compare_rl.py`-style config
      (`workdir`, `losses`, `seeds`, `threshold`, `metric_label`, `rl` with a `judge`
      section and `rl.sft.workdir`, the shared warm start) plus `heatmap_examples`.
  """
  from reasoning_jax.evaluate.grad2reward import (
    judge_probe_lines,
    plot_heatmap,
    token_reward_examples,
    warm_start_probe,
  )

  if not config.rl.sft.workdir:
    raise ValueError("config.rl.sft.workdir must name the shared warm start's folder")
  payload = run_comparison(config, diagnostics=JUDGE_DIAGNOSTICS)
  results = payload["results"]
  reach = steps_to_grpo_level(results)
  payload["steps_to_grpo_level"] = reach
  payload["verdict"] = verdict(results)
  payload["token_rewards"] = token_reward_examples(config.rl, int(config.heatmap_examples))
  probe_examples = int(config.get("probe_examples", 64))
  payload["judge_probe"] = (
    warm_start_probe(config.rl, num_examples=probe_examples) if probe_examples > 0 else None
  )
  # Every process probes the warm start (loading a checkpoint is a collective with orbax on
  # several processes); process 0 writes the report.
  if not distributed.is_coordinator():
    return payload
  lines = ["", "### Grad2Reward vs GRPO", ""]
  if reach:
    speedup = "n/a" if reach["speedup"] is None else f"{reach['speedup']:.2f}x"
    lines.append(
      f"Steps to reach GRPO's final held-out level ({reach['level']:.3f}): GRPO's mean curve "
      f"at step {reach['grpo_step']}, Grad2Reward per seed {reach['grad2reward_steps']} "
      f"(None: not reached); speed-up {speedup} (paper: 1.7-1.9x)."
    )
  lines += ["", f"**Verdict.** {payload['verdict']}", ""]
  if payload["token_rewards"]:
    lines.append("Token rewards of the warm start's own samples: `token_rewards.png`.")
  if payload["judge_probe"]:
    lines += ["", *judge_probe_lines(payload["judge_probe"])]
  if config.get("variant") == "quick":
    lines.append("Quick variant: tiny sizes, the pipeline only; its numbers say nothing.")
  with open(os.path.join(config.workdir, "results.md"), "a") as f:
    f.write("\n".join(lines) + "\n")
  if config.get("plot", True):
    plot_heatmap(config.workdir, payload)
  with open(os.path.join(config.workdir, "results.json"), "w") as f:
    json.dump(payload, f, indent=2, default=str)
  return payload
