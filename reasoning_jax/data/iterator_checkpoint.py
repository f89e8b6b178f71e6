"""Checkpointable iterators: a grain iterator's position as a JSON-serialisable dict, and back.

`state = iterator_state(it)` is a JSON-serialisable dict and `restore_iterator(iter(ds), state)`
continues with exactly the batch that `it` would have produced next (with or without worker
processes; restore into a dataset built with the same arguments, `worker_count` included).
"""

from __future__ import annotations

import base64
import json
from typing import Any, Mapping

import numpy as np

_STATE_KEY = "reasoning_jax_iterator_state"
_STATE_VERSION = 1


def _encode_state(x: Any) -> Any:
  """Makes a grain state JSON-safe, reversibly (see `_decode_state`)."""
  if x is None or isinstance(x, (bool, str)):
    return x
  if isinstance(x, (int, float)):
    return x
  if isinstance(x, np.generic):
    return _encode_state(x.item())
  if isinstance(x, bytes):
    return {"__bytes__": base64.b64encode(x).decode("ascii")}
  if isinstance(x, np.ndarray):
    return {"__ndarray__": x.tolist(), "dtype": str(x.dtype)}
  if isinstance(x, tuple):
    return {"__tuple__": [_encode_state(v) for v in x]}
  if isinstance(x, list):
    return [_encode_state(v) for v in x]
  if isinstance(x, Mapping):
    if all(isinstance(k, str) and not k.startswith("__") for k in x):
      return {k: _encode_state(v) for k, v in x.items()}
    return {"__items__": [[_encode_state(k), _encode_state(v)] for k, v in x.items()]}
  raise TypeError(f"cannot serialise iterator state component of type {type(x).__name__}")


def _decode_state(x: Any) -> Any:
  if isinstance(x, list):
    return [_decode_state(v) for v in x]
  if isinstance(x, dict):
    if "__bytes__" in x:
      return base64.b64decode(x["__bytes__"])
    if "__ndarray__" in x:
      return np.asarray(x["__ndarray__"], dtype=x["dtype"])
    if "__tuple__" in x:
      return tuple(_decode_state(v) for v in x["__tuple__"])
    if "__items__" in x:
      return {_decode_state(k): _decode_state(v) for k, v in x["__items__"]}
    return {k: _decode_state(v) for k, v in x.items()}
  return x


def iterator_state(it: Any) -> dict[str, Any]:
  """Returns the iterator's position as a JSON-serialisable dict.

  Args:
    it: An iterator from `iter(make_sft_dataset(...))` or any grain iterator.

  Returns:
    A dict that `json.dumps` accepts; pass it (or its JSON round trip) to
    `restore_iterator`.

  Raises:
    TypeError: If `it` has no `get_state`.
  """
  if not hasattr(it, "get_state"):
    raise TypeError(f"it must be a grain iterator with get_state(), got {type(it).__name__}")
  state = {_STATE_KEY: _STATE_VERSION, "grain": _encode_state(it.get_state())}
  json.dumps(state)  # Guarantees the promise in the docstring.
  return state


def restore_iterator(it: Any, state: Mapping[str, Any]) -> Any:
  """Moves a fresh iterator of the same dataset to a saved position.

  Args:
    it: An iterator of a dataset built with the same arguments (e.g. `iter(ds)`).
    state: A dict from `iterator_state` (possibly after a JSON round trip).

  Returns:
    `it`, whose next batch is the one the saved iterator would have produced next.

  Raises:
    TypeError: If `it` has no `set_state`.
    ValueError: If `state` did not come from `iterator_state`.
  """
  if not hasattr(it, "set_state"):
    raise TypeError(f"it must be a grain iterator with set_state(), got {type(it).__name__}")
  if not isinstance(state, Mapping) or state.get(_STATE_KEY) != _STATE_VERSION:
    raise ValueError("state must be a dict returned by iterator_state()")
  it.set_state(_decode_state(state["grain"]))
  return it
