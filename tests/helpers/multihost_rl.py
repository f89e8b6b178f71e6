"""One process of the two-process RL test (run by tests/rl/test_trainer.py).

Usage: python multihost_rl.py PORT PROCESS_ID TMP_DIR LOSS
Each process owns 2 CPU devices, samples its own prompts with a local copy of the policy and
contributes its rows to the global sharded update; the SFT warm start already exists in
TMP_DIR (trained by the test). The run is repeated preempted at step 1 and resumed.
"""

import json
import os
import pathlib

import multihost_setup  # this folder is sys.path[0]

pid, (tmp, loss) = multihost_setup.start()

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

# The same run preempted at step 1 on both hosts (JAX's preemption sync point: it saves step 1
# and stops), then resumed: the per-step metrics and final accuracy equal the straight run's.
from reasoning_jax.checkpoint import TrainCheckpointer  # noqa: E402
from reasoning_jax.train.metrics import read_metrics  # noqa: E402

resumed_config = config.copy_and_resolve_references()
resumed_config.workdir = os.path.join(tmp, "rl_resumed")
reached = TrainCheckpointer.reached_preemption
TrainCheckpointer.reached_preemption = lambda self, step: step == 1
first = run_rl(resumed_config)
TrainCheckpointer.reached_preemption = reached
resumed = run_rl(resumed_config)


def per_step(workdir):
  keys = ("train/loss", "rollout/reward")
  return {f"{r['step']}:{k}": r[k] for r in read_metrics(str(workdir)) for k in keys if k in r}


print(
  "RESULT",
  json.dumps(
    {
      "pid": pid,
      "step": result["step"],
      "accuracy": float(result["accuracy"]),
      "first": [first["step"], bool(first.get("preempted"))],
      "resumed_accuracy": float(resumed["accuracy"]),
      "straight_metrics": per_step(config.workdir),
      "resumed_metrics": per_step(resumed_config.workdir),
    }
  ),
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
