"""`reasoning_jax.validation.check_config_types`: the key and type checks the SFT, RL and
CPMöbius configs share."""

import jax
import ml_collections
import numpy as np
import pytest

from reasoning_jax.validation import check_config_types, is_concrete


class MyError(ValueError):
  pass


TYPES = {"steps": int, "lr": float, "name": str, "mesh": dict, "sub": ml_collections.ConfigDict}


def _config(**changes):
  c = ml_collections.ConfigDict(
    {"steps": 3, "lr": 0.1, "name": "x", "mesh": {"data": -1}, "sub": {"a": 1}}
  )
  for key, value in changes.items():
    c[key] = value
  return c


def test_accepts_the_types_an_int_for_a_float_and_configdicts_as_dicts():
  check_config_types(_config(), TYPES, error=MyError)
  check_config_types(_config(lr=1), TYPES, error=MyError)  # An int passes for a float.
  check_config_types({"eos": [1, 2]}, {"eos": (tuple, list)})


@pytest.mark.parametrize(
  "changes,message",
  [
    (dict(steps=True), r"^config\.steps must be int, got bool True$"),
    (dict(steps=2.0), r"^config\.steps must be int, got float 2\.0$"),
    (dict(lr="0.1"), r"^config\.lr must be float, got str '0\.1'$"),
    (dict(name=3), r"^config\.name must be str, got int 3$"),
  ],
)
def test_a_wrong_type_names_the_key(changes, message):
  c = ml_collections.ConfigDict(_config().to_dict(), type_safe=False)
  for key, value in changes.items():
    c[key] = value
  with pytest.raises(MyError, match=message):
    check_config_types(c, TYPES, error=MyError)


def test_a_missing_key_and_a_tuple_of_types():
  with pytest.raises(MyError, match=r"^config\.extra is missing$"):
    check_config_types(_config(), {**TYPES, "extra": int}, error=MyError)
  with pytest.raises(ValueError, match=r"^config\.eos must be tuple or list, got int 1$"):
    check_config_types({"eos": 1}, {"eos": (tuple, list)})


def test_is_concrete():
  assert is_concrete(np.ones(2)) and is_concrete(jax.numpy.ones(2)) and is_concrete(3)
  seen = []
  jax.jit(lambda x: seen.append(is_concrete(x)) or x)(np.ones(2))
  assert seen == [False]  # A tracer.
