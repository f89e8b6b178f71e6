"""Metric writers: JSONL (always) and TensorBoard event files (tensorboardX, no TensorFlow).

Only process 0 writes; other processes get a writer that drops everything, so
multi-host code can call `writer.write(step, metrics)` unconditionally.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import jax
import numpy as np


def _to_float(value: Any) -> float:
  value = float(np.asarray(value))
  return value if math.isfinite(value) else float("nan")


class MetricWriter:
  """Appends `{"step": s, **metrics}` lines to `metrics.jsonl` and TensorBoard scalars."""

  def __init__(self, logdir: str, *, tensorboard: bool = True):
    self.logdir = logdir
    self.active = jax.process_index() == 0
    self._tb = None
    self._jsonl = None
    if not self.active:
      return
    os.makedirs(logdir, exist_ok=True)
    self._jsonl = open(os.path.join(logdir, "metrics.jsonl"), "a", buffering=1)
    if tensorboard:
      from tensorboardX import SummaryWriter  # Lazy: only the launcher needs it.

      self._tb = SummaryWriter(logdir=os.path.join(logdir, "tensorboard"))

  def write(self, step: int, metrics: Mapping[str, Any], *, prefix: str = "") -> None:
    """One JSONL line (and TensorBoard scalars) for `metrics`; nothing when it is empty."""
    if not self.active or not metrics:
      return
    values = {prefix + k: _to_float(v) for k, v in metrics.items()}
    self._jsonl.write(json.dumps({"step": int(step), **values}) + "\n")
    if self._tb is not None:
      for key, value in values.items():
        if math.isfinite(value):  # NaN marks "no tokens of that kind" in the JSONL only.
          self._tb.add_scalar(key, value, int(step))

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()
    if self._jsonl is not None:
      self._jsonl.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None
    if self._jsonl is not None:
      self._jsonl.close()
      self._jsonl = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


_GIB = float(1 << 30)


def device_memory(devices=None) -> dict[str, float]:
  """This process's accelerator memory, GiB, for the trainers' `memory/` metrics.

  `peak_gib` and `in_use_gib` are the largest `peak_bytes_in_use` / `bytes_in_use` over
  `devices` (default: the local devices), `limit_gib` the smallest `bytes_limit`: what to
  compare with `experiments.plan`'s estimate. Empty when a device reports no statistics
  (the CPU backend), so nothing is logged there.
  """
  devices = jax.local_devices() if devices is None else devices
  stats = [d.memory_stats() for d in devices]
  if not stats or any(not s for s in stats):
    return {}
  out = {}
  for name, key, pick in (
    ("peak_gib", "peak_bytes_in_use", max),
    ("in_use_gib", "bytes_in_use", max),
    ("limit_gib", "bytes_limit", min),
  ):
    values = [s[key] for s in stats if key in s]
    if values:
      out[name] = pick(values) / _GIB
  return out


def read_metrics(logdir: str) -> list[dict[str, float]]:
  """The JSONL records written to `logdir` (for plots and tests)."""
  path = os.path.join(logdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


class _DropLibraryInfo:
  """logging.Filter dropping INFO-and-below records emitted from chatty libraries."""

  def __init__(self, fragments):
    self.fragments = tuple(fragments)

  def filter(self, record) -> bool:
    import logging as py_logging

    if record.levelno > py_logging.INFO:
      return True
    path = record.pathname.replace("\\", "/")
    return not any(fragment in path for fragment in self.fragments)


def quiet_library_logs(
  fragments=("/orbax/", "/grain/", "/tensorflow_datasets/", "/etils/"),
) -> None:
  """Keeps launcher logs readable: library INFO lines (orbax, grain, tfds) are dropped."""
  import logging as py_logging
  from absl import logging as absl_logging

  log_filter = _DropLibraryInfo(fragments)
  absl_logging.get_absl_handler().addFilter(log_filter)
  for handler in py_logging.getLogger().handlers:
    handler.addFilter(log_filter)


def use_compilation_cache(path: str) -> None:
  """A persistent JAX compilation cache in `path`, unless one is already set (e.g. by
  JAX_COMPILATION_CACHE_DIR). Experiments that train many runs compile the same steps again
  (new closures per run); the cache turns those compilations into lookups."""
  import jax

  if jax.config.jax_compilation_cache_dir:
    return
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
