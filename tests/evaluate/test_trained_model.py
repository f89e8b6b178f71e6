"""`train_or_load`: train once, load a finished run, resume (never load) an interrupted one."""

import os
import shutil

import jax
import numpy as np
from flax import nnx

from reasoning_jax.evaluate import trained_model
from reasoning_jax.train.sft import load_sft_params
from tests.train.test_sft import tiny_config


def _params(model):
  return jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))


def test_an_interrupted_run_is_resumed_not_loaded(tmp_path, monkeypatch, caplog):
  monkeypatch.setattr(trained_model, "RESUME_EVERY", 3)
  data = tmp_path / "data"
  # One checkpoint at the end (the experiments' `sized` configs); `train_or_load` adds one
  # every RESUME_EVERY steps, so a killed run has somewhere to resume from.
  whole = tiny_config(tmp_path / "whole", data, num_steps=6, checkpoint_every=6)
  whole.keep_checkpoints = 5
  model, trained = trained_model.train_or_load(whole, "whole")
  assert trained and trained_model.saved_step(whole.workdir) == 6
  assert sorted(os.listdir(os.path.join(whole.workdir, "checkpoints"))) == ["3", "6"]
  again, trained = trained_model.train_or_load(whole, "whole")
  assert not trained
  for a, b in zip(_params(model), _params(again)):
    np.testing.assert_array_equal(a, b)

  # A run killed after step 3: its workdir holds the step-3 checkpoint only.
  cut = tiny_config(tmp_path / "cut", data, num_steps=6, checkpoint_every=6)
  cut.keep_checkpoints = 5
  shutil.copytree(whole.workdir, cut.workdir)
  shutil.rmtree(os.path.join(cut.workdir, "checkpoints", "6"))
  assert trained_model.saved_step(cut.workdir) == 3
  with caplog.at_level("WARNING"):  # Loaded directly: said to be unfinished.
    load_sft_params(cut.workdir)
  assert "is step 3 of 6, an interrupted run" in caplog.text
  resumed, trained = trained_model.train_or_load(cut, "cut")
  assert trained, "a step-3-of-6 checkpoint must be trained on, not taken for the model"
  assert trained_model.saved_step(cut.workdir) == 6
  for a, b in zip(_params(model), _params(resumed)):  # Resume is bit-identical.
    np.testing.assert_array_equal(a, b)
