"""SFT on RFT data vs on TrajFusion data built from the same samples, over seeds.

"Beyond Rejection Sampling: Trajectory Fusion for Scaling Mathematical Reasoning", Deng et
al., arXiv:2602.04391, against rejection-sampling fine-tuning (RFT, Yuan et al.,
arXiv:2308.01825). `run(config)` (`python -m experiments.trajfusion`,
`configs/trajfusion.py`):

1. the teacher: `config.pipeline.teacher.workdir` (an SFT/RL workdir; trained there first from
   `config.pipeline.teacher.train` when it has no checkpoint), loaded once;
2. per seed s: the RFT pipeline (`pipeline.run_pipeline`) samples the task's train problems
   with sampling seed s into `<workdir>/seed<s>/samples` and builds both datasets from those
   samples (same problems; TrajFusion's construction seed s);
3. per seed and arm: the student = the teacher checkpoint continued (`init_workdir`) by the SFT
   trainer on that arm's data with SFT seed s, the same steps, batch and sequence length for
   both arms (`config.student`);
4. every model (teacher included) decodes the same held-out test problems greedily; accuracy
   overall and by difficulty bucket (`difficulty`: the number of operands and the most digits
   of an operand, read from the example's `operands` field or parsed from the question), and
   the mean response length in tokens.

Writes `results.json`, `results.md` (mean ± std over seeds, the paired difference, and a plain
statement of whether TrajFusion beats RFT at this scale), `accuracy.png` and `CITATIONS.bib`;
on several processes (`jax.distributed`) every process runs every step and process 0 writes.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Mapping, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from reasoning_jax import citations, distributed
from reasoning_jax.evaluate.outputs import shown_path, write_results
from reasoning_jax.evaluate.trajfusion.pipeline import (
  PipelineError,
  load_teacher,
  run_pipeline,
  task_config,
)

ARMS = ("rft", "trajfusion")
BUCKETS = ("operands", "digits")
# Student SFT keys taken from `config.student` (equal for both arms).
STUDENT_KEYS = ("num_steps", "batch_size", "seq_len", "learning_rate", "warmup_steps")


def validate(config: ml_collections.ConfigDict) -> None:
  """ValueError naming the key for a bad experiment config (the pipeline checks its own)."""
  if not config.get("workdir"):
    raise ValueError("config.workdir must be set")
  seeds = tuple(config.seeds)
  if len(seeds) < 2 or len(set(seeds)) != len(seeds):
    raise ValueError(f"config.seeds must be >= 2 distinct ints (mean ± std), got {seeds}")
  if (config.pipeline.teacher.get("hf_dir") or "") or not config.pipeline.teacher.get("workdir"):
    raise ValueError(
      "config.pipeline.teacher.workdir must name the teacher's SFT workdir (the students "
      "continue its checkpoint); config.pipeline.teacher.hf_dir is not supported here"
    )
  for key in STUDENT_KEYS:
    if key not in config.student:
      raise ValueError(f"config.student.{key} is missing")
  for key in ("num_examples", "max_new_tokens", "batch_size"):
    if int(config.eval[key]) < 1:
      raise ValueError(f"config.eval.{key} must be >= 1")


def difficulty(example: Mapping[str, Any]) -> dict[str, int]:
  """The difficulty buckets of an arithmetic example: number of operands and the most digits
  of one operand (from `operands`, else the numbers in the question)."""
  operands = example.get("operands")
  if operands is None or len(operands) == 0:
    operands = [int(x) for x in re.findall(r"\d+", str(example.get("question", "")))]
  operands = [int(x) for x in np.asarray(operands).reshape(-1)]
  if not operands:
    return {"operands": 0, "digits": 0}
  return {"operands": len(operands), "digits": max(len(str(abs(x))) for x in operands)}


def bucket_accuracy(rows: Sequence[Mapping[str, Any]], key: str) -> dict[str, float]:
  """Accuracy per value of `key` (a `difficulty` field), keyed by the value as a string."""
  groups: dict[int, list[float]] = {}
  for r in rows:
    groups.setdefault(int(r[key]), []).append(float(r["correct"]))
  return {str(k): float(np.mean(v)) for k, v in sorted(groups.items())}


def score_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  """Accuracy, mean response tokens and the bucket accuracies of per-example rows."""
  out: dict[str, Any] = {
    "accuracy": float(np.mean([r["correct"] for r in rows])) if rows else 0.0,
    "mean_response_tokens": float(np.mean([r["tokens"] for r in rows])) if rows else 0.0,
  }
  for key in BUCKETS:
    out[f"by_{key}"] = bucket_accuracy(rows, key)
  out["bucket_counts"] = {
    key: {k: sum(int(r[key]) == int(k) for r in rows) for k in out[f"by_{key}"]} for key in BUCKETS
  }
  return out


def evaluate_model(model, tokenizer, eos_id, task, test_source, config) -> list[dict[str, Any]]:
  """Greedy decoding of the first `config.eval.num_examples` test problems: one row per
  problem with `correct`, `tokens` (response length) and its `difficulty`."""
  from tqdm import tqdm

  from reasoning_jax.data.collate import batch_rows
  from reasoning_jax.data.examples import decode_example
  from reasoning_jax.data.transforms import TokenizePrompt, resolve_bos
  from reasoning_jax.generate import generate
  from reasoning_jax.rewards import REWARD_FIELDS, score_batch

  n = min(int(config.eval.num_examples), len(test_source))
  size = min(int(config.eval.batch_size), n)
  tokenize = TokenizePrompt(
    tokenizer,
    max_prompt_len=task.max_prompt_len,
    prompt_template=task.prompt,
    add_bos=resolve_bos(tokenizer, task.add_bos),
    truncate=task.truncate,
    fields=None,
  )
  rows = []
  for first in tqdm(range(0, n, size), desc="eval", mininterval=5, leave=False):
    indices = list(range(first, min(first + size, n)))
    tokenized = [tokenize(i, test_source[i]) for i in indices]
    tokenized += [tokenized[-1]] * (size - len(tokenized))  # One compiled shape.
    batch = batch_rows(tokenized)
    out = jax.device_get(
      generate(
        model,
        jax.numpy.asarray(batch["prompts"]),
        jax.numpy.asarray(batch["prompt_lengths"]),
        max_new_tokens=int(config.eval.max_new_tokens),
        temperature=0.0,
        eos_id=eos_id,
      )
    )
    lengths = np.asarray(out.lengths)
    texts = tokenizer.decode_batch(np.asarray(out.tokens), lengths)[: len(indices)]
    examples = [decode_example(test_source[i]) for i in indices]
    fields = {k: [ex[k] for ex in examples] for k in REWARD_FIELDS if k in examples[0]}
    scores = score_batch(task.reward, texts, [str(ex["answer"]) for ex in examples], **fields)
    for ex, score, length in zip(examples, scores, lengths):
      rows.append({"correct": float(score > 0), "tokens": int(length), **difficulty(ex)})
  return rows


def student_config(teacher_sft, teacher_workdir: str, folder: str, seed: int, workdir: str, config):
  """The SFT config of one student: the teacher's, continued on `folder`'s data."""
  c = ml_collections.ConfigDict(teacher_sft.to_dict())
  c.task, c.task_config, c.task_overrides = "rft", "", {}
  c.manual_dir, c.data_dir = folder, os.path.join(folder, "tfds")
  c.init_workdir = teacher_workdir
  c.seed, c.workdir = int(seed), workdir
  for key in STUDENT_KEYS:
    c[key] = config.student[key]
  c.eval_every = c.checkpoint_every = c.log_every = int(config.student.num_steps)
  c.eval_examples = int(config.student.get("eval_examples", 8))
  c.eval_max_new_tokens = int(config.eval.max_new_tokens)
  c.keep_checkpoints, c.plot = 1, False
  c.mesh = dict(config.pipeline.mesh) or {"data": -1, "fsdp": 1, "tensor": 1}
  return c


def _mean_std(values) -> list[float]:
  v = np.asarray(values, np.float64)
  return [float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0]


def summarize(runs: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
  """`{arm: {metric: [mean, std]}, by_<bucket>: {value: [mean, std]}}` over seeds."""
  out: dict[str, Any] = {}
  for arm, per_seed in runs.items():
    s: dict[str, Any] = {m: _mean_std([r[m] for r in per_seed]) for m in ("accuracy",)}
    s["mean_response_tokens"] = _mean_std([r["mean_response_tokens"] for r in per_seed])
    for key in BUCKETS:
      values = sorted({v for r in per_seed for v in r[f"by_{key}"]}, key=int)
      s[f"by_{key}"] = {
        v: _mean_std([r[f"by_{key}"][v] for r in per_seed if v in r[f"by_{key}"]]) for v in values
      }
    out[arm] = s
  return out


def verdict(runs: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
  """The paired (per seed) accuracy difference TrajFusion - RFT and a plain verdict: "beats"
  when its mean exceeds two standard errors, "worse" when below minus two, else "no clear
  difference"."""
  diffs = np.asarray(
    [t["accuracy"] - r["accuracy"] for t, r in zip(runs["trajfusion"], runs["rft"])], np.float64
  )
  mean = float(diffs.mean())
  sem = float(diffs.std(ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else 0.0
  if mean > 2 * sem and mean > 0:
    word = "beats"
  elif mean < -2 * sem and mean < 0:
    word = "worse"
  else:
    word = "no clear difference"
  return {"diffs": diffs.tolist(), "mean": mean, "sem": sem, "verdict": word}


def markdown(config, payload: Mapping[str, Any]) -> str:
  """`results.md` (### headings only)."""
  s, v = payload["summary"], payload["verdict"]
  n = len(payload["seeds"])
  pm = lambda ms, f=".3f": f"{ms[0]:{f}} ± {ms[1]:{f}}"  # noqa: E731
  statement = {
    "beats": "**Yes: TrajFusion beats RFT at this scale**",
    "worse": "**No: TrajFusion is worse than RFT at this scale**",
    "no clear difference": "**No: TrajFusion does not beat RFT at this scale** (no clear "
    "difference)",
  }[v["verdict"]]
  teacher = payload["teacher"]
  source = shown_path(payload["teacher_source"], config.workdir)
  lines = [
    "### RFT vs TrajFusion",
    "",
    f"{statement}: held-out greedy accuracy difference TrajFusion − RFT "
    f"{v['mean'] * 100:+.1f} points (paired over {n} seeds, standard error "
    f"{v['sem'] * 100:.1f}; per seed {', '.join(f'{d * 100:+.1f}' for d in v['diffs'])}).",
    "",
    f"Teacher: {source}; students continue its checkpoint for "
    f"{config.student.num_steps} steps (batch {config.student.batch_size}, seq_len "
    f"{config.student.seq_len}, lr {config.student.learning_rate}) on each arm's data, built from "
    f"the same samples ({config.pipeline.sampling.num_samples} per problem, "
    f"{payload['problems']} problems). Test: the first {payload['num_test']} held-out "
    f"problems of {config.pipeline.task}/{config.pipeline.task_config}, greedy, "
    f"{config.eval.max_new_tokens} new tokens. Seeds {tuple(payload['seeds'])} (sampling, "
    "construction and SFT seed); mean ± std over seeds.",
    "",
    "### Accuracy and response length",
    "",
    "| model | accuracy | mean response tokens |",
    "|---|---|---|",
    f"| teacher | {teacher['accuracy']:.3f} | {teacher['mean_response_tokens']:.1f} |",
  ]
  for arm in ARMS:
    lines.append(
      f"| {arm} | {pm(s[arm]['accuracy'])} | {pm(s[arm]['mean_response_tokens'], '.1f')} |"
    )
  for key in BUCKETS:
    values = sorted({val for arm in ARMS for val in s[arm][f"by_{key}"]}, key=int)
    counts = teacher["bucket_counts"][key]
    lines += [
      "",
      f"### Accuracy by {key}",
      "",
      "| model | " + " | ".join(f"{key}={val} (n={counts.get(val, 0)})" for val in values) + " |",
      "|---|" + "---|" * len(values),
      "| teacher | "
      + " | ".join(f"{teacher[f'by_{key}'].get(val, float('nan')):.3f}" for val in values)
      + " |",
    ]
    for arm in ARMS:
      cells = [
        pm(s[arm][f"by_{key}"][val]) if val in s[arm][f"by_{key}"] else "-" for val in values
      ]
      lines.append(f"| {arm} | " + " | ".join(cells) + " |")
  d = payload["datasets"]
  lines += [
    "",
    "### Training data (mean over seeds)",
    "",
    "| dataset | samples | response tokens | mean tokens per sample |",
    "|---|---|---|---|",
  ]
  for arm in ARMS:
    lines.append(
      f"| {arm} | {d[arm]['samples']:.1f} | {d[arm]['response_tokens']:.0f} | "
      f"{d[arm]['mean_response_tokens']:.1f} |"
    )
  lines += [
    "",
    f"TrajFusion's k histogram (summed over seeds): {d['trajfusion']['k_histogram']}; mean "
    f"teacher error rate per problem {d['mean_error_rate']:.3f}.",
    "",
    f"Measured on {payload['device']} in {payload['seconds']:.0f} s.",
  ]
  return "\n".join(lines) + "\n"


def plot(config, payload: Mapping[str, Any]) -> str:
  """`accuracy.png`: accuracy overall and by operands, teacher and both arms (± std)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  s, teacher = payload["summary"], payload["teacher"]
  values = sorted({v for arm in ARMS for v in s[arm]["by_operands"]}, key=int)
  labels = ["all"] + [f"{v} operands" for v in values]
  x = np.arange(len(labels))
  fig, ax = plt.subplots(figsize=(7, 3.6))
  t = [teacher["accuracy"]] + [teacher["by_operands"].get(v, np.nan) for v in values]
  ax.bar(x - 0.27, t, 0.27, label="teacher", color="0.7")
  for i, arm in enumerate(ARMS):
    means = [s[arm]["accuracy"][0]] + [s[arm]["by_operands"].get(v, [np.nan])[0] for v in values]
    stds = [s[arm]["accuracy"][1]] + [s[arm]["by_operands"].get(v, [0, 0])[1] for v in values]
    ax.bar(x + 0.27 * i, means, 0.27, yerr=stds, capsize=3, label=arm)
  ax.set_xticks(x, labels)
  ax.set_ylabel("held-out greedy accuracy")
  ax.set_ylim(0, 1.05)
  ax.legend()
  ax.set_title(f"RFT vs TrajFusion ({len(payload['seeds'])} seeds, mean ± std)")
  fig.tight_layout()
  path = os.path.join(config.workdir, "accuracy.png")
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def _dataset_means(stats: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  out: dict[str, Any] = {}
  for arm in ARMS:
    out[arm] = {
      m: float(np.mean([s[arm][m] for s in stats]))
      for m in ("samples", "response_tokens", "mean_response_tokens")
    }
    hist: dict[str, int] = {}
    for s in stats:
      for k, c in s[arm]["k_histogram"].items():
        hist[k] = hist.get(k, 0) + c
    out[arm]["k_histogram"] = dict(sorted(hist.items(), key=lambda kv: int(kv[0])))
  out["mean_error_rate"] = float(np.mean([s["problems"]["mean_error_rate"] for s in stats]))
  return out


def write_citations(config, model_config) -> None:
  path = os.path.join(config.workdir, "CITATIONS.bib")
  citations.write_citations(
    citations.run_components(model=model_config, methods=("trajfusion",)), path
  )


def run(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The whole experiment; returns the payload also written to `results.json`."""
  from reasoning_jax.evaluate.trained_model import train_or_load
  from reasoning_jax.train.task import prepare_task

  validate(config)
  start = time.perf_counter()
  workdir = os.path.abspath(config.workdir)
  os.makedirs(workdir, exist_ok=True)
  pipe = ml_collections.ConfigDict(config.pipeline.to_dict())
  pipe.workdir = workdir
  if not pipe.get("data_dir"):
    pipe.data_dir = os.path.join(workdir, "data")
  try:
    teacher = load_teacher(pipe)
    task = prepare_task(task_config(pipe), teacher.source, workdir=workdir, check=False)
  except ValueError as e:
    raise PipelineError(str(e)) from None
  from reasoning_jax.train.sft import load_sft_params

  teacher_sft = load_sft_params(teacher.workdir)[1]
  tok, eos = teacher.source.tokenizer, teacher.source.eos_id
  test = task.test_source
  teacher_rows = evaluate_model(teacher.model, tok, eos, task, test, config)
  teacher_scores = score_rows(teacher_rows)
  logging.info("teacher: accuracy %.3f", teacher_scores["accuracy"])
  runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
  stats = []
  for seed in config.seeds:
    seed_dir = os.path.join(workdir, f"seed{seed}")
    pipe_s = ml_collections.ConfigDict(pipe.to_dict())
    pipe_s.workdir = seed_dir
    pipe_s.sampling.seed = pipe_s.trajfusion.seed = int(seed)
    seed_stats = run_pipeline(pipe_s, teacher=teacher)
    stats.append(seed_stats)
    for arm in ARMS:
      sft = student_config(
        teacher_sft,
        teacher.workdir,
        seed_stats["dirs"][arm],
        seed,
        os.path.join(seed_dir, arm),
        config,
      )
      model, _ = train_or_load(sft, f"student {arm} seed {seed}")
      scores = score_rows(evaluate_model(model, tok, eos, task, test, config))
      runs[arm].append(scores)
      logging.info(
        "seed %d %s: accuracy %.3f, %.1f tokens",
        seed,
        arm,
        scores["accuracy"],
        scores["mean_response_tokens"],
      )
  payload = {
    "config": config.to_dict(),
    "seeds": list(config.seeds),
    "teacher_source": teacher.workdir,
    "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
    "num_test": len(teacher_rows),
    "problems": stats[0]["problems"]["sampled"],
    "teacher": teacher_scores,
    "runs": runs,
    "summary": summarize(runs),
    "verdict": verdict(runs),
    "datasets": _dataset_means(stats),
    "dataset_stats": stats,
  }
  payload["seconds"] = distributed.broadcast_json(time.perf_counter() - start)
  if not distributed.is_coordinator():  # Process 0 writes the report.
    return payload
  write_results(workdir, payload, markdown(config, payload))
  if config.get("plot", True):
    payload["plot"] = plot(config, payload)
  write_citations(config, teacher.model.config)
  logging.info("trajfusion experiment: %.0f s", payload["seconds"])
  return payload
