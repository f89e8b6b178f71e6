"""One process of the two-process speculative-rollout RL test (tests/rl/test_trainer_hf.py).

Usage: python multihost_rl_draft.py PORT PROCESS_ID TMP_DIR HF_DIR
RL from the tiny HF folder HF_DIR with the same folder as `config.draft`: each process builds
the draft on its own devices (the per-host rollout mesh) and samples its prompts by
speculative decoding, rows split over its 2 devices; the update is one global sharded step.
The task's data was built in TMP_DIR by the test.
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

port, pid, tmp, hf_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
assert jax.process_count() == 2 and jax.device_count() == 4

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from reasoning_jax.rl.trainer import run_rl  # noqa: E402
from tests.helpers.hf_configs import rl_hf_config  # noqa: E402

config = rl_hf_config(hf_dir, pathlib.Path(tmp), num_steps=2)
config.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
config.draft = {"hf_dir": hf_dir, "num_draft": 2}
result = run_rl(config)
print(
  "RESULT",
  json.dumps({"pid": pid, "step": result["step"], "accuracy": float(result["accuracy"])}),
  flush=True,
)
