"""benchmarks/device_session.sh: the prepared accelerator session stays runnable.

Runs the script with a recording stand-in for python (no benchmark is executed), then checks
that every step names an existing benchmark, passes only flags that benchmark's parser
accepts, has a time limit, and that the limits sum to under the 10-minute device call.
"""

import os
import re
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "device_session.sh")


def _recorded_steps(tmp_path, tiny: bool):
  log = tmp_path / "calls.txt"
  fake = tmp_path / "python"
  fake.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> {log}\n')
  fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
  env = {**os.environ, "PYTHON": str(fake), "OUT": str(tmp_path / "out")}
  env.pop("TINY", None)
  if tiny:
    env["TINY"] = "1"
  proc = subprocess.run(
    ["bash", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
  )
  assert proc.returncode == 0, proc.stderr
  calls = [line.split() for line in log.read_text().splitlines() if not line.startswith("-c")]
  limits = [int(x) for x in re.findall(r"\(limit (\d+)s\)", proc.stdout)]
  return calls, limits


@pytest.mark.parametrize("tiny", [False, True])
def test_steps_name_real_benchmarks_and_flags(tmp_path, tiny):
  calls, limits = _recorded_steps(tmp_path, tiny)
  assert calls and len(limits) == len(calls)
  assert sum(limits) <= (600 if tiny else 540)
  helps = {}
  for call in calls:
    path = os.path.join(ROOT, call[0])
    assert os.path.isfile(path), call[0]
    if path not in helps:
      helps[path] = subprocess.run(
        [sys.executable, path, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
      ).stdout
    for flag in (a.split("=")[0] for a in call[1:] if a.startswith("--")):
      assert flag in helps[path], f"{call[0]} does not accept {flag}"
