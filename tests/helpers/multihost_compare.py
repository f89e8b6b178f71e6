"""One process of the two-process RL comparison test (tests/rl/test_fresh_start.py).

Usage: python multihost_compare.py PORT PROCESS_ID TMP_DIR
Each process owns 2 CPU devices; countdown_hf_quick (DISPO, one seed) runs on a 4-device
`data` mesh spanning both: process 0 builds the fresh Hugging Face folder while process 1
waits, both train the SFT warm start and the RL run together, and process 0 writes the report.
A second call reuses the folder and the runs. A bad `fresh_hf` spec is refused on both hosts.
"""

import json
import os
import pathlib

import multihost_setup  # this folder is sys.path[0]

pid, (tmp,) = multihost_setup.start()
tmp = pathlib.Path(tmp)

from configs import compare_rl  # noqa: E402
from reasoning_jax.rl.compare import run_comparison  # noqa: E402
from reasoning_jax.rl.fresh_start import prepare_fresh_start  # noqa: E402
from reasoning_jax.rl.recipes import ConfigError  # noqa: E402

c = compare_rl.get_config("countdown_hf_quick")
c.workdir, c.rl.sft.workdir = str(tmp / "cmp"), str(tmp / "warm")
c.losses, c.seeds = ("dispo",), (0,)
c.rl.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
c.rl.sft.mesh = dict(c.rl.mesh)
payload = run_comparison(c)
again = run_comparison(c)

bad = compare_rl.get_config("countdown_hf_quick")
bad.workdir = str(tmp / "bad")
bad.fresh_hf.vocab_size = 100
try:
  prepare_fresh_start(bad)
  refused = None
except ConfigError as e:
  refused = str(e)

print(
  "RESULT",
  json.dumps(
    {
      "pid": pid,
      "results": payload["results"],
      "again": again["results"],
      "hf_dir": payload["config"]["rl"]["model"]["hf_dir"],
      "files": sorted(os.listdir(tmp / "cmp")),
      "refused": refused,
    },
    sort_keys=True,
  ),
  flush=True,
)
