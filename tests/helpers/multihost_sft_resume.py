"""One process of the two-process SFT resume test (tests/train/test_multihost_resume.py).

Usage: python multihost_sft_resume.py PORT PROCESS_ID TMP_DIR
Each process owns 2 CPU devices; the params are sharded over fsdp across both processes.
A 4-step `run_sft` is preempted at step 2 (both hosts at the preemption sync point: it saves
step 2 and stops), then resumed with the same config on the same two processes; a straight
4-step run in another workdir is the reference. Per-step losses and the largest parameter
difference are printed for the test to compare.
"""

import json
import pathlib

import multihost_setup  # this folder is sys.path[0]

pid, (tmp,) = multihost_setup.start()
tmp = pathlib.Path(tmp)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from reasoning_jax.checkpoint import TrainCheckpointer  # noqa: E402
from reasoning_jax.train.metrics import read_metrics  # noqa: E402
from reasoning_jax.train.sft import load_sft_params, run_sft  # noqa: E402
from tests.train.test_sft import tiny_config  # noqa: E402

mesh = {"data": 1, "fsdp": -1}
kw = dict(eval_every=1000, checkpoint_every=2, mesh=mesh)
# Both hosts reach JAX's preemption sync point at step 2 (what a SIGTERM to the job gives):
# the run saves step 2 and stops; the same config then resumes it.
reached = TrainCheckpointer.reached_preemption
TrainCheckpointer.reached_preemption = lambda self, step: step == 2
first = run_sft(tiny_config(tmp / "resumed", tmp / "data", num_steps=4, **kw))
TrainCheckpointer.reached_preemption = reached
resumed = run_sft(tiny_config(tmp / "resumed", tmp / "data", num_steps=4, **kw))
straight = run_sft(tiny_config(tmp / "straight", tmp / "data", num_steps=4, **kw))


def leaves(workdir):
  model, _ = load_sft_params(str(workdir))
  return [np.asarray(x, np.float64) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def losses(workdir):
  return {r["step"]: r["train/loss"] for r in read_metrics(str(workdir)) if "train/loss" in r}


print(
  "RESULT",
  json.dumps(
    {
      "pid": pid,
      "first": [first["step"], first["preempted"]],
      "steps": [resumed["step"], straight["step"]],
      "max_param_diff": max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(leaves(tmp / "resumed"), leaves(tmp / "straight"))
      ),
      "losses": [losses(tmp / "resumed"), losses(tmp / "straight")],
    }
  ),
  flush=True,
)
