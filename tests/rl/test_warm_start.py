"""The RL warm start: an interrupted SFT run in `config.sft.workdir` is finished, not used."""

import os
import shutil

import jax
import numpy as np
from flax import nnx

from reasoning_jax.rl.warm_start import warm_start
from reasoning_jax.train.sft_config import model_source
from tests.rl.test_trainer import rl_config


def _params(model):
  return jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))


def test_an_interrupted_sft_warm_start_is_finished_first(tmp_path):
  config = rl_config(tmp_path)
  config.sft.num_steps, config.sft.checkpoint_every, config.sft.keep_checkpoints = 4, 2, 5
  source = model_source(config.sft)
  whole = warm_start(config, source)  # Trains the 4 SFT steps (no checkpoint yet).
  ckpts = os.path.join(config.sft.workdir, "checkpoints")
  assert sorted(os.listdir(ckpts)) == ["2", "4"]
  shutil.rmtree(os.path.join(ckpts, "4"))  # As if the SFT had been killed after step 2.
  resumed = warm_start(config, source)
  assert sorted(os.listdir(ckpts)) == ["2", "4"], "the warm start must finish the SFT run"
  for a, b in zip(_params(whole), _params(resumed)):
    np.testing.assert_array_equal(a, b)
  again = warm_start(config, source)  # Finished: loaded, nothing trained.
  for a, b in zip(_params(whole), _params(again)):
    np.testing.assert_array_equal(a, b)
