"""Whether a value saved with a run still matches the current config's.

Every "train once, reuse afterwards" path (the RL warm start, `evaluate.trained_model`, the
ReMiT experiment's runs) compares the config stored with a checkpoint against the current
one before reusing the checkpoint. They compare through `same_value`, so that:

* tuples equal lists and ConfigDicts equal dicts (a JSON round trip, as the checkpoint
  stores them);
* inside a dict, a key only one side has counts as equal when the other side's value is
  unset ("", None, empty): a config field added later with its "off" default (e.g.
  `config.model.remat`) keeps the runs saved before it reusable, while a field set to
  anything else still marks them as made under another config.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["as_json", "same_value"]

_ABSENT = object()


def as_json(value: Any) -> Any:
  """`value` as the JSON round trip stores it (tuples become lists, ConfigDicts dicts)."""
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  return json.loads(json.dumps(value, default=list))


def _unset(value: Any) -> bool:
  return value is None or value == "" or (isinstance(value, (list, dict)) and not value)


def _same(saved: Any, wanted: Any) -> bool:
  if isinstance(saved, dict) and isinstance(wanted, dict):
    for key in set(saved) | set(wanted):
      a, b = saved.get(key, _ABSENT), wanted.get(key, _ABSENT)
      if a is _ABSENT or b is _ABSENT:
        if not _unset(b if a is _ABSENT else a):
          return False
      elif not _same(a, b):
        return False
    return True
  return saved == wanted


def same_value(saved: Any, wanted: Any) -> bool:
  """True when a saved config value and the current one mean the same run (see above)."""
  return _same(as_json(saved), as_json(wanted))
