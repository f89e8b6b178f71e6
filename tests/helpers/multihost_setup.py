"""The preamble every two-process helper script shares (run by tests/helpers/two_processes.py).

`start()` gives this process 2 CPU devices (the test run's compile-speed XLA flags come
through; the device count is ours), puts this checkout and tests/helpers first on `sys.path`
(not whichever copy the environment installed), joins `jax.distributed` as process `argv[2]`
of 2 with the coordinator on port `argv[1]`, checks the 4 global devices, and returns (process
id, the script's remaining arguments). Call it before anything imports JAX.
"""

import os
import sys

HELPERS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HELPERS))


def start(devices_per_process: int = 2) -> tuple[int, list[str]]:
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + f" --xla_force_host_platform_device_count={devices_per_process}"
  )
  os.environ["JAX_PLATFORMS"] = "cpu"
  sys.path[:0] = [REPO, HELPERS]

  import jax

  from reasoning_jax import distributed

  port, pid = int(sys.argv[1]), int(sys.argv[2])
  distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
  assert jax.process_count() == 2 and jax.device_count() == 2 * devices_per_process, (
    jax.process_count(),
    jax.device_count(),
  )
  return pid, sys.argv[3:]
