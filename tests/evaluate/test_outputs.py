"""`evaluate.outputs`: how results tables name paths, atomic JSON records."""

from __future__ import annotations

import os

from reasoning_jax.evaluate.outputs import read_json, shown_path, write_json


def test_shown_path_names_paths_inside_the_workdir_relatively(tmp_path, monkeypatch):
  workdir = tmp_path / "run"
  assert shown_path(str(workdir / "guide"), str(workdir)) == os.path.join("<workdir>", "guide")
  assert shown_path(str(workdir / "a" / "b"), str(workdir)) == os.path.join("<workdir>", "a", "b")
  # A relative workdir and an absolute path to the same place.
  monkeypatch.chdir(tmp_path)
  assert shown_path(str(workdir / "guide"), "run") == os.path.join("<workdir>", "guide")
  # Outside the workdir (a user's checkpoint) or a sibling sharing its prefix: unchanged.
  assert shown_path("/models/Qwen3-0.6B", str(workdir)) == "/models/Qwen3-0.6B"
  sibling = str(tmp_path / "run_other" / "guide")
  assert shown_path(sibling, str(workdir)) == sibling


def test_write_json_is_atomic_and_read_json_is_none_when_missing(tmp_path):
  path = str(tmp_path / "r.json")
  assert read_json(path) is None
  write_json(path, {"a": 1})
  assert read_json(path) == {"a": 1} and not os.path.exists(path + ".tmp")
