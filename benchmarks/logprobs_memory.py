"""Memory and speed of chunked vs unchunked token log-probs (value and gradient).

Compiles `jax.value_and_grad` of `sum(logp) + sum(entropy)` from
`reasoning_jax.logprobs.chunked_token_logprobs` with respect to the hidden
states and the unembedding kernel, once unchunked and once chunked, and prints
the compiled temporary-buffer size (XLA's `memory_analysis()`) and the median
wall time of each, plus their ratios.

Usage:
  python benchmarks/logprobs_memory.py [--batch 1 --seq-len 2048 --vocab 32000 \
      --hidden 512 --chunk-size 256 --dtype float32 --repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from reasoning_jax.logprobs import chunked_token_logprobs  # noqa: E402


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=1, help="B")
  parser.add_argument("--seq-len", type=int, default=2048, help="T")
  parser.add_argument("--vocab", type=int, default=32000, help="V")
  parser.add_argument("--hidden", type=int, default=512, help="H")
  parser.add_argument("--chunk-size", type=int, default=256, help="positions per chunk")
  parser.add_argument("--dtype", default="float32", help="dtype of hidden and kernel")
  parser.add_argument("--repeats", type=int, default=3, help="timed calls (after one warm-up)")
  args = parser.parse_args(argv)
  for name in ("batch", "seq_len", "vocab", "hidden", "chunk_size", "repeats"):
    if getattr(args, name) <= 0:
      parser.error(f"--{name.replace('_', '-')} must be a positive int")
  return args


def _build(chunk_size: int | None) -> Callable[..., Any]:
  def loss(hidden, kernel, targets):
    logp, entropy = chunked_token_logprobs(hidden, kernel, targets, chunk_size=chunk_size)
    return jnp.sum(logp) + jnp.sum(entropy)

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def _measure(
  chunk_size: int | None, inputs: tuple[jax.Array, ...], repeats: int
) -> tuple[int | None, float]:
  """Compiled temp bytes (None if unavailable) and median seconds per call."""
  compiled = _build(chunk_size).lower(*inputs).compile()
  analysis = compiled.memory_analysis()
  temp_bytes = None if analysis is None else int(analysis.temp_size_in_bytes)
  jax.block_until_ready(compiled(*inputs))  # Warm-up.
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*inputs))
    times.append(time.perf_counter() - start)
  return temp_bytes, statistics.median(times)


def _mib(num_bytes: int | None) -> str:
  return "n/a" if num_bytes is None else f"{num_bytes / 2**20:10.1f} MiB ({num_bytes} B)"


def main(argv: list[str] | None = None) -> None:
  args = _parse_args(argv)
  dtype = jnp.dtype(args.dtype)
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  hidden = jax.random.normal(k1, (args.batch, args.seq_len, args.hidden), dtype)
  kernel = (
    jax.random.normal(k2, (args.hidden, args.vocab), jnp.float32) * args.hidden**-0.5
  ).astype(dtype)
  targets = jax.random.randint(k3, (args.batch, args.seq_len), 0, args.vocab, jnp.int32)
  inputs = (hidden, kernel, targets)

  print(
    f"backend={jax.default_backend()} device={jax.devices()[0].device_kind} jax={jax.__version__}"
  )
  print(
    f"B={args.batch} T={args.seq_len} V={args.vocab} H={args.hidden} dtype={dtype.name} "
    f"chunk={args.chunk_size}; full f32 logits = "
    f"{_mib(args.batch * args.seq_len * args.vocab * 4).strip()}"
  )
  results = {}
  for label, chunk_size in (("unchunked", None), (f"chunked({args.chunk_size})", args.chunk_size)):
    temp_bytes, seconds = _measure(chunk_size, inputs, args.repeats)
    results[label] = (temp_bytes, seconds)
    print(f"{label:>16}: temp {_mib(temp_bytes)}  value_and_grad {seconds * 1e3:9.1f} ms")
  (full_bytes, full_s), (chunk_bytes, chunk_s) = results.values()
  if full_bytes and chunk_bytes:
    print(f"temp memory ratio unchunked/chunked = {full_bytes / chunk_bytes:.2f}x")
  print(f"time ratio chunked/unchunked = {chunk_s / full_s:.2f}x")


if __name__ == "__main__":
  main()
