"""Which rubric criteria a self-judge can check: its verdicts on fresh demonstration-like
responses of the rubric task, against the items' programmatic checks, per item position.

Grad2Reward (Zhang et al., arXiv 2602.01791) rewards what the judge says, so a judge that
cannot check a criterion is optimised instead of the criterion (the paper's judges are 1.5B+
instruction models). The RL logs give the judge's agreement on the policy's own rollouts
(`rollout/judge_*`); this probe asks the same judge, before RL, about responses drawn the way
the task's demonstrations are (`rubric_task.response_variant`: each part present at random,
sums miscomputed with `p_slip`), where every verdict is known. A judge that only sees whether
a part is present scores well on "repeats the question", accepts every wrong sum on
"shows the sum", and is at chance on "final answer N" (always present; only a comparison of
two numbers decides).

    probe = probe_judge(model, tokenizer, g2r, examples, per_example=8, seed=0)
    probe["items"]   # per item position: criterion (of the first example), agreement, rates
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from reasoning_jax.data import rubric_task
from reasoning_jax.rewards import Rubric, verdict_agreement

__all__ = ["judge_probe_lines", "probe_judge", "warm_start_probe"]


def probe_judge(
  tokenizer,
  g2r,
  examples: Sequence[dict[str, Any]],
  *,
  per_example: int = 8,
  seed: int = 0,
  prompt_template: str = "{question}\n",
  variant: dict[str, float] | None = None,
) -> dict[str, Any]:
  """The judge `g2r` (a `credit.Grad2Reward`) on `per_example` fresh demonstration-like
  responses of each rubric-task example (`question`, `rubric`, `parts` fields).

  Returns `verdict_agreement`'s numbers plus `items`: per item position, the first example's
  criterion, `agreement`, `judge_true_rate` and `grader_true_rate`; and `pairs`.
  """
  if per_example < 1 or not examples:
    raise ValueError(f"probe_judge needs examples and per_example >= 1, got {per_example}")
  rng = random.Random(seed)
  rows = [e for e in examples for _ in range(per_example)]
  responses = [rubric_task.response_variant(e, rng, **(variant or {})) for e in rows]
  prompts = [tokenizer.encode(prompt_template.format(question=e["question"])) for e in rows]
  bodies = [tokenizer.encode(r) + [tokenizer.eos_id] for r in responses]
  width = max(len(p) + len(b) for p, b in zip(prompts, bodies))
  tokens = np.zeros((len(rows), width), np.int32)
  mask = np.zeros((len(rows), width), np.float32)
  for i, (p, b) in enumerate(zip(prompts, bodies)):
    tokens[i, : len(p) + len(b)] = p + b
    mask[i, len(p) : len(p) + len(b)] = 1
  rubrics = [e["rubric"] for e in rows]
  out = g2r(tokens, mask, [e["question"] for e in rows], rubrics)
  stats = verdict_agreement(rubrics, responses, out.verdicts)
  criteria = [item.criterion for item in Rubric.parse(rubrics[0]).items]
  items = [
    {
      "criterion": criterion,
      "agreement": stats[f"judge_accuracy_item{k}"],
      "judge_true_rate": stats[f"judge_true_rate_item{k}"],
      "grader_true_rate": stats[f"grader_true_rate_item{k}"],
    }
    for k, criterion in enumerate(criteria)
    if f"judge_accuracy_item{k}" in stats
  ]
  return {**stats, "items": items, "pairs": int(out.stats["judge_pairs"])}


def warm_start_probe(rl_config, *, num_examples: int = 64, per_example: int = 8, seed: int = 0):
  """`probe_judge` for the self-judge of an RL config with a judge section on the rubric task
  (the judge as RL builds it: the SFT warm start, verdicts only), on its held-out examples.
  None where there is nothing to probe this way: an external judge (`judge.model` a
  directory), no SFT warm start in `rl_config.sft.workdir`, or a task whose examples carry no
  rubric `parts` (not the rubric task)."""
  from reasoning_jax.credit import Grad2Reward, Grad2RewardConfig
  from reasoning_jax.data.examples import decode_example
  from reasoning_jax.train.sft import load_sft_params
  from reasoning_jax.train.sft_config import model_source
  from reasoning_jax.train.task import prepare_task

  if rl_config.judge.get("model", "self") != "self":
    return None
  loaded = load_sft_params(rl_config.sft.workdir) if rl_config.sft.workdir else None
  if loaded is None:
    return None
  model, sft = loaded
  source = model_source(sft)
  task = prepare_task(sft, source, workdir=os.path.abspath(sft.workdir), check=False)
  n = min(num_examples, len(task.test_source))
  examples = [decode_example(task.test_source[i]) for i in range(n)]
  if not examples or "parts" not in examples[0]:
    return None
  options = {k: v for k, v in rl_config.judge.to_dict().items() if k != "model"}
  options["dense"] = False
  tokenizer = source.tokenizer
  g2r = Grad2Reward(model, tokenizer, Grad2RewardConfig(**options), eos_id=tokenizer.eos_id)
  overrides = dict(sft.get("task_overrides", {}) or {})
  keys = ("p_repeat", "p_sum", "p_step", "p_final", "p_slip")  # The builder's, if overridden.
  variant = {k: float(overrides[k]) for k in keys if k in overrides} or None
  return probe_judge(
    tokenizer,
    g2r,
    examples,
    per_example=per_example,
    seed=seed,
    prompt_template=sft.prompt_template,
    variant=variant,
  )


def judge_probe_lines(probe: dict[str, Any] | None) -> list[str]:
  """A markdown table of a probe (empty without one)."""
  if not probe:
    return []
  lines = [
    f"The warm start judging fresh demonstration-like responses ({probe['pairs']} pairs; "
    f"agreement {probe['judge_accuracy']:.3f}, judge / grader say True "
    f"{probe['judge_true_rate']:.3f} / {probe['grader_true_rate']:.3f}):",
    "",
    "| item (criterion of the first example) | agreement | judge says True | grader says True |",
    "|---|---|---|---|",
  ]
  for item in probe["items"]:
    lines.append(
      f"| {json.dumps(item['criterion'])[1:-1]} | {item['agreement']:.3f} | "
      f"{item['judge_true_rate']:.3f} | {item['grader_true_rate']:.3f} |"
    )
  return lines
