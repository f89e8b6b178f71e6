"""Runs one helper script as two local JAX processes (jax.distributed + gloo) for the tests."""

import os
import socket
import subprocess
import sys

import pytest


def run_two_processes(script: str, *args: str, timeout: float = 300) -> list[str]:
  """Starts `script PORT PROCESS_ID *args` for process ids 0 and 1; returns both logs.

  Fails the test (with the logs' tail) if either process times out or exits non-zero.
  """
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  # Each helper appends its own device count to the run's compile-speed XLA flags; the test
  # run's compilation cache stays out of the two-process runs (tests/conftest.py).
  env = {
    k: v
    for k, v in os.environ.items()
    if k not in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")
  }
  env["XLA_FLAGS"] = " ".join(
    f for f in env.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f
  )
  procs = [
    subprocess.Popen(
      [sys.executable, script, str(port), str(pid), *map(str, args)],
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for pid in range(2)
  ]
  logs = []
  for p in procs:
    try:
      logs.append(p.communicate(timeout=timeout)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail(f"two-process run of {os.path.basename(script)} timed out")
  assert all(p.returncode == 0 for p in procs), "\n".join(logs)[-4000:]
  return logs
