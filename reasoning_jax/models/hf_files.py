"""Multi-process safe writing of an export folder (used by `models.hf.to_hf`).

One concept: every process of a run calls these in the same order; arrays split across
processes are gathered one tensor at a time (`to_host`), process 0 alone writes, each file
atomically (`write_file`: a temporary name, then a rename), and after each step all processes
agree on success (`agree`), so an error (an unwritable folder, a full disk) is raised as
`ExportError` on every process and none waits forever in a collective.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from typing import Any, Callable

import jax
import numpy as np


class ExportError(OSError):
  """`to_hf` could not write its folder (raised on every process of a multi-process run)."""


# The weight files `to_hf` writes; stale ones of an earlier export are removed first, so the
# folder never mixes two layouts (a leftover index would win over a new `model.safetensors`).
_WEIGHT_FILE = re.compile(
  r"model\.safetensors|model\.safetensors\.index\.json|model-\d{5}-of-\d{5}\.safetensors"
)
# Room for one process's error message in the all-process agreement.
_MESSAGE_BYTES = 1024


def agree(error: BaseException | None, what: str) -> None:
  """Raises `ExportError` on every process if `error` is set on any (a collective on many).

  On several processes every process calls this at the same points, so it is also a barrier:
  none leaves before process 0 has finished the step that it reports on.
  """
  if jax.process_count() == 1:
    if error is not None:
      raise ExportError(f"to_hf: {what} ({type(error).__name__}: {error})") from error
    return
  from jax.experimental import multihost_utils

  local = np.zeros(1 + _MESSAGE_BYTES, np.uint8)
  if error is not None:
    message = f"{type(error).__name__}: {error}".encode()[:_MESSAGE_BYTES]
    local[0] = 1
    local[1 : 1 + len(message)] = np.frombuffer(message, np.uint8)
  gathered = np.asarray(multihost_utils.process_allgather(local))  # [processes, 1 + bytes]
  failed = [i for i in range(gathered.shape[0]) if gathered[i, 0]]
  if failed:
    message = bytes(gathered[failed[0], 1:]).rstrip(b"\0").decode(errors="replace")
    raise ExportError(f"to_hf: {what} (process {failed[0]}: {message})") from error


def prepare_directory(directory: str) -> None:
  """Creates `directory`, checks that a file can be written in it, removes stale weights."""
  os.makedirs(directory, exist_ok=True)
  with tempfile.NamedTemporaryFile(dir=directory, prefix=".to_hf-probe-"):
    pass
  for name in os.listdir(directory):
    if _WEIGHT_FILE.fullmatch(name):
      os.remove(os.path.join(directory, name))


def write_file(path: str, write: Callable[[str], None]) -> None:
  """`write(tmp)` then an atomic rename onto `path`: a failed write leaves no partial file."""
  tmp = path + ".partial"
  try:
    write(tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_json(path: str, value: Any) -> None:
  def write(tmp: str) -> None:
    with open(tmp, "w") as f:
      json.dump(value, f, indent=2)

  write_file(path, write)


def save_safetensors(path: str, tensors: dict[str, np.ndarray]) -> None:
  from safetensors.numpy import save_file  # Imported lazily: optional at package import.

  write_file(path, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))


def to_host(x: Any) -> np.ndarray:
  """The whole of `x` as a numpy array on this host.

  An array split across processes is gathered (`process_allgather`, a collective that every
  process must join in the same order); a fully replicated or fully addressable one is read
  locally. Both tests depend only on the sharding, so every process takes the same branch.
  """
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))


def plan_shards(sizes: list[tuple[str, int]], max_shard_bytes: int | None) -> list[list[str]]:
  """Tensor names per file, in order: a new file starts when the next tensor would pass the
  limit (a tensor larger than the limit gets a file of its own)."""
  shards: list[list[str]] = [[]]
  size = 0
  for name, nbytes in sizes:
    if max_shard_bytes and size and size + nbytes > max_shard_bytes:
      shards.append([])
      size = 0
    shards[-1].append(name)
    size += nbytes
  return shards
