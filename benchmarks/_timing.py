"""The benchmarks' shared timer: median wall seconds after a compiling warm-up."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax


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
