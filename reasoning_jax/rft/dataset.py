"""RFT and TrajFusion SFT datasets from one set of samples, with their statistics.

`build_sft_datasets(samples_dir, out_dir, ...)` reads the sampler's `samples.jsonl`
(`rft.sampling`) and writes, from the *same* samples and problems:

  <out_dir>/rft/         the RFT baseline (correct trajectories only)
  <out_dir>/trajfusion/  TrajFusion (wrong -> reflect -> right fused trajectories)
  <out_dir>/stats.json   per dataset: samples, problems, k histogram, response tokens
  <out_dir>/stats.md     the same as a table

Each dataset folder holds `train.jsonl`, `test.jsonl` (the task's held-out split, unchanged),
`provenance.json` (teacher, sampling settings, construction, a digest of the files) and the
ArrayRecord files under `tfds/` (the `rft` TFDS builder), which the SFT trainer reads through
grain with `config.task="rft"`, `config.manual_dir=<folder>`, `config.data_dir=<folder>/tfds`.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
from typing import Any, Callable, Mapping, Sequence

import jax
from absl import logging

from reasoning_jax import distributed
from reasoning_jax.data.builders import build_dataset
from reasoning_jax.data.examples import decode_example
from reasoning_jax.data.rft_builder import PROVENANCE_FILE
from reasoning_jax.rft.sampling import PROVENANCE_FILE as SAMPLING_FILE
from reasoning_jax.rft.sampling import read_samples
from reasoning_jax.rft.trajfusion import (
  FusedSample,
  TrajFusionConfig,
  check_reflection,
  error_stats,
  rft_samples,
  trajfusion_samples,
)

__all__ = ["EmptyDatasetError", "build_sft_datasets", "dataset_stats", "write_sft_dataset"]

METHODS = ("rft", "trajfusion")


class EmptyDatasetError(ValueError):
  """No problem has a correct trajectory: nothing to fine-tune on."""


def _record(sample: FusedSample) -> dict[str, Any]:
  rec = sample.record()
  out = {k: rec[k] for k in ("question", "answer", "solution", "problem_index", "sample_index")}
  out["num_wrong"] = rec["num_wrong"]
  for key in ("numbers", "target"):  # The countdown verifiers' fields.
    if key in rec:
      out[key] = rec[key]
  return out


def _test_record(example: Mapping[str, Any], index: int) -> dict[str, Any]:
  ex = decode_example(example)
  out = {
    "question": ex["question"],
    "answer": str(ex["answer"]),
    "solution": str(ex.get("solution", "")),
    "problem_index": index,
  }
  for key in ("numbers", "target"):
    if key in ex:
      out[key] = ex[key]
  return out


def write_sft_dataset(
  out_dir: str,
  train: Sequence[Mapping[str, Any]],
  test: Sequence[Mapping[str, Any]],
  provenance: Mapping[str, Any],
) -> str:
  """Writes `train.jsonl`, `test.jsonl` and `provenance.json` (with a digest of both files)
  into `out_dir` and prepares the `rft` TFDS dataset under `out_dir/tfds`; returns `out_dir`.

  On several processes every process calls it (it holds a barrier): process 0 writes the
  files while the others wait, then each prepares (or reads) the TFDS copy."""
  if jax.process_index() == 0:
    os.makedirs(out_dir, exist_ok=True)
    digest = hashlib.sha256()
    for split, records in (("train", train), ("test", test)):
      text = "".join(json.dumps(dict(r), sort_keys=True) + "\n" for r in records)
      digest.update(text.encode())
      with open(os.path.join(out_dir, f"{split}.jsonl"), "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, PROVENANCE_FILE), "w") as f:
      json.dump({**dict(provenance), "digest": digest.hexdigest()}, f, indent=2, sort_keys=True)
  distributed.barrier(f"write_sft_dataset {os.path.abspath(out_dir)}")
  build_dataset("rft", os.path.join(out_dir, "tfds"), manual_dir=out_dir)
  return out_dir


def dataset_stats(
  samples: Sequence[FusedSample], length_fn: Callable[[str], int]
) -> dict[str, Any]:
  """Counts of one dataset: samples, problems, the k histogram, response tokens."""
  tokens = [length_fn(s.response) for s in samples]
  hist = collections.Counter(s.num_wrong for s in samples)
  return {
    "samples": len(samples),
    "problems": len({s.problem_index for s in samples}),
    "k_histogram": {str(k): hist[k] for k in sorted(hist)},
    "wrong_segments_dropped": sum(s.num_wrong_dropped for s in samples),
    "response_tokens": sum(tokens),
    "mean_response_tokens": sum(tokens) / len(tokens) if tokens else 0.0,
    "max_response_tokens": max(tokens) if tokens else 0,
  }


def _markdown(stats: Mapping[str, Any]) -> str:
  lines = [
    "| dataset | samples | problems | response tokens | mean tokens | k histogram |",
    "|---|---|---|---|---|---|",
  ]
  for name in METHODS:
    s = stats[name]
    hist = ", ".join(f"k={k}: {n}" for k, n in s["k_histogram"].items())
    lines.append(
      f"| {name} | {s['samples']} | {s['problems']} | {s['response_tokens']} | "
      f"{s['mean_response_tokens']:.1f} | {hist} |"
    )
  p = stats["problems"]
  lines += [
    "",
    f"Problems sampled: {p['sampled']}; with a correct trajectory: {p['with_correct']}; "
    f"dropped (no correct trajectory): {p['no_correct']}; mean error rate "
    f"{p['mean_error_rate']:.3f}; mean error diversity H {p['mean_diversity']:.3f}; "
    f"trajectories without an extractable answer: {p['no_answer_trajectories']}.",
  ]
  return "\n".join(lines) + "\n"


def build_sft_datasets(
  samples_dir: str,
  out_dir: str,
  *,
  tokenizer: Any,
  test_source: Any,
  config: TrajFusionConfig | None = None,
  num_test: int | None = None,
) -> dict[str, Any]:
  """RFT and TrajFusion datasets from the samples in `samples_dir` (see the module doc).

  Args:
    samples_dir: the sampler's folder (`samples.jsonl`, `sampling.json`).
    out_dir: receives `rft/`, `trajfusion/`, `stats.json`, `stats.md`.
    tokenizer: the SFT tokenizer: response lengths for the context limit and statistics, and
      the reflection text's check (no special tokens, a clean round trip).
    test_source: the task's held-out split, written unchanged as each dataset's `test`.
    config: TrajFusion's construction (None: the defaults).
    num_test: write only the first this many test examples (None: all).

  Returns:
    The statistics (also in `stats.json`), with each dataset's folder under `dirs`.

  Raises:
    EmptyDatasetError: no problem has a correct trajectory (the message gives the sampled
      problems and how many completions had no extractable answer).
    ValueError: a reflection text with special tokens (naming `reflection`).
  """
  config = TrajFusionConfig() if config is None else config
  check_reflection(tokenizer, config.reflection, "TrajFusionConfig.reflection")
  problems = read_samples(samples_dir)
  length_fn = lambda text: len(tokenizer.encode(text))  # noqa: E731
  per_method = {
    "rft": rft_samples(problems, config),
    "trajfusion": trajfusion_samples(problems, config, length_fn=length_fn),
  }
  no_answer = sum(t.answer is None for p in problems for t in p.trajectories)
  if not per_method["rft"]:
    total = sum(len(p.trajectories) for p in problems)
    raise EmptyDatasetError(
      f"no problem in {samples_dir} has a correct trajectory ({len(problems)} problems, "
      f"{total} completions, {no_answer} without an answer the verifier can extract): a "
      "teacher that never answers in the verifier's format, or a task too hard for it"
    )
  with open(os.path.join(samples_dir, SAMPLING_FILE)) as f:
    sampling = json.load(f)
  n = len(test_source) if num_test is None else min(num_test, len(test_source))
  test = [_test_record(test_source[i], i) for i in range(n)]
  all_stats = [error_stats(p) for p in problems]
  stats: dict[str, Any] = {
    "problems": {
      "sampled": len(problems),
      "with_correct": sum(s.num_correct > 0 for s in all_stats),
      "no_correct": sum(s.num_correct == 0 for s in all_stats),
      "mean_error_rate": sum(s.error_rate for s in all_stats) / max(len(all_stats), 1),
      "mean_diversity": sum(s.diversity for s in all_stats) / max(len(all_stats), 1),
      "no_answer_trajectories": no_answer,
    },
    "dirs": {},
  }
  for name, samples in per_method.items():
    provenance = {
      "method": name,
      "sampling": sampling,
      "samples_dir": os.path.abspath(samples_dir),
      "construction": dataclasses.asdict(config)
      if name == "trajfusion"
      else {k: getattr(config, k) for k in ("dedup_correct", "max_per_problem")},
    }
    folder = write_sft_dataset(
      os.path.join(out_dir, name), [_record(s) for s in samples], test, provenance
    )
    stats[name] = dataset_stats(samples, length_fn)
    stats["dirs"][name] = folder
  if per_method["rft"] and per_method["trajfusion"]:
    stats["token_ratio_trajfusion_over_rft"] = stats["trajfusion"]["response_tokens"] / max(
      stats["rft"]["response_tokens"], 1
    )
  if jax.process_index() == 0:
    with open(os.path.join(out_dir, "stats.json"), "w") as f:
      json.dump(stats, f, indent=2, sort_keys=True)
    with open(os.path.join(out_dir, "stats.md"), "w") as f:
      f.write(_markdown(stats))
  logging.info(
    "rft datasets: %d RFT / %d TrajFusion samples over %d problems (k histogram %s)",
    stats["rft"]["samples"],
    stats["trajfusion"]["samples"],
    stats["rft"]["problems"],
    stats["trajfusion"]["k_histogram"],
  )
  return stats
