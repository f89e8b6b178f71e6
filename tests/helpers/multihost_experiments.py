"""One process of the two-process experiment-driver test (tests/experiments/
test_multihost_experiments.py, marked slow).

Usage: python multihost_experiments.py PORT PROCESS_ID TMP_DIR
Each process owns 2 CPU devices (one 4-device data mesh). The quick Grad2Reward comparison and
the quick TrajFusion experiment (one seed and two seeds, its minimum) run on both processes; process 0 writes their
reports and both print the rows they returned.
"""

import json
import os
import pathlib

import multihost_setup  # this folder is sys.path[0]

pid, (tmp,) = multihost_setup.start()
tmp = pathlib.Path(tmp)

from configs import grad2reward, trajfusion  # noqa: E402
from reasoning_jax.evaluate.trajfusion import experiment as trajfusion_experiment  # noqa: E402
from reasoning_jax.rl import grad2reward_compare  # noqa: E402

g2r = grad2reward.get_config("quick")
g2r.workdir, g2r.rl.sft.workdir = str(tmp / "g2r"), str(tmp / "g2r" / "warm")
g2r.seeds, g2r.plot = (0,), False
g2r_payload = grad2reward_compare.run(g2r)

tf = trajfusion.get_config("quick")
tf.workdir, tf.seeds, tf.plot = str(tmp / "tf"), (0, 1), False
tf.pipeline.teacher.workdir = str(tmp / "tf" / "teacher")
tf_payload = trajfusion_experiment.run(tf)

print(
  "RESULT",
  json.dumps(
    {
      "pid": pid,
      "g2r": g2r_payload["results"],
      "g2r_verdict": g2r_payload["verdict"],
      "tf": tf_payload["runs"],
      "files": {name: sorted(os.listdir(tmp / name)) for name in ("g2r", "tf")},
    },
    sort_keys=True,
    default=str,
  ),
  flush=True,
)
