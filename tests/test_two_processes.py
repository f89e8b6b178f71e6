"""The two-process test runner (tests/helpers/two_processes.py) fails fast and shows stacks.

A process that dies leaves its peer waiting in its next collective; a hang must show where
each process waited. Both tests use plain Python scripts (no JAX), so they take seconds.
"""

import time

import pytest

from tests.helpers.two_processes import run_two_processes

_SCRIPT = """
import sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
print("started", pid, flush=True)
if pid == int(sys.argv[3]):
  time.sleep(0.5)
  sys.exit(3)
time.sleep(120)  # Stands for a collective that waits on the other process.
"""


def _script(tmp_path):
  path = tmp_path / "peer.py"
  path.write_text(_SCRIPT)
  return str(path)


def test_a_failing_process_stops_the_run_at_once_with_the_survivors_stack(tmp_path):
  start = time.monotonic()
  with pytest.raises(pytest.fail.Exception) as failure:
    run_two_processes(_script(tmp_path), "1", timeout=100)
  assert time.monotonic() - start < 60
  message = str(failure.value)
  assert "process 1 exited with 3" in message, message
  assert "started 0" in message and "started 1" in message
  assert "Fatal Python error: Aborted" in message and "peer.py" in message  # Process 0's stack.


def test_a_hang_times_out_with_both_stacks(tmp_path):
  with pytest.raises(pytest.fail.Exception) as failure:
    run_two_processes(_script(tmp_path), "-1", timeout=3)
  message = str(failure.value)
  assert "timed out after 3 s" in message, message
  assert message.count("Fatal Python error: Aborted") == 2, message


def test_a_clean_run_returns_both_logs(tmp_path):
  path = tmp_path / "ok.py"
  path.write_text("import sys\nprint('hello from', sys.argv[2])\n")
  logs = run_two_processes(str(path), timeout=60)
  assert [log.strip() for log in logs] == ["hello from 0", "hello from 1"]
