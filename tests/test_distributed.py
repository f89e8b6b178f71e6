"""`reasoning_jax.distributed`'s helpers for code that every host runs: `broadcast_json`
(process 0's value everywhere) and `barrier`, on one process and on two (jax.distributed +
gloo)."""

import os

from reasoning_jax import distributed
from tests.helpers.two_processes import results, run_two_processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SCRIPT = """
import json, os, sys, time
os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, sys.argv[3])
import jax
from reasoning_jax import distributed
port, pid = int(sys.argv[1]), int(sys.argv[2])
distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
value = distributed.broadcast_json({"pid": pid, "items": [pid, "x" * pid]})
marker = os.path.join(sys.argv[4], "written")
if pid == 0:
  time.sleep(1.0)  # the other process must wait at the barrier for this file
  open(marker, "w").write("done")
distributed.barrier("test: marker written")
seen = os.path.exists(marker)
big = distributed.broadcast_json("y" * (1 << 17) if pid == 0 else None)
import numpy as np, jax.numpy as jnp
arrays = distributed.broadcast_json({"f32": np.float32(0.5), "i": np.int64(3), "a": jnp.arange(2)})
print(
  "RESULT",
  json.dumps({"pid": pid, "value": value, "seen": seen, "big": len(big), "arrays": arrays}),
  flush=True,
)
"""


def test_one_process_gets_its_own_value_and_the_barrier_returns():
  assert distributed.broadcast_json({"a": [1, 2]}) == {"a": [1, 2]}
  distributed.barrier("one process")


def test_two_processes_get_process_zeros_value_and_wait_at_the_barrier(tmp_path):
  script = tmp_path / "peer.py"
  script.write_text(_SCRIPT)
  logs = run_two_processes(str(script), REPO, str(tmp_path), timeout=120)
  out = sorted(results(logs), key=lambda r: r["pid"])
  assert [r["pid"] for r in out] == [0, 1], "\n".join(logs)[-2000:]
  for r in out:
    assert r["value"] == {"pid": 0, "items": [0, ""]}  # process 0's, on both
    assert r["seen"]  # process 1 passed the barrier only after process 0 wrote the file
    assert r["big"] == 1 << 17  # sized by process 0's value (the length goes first)
    assert r["arrays"] == {"f32": 0.5, "i": 3, "a": [0, 1]}  # NumPy / JAX values as JSON


def test_what_json_cannot_encode_is_named():
  import pytest

  with pytest.raises(TypeError, match="broadcast_json cannot encode object"):
    distributed._plain(object())
