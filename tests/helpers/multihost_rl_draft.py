"""One process of the two-process speculative-rollout RL test (tests/rl/test_trainer_hf.py).

Usage: python multihost_rl_draft.py PORT PROCESS_ID TMP_DIR HF_DIR
RL from the tiny HF folder HF_DIR with the same folder as `config.draft`: each process builds
the draft on its own devices (the per-host rollout mesh) and samples its prompts by
speculative decoding, rows split over its 2 devices; the update is one global sharded step.
The task's data was built in TMP_DIR by the test.
"""

import json
import pathlib

import multihost_setup  # this folder is sys.path[0]

pid, (tmp, hf_dir) = multihost_setup.start()

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
