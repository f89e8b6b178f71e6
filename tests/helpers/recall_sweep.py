"""Tiny recall-sweep configs and the checks of a sweep's outputs (tests/train/test_sweeps.py,
tests/experiments/test_layer_experiments.py)."""

import json
import os
import pathlib

import numpy as np


def tiny_recall(config, workdir, tasks):
  config.workdir = str(workdir)
  config.seeds = (0, 1)
  config.tasks = tasks
  config.train.num_steps = 6
  config.train.eval_every = 3
  config.train.warmup_steps = 2
  config.train.batch_size = 8
  config.train.eval_batch_size = 16
  for name in tasks:
    config.task_configs[name].num_train = 32
    config.task_configs[name].num_test = 20
  return config


def check_recall_outputs(workdir, payload, tasks, models):
  for name in ("results.md", "results.json", "accuracy.png"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  md = pathlib.Path(os.path.join(workdir, "results.md")).read_text()
  for model in models:
    assert f"| {model} |" in md
  with open(os.path.join(workdir, "results.json")) as f:
    saved = json.load(f)
  assert set(saved["results"]) == set(tasks)
  for task in tasks:
    for model in models:
      runs = payload["results"][task][model]
      assert [r["seed"] for r in runs] == [0, 1]
      for r in runs:
        assert [s for s, _ in r["curve"]] == [0, 3, 6]
        assert all(0.0 <= a <= 1.0 for _, a in r["curve"])
        assert all(np.isfinite(l) for _, l in r["train_loss"])
