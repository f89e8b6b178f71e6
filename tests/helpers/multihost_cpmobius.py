"""One process of the two-process CPMöbius test (tests/rl/test_cpmobius.py).

Usage: python multihost_cpmobius.py PORT PROCESS_ID TMP_DIR
Each process owns 2 CPU devices; the self-play mesh spans all 4 (`data`), so coach and player
rollouts are split over both hosts and gathered back to each. Run A plays 2 steps straight
(training the player's and the coach's warm starts first, on both processes); run B is
preempted at step 1 on both hosts (JAX's preemption sync point) and resumed. Both histories
are printed for the test to compare across runs and hosts.
"""

import json
import os
import pathlib

import multihost_setup  # this folder is sys.path[0]

pid, (tmp,) = multihost_setup.start()
tmp = pathlib.Path(tmp)

from configs import cpmobius  # noqa: E402
from reasoning_jax.checkpoint import TrainCheckpointer  # noqa: E402
from reasoning_jax.rl.cpmobius.selfplay import run_cpmobius  # noqa: E402


def config(name):
  c = cpmobius.get_config("quick").selfplay
  c.workdir = str(tmp / name / "run")
  c.player.sft.workdir = str(tmp / "player_ws")
  c.coach.warmup_dir = str(tmp / "coach_warmup")
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  return c


straight = run_cpmobius(config("a"))
reached = TrainCheckpointer.reached_preemption
TrainCheckpointer.reached_preemption = lambda self, step: step == 1
first = run_cpmobius(config("b"))
TrainCheckpointer.reached_preemption = reached
resumed = run_cpmobius(config("b"))


def strip(history):
  return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


print(
  "RESULT",
  json.dumps(
    {
      "pid": pid,
      "first": [first["steps"], first["preempted"]],
      "straight": strip(straight["history"]),
      "resumed": strip(resumed["history"]),
      "files": sorted(os.listdir(tmp / "a" / "run")),
    },
    sort_keys=True,
  ),
  flush=True,
)
