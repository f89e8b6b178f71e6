"""Conversion of records read from TFDS data sources into plain Python values."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["decode_example"]


def _decode_value(value: Any) -> Any:
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, np.ndarray):
    if value.dtype == object or value.dtype.kind == "S":
      return [_decode_value(v) for v in value.tolist()]
    return value.tolist() if value.ndim else value.item()
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, (list, tuple)):
    return [_decode_value(v) for v in value]
  if isinstance(value, Mapping):
    return {k: _decode_value(v) for k, v in value.items()}
  return value


def decode_example(example: Mapping[str, Any]) -> dict[str, Any]:
  """Turns a record read from a data source into plain Python values.

  `bytes` become `str`, numpy scalars become `int`/`float` and numpy arrays
  become lists, recursively.

  Args:
    example: A record (`source[i]`).

  Returns:
    A new dict.
  """
  if not isinstance(example, Mapping):
    raise TypeError(f"example must be a dict, got {type(example).__name__}")
  return {k: _decode_value(v) for k, v in example.items()}
