"""Head-role maps: validated against a model, saved beside its checkpoint, loaded for decoding.

A role map is `[num_layers, num_kv_heads]` booleans, True = retrieval head (LycheeDecode; in
DuoAttention the full-attention heads), False = sparse (streaming) head. Learned maps are saved
as `roles.json` in the model's run or checkpoint directory together with the gate parameters
they came from and the model shape, so a decode run can check it was given the right model.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

ROLES_FILE = "roles.json"
FORMAT = "reasoning_jax.sparse.roles/1"


def check_roles(roles: Any, model_config: Any, *, argument: str = "roles") -> np.ndarray:
  """`roles` as a bool `[L, K]` array; raises unless it matches the model's shape."""
  array = np.asarray(roles)
  want = (model_config.num_layers, model_config.num_kv_heads)
  if array.shape != want:
    raise ValueError(
      f"{argument} has shape {array.shape} but the model has [num_layers, num_kv_heads] = "
      f"{list(want)}"
    )
  if array.dtype != bool and not np.all((array == 0) | (array == 1)):
    raise ValueError(f"{argument} must hold booleans (True = retrieval head)")
  return array.astype(bool)


def save_roles(
  directory: str,
  roles: Any,
  *,
  method: str,
  model_config: Any,
  gates: dict[str, Any] | None = None,
  metadata: dict[str, Any] | None = None,
) -> str:
  """Writes `directory/roles.json` (atomically); returns its path."""
  array = check_roles(roles, model_config)
  record = dict(
    format=FORMAT,
    method=method,
    shape=list(array.shape),
    roles=array.astype(int).tolist(),
    retrieval_heads=int(array.sum()),
    gates={k: np.asarray(v, np.float64).tolist() for k, v in (gates or {}).items()},
    metadata=dict(metadata or {}),
  )
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, ROLES_FILE)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(record, f, indent=1)
  os.replace(tmp, path)
  return path


def load_roles(path: str, model_config: Any | None = None) -> tuple[np.ndarray, dict[str, Any]]:
  """Reads a role map (a `roles.json` or the directory holding one) -> `(roles, record)`."""
  if os.path.isdir(path):
    path = os.path.join(path, ROLES_FILE)
  try:
    with open(path) as f:
      record = json.load(f)
  except FileNotFoundError:
    raise FileNotFoundError(f"no role map at {path} (train one with sparse.train_roles)") from None
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not a valid role map ({e})") from None
  if record.get("format") != FORMAT or "roles" not in record:
    raise ValueError(f"{path} is not a role map written by save_roles (format {FORMAT!r})")
  roles = np.asarray(record["roles"], bool)
  if model_config is not None:
    check_roles(roles, model_config, argument=f"the role map in {path}")
  return roles, record
