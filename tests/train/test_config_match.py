"""`train.config_match.same_value`: when a saved run's config value still matches the config.

Also through the RL warm-start check: a checkpoint saved before `config.model` had `remat` and
`opt_state_dtype` is still this config's warm start while those are unset.
"""

import ml_collections
import pytest

from reasoning_jax.rl.recipes import ConfigError
from reasoning_jax.rl.warm_start import check_warm_start_config
from reasoning_jax.train.config_match import same_value


def test_json_round_trip_equalities():
  assert same_value((1, 2), [1, 2])
  assert same_value({"a": (1,)}, ml_collections.ConfigDict({"a": [1]}))
  assert not same_value(1, 2) and not same_value("a", "")
  assert same_value(None, None) and not same_value(None, "")  # Top level: compared as is.


def test_keys_one_side_lacks_count_only_when_set():
  saved = {"hf_dir": "/x", "dtype": ""}
  assert same_value(saved, {"hf_dir": "/x", "dtype": "", "remat": "", "eos_ids": ()})
  assert same_value(saved, {"hf_dir": "/x", "dtype": "", "opt_state_dtype": None, "o": {}})
  assert not same_value(saved, {"hf_dir": "/x", "dtype": "", "remat": "full"})
  assert not same_value({**saved, "remat": "full"}, {"hf_dir": "/x", "dtype": ""})
  assert same_value({**saved, "old": ""}, {"hf_dir": "/x", "dtype": ""})  # A removed, unset key.
  assert not same_value({"m": {"a": 1}}, {"m": {"a": 1, "b": 2}})  # Nested dicts too.
  assert same_value({"m": {"a": 1}}, {"m": {"a": 1, "b": ""}})


def test_warm_start_saved_before_new_model_keys_is_reused():
  saved = {"model": {"hf_dir": "/m", "param_dtype": "float32"}, "num_steps": 4}
  wanted = ml_collections.ConfigDict(
    {
      "model": {"hf_dir": "/m", "param_dtype": "float32", "remat": "", "opt_state_dtype": ""},
      "num_steps": 4,
    }
  )
  check_warm_start_config(saved, wanted, "/w")  # No error.
  wanted.model.opt_state_dtype = "bfloat16"
  with pytest.raises(ConfigError, match="model: saved .* config .*opt_state_dtype': 'bfloat16'"):
    check_warm_start_config(saved, wanted, "/w")
