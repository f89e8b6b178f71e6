"""One process of the two-process SFT-step test (run by tests/train/test_multihost.py).

Usage: python multihost_sft_step.py PORT PROCESS_ID OUT_FILE
Each process owns 2 CPU devices and half of the global batch (host-local rows).
"""

import os
import sys

# The test run's compile-speed flags (tests/conftest.py) come through; the device count is ours.
os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
)
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import numpy as np  # noqa: E402

from reasoning_jax import distributed  # noqa: E402

port, pid, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
assert jax.process_count() == 2 and jax.device_count() == 4, (
  jax.process_count(),
  jax.device_count(),
)

from jax.experimental import multihost_utils  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sft_problem  # noqa: E402

from reasoning_jax import sharding  # noqa: E402
from reasoning_jax.models.partition_rules import rules_for  # noqa: E402
from reasoning_jax.train import make_train_step, state_shardings  # noqa: E402

graphdef, state, tx, batch = sft_problem.build()
mesh = sharding.make_mesh({"data": 1, "fsdp": 2, "tensor": 2})
shards = state_shardings(state, tx, rules_for("qwen3"), mesh)
state = jax.device_put(state, shards)
rows = batch["tokens"].shape[0] // 2
local = {k: v[pid * rows : (pid + 1) * rows] for k, v in batch.items()}
global_batch = sharding.shard_batch(local, mesh)
step = make_train_step(graphdef, tx, sft_problem.loss_fn, mesh=mesh, shardings=shards, donate=False)
new_state, metrics = step(state, global_batch)
params = multihost_utils.process_allgather(new_state.params, tiled=True)
leaves = {
  sharding.path_to_name(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(params)
}
if pid == 0:
  np.savez(out, loss=np.asarray(metrics["loss"]), **leaves)
print("ok", pid, float(metrics["loss"]), flush=True)
