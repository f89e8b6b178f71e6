"""Registries: a user's own reward named by import path; what a bad name's error says."""

import pytest

from reasoning_jax.registry import MIXERS, REWARDS, Registry
from reasoning_jax.rewards import score_batch


def test_a_reward_by_import_path_is_loaded_and_registered():
  name = "tests.helpers.own_reward:always_right"
  assert name in REWARDS
  from tests.helpers import own_reward

  assert REWARDS.get(name) is own_reward.always_right
  before = len(own_reward.CALLS)
  scores = score_batch(name, ["x", "y"], ["1", "2"])
  assert scores.tolist() == [1.0, 1.0] and own_reward.CALLS[before:] == [("x", "1"), ("y", "2")]
  # A nested attribute (a static method of a class).
  assert score_batch("tests.helpers.own_reward:Scorers.length", ["abc"], ["_"]).tolist() == [3.0]


@pytest.mark.parametrize(
  "name,why",
  [
    ("tests.helpers.no_such_module:f", "module 'tests.helpers.no_such_module' failed to import"),
    ("tests.helpers.own_reward:missing", "has no attribute 'missing'"),
    ("tests.helpers.own_reward:NOT_CALLABLE", r"is not callable \(a int\)"),
    ("tests.helpers.own_reward:", r"an import path is 'package.module:attribute'"),
    ("os.path:join; rm", r"an import path is 'package.module:attribute'"),
  ],
)
def test_a_bad_import_path_says_why(name, why):
  assert name not in REWARDS
  with pytest.raises(
    ValueError, match=r"config\.reward=.*could not load it by import path: .*" + why
  ):
    REWARDS.validate(name, argument="config.reward")
  with pytest.raises(KeyError, match=why):
    REWARDS.get(name)


def test_import_paths_are_only_for_registries_that_ask_for_them():
  assert "tests.helpers.own_reward:always_right" not in MIXERS
  assert "tests.helpers.own_reward:always_right" not in Registry("thing")
  with pytest.raises(ValueError, match="choose one of") as e:
    REWARDS.validate("nope", argument="config.reward")
  assert "import path 'package.module:function'" in str(e.value)
  with pytest.raises(ValueError) as e:
    MIXERS.validate("nope", argument="config.mixer")
  assert "import path" not in str(e.value)
