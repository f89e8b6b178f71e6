"""RTN vs GPTQ vs BPDQ on one model: weight error, held-out perplexity, task accuracy, bytes.

"BPDQ: Bit-Plane Decomposition Quantization on a Variable Grid for Large Language Models"
(Chen et al., arXiv:2602.04163) against "GPTQ: Accurate Post-Training Quantization for
Generative Pre-trained Transformers" (Frantar et al., arXiv:2210.17323) and round-to-nearest,
at 2/3/4 bits and matched bits per weight (`settings.py`). For each calibration seed (its own
draw of training-split batches) every row quantizes a fresh copy of the float model with
`quant.quantize_model` and is measured on the same held-out data:

  * `error`: sum over kernels of `tr((W - Q) H (W - Q)^T)` in that seed's calibration Hessian,
    and `rel_error`, its mean over kernels relative to `tr(W H W^T)`;
  * `ppl`: perplexity of the held-out solutions (teacher-forced, solution tokens only);
  * `accuracy`: greedy decoding of held-out prompts scored by the task's verifier;
  * `bytes`: the model's real bytes (codes, scales / coefficients, and the float embeddings,
    norms and head), against the same model in bf16; `seconds` to quantize.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from reasoning_jax import citations
from reasoning_jax.evaluate.outputs import write_results
from reasoning_jax.evaluate.quantize.settings import FLOAT, Setting, parse_settings
from reasoning_jax.evaluate.quantize.subject import (
  Subject,
  calibration_batches,
  heldout_prompts,
  heldout_text_batches,
  load_subject,
)
from reasoning_jax.quant.model import SEQUENTIAL, float_bytes, model_bytes, quantize_model

METRICS = ("error", "rel_error", "ppl", "accuracy", "bits_per_weight", "bytes", "seconds")


def validate(config: ml_collections.ConfigDict) -> list[Setting]:
  """The parsed rows; ValueError naming the key for a bad config."""
  if not config.get("workdir"):
    raise ValueError("config.workdir must be set")
  if not config.seeds or len(set(config.seeds)) != len(config.seeds):
    raise ValueError(f"config.seeds must be distinct ints, got {config.seeds}")
  if config.sequential not in SEQUENTIAL:
    raise ValueError(f"config.sequential must be one of {SEQUENTIAL}, got {config.sequential!r}")
  for key in ("num_batches", "batch_size", "seq_len"):
    if int(config.calibration[key]) < 1:
      raise ValueError(f"config.calibration.{key} must be >= 1")
  quant = config.get("quant") or {}
  return parse_settings(tuple(config.settings), dict(quant))


def perplexity(model: nnx.Module, batches: list[dict[str, Any]]) -> float:
  """exp(mean NLL) of the solution tokens (`loss_mask`) of `batches`."""
  from reasoning_jax.logprobs import sequence_logprobs

  total, count = 0.0, 0.0
  for batch in batches:
    tokens = jnp.asarray(batch["tokens"])
    mask = jnp.asarray(batch["loss_mask"]).astype(jnp.float32)
    lp, _ = sequence_logprobs(model, tokens, mask)
    total += float(jnp.sum(lp))
    count += float(jnp.sum(mask))
  return math.exp(-total / max(count, 1.0))


def accuracy(model: nnx.Module, subject: Subject, prompts: dict[str, Any], config) -> float:
  """Greedy held-out accuracy under the task's verifier."""
  from reasoning_jax.generate import generate
  from reasoning_jax.rewards import REWARD_FIELDS, score_batch

  out = generate(
    model,
    jnp.asarray(prompts["prompts"]),
    jnp.asarray(prompts["prompt_lengths"]),
    max_new_tokens=config.eval.max_new_tokens,
    temperature=0.0,
    eos_id=subject.eos_ids,
    pad_id=int(getattr(subject.tokenizer, "pad_id", 0) or 0),
  )
  completions = subject.tokenizer.decode_batch(np.asarray(out.tokens), np.asarray(out.lengths))
  fields = {k: list(prompts[k]) for k in REWARD_FIELDS if k in prompts}
  answers = [str(a) for a in prompts["answer"]]
  return float(np.mean(score_batch(subject.task.reward, completions, answers, **fields)))


def _measure(model, subject, texts, prompts, config) -> dict[str, float]:
  return {
    "ppl": perplexity(model, texts),
    "accuracy": accuracy(model, subject, prompts, config),
    "bytes": float(model_bytes(model)),
  }


def _row(setting: Setting, subject, calib, texts, prompts, config) -> dict[str, float]:
  model = nnx.clone(subject.model)
  start = time.perf_counter()
  reports = quantize_model(model, calib, config=setting.config, sequential=config.sequential)
  seconds = time.perf_counter() - start
  weights = sum(math.prod(r.shape) for r in reports)
  row = {
    "error": float(sum(r.error for r in reports)),
    "rel_error": float(np.mean([r.relative_error for r in reports])),
    "bits_per_weight": float(
      sum(r.bits_per_weight * math.prod(r.shape) for r in reports) / weights
    ),
    "seconds": seconds,
  }
  row.update(_measure(model, subject, texts, prompts, config))
  return row


def _mean_std(values) -> tuple[float, float]:
  v = np.asarray(values, np.float64)
  return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def summarize(runs: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, list[float]]]:
  """`{row: {metric: [mean, std]}}` over seeds."""
  return {
    name: {m: list(_mean_std([r[m] for r in rows])) for m in rows[0]} for name, rows in runs.items()
  }


def ratios(summary, settings: list[Setting]) -> dict[str, float]:
  """BPDQ / GPTQ weighted-error ratios at equal bits (the benchmark's goal: <= 0.7 at 2 bits)."""
  out = {}
  for s in settings:
    if s.method != "bpdq":
      continue
    for t in settings:
      if t.method == "gptq" and t.config.bits == s.config.bits:
        out[f"{s.name} / {t.name}"] = summary[s.name]["error"][0] / summary[t.name]["error"][0]
  return out


def markdown(config, payload: dict[str, Any]) -> str:
  s = payload["summary"]
  n = len(config.seeds)
  lines = [
    "# Weight quantization: RTN vs GPTQ vs BPDQ",
    "",
    f"Model: {payload['subject']}. Calibration: {config.calibration.num_batches} batches x "
    f"{config.calibration.batch_size} x {config.calibration.seq_len} tokens per seed, "
    f"sequential={config.sequential!r}; {n} seeds (mean ± std). Held-out: perplexity of "
    f"{config.eval.ppl_examples} solutions, greedy accuracy of {config.eval.accuracy_prompts} "
    f"prompts. Float model: ppl {payload['float']['ppl']:.4f}, accuracy "
    f"{payload['float']['accuracy']:.3f}, {payload['float']['bytes'] / 1e6:.2f} MB "
    f"({payload['bf16_bytes'] / 1e6:.2f} MB in bf16).",
    "",
    "| row | bits/weight | weight error Σ tr((W−Q)H(W−Q)ᵀ) | rel. error | ppl | accuracy | "
    "MB | s to quantize |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for name, m in s.items():
    lines.append(
      f"| {name} | {m['bits_per_weight'][0]:.4f} | {m['error'][0]:.4g} ± {m['error'][1]:.2g} | "
      f"{m['rel_error'][0]:.4f} ± {m['rel_error'][1]:.4f} | {m['ppl'][0]:.3f} ± "
      f"{m['ppl'][1]:.3f} | {m['accuracy'][0]:.3f} ± {m['accuracy'][1]:.3f} | "
      f"{m['bytes'][0] / 1e6:.2f} | {m['seconds'][0]:.1f} |"
    )
  if payload["ratios"]:
    lines += ["", "BPDQ / GPTQ weighted error at equal bits (goal at 2 bits: ≤ 0.7):", ""]
    lines += [f"- {k}: {v:.3f}" for k, v in payload["ratios"].items()]
  lines += ["", f"Measured on {payload['device']} in {payload['seconds']:.0f} s."]
  return "\n".join(lines) + "\n"


def plot(config, payload: dict[str, Any]) -> list[str]:
  """`tradeoff.png`: perplexity and accuracy against bits per weight, one line per method."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  by_method: dict[str, list[tuple[float, Any]]] = {}
  for name, m in payload["summary"].items():
    by_method.setdefault(name.split("-")[0], []).append((m["bits_per_weight"][0], m))
  for method, points in sorted(by_method.items()):
    points.sort(key=lambda p: p[0])
    x = [p[0] for p in points]
    for ax, key in zip(axes, ("ppl", "accuracy")):
      ax.errorbar(
        x, [p[1][key][0] for p in points], yerr=[p[1][key][1] for p in points], marker="o",
        capsize=3, label=method,
      )  # fmt: skip
  for ax, key in zip(axes, ("ppl", "accuracy")):
    ax.axhline(payload["float"][key], color="k", ls="--", lw=1, label="float")
    ax.set_xlabel("bits per weight")
    ax.set_ylabel(f"held-out {key}")
    ax.legend()
  axes[0].ticklabel_format(axis="y", style="plain", useOffset=False)
  fig.suptitle(f"RTN vs GPTQ vs BPDQ ({len(config.seeds)} calibration seeds)")
  fig.tight_layout()
  path = os.path.join(config.workdir, "tradeoff.png")
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return [path]


def run(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The whole experiment; returns the payload also written to `results.json`."""
  settings = validate(config)
  os.makedirs(config.workdir, exist_ok=True)
  start = time.perf_counter()
  subject = load_subject(config)
  texts, prompts = heldout_text_batches(subject, config), heldout_prompts(subject, config)
  float_row = _measure(subject.model, subject, texts, prompts, config)
  logging.info("float model: %s", float_row)
  runs: dict[str, list[dict[str, float]]] = {s.name: [] for s in settings}
  for seed in config.seeds:
    calib = calibration_batches(subject, config, seed)
    for setting in settings:
      runs[setting.name].append(_row(setting, subject, calib, texts, prompts, config))
      logging.info("seed %d %s: %s", seed, setting.name, runs[setting.name][-1])
  summary = summarize(runs)
  payload = {
    "config": config.to_dict(),
    "subject": subject.describe(),
    "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
    FLOAT: float_row,
    "bf16_bytes": float(float_bytes(subject.model)),
    "runs": runs,
    "summary": summary,
    "ratios": ratios(summary, settings),
  }
  payload["seconds"] = time.perf_counter() - start
  write_results(config.workdir, payload, markdown(config, payload))
  if config.get("plot", True):
    payload["plots"] = plot(config, payload)
  methods = sorted({s.method for s in settings})
  names = [m for m in ("gptq", "bpdq") if m in methods]
  names += citations.run_components(model=subject.model.config)
  citations.write_citations(names, os.path.join(config.workdir, "CITATIONS.bib"))
  logging.info("quantization experiment: %.0f s", payload["seconds"])
  return payload
