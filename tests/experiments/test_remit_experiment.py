"""`experiments.remit`: the paired verdict and named config errors. The quick variant runs end
to end once, as the reproduction suite's `remit` entry (`tests/test_reproduce.py` checks its
files, rows, the flywheel's guides and the reuse of finished runs); tests/train/test_remit.py
pins the loss."""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from configs import remit_experiment as remit_config  # noqa: E402
from reasoning_jax.rl.remit_experiment import compare  # noqa: E402
from reasoning_jax.rl.remit_experiment import validate  # noqa: E402


def test_verdict_is_paired_per_seed():
  runs = {
    "plain": [{"m": 0.1}, {"m": 0.2}, {"m": 0.3}],
    "remit_r1": [{"m": 0.2}, {"m": 0.25}, {"m": 0.31}],
  }
  c = compare(runs, "remit_r1", "m")
  assert c["verdict"] == "beat" and c["higher"] == 3 and c["mean"] == pytest.approx(0.16 / 3)
  runs["remit_r1"][2]["m"] = 0.0
  assert compare(runs, "remit_r1", "m")["verdict"] == "mixed"
  runs["remit_r1"] = [dict(r) for r in runs["plain"]]
  assert compare(runs, "remit_r1", "m")["verdict"] == "tie"
  two = {arm: rows[:2] for arm, rows in runs.items()}
  assert compare(two, "remit_r1", "m")["verdict"] == "too few seeds"


@pytest.mark.parametrize(
  "key,value,match",
  [
    ("seeds", (0, 0), "config.seeds"),
    ("midtrain_steps", 0, "config.midtrain_steps"),
    ("flywheel_rounds", 0, "config.flywheel_rounds"),
    ("guide_workdir", "/nonexistent", "config.guide_workdir"),
  ],
)
def test_config_errors_name_the_key(key, value, match):
  config = remit_config.get_config("quick")
  config[key] = value
  with pytest.raises(ValueError, match=match):
    validate(config)
  with pytest.raises(ValueError, match="variant"):
    remit_config.get_config("nope")


def test_two_processes_run_the_experiment_and_agree(tmp_path):
  """The quick experiment (one seed, two flywheel rounds) on two processes (jax.distributed, 2
  devices each, one 4-device data mesh): both return the same rows (process 0's metrics read
  back and broadcast), process 0 writes the report, and a second call reuses every run."""
  import json

  from tests.helpers.two_processes import run_helper

  results = run_helper("multihost_remit.py", tmp_path, timeout=600)
  first, second = results
  assert first["runs"] == second["runs"] and first["again"] == first["runs"]
  assert set(first["runs"]) == {"plain", "remit_r1", "remit_r2"}
  assert first["runs"]["remit_r2"][0]["guide"].endswith("remit_r1_rl")
  assert first["runs"]["remit_r1"][0]["remit_weight_std"] > 0.0
  assert {"results.json", "results.md", "CITATIONS.bib"} <= set(first["files"])
  saved = json.loads((tmp_path / "remit" / "results.json").read_text())
  assert saved["runs"]["plain"][0]["seed"] == 0
