"""One process of the two-process RFT sampling test (tests/rft/test_sampling.py).

Usage: python multihost_rft_sampling.py PORT PROCESS_ID TMP_DIR
Each process owns 2 CPU devices; the teacher (the test's, same init) is placed on a 4-device
mesh spanning both processes and the prompt rows are split over it. Run "full" samples every
problem; run "part" stops after one batch and is resumed. Only process 0 writes; the test
compares both files with its own one-process run. The data source was built by the test.
"""

import json
import pathlib

import multihost_setup  # this folder is sys.path[0]

pid, (tmp,) = multihost_setup.start()
tmp = pathlib.Path(tmp)

from reasoning_jax import sharding as sharding_lib  # noqa: E402
from reasoning_jax.data import data_source  # noqa: E402
from reasoning_jax.models.source import place_model  # noqa: E402
from reasoning_jax.rft import sample_trajectories  # noqa: E402
from tests.rft.test_sampling import CONFIG, TOK, make_teacher  # noqa: E402

mesh = sharding_lib.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
teacher = place_model(make_teacher(), mesh)
source = data_source(
  "arithmetic", "train", str(tmp / "tfds"), config="easy", num_train=10, num_test=4
)


def run(name, **kw):
  return sample_trajectories(
    teacher,
    TOK,
    source,
    reward="math_exact",
    out_dir=str(tmp / name),
    config=CONFIG,
    mesh=mesh,
    progress=False,
    **kw,
  )


full = run("mh_full")
first = run("mh_part", max_batches=1)
second = run("mh_part")
print(
  "RESULT",
  json.dumps(
    {
      "pid": pid,
      "full": [full.num_problems, full.trajectories, full.correct],
      "part": [first.sampled_problems, second.resumed_from, second.sampled_problems],
      "num_problems": second.num_problems,
    }
  ),
  flush=True,
)
