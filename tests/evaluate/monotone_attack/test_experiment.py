"""reasoning_jax.evaluate.monotone_attack.experiment: config validation and the evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from reasoning_jax.evaluate.monotone_attack import evaluate_model, validate_config
from tests.evaluate.monotone_attack.helpers import tiny_config, tiny_data, tiny_model


def test_default_and_quick_configs_are_valid():
  from configs import monotone_attack as monotone_config

  validate_config(monotone_config.get_config())
  validate_config(monotone_config.get_config("quick"))
  with pytest.raises(ValueError, match="variant"):
    monotone_config.get_config("huge")


@pytest.mark.parametrize(
  "field, value, match",
  [
    ("seeds", (), "config.seeds"),
    ("seeds", (0, 0), "config.seeds"),
    ("num_train", 0, "config.num_train"),
    ("task.source_len", 8, "source_len"),
    ("task.num_filler", 1, "config.task.num_filler"),
    ("task.max_gap", 0, "config.task.max_gap"),
    ("protocol.init", "warm", "config.protocol.init"),
    ("protocol.finetune_steps", 0, "config.protocol.finetune_steps"),
    ("protocol.monotone_warmup", 1.5, "config.protocol.monotone_warmup"),
    ("train.learning_rate", 0.0, "config.train.learning_rate"),
    ("attack.num_flips", 0, "config.attack.num_flips"),
    ("attack.num_flips", 17, "config.attack.num_flips"),
    ("attack.success_threshold", -0.1, "config.attack.success_threshold"),
    ("attack.num_examples", 41, "config.attack.num_examples"),
    ("uat.num_test", 40, "config.uat.num_test"),
    ("uat.num_restarts", 0, "config.uat.num_restarts"),
    ("bootstrap.confidence", 1.0, "config.bootstrap.confidence"),
    ("bootstrap.num_resamples", 0, "config.bootstrap.num_resamples"),
    ("model.num_heads", 3, "config.model.num_heads"),
    ("model.overrides.max_position_embeddings", 16, "max_position_embeddings"),
  ],
)
def test_bad_config_values_name_the_field(field, value, match):
  config = tiny_config()
  *parents, leaf = field.split(".")
  node = config
  for part in parents:
    node = node[part]
  node[leaf] = value
  with pytest.raises(ValueError, match=match):
    validate_config(config)


def test_evaluate_model_reports_every_attack_with_intervals():
  config = tiny_config()
  out = evaluate_model(tiny_model("relu"), tiny_data(40), config, seed=0)
  assert 0 <= out["clean_accuracy"] <= 1 and np.isfinite(out["clean_loss"])
  lo, hi = out["clean_loss_ci"]
  assert lo <= out["clean_loss"] <= hi
  for mode in ("any", "meaning_preserving"):
    a = out[mode]
    assert a["num_examples"] == config.attack.num_examples == len(a["degradation"])
    assert 0 < a["mean_tokens_changed"] <= config.attack.num_flips
    assert a["success_ci"][0] <= a["success_rate"] <= a["success_ci"][1]
    assert a["degradation_ci"][0] <= a["mean_degradation"] <= a["degradation_ci"][1]
  u = out["uat"]
  assert len(u["trigger"]) == config.uat.trigger_len
  assert u["train_loss"] >= u["train_loss_random_trigger"]
  assert u["num_train"] == 8 and u["num_test"] == 8
  assert len(u["iterations"]) == config.uat.num_restarts
