"""Multi-host initialisation: a no-op on one process, `jax.distributed` on many.

Call `initialize()` first thing in every main (before any other JAX call). It

* does nothing when the job is a single process (no coordinator configured and
  no cluster environment detected);
* otherwise calls `jax.distributed.initialize` with the coordinator address,
  process count and process id taken from arguments or the environment
  variables `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`
  (optionally `JAX_LOCAL_DEVICE_IDS`), or, with `auto=True`, lets JAX detect the
  cluster (TPU pods, SLURM, ...);
* on CPU selects gloo collectives so multi-process CPU runs (and tests) work.

Data is then read per host (`jax.process_index()` / `jax.process_count()` shard
the input pipeline) and assembled with `jax.make_array_from_process_local_data`
(`reasoning_jax.sharding.shard_batch`).

CPU caveat (gloo, jax 0.10): a program that all-gathers across processes, dispatched many
times without waiting for its results, can deadlock (one jitted all-gather dispatched 500 times
back to back hung in 3 of 3 two-process runs on jax 0.10.2 and in none on 0.12.1; with at most
two in flight, none hung). So the trainers keep at most two steps in flight, the LoRA merge is
one program that is waited on, and a loop of eager ops over arrays split across processes
should wait now and then (`jax.block_until_ready`) too.
"""

from __future__ import annotations

import os
from typing import Any

import jax
from absl import logging

_INITIALIZED = False


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  if value in (None, ""):
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"environment variable {name}={value!r} must be an int") from None


def initialize(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
  *,
  local_device_ids: list[int] | None = None,
  auto: bool = False,
  cpu_collectives: str = "gloo",
) -> bool:
  """Initialises multi-process JAX when configured; returns True if it did.

  Args:
    coordinator_address: "host:port" of process 0 (env `JAX_COORDINATOR_ADDRESS`).
    num_processes: total processes (env `JAX_NUM_PROCESSES`).
    process_id: this process's index (env `JAX_PROCESS_ID`).
    local_device_ids: devices this process uses (env `JAX_LOCAL_DEVICE_IDS`, comma list).
    auto: call `jax.distributed.initialize()` with no arguments (cluster
      auto-detection on TPU pods / SLURM / Kubernetes).
    cpu_collectives: CPU cross-process collectives implementation ("gloo").
  """
  global _INITIALIZED
  if _INITIALIZED:
    return True
  coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
  num_processes = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
  process_id = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
  if local_device_ids is None and os.environ.get("JAX_LOCAL_DEVICE_IDS"):
    local_device_ids = [int(x) for x in os.environ["JAX_LOCAL_DEVICE_IDS"].split(",")]
  explicit = coordinator_address is not None or num_processes not in (None, 1)
  if not explicit and not auto:
    return False  # Single process: nothing to do.
  if explicit:
    missing = [
      name
      for name, value in (
        ("coordinator_address", coordinator_address),
        ("num_processes", num_processes),
        ("process_id", process_id),
      )
      if value is None
    ]
    if missing:
      raise ValueError(f"multi-process initialisation needs {missing} (arguments or JAX_* env)")
    if not 0 <= process_id < num_processes:
      raise ValueError(f"process_id={process_id} must be in [0, num_processes={num_processes})")
  if cpu_collectives and (os.environ.get("JAX_PLATFORMS", "") in ("", "cpu")):
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
  if explicit:
    jax.distributed.initialize(
      coordinator_address=coordinator_address,
      num_processes=num_processes,
      process_id=process_id,
      local_device_ids=local_device_ids,
    )
  else:
    jax.distributed.initialize()
  _INITIALIZED = True
  logging.info(
    "jax.distributed: process %d of %d, %d local / %d global devices",
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )
  return True


def is_coordinator() -> bool:
  """True on process 0 (the one that writes logs, plots and metrics files)."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier `name` (a no-op on one process); e.g. the
  others wait here while process 0 writes files they read next."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def _plain(x: Any) -> Any:
  """NumPy / JAX scalars and arrays as Python numbers and lists, for `json.dumps`."""
  if hasattr(x, "tolist"):
    return x.tolist()
  raise TypeError(f"broadcast_json cannot encode {type(x).__name__}: {x!r}")


def broadcast_json(value: Any) -> Any:
  """Process 0's `value` (anything `json.dumps` takes, NumPy / JAX scalars and arrays as
  numbers and lists) on every process; the value itself on one process. Every process must call it (two collectives: the encoded length, then the
  bytes); the values the other processes pass are ignored."""
  if jax.process_count() == 1:
    return value
  import json

  import numpy as np
  from jax.experimental import multihost_utils

  data = json.dumps(value, default=_plain).encode() if jax.process_index() == 0 else b""
  size = int(multihost_utils.broadcast_one_to_all(np.asarray([len(data)], np.int64))[0])
  buffer = np.frombuffer(data.ljust(size), np.uint8) if size else np.zeros(0, np.uint8)
  out = np.asarray(multihost_utils.broadcast_one_to_all(buffer))
  return json.loads(bytes(out).decode())
