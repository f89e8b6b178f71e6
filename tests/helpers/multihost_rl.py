"""One process of the two-process RL test (run by tests/rl/test_trainer.py).

Usage: python multihost_rl.py PORT PROCESS_ID TMP_DIR LOSS
Each process owns 2 CPU devices, samples its own prompts with a local copy of the policy and
contributes its rows to the global sharded update; the SFT warm start already exists in
TMP_DIR (trained by the test).
"""

import json
import os
import pathlib
import sys

# The test run's compile-speed flags (tests/conftest.py) come through; the device count is ours.
os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
)
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402

from reasoning_jax import distributed  # noqa: E402

port, pid, tmp, loss = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
assert jax.process_count() == 2 and jax.device_count() == 4

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from reasoning_jax.rl.trainer import run_rl  # noqa: E402
from tests.rl.test_trainer import rl_config  # noqa: E402

config = rl_config(
  pathlib.Path(tmp),
  loss=loss,
  num_steps=2,
  eval_every=100,
  plot=False,
  eval_samples=0,
  mesh={"data": -1, "fsdp": 1, "tensor": 1},
)
result = run_rl(config)
print(
  "RESULT",
  json.dumps({"pid": pid, "step": result["step"], "accuracy": float(result["accuracy"])}),
  flush=True,
)

# A JSON item (e.g. a data iterator's position) that differs between processes is refused
# at save time, on every process, instead of being written from process 0 alone.
from reasoning_jax.checkpoint import TrainCheckpointer  # noqa: E402

with TrainCheckpointer(os.path.join(tmp, "mismatch"), async_save=False) as ckpt:
  try:
    ckpt.save(1, {"data_state": {"next_index": 3 + pid}}, wait=True)
  except ValueError as e:
    assert "differs between processes" in str(e), e
    print("MISMATCH_REFUSED", flush=True)
