"""The router experiment's judge: a model grading every table cell beside the verifier.

R2-Bench grades every answer with a judge LLM chosen for its Pearson correlation with human
annotations (rho = 0.82; `shared/methods/inference.md` section 6.3). Here `config.judge` names
the judge: `pool_model` (a member of the pool trained here) or `hf_dir` (a local HF folder);
both empty: no judge. Its scores are written beside the table's completions
(`routing.build_bench(judge=)`, from the stored completions, so an existing bench gains them
without regenerating) and results.md reports its agreement with the verifier over every
(query, model, budget) cell: Pearson correlation and accuracy at threshold 0.5, the way the
paper validates its judge against humans. `config.judge.quality_source = "judge"` routes on the
judge's scores (heads trained on them, curves measured in them, as in R2-Bench); the default,
"verifier", keeps the exact verifier as the ground truth.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections
import numpy as np

from reasoning_jax.routing import QUALITY_SOURCES, BenchTable, ModelJudge, judge_agreement

_KEYS = ("pool_model", "hf_dir", "template", "positive", "negative", "chat", "batch_size")


def _judge_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
  judge = config.get("judge", None)
  return {} if judge is None else judge.to_dict()


def judge_enabled(config: ml_collections.ConfigDict) -> bool:
  j = _judge_config(config)
  return bool(j.get("pool_model") or j.get("hf_dir"))


def quality_source(config: ml_collections.ConfigDict) -> str:
  return _judge_config(config).get("quality_source", "verifier")


def validate_judge(config: ml_collections.ConfigDict) -> None:
  """`config.judge`'s keys; ValueError naming the key."""
  j = _judge_config(config)
  unknown = sorted(set(j) - set(_KEYS) - {"quality_source"})
  if unknown:
    raise ValueError(
      f"config.judge has unknown keys {unknown}; known: {(*_KEYS, 'quality_source')}"
    )
  source = j.get("quality_source", "verifier")
  if source not in QUALITY_SOURCES:
    raise ValueError(
      f"config.judge.quality_source must be one of {QUALITY_SOURCES}, got {source!r}"
    )
  if j.get("pool_model") and j.get("hf_dir"):
    raise ValueError("config.judge: set pool_model or hf_dir, not both")
  name = j.get("pool_model", "")
  if name and name not in tuple(config.pool.order):
    raise ValueError(
      f"config.judge.pool_model={name!r} must name a trained pool member {tuple(config.pool.order)}"
    )
  if source == "judge" and not judge_enabled(config):
    raise ValueError(
      "config.judge.quality_source='judge' needs a judge: set config.judge.pool_model or hf_dir"
    )


def build_judge(config: ml_collections.ConfigDict, pool: dict[str, Any]) -> ModelJudge | None:
  """The configured `ModelJudge` (None when off): a pool member's model and tokenizer, or an HF
  folder; named "pool:<name>" / "hf:<folder name>" (its scores' shards are keyed by it)."""
  if not judge_enabled(config):
    return None
  j = _judge_config(config)
  kwargs = {k: j[k] for k in ("template", "positive", "negative", "chat") if k in j}
  kwargs["batch_size"] = int(j.get("batch_size", 8))
  if j.get("pool_model"):
    pm = pool[j["pool_model"]]
    return ModelJudge(pm.model, pm.tokenizer, name=f"pool:{j['pool_model']}", **kwargs)
  folder = os.path.basename(os.path.normpath(j["hf_dir"]))
  return ModelJudge.from_hf(j["hf_dir"], name=f"hf:{folder}", **kwargs)


def judge_report(table: BenchTable, config: ml_collections.ConfigDict) -> dict[str, Any] | None:
  """The judge's name, settings, quality source and agreement with the verifier over every
  budget cell `[N, M, K]` (and, separately, the default column's `[N, M]` when built), also
  per model; None without a judge."""
  if not table.has_judge:
    return None
  report = {
    "name": table.judge,
    "settings": {k: v for k, v in _judge_config(config).items() if k != "quality_source"},
    "quality_source": quality_source(config),
    "agreement": judge_agreement(table.judge_quality, table.quality),
    "per_model": {
      name: judge_agreement(table.judge_quality[:, i], table.quality[:, i])
      for i, name in enumerate(table.models)
    },
  }
  if table.default_judge_quality is not None:
    report["default"] = judge_agreement(table.default_judge_quality, table.default_quality)
  return report


def _num(v: float) -> str:
  return "n/a" if np.isnan(v) else f"{v:.3f}"


def judge_section(report: dict[str, Any], verifier: str) -> list[str]:
  """results.md's lines on the judge."""
  a = report["agreement"]
  majority = max(a["positive_rate"], 1.0 - a["positive_rate"])
  lines = [
    "",
    f"### Judge {report['name']!r} vs the verifier {verifier!r} (every query x model x budget "
    f"cell; the paper's judge: Pearson 0.82 with humans)\n",
    "| cells | Pearson | accuracy at 0.5 | majority-class accuracy | mean judge score | "
    "verifier positive rate |",
    "|---|---|---|---|---|---|",
    f"| {a['cells']} | {_num(a['pearson'])} | {a['accuracy']:.3f} | {majority:.3f} | "
    f"{a['judge_mean']:.3f} | {a['positive_rate']:.3f} |",
    "",
    "| model | Pearson | accuracy at 0.5 | mean judge score | verifier positive rate |",
    "|---|---|---|---|---|",
  ]
  for name, m in report["per_model"].items():
    lines.append(
      f"| {name} | {_num(m['pearson'])} | {m['accuracy']:.3f} | {m['judge_mean']:.3f} | "
      f"{m['positive_rate']:.3f} |"
    )
  if "default" in report:
    d = report["default"]
    lines.append(
      f"\nDefault column: Pearson {_num(d['pearson'])}, accuracy {d['accuracy']:.3f} over "
      f"{d['cells']} cells."
    )
  source = report["quality_source"]
  lines.append(
    f"\nRouters below are trained and measured on the **{source}**'s scores "
    f"(`config.judge.quality_source = {source!r}`)."
  )
  return lines
