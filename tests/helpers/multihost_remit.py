"""One process of the two-process ReMiT experiment test (tests/experiments/test_remit_experiment.py).

Usage: python multihost_remit.py PORT PROCESS_ID TMP_DIR
Each process owns 2 CPU devices; the "quick" ReMiT experiment (one seed, two flywheel rounds:
the guide, pre-training, plain and ReMiT mid-training, RL after each) runs on a 4-device `data`
mesh spanning both. Process 0 decides what is reused, reads the metrics files and writes the
report; a second call reuses every finished run.
"""

import json
import os
import pathlib

import multihost_setup  # this folder is sys.path[0]

pid, (tmp,) = multihost_setup.start()
tmp = pathlib.Path(tmp)

from configs import remit_experiment  # noqa: E402
from reasoning_jax.rl import remit_experiment as remit  # noqa: E402

c = remit_experiment.get_config("quick")
c.workdir = str(tmp / "remit")
c.seeds = (0,)
c.plot = False
mesh = {"data": -1, "fsdp": 1, "tensor": 1}
for section in (c.guide, c.guide.sft, c.model, c.rl):
  section.mesh = dict(mesh)
payload = remit.run(c)
again = remit.run(c)


def rows(p):
  return {
    arm: [{k: v for k, v in r.items() if k != "seconds"} for r in runs]
    for arm, runs in p["runs"].items()
  }


print(
  "RESULT",
  json.dumps(
    {
      "pid": pid,
      "runs": rows(payload),
      "again": rows(again),
      "files": sorted(os.listdir(tmp / "remit")),
    },
    sort_keys=True,
  ),
  flush=True,
)
