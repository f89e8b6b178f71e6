"""The benchmarks' shared timers: median wall seconds after a compiling warm-up, per call or per
step of a jitted loop."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def median_seconds(fn: Callable[..., Any], *args: Any, repeats: int) -> float:
  """Median wall seconds of `fn(*args)` over `repeats` runs, after one untimed warm-up run
  (compilation); each run waits for its outputs (`jax.block_until_ready`)."""
  if repeats < 1:
    raise ValueError(f"repeats must be >= 1, got {repeats}")
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def looped_seconds(fn, q, *rest, steps: int, repeats: int, cache: bool = True) -> float:
  """Median seconds of one `fn(q, *rest)` call when `steps` calls run inside one jitted
  `fori_loop`, without a host dispatch per call. Each call's query depends on the previous
  output and, with `cache` (`rest` starts with the cache `k, v [B, S, K, D]`), each step
  first writes a new key and value into the last slot as a decode step does, so no read of
  the cache is hoisted out of the loop either."""

  def first(out):
    return out[0] if isinstance(out, tuple) else out

  @jax.jit
  def loop(q, *rest):
    def body(_, carry):
      q, rest = carry
      if cache:
        k, v, *others = rest
        row = q[:, None, :, 0, :].astype(k.dtype)  # [B, 1, K, D]
        slot = k.shape[1] - 1
        k = jax.lax.dynamic_update_slice_in_dim(k, row, slot, axis=1)
        v = jax.lax.dynamic_update_slice_in_dim(v, row, slot, axis=1)
        rest = (k, v, *others)
      out = first(fn(q, *rest))
      return q + (1e-9 * jnp.mean(out)).astype(q.dtype), rest

    return jax.lax.fori_loop(0, steps, body, (q, rest))[0]

  return median_seconds(loop, q, *rest, repeats=repeats) / steps
