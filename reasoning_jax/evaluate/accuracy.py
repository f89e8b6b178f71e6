"""Held-out exact-match accuracy of a model on a task, question by question.

`evaluate_on_task(model, sft_config, ...)` is what `python -m experiments.evaluate` runs on
a Hugging Face folder or on a run trained here: it builds the task of an SFT-style config
(dataset, chat template and instruction, verifier; `train.task.prepare_task`, the trainers'
own path), answers every held-out question (or the first `num_examples`) `num_samples`
times with `generate`, scores each answer with the verifier (`train.exact_match`) and writes

  <out_dir>/results.jsonl   one line per question: question, answer, and per sample the
                            completion, reward, generated length, cut off by the budget or not
  <out_dir>/summary.json    accuracy (avg@k over all samples; greedy when k = 1), pass@k,
                            count, mean completion length, truncated fraction, seconds,
                            generated tokens per second, and what was evaluated.

One sample per question is greedy unless a temperature is given; more samples use the model
source's sampling settings (generation_config.json) unless given.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

__all__ = ["RESULTS_FILE", "SUMMARY_FILE", "evaluate_on_task"]

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"


def evaluate_on_task(
  model: nnx.Module,
  sft: ml_collections.ConfigDict,
  *,
  out_dir: str,
  num_examples: int = 0,
  num_samples: int = 1,
  temperature: float | None = None,
  top_p: float | None = None,
  top_k: int | None = None,
  max_new_tokens: int | None = None,
  batch_size: int = 64,
  seed: int = 0,
  describe: dict[str, Any] | None = None,
  mesh: jax.sharding.Mesh | None = None,
) -> dict[str, Any]:
  """Evaluates `model` on the held-out split of `sft`'s task; returns the summary.

  Args:
    model: any zoo model (from `from_hf`, or a run's checkpoint).
    sft: an SFT config (`configs/sft_*.py` layout): its `model` block gives the tokenizer,
      EOS ids and default sampling; `task`, `task_config`, `manual_dir`, `prompt`, `reward`
      the questions, their rendering and the verifier.
    out_dir: where `results.jsonl` and `summary.json` go (and the built dataset, unless
      `sft.data_dir` names one).
    num_examples: the first N held-out questions (0: all of them).
    num_samples: answers per question (k of avg@k / pass@k; > 1 needs temperature > 0).
    temperature, top_p, top_k: sampling; None takes the model source's value (its
      `generation_config.json`), except a None temperature with one sample, which is greedy
      (0.0). So k = 1 is greedy accuracy and k > 1 samples as the checkpoint recommends.
    max_new_tokens: the answer budget (None: `sft.eval_max_new_tokens`).
    batch_size: questions per `generate` call.
    seed: sampling seed.
    describe: extra fields for the summary (what model / run was evaluated).
    mesh: None, or the mesh `model`'s params are laid out on (`models.source.place_model`):
      each batch's rows are split over its batch axes (`train.exact_match`).

  Raises:
    ValueError (a `train.sft_config.ConfigError` or `train.task.TaskError`): a bad task, prompt or
      sampling setting, naming the key.
  """
  from reasoning_jax.train.exact_match import evaluate_exact_match
  from reasoning_jax.train.sft_config import model_source
  from reasoning_jax.train.task import prepare_task

  if num_examples < 0:
    raise ValueError(f"num_examples must be >= 0 (0: all), got {num_examples}")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  source = model_source(sft)
  if source.model_config.vocab_size != model.config.vocab_size:
    raise ValueError(
      f"the model's vocabulary ({model.config.vocab_size}) differs from its config's model "
      f"source's ({source.model_config.vocab_size}): evaluate a model with the config it was "
      "trained under"
    )
  task = prepare_task(sft, source, workdir=os.path.abspath(out_dir))
  sampling = dict(source.sampling)
  if temperature is None and num_samples == 1:
    temperature = 0.0
  for name, value in (("temperature", temperature), ("top_p", top_p), ("top_k", top_k)):
    if value is not None:
      sampling[name] = value
  budget = int(max_new_tokens or sft.get("eval_max_new_tokens") or 256)
  total = len(task.test_source)
  count = min(num_examples or total, total)
  logging.info(
    "evaluating %d of %d held-out %s questions x %d samples (temperature %s, budget %d)",
    count,
    total,
    sft.task,
    num_samples,
    sampling["temperature"],
    budget,
  )
  start = time.perf_counter()
  result = evaluate_exact_match(
    model,
    source.tokenizer,
    task.test_source,
    reward=task.reward,
    num_examples=count,
    max_new_tokens=budget,
    prompt_template=task.prompt,
    batch_size=batch_size,
    temperature=float(sampling["temperature"] or 0.0),
    top_p=float(sampling["top_p"] or 1.0),
    top_k=int(sampling["top_k"] or 0) or None,
    seed=seed,
    num_samples=num_samples,
    eos_id=source.eos_id,
    max_prompt_len=task.max_prompt_len,
    add_bos=task.add_bos,
    truncate=task.truncate,
    keep_records=True,
    mesh=mesh,
  )
  seconds = time.perf_counter() - start
  records = result["records"]
  lengths = np.array([n for r in records for n in r["lengths"]], np.float64)
  cut = np.array([t for r in records for t in r["truncated"]], np.float64)
  summary = {
    **(describe or {}),
    "task": sft.task,
    "task_config": sft.get("task_config", ""),
    "reward": task.reward,
    "count": result["count"],
    "num_samples": num_samples,
    "temperature": float(sampling["temperature"] or 0.0),
    "top_p": float(sampling["top_p"] or 1.0),
    "top_k": int(sampling["top_k"] or 0),
    "max_new_tokens": budget,
    "accuracy": result["accuracy"],
    "pass_at_k": result["pass_at_k"],
    "mean_completion_length": float(lengths.mean()) if lengths.size else 0.0,
    "truncated_fraction": float(cut.mean()) if cut.size else 0.0,
    "seconds": seconds,
    "generated_tokens_per_second": result["generated_tokens"] / max(seconds, 1e-9),
  }
  if jax.process_index() == 0:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, RESULTS_FILE), "w", encoding="utf-8") as f:
      for record in records:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
    with open(os.path.join(out_dir, SUMMARY_FILE), "w") as f:
      json.dump(summary, f, indent=2)
  return summary
