"""Metric writers: JSONL (always) and TensorBoard event files (tensorboardX, no TensorFlow).

Scalars go to `metrics.jsonl`; records people read (sample rollouts, evaluation samples) to
`<name>.jsonl` through `write_records`, and both to TensorBoard.

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


# `write_records` names: the trainers' evaluation samples (question, completion, answer,
# reward of the first questions at every evaluation).
EVAL_SAMPLES_FILE = "eval_samples"


def _to_float(value: Any) -> float:
  value = float(np.asarray(value))
  return value if math.isfinite(value) else float("nan")


def _markdown(records: list[Mapping[str, Any]]) -> str:
  """Records as TensorBoard markdown: scalar fields on one line, text fields as code blocks."""
  parts = []
  for record in records:
    texts = {k: v for k, v in record.items() if isinstance(v, str)}
    scalars = ", ".join(f"{k}={v}" for k, v in record.items() if k not in texts)
    blocks = "\n\n".join(f"{k}:\n\n```\n{v}\n```" for k, v in texts.items())
    parts.append(f"**{scalars}**\n\n{blocks}")
  return "\n\n---\n\n".join(parts)


def _keep_through(path: str, step: int) -> int:
  """Rewrites the JSONL file `path` without its lines of steps after `step` (and without a
  line cut short by a kill); returns how many lines were dropped."""
  if not os.path.exists(path):
    return 0
  with open(path, encoding="utf-8", errors="replace") as f:
    lines = f.readlines()
  kept = []
  for line in lines:
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      continue
    if not isinstance(record, dict) or int(record.get("step", 0)) <= step:
      kept.append(line if line.endswith("\n") else line + "\n")
  if len(kept) != len(lines):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      f.writelines(kept)
    os.replace(path + ".tmp", path)
  return len(lines) - len(kept)


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
      self._tb = self._summary_writer()

  def _summary_writer(self, purge_step: int | None = None):
    from tensorboardX import SummaryWriter  # Lazy: only the launcher needs it.

    return SummaryWriter(logdir=os.path.join(self.logdir, "tensorboard"), purge_step=purge_step)

  def resume_at(self, step: int, records: tuple[str, ...] = ()) -> int:
    """Forgets what a killed run logged after the checkpoint it resumes from.

    Steps after `step` were trained again from that checkpoint, so their lines in
    `metrics.jsonl` and in each `<name>.jsonl` of `records` are dropped (with any line
    cut short by the kill), and TensorBoard is told to discard its events from step + 1
    on (`purge_step`). The logs of a resumed run then read as those of a run that never
    stopped. Returns the number of JSONL lines dropped.
    """
    if not self.active:
      return 0
    self._jsonl.close()
    dropped = sum(
      _keep_through(os.path.join(self.logdir, name + ".jsonl"), int(step))
      for name in ("metrics", *records)
    )
    self._jsonl = open(os.path.join(self.logdir, "metrics.jsonl"), "a", buffering=1)
    if self._tb is not None:
      self._tb.close()
      self._tb = self._summary_writer(purge_step=int(step) + 1)
    return dropped

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

  def write_records(self, step: int, name: str, records: list[Mapping[str, Any]]) -> None:
    """Appends `records` (JSON-ready dicts, e.g. sample rollouts) to `<logdir>/<name>.jsonl`,
    one line each with `"step"` first, and shows them as one TensorBoard text entry `name`."""
    if not self.active or not records:
      return
    if not name or os.sep in name or name.endswith(".jsonl"):
      raise ValueError(f"name must be a bare file stem like 'rollouts', got {name!r}")
    path = os.path.join(self.logdir, name + ".jsonl")
    with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
      for record in records:  # UTF-8 text as is: the file is for reading.
        line = {"step": int(step), **record}
        f.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
    if self._tb is not None:
      self._tb.add_text(name, _markdown(records), int(step))

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


def has_metric(logdir: str, step: int, key: str) -> bool:
  """Whether `metrics.jsonl` in `logdir` already has `key` at `step` (e.g. the final
  evaluation of a finished run that is launched again, which should not log it twice)."""
  return any(r.get("step") == step and key in r for r in read_metrics(logdir))


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
