"""`config.init_workdir`: continued training from another run's params (mid-training)."""

import jax
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.train.sft import load_sft_params, run_sft
from reasoning_jax.train.sft_config import ConfigError, validate_config
from tests.train.test_sft import tiny_config


def _params(workdir):
  model, _ = load_sft_params(str(workdir))
  return jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))


def test_init_workdir_starts_from_its_params(tmp_path):
  small = dict(num_steps=2, warmup_steps=0, eval_examples=2, eval_max_new_tokens=2)
  first = tiny_config(tmp_path / "first", tmp_path / "data", **small)
  run_sft(first)
  # Another seed (another initialisation and data order), a vanishing learning rate: the
  # continued run ends where `first` ended, not at its own initialisation.
  cont = tiny_config(
    tmp_path / "cont", tmp_path / "data", seed=7, learning_rate=1e-12, **{**small, "num_steps": 1}
  )
  cont.init_workdir = str(tmp_path / "first")
  run_sft(cont)
  for a, b in zip(_params(tmp_path / "first"), _params(tmp_path / "cont")):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-8)
  fresh = tiny_config(
    tmp_path / "fresh", tmp_path / "data", seed=7, learning_rate=1e-12, num_steps=1
  )
  fresh.warmup_steps, fresh.eval_examples, fresh.eval_max_new_tokens = 0, 2, 2
  run_sft(fresh)
  assert any(
    not np.allclose(np.asarray(a), np.asarray(b), atol=1e-4)
    for a, b in zip(_params(tmp_path / "first"), _params(tmp_path / "fresh"))
  )

  other = tiny_config(tmp_path / "other", tmp_path / "data", **small)
  other.model_overrides = dict(other.model_overrides, hidden_size=64)
  other.init_workdir = str(tmp_path / "first")
  with pytest.raises(ConfigError, match="config.init_workdir.*names or shapes"):
    run_sft(other)


@pytest.mark.parametrize(
  "value,lora,match",
  [("/nonexistent", None, "checkpoints/"), (3, None, "must be a str"), ("D", {"rank": 2}, "lora")],
)
def test_init_workdir_errors_name_the_key(tmp_path, value, lora, match):
  (tmp_path / "D" / "checkpoints").mkdir(parents=True)
  config = tiny_config(tmp_path / "run", tmp_path / "data")
  config.init_workdir = str(tmp_path / "D") if value == "D" else value
  if lora:
    config.lora = lora
  with pytest.raises(ConfigError, match=match):
    validate_config(config)
