"""`python -m experiments.remit` at tiny size (the "quick" variant): files, table rows, finite
numbers, the flywheel's guides, reuse of finished runs, named config errors. Checks plumbing,
not whether ReMiT helps (tests/train/test_remit.py pins the loss)."""

from __future__ import annotations

import json
import math
import os
import sys
import types

import jax
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from configs import remit_experiment as remit_config  # noqa: E402
from experiments import remit  # noqa: E402
from reasoning_jax.evaluate.remit import compare, run  # noqa: E402
from reasoning_jax.evaluate.remit.experiment import validate  # noqa: E402

_CACHE_FLAGS = {
  "jax_compilation_cache_dir": None,
  "jax_persistent_cache_min_compile_time_secs": 0.0,
  "jax_persistent_cache_min_entry_size_bytes": -1,
}


@pytest.fixture
def compilation_cache(tmp_path):
  """A persistent compilation cache for this test only: the experiment's 16 runs compile the
  same steps again (new closures), which the cache turns into lookups (~2x faster)."""
  old = {k: getattr(jax.config, k) for k in _CACHE_FLAGS}
  for key, value in _CACHE_FLAGS.items():
    jax.config.update(key, str(tmp_path / "jax_cache") if value is None else value)
  yield
  for key, value in old.items():
    jax.config.update(key, value)


def test_remit_experiment_quick(tmp_path, monkeypatch, compilation_cache):
  config = remit_config.get_config("quick")
  config.workdir = str(tmp_path / "remit")
  monkeypatch.setattr(remit, "_CONFIG", types.SimpleNamespace(value=config), raising=False)
  remit.main(["experiments.remit"])
  for name in ("results.md", "results.json", "accuracy.png", "CITATIONS.bib"):
    assert os.path.getsize(os.path.join(config.workdir, name)) > 0, name
  with open(os.path.join(config.workdir, "results.json")) as f:
    payload = json.load(f)
  md = open(os.path.join(config.workdir, "results.md")).read()
  arms = ["plain", "remit_r1", "remit_r2"]
  for arm in arms:
    assert f"\n| {arm} |" in md, arm
  assert "At this scale ReMiT (round 1)" in md and "## Flywheel" in md
  assert list(payload["runs"]) == arms
  for arm, rows in payload["runs"].items():
    assert [r["seed"] for r in rows] == list(config.seeds)
    for r in rows:
      for key in ("accuracy_before", "sampled_before", "accuracy_after", "sampled_after"):
        assert 0.0 <= r[key] <= 1.0 and math.isfinite(r[key]), (arm, key)
      if arm != "plain":
        assert math.isfinite(r["remit_weight_std"]) and r["remit_weight_std"] >= 0
        assert 0.0 <= r["remit_clip_frac"] <= 1.0
  workdir = os.path.abspath(config.workdir)
  assert payload["guide"]["workdir"] == os.path.join(workdir, "guide")
  for r1, r2 in zip(payload["runs"]["remit_r1"], payload["runs"]["remit_r2"]):
    assert r1["guide"] == os.path.join(workdir, "guide")
    assert r2["guide"] == os.path.join(workdir, f"seed{r2['seed']}", "remit_r1_rl")  # Flywheel.
  for cmp in payload["comparisons"].values():
    assert cmp["sampled_after"]["verdict"] == "too few seeds"  # 2 seeds.

  # A rerun reuses every finished run (no training) and reports the same numbers.
  again = run(config)
  assert json.loads(json.dumps(again["summary"])) == payload["summary"]
  assert again["seconds"] < 30
  # A workdir trained under other values is refused, naming the key.
  config.midtrain_steps = 4
  with pytest.raises(ValueError, match="num_steps"):
    run(config)


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
