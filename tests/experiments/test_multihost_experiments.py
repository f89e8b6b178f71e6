"""The Grad2Reward comparison and the TrajFusion experiment on two processes (slow: about 4
minutes on 2 shared cores; `pytest --run-slow`). The RL comparison they share code with, ReMiT,
CPMöbius and RFT sampling have two-process tests that CI runs."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_two_processes_run_grad2reward_and_trajfusion_and_agree(tmp_path):
  """Quick variants on one 4-device data mesh over two processes (2 CPU devices each): both
  return the same rows and verdict, process 0 writes the reports. Found here: the warm-start
  probes load a checkpoint, an orbax collective, so every process must run them."""
  from tests.helpers.two_processes import run_helper

  first, second = run_helper("multihost_experiments.py", tmp_path, timeout=900)
  for key in ("g2r", "g2r_verdict", "tf"):
    assert first[key] == second[key], key
  assert set(first["g2r"]) == {"rubric_grpo", "grad2reward"}
  assert set(first["tf"]) == {"rft", "trajfusion"} and len(first["tf"]["rft"]) == 2
  for name in ("g2r", "tf"):
    assert {"results.json", "results.md", "CITATIONS.bib"} <= set(first["files"][name]), name
  saved = json.loads((tmp_path / "g2r" / "results.json").read_text())
  assert saved["verdict"] == first["g2r_verdict"] and saved["judge_probe"] is not None
