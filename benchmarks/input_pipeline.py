"""Throughput of the grain SFT pipeline: in-process vs worker processes.

Builds a synthetic `arithmetic` dataset (ArrayRecord, a few thousand examples)
with `reasoning_jax.data.build_dataset`, then runs
`reasoning_jax.data.make_sft_dataset` over it with the byte tokenizer, once with
`worker_count=0` and once with `worker_count=--workers`, and prints examples/s
and non-padding tokens/s of each plus their ratio. Warm-up batches (which
include starting the worker processes) are not timed.

Usage:
  python benchmarks/input_pipeline.py [--num-examples 4000 --config medium \
      --seq-len 1024 --batch-size 32 --batches 400 --warmup 5 --workers 2 --pack]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from reasoning_jax.data import build_dataset, make_sft_dataset  # noqa: E402
from reasoning_jax.tokenizers import ByteTokenizer  # noqa: E402


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--data-dir", default=None, help="TFDS data dir (default: a temporary dir, removed afterwards)"
  )
  parser.add_argument("--num-examples", type=int, default=4000, help="train examples")
  parser.add_argument("--config", default="medium", help="arithmetic config: easy/medium/hard")
  parser.add_argument("--seq-len", type=int, default=1024, help="L (byte tokens)")
  parser.add_argument("--batch-size", type=int, default=32, help="B")
  parser.add_argument("--batches", type=int, default=400, help="timed batches per run")
  parser.add_argument("--warmup", type=int, default=5, help="untimed batches per run")
  parser.add_argument("--workers", type=int, default=2, help="worker processes of the 2nd run")
  parser.add_argument("--pack", action="store_true", help="pack sequences (first-fit)")
  parser.add_argument("--seed", type=int, default=0, help="dataset and shuffle seed")
  args = parser.parse_args(argv)
  for name in ("num_examples", "seq_len", "batch_size", "batches", "workers"):
    if getattr(args, name) <= 0:
      parser.error(f"--{name.replace('_', '-')} must be a positive int")
  if args.warmup < 0:
    parser.error("--warmup must be >= 0")
  return args


def _measure(source: Any, args: argparse.Namespace, worker_count: int) -> dict[str, float]:
  ds = make_sft_dataset(
    source,
    ByteTokenizer(),
    seq_len=args.seq_len,
    batch_size=args.batch_size,
    seed=args.seed,
    pack=args.pack,
    shard_index=0,
    shard_count=1,
    worker_count=worker_count,
  )
  start = time.perf_counter()
  it = iter(ds)
  try:
    for _ in range(args.warmup):
      next(it)
    warm = time.perf_counter() - start
    examples = tokens = 0
    t0 = time.perf_counter()
    for _ in range(args.batches):
      batch = next(it)
      examples += int(batch["segment_ids"].max(axis=1).sum())
      tokens += int((batch["segment_ids"] > 0).sum())
    elapsed = time.perf_counter() - t0
  finally:
    it.close()
  return {
    "warmup_s": warm,
    "seconds": elapsed,
    "examples": examples,
    "examples_per_s": examples / elapsed,
    "tokens_per_s": tokens / elapsed,
  }


def main(argv: list[str] | None = None) -> None:
  args = _parse_args(argv)
  data_dir = args.data_dir or tempfile.mkdtemp(prefix="input_pipeline_bench_")
  try:
    t0 = time.perf_counter()
    builder = build_dataset(
      "arithmetic",
      data_dir,
      config=args.config,
      seed=args.seed,
      num_train=args.num_examples,
      num_test=100,
    )
    source = builder.as_data_source("train")
    build_s = time.perf_counter() - t0
    print(
      f"\narithmetic/{builder.builder_config.name}: {len(source)} train examples "
      f"(build {build_s:.1f}s); L={args.seq_len} B={args.batch_size} pack={args.pack} "
      f"batches={args.batches} (+{args.warmup} warm-up); cpus={os.cpu_count()}"
    )
    results = {}
    for workers in (0, args.workers):
      r = _measure(source, args, workers)
      results[workers] = r
      print(
        f"worker_count={workers}: {r['examples_per_s']:9.1f} examples/s "
        f"{r['tokens_per_s']:11.0f} tokens/s  ({r['examples']} examples in "
        f"{r['seconds']:.2f}s; warm-up {r['warmup_s']:.2f}s)"
      )
    ratio = results[args.workers]["examples_per_s"] / results[0]["examples_per_s"]
    print(f"ratio worker_count={args.workers} / worker_count=0: {ratio:.2f}x examples/s")
  finally:
    if args.data_dir is None:
      shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
  main()
