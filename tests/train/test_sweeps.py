"""reasoning_jax.train.sweeps: a recall sweep writes its outputs and resumes finished runs."""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from configs import induction as induction_config  # noqa: E402
from reasoning_jax.train import recall, sweeps  # noqa: E402
from tests.helpers.recall_sweep import check_recall_outputs, tiny_recall  # noqa: E402


def test_recall_sweep_resumes_finished_runs(tmp_path, monkeypatch):
  """A rerun reuses the per-run files of finished runs, retrains a missing one, and retrains
  everything once the training config changes."""
  config = tiny_recall(induction_config.get_config(), tmp_path, ("repeated",))
  config.models = ("attention@1@1",)
  config.model.hidden_size = 16
  config.task_configs.repeated.kwargs.half_len = 6
  config.task_configs.repeated.kwargs.min_half_len = 4
  config.task_configs.repeated.kwargs.vocab_size = 16
  first = sweeps.run_recall_experiment(config)
  check_recall_outputs(tmp_path, first, ("repeated",), config.models)
  run_files = sorted((tmp_path / "runs").glob("*.json"))
  assert len(run_files) == len(config.seeds)

  trained = []
  real = recall.train_and_eval

  def counting(model_config, task, seed, train, **kw):
    trained.append(seed)
    return real(model_config, task, seed, train, **kw)

  monkeypatch.setattr(recall, "train_and_eval", counting)

  again = sweeps.run_recall_experiment(config)
  assert trained == []
  assert again["results"] == first["results"]

  run_files[0].unlink()
  sweeps.run_recall_experiment(config)
  assert trained == [config.seeds[0]]

  trained.clear()
  config.train.learning_rate = config.train.learning_rate * 2
  sweeps.run_recall_experiment(config)
  assert trained == list(config.seeds)
