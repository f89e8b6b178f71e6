"""The on-disk layout of a checkpoint directory: names, the format version, step and item names.

A checkpoint directory holds one directory per committed step, named by the step number; each
step directory holds Orbax's files, one directory per item and our `train_meta` item and
`train_manifest.json` (the full picture is in the `reasoning_jax.checkpoint` docstring). This
module names those files and checks the two names a caller chooses: step numbers and item names.
"""

from __future__ import annotations

import operator
import re
from typing import Any

from etils import epath

from reasoning_jax.validation import check_positive_int

FORMAT_VERSION = 1
META_ITEM = "train_meta"
MANIFEST_FILE = "train_manifest.json"
COMMIT_MARKER = "commit_success.txt"
ORBAX_STEP_METADATA = "_CHECKPOINT_METADATA"
PYTREE_METADATA = "_METADATA"
JSON_DATA_FILE = "data.json"
DEFAULT_JSON_ITEMS = ("data_state", "config")
RESERVED_ITEMS = frozenset({META_ITEM, "metrics", "descriptor"})
ITEM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
STEP_DIR = re.compile(r"[0-9]+")

State = dict[str, Any]


def check_step(step: Any) -> int:
  """`step` as an int; raises TypeError unless it is an integer, ValueError if negative."""
  try:
    value = int(operator.index(step))
  except TypeError:
    raise TypeError(f"step must be an int, got {type(step).__name__}") from None
  check_positive_int(value, "step", minimum=0)
  return value


def check_item_name(name: Any) -> None:
  """Raises ValueError unless `name` can name an item directory and is not reserved."""
  if not isinstance(name, str) or not ITEM_NAME.fullmatch(name):
    raise ValueError(f"state item names must match {ITEM_NAME.pattern}, got {name!r}")
  if name in RESERVED_ITEMS:
    raise ValueError(f"state item name {name!r} is reserved")


def step_dirs(directory: epath.Path) -> list[int]:
  """The steps that have a directory under `directory` (complete or not), ascending."""
  if not directory.exists():
    return []
  return sorted(
    int(p.name) for p in directory.iterdir() if STEP_DIR.fullmatch(p.name) and p.is_dir()
  )
