"""Metric writing: empty writes leave no line; a resumed run's log drops the steps trained
again; accelerator memory read from device stats."""

import json
import types

from reasoning_jax.train import metrics as metrics_lib
from reasoning_jax.train.metrics import MetricWriter, device_memory, read_metrics


def _device(stats):
  return types.SimpleNamespace(memory_stats=lambda: stats)


def test_empty_write_leaves_no_line(tmp_path):
  with MetricWriter(str(tmp_path), tensorboard=False) as writer:
    writer.write(1, {"loss": 2.0}, prefix="train/")
    writer.write(1, {}, prefix="memory/")
  assert read_metrics(str(tmp_path)) == [{"step": 1, "train/loss": 2.0}]


def test_device_memory_from_stats():
  gib = 1 << 30
  devices = [
    _device({"peak_bytes_in_use": 3 * gib, "bytes_in_use": gib, "bytes_limit": 80 * gib}),
    _device({"peak_bytes_in_use": 5 * gib, "bytes_in_use": 2 * gib, "bytes_limit": 78 * gib}),
  ]
  assert device_memory(devices) == {"peak_gib": 5.0, "in_use_gib": 2.0, "limit_gib": 78.0}
  assert device_memory([_device({"bytes_in_use": gib // 2})]) == {"in_use_gib": 0.5}
  assert device_memory([_device(None)]) == {}  # The CPU backend reports none.
  assert device_memory([devices[0], _device(None)]) == {}
  assert device_memory() == {}  # This machine: CPU.


def test_trainers_log_device_memory(tmp_path, monkeypatch):
  from reasoning_jax.train import sft
  from tests.train.test_sft import tiny_config

  assert sft.device_memory is metrics_lib.device_memory
  monkeypatch.setattr(sft, "device_memory", lambda: {"peak_gib": 1.5, "limit_gib": 80.0})
  config = tiny_config(tmp_path / "run", tmp_path / "data", num_steps=2, log_every=1)
  config.eval_every = config.checkpoint_every = 100
  sft.run_sft(config)
  memory = [r for r in read_metrics(config.workdir) if "memory/peak_gib" in r]
  assert [r["step"] for r in memory] == [1, 2]
  assert memory[0]["memory/peak_gib"] == 1.5 and memory[0]["memory/limit_gib"] == 80.0


def test_resume_drops_the_lines_of_steps_trained_again(tmp_path):
  """A run killed after step 3 resumes from its step-2 checkpoint: the lines of step 3 (and a
  line the kill cut short) go, so the log reads as a run that never stopped."""
  with MetricWriter(str(tmp_path)) as writer:
    for step in (1, 2, 3):
      writer.write(step, {"loss": float(step)})
      writer.write_records(step, "rollouts", [{"step": step, "completion": "x"}])
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 4, "lo')  # Cut short mid-line.
  with MetricWriter(str(tmp_path)) as writer:
    assert writer.resume_at(2, records=("rollouts", "absent")) == 3
    writer.write(3, {"loss": 30.0})
  assert read_metrics(str(tmp_path)) == [
    {"step": 1, "loss": 1.0},
    {"step": 2, "loss": 2.0},
    {"step": 3, "loss": 30.0},
  ]
  rollouts = (tmp_path / "rollouts.jsonl").read_text().splitlines()
  assert [json.loads(line)["step"] for line in rollouts] == [1, 2]
  with MetricWriter(str(tmp_path)) as writer:  # Nothing after the step: nothing changes.
    assert writer.resume_at(3) == 0
  assert len(read_metrics(str(tmp_path))) == 3
