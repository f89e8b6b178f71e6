"""Runs one helper script as two local JAX processes (jax.distributed + gloo) for the tests."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

_TAIL = 6000  # Characters of each process's log shown when a run fails.
_HELPERS = os.path.dirname(os.path.abspath(__file__))


def _tails(logs: list[str]) -> str:
  return "\n".join(
    f"--- process {i} (last {_TAIL} chars) ---\n{log[-_TAIL:]}" for i, log in enumerate(logs)
  )


def run_two_processes(script: str, *args: str, timeout: float = 300) -> list[str]:
  """Starts `script PORT PROCESS_ID *args` for process ids 0 and 1; returns both logs.

  Fails the test with both logs' tails as soon as either process exits non-zero (the other one
  would otherwise wait in its next collective until the timeout), or when `timeout` seconds
  pass; then each process first dumps every thread's Python stack (faulthandler on SIGABRT),
  so a hang shows where each process was waiting.
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
  env["PYTHONFAULTHANDLER"] = "1"
  # Logs go to files, not pipes: a process that prints more than a pipe holds never blocks.
  with tempfile.TemporaryDirectory(prefix="two_processes_") as tmp:
    paths = [os.path.join(tmp, f"process{pid}.log") for pid in range(2)]
    procs = []
    for pid, path in enumerate(paths):
      with open(path, "w") as log:
        procs.append(
          subprocess.Popen(
            [sys.executable, script, str(port), str(pid), *map(str, args)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
          )
        )

    def logs() -> list[str]:
      out = []
      for path in paths:
        with open(path, errors="replace") as f:
          out.append(f.read())
      return out

    def stop(sig: int) -> None:
      for p in procs:
        if p.poll() is None:
          p.send_signal(sig)
      for p in procs:
        try:
          p.wait(timeout=20)
        except subprocess.TimeoutExpired:
          p.kill()
          p.wait()

    deadline = time.monotonic() + timeout
    while True:
      codes = [p.poll() for p in procs]
      failed = [i for i, c in enumerate(codes) if c not in (None, 0)]
      if failed:
        stop(signal.SIGABRT)  # The survivor shows where it was waiting.
        pytest.fail(
          f"two-process run of {os.path.basename(script)}: process {failed[0]} exited with "
          f"{codes[failed[0]]}\n{_tails(logs())}"
        )
      if all(c == 0 for c in codes):
        return logs()
      if time.monotonic() > deadline:
        stop(signal.SIGABRT)
        pytest.fail(
          f"two-process run of {os.path.basename(script)} timed out after {timeout:.0f} s "
          f"(stacks at the end of each log)\n{_tails(logs())}"
        )
      time.sleep(0.2)


def results(logs: list[str]) -> list[dict]:
  """The JSON objects the helper processes printed on `RESULT <json>` lines, in log order."""
  return [
    json.loads(line.split("RESULT ", 1)[1])
    for log in logs
    for line in log.splitlines()
    if line.startswith("RESULT ")
  ]


def run_helper(name: str, *args, timeout: float = 300) -> list[dict]:
  """`run_two_processes` of `tests/helpers/<name>` with `args`; the `RESULT` objects of process
  0 and process 1, in that order (the test fails with both logs' tails when one is missing)."""
  logs = run_two_processes(os.path.join(_HELPERS, name), *map(str, args), timeout=timeout)
  out = sorted(results(logs), key=lambda r: r["pid"])
  if [r["pid"] for r in out] != [0, 1]:
    pytest.fail(f"{name}: expected one RESULT line from each process\n{_tails(logs)}")
  return out
