"""Integrity of one step directory: the manifest of file sizes and CRC32s, and the checks on it.

A step is *complete* when Orbax's commit marker and commit timestamp and our `train_meta` are
present; it is *corrupt* when an item directory is missing or a file disagrees with the
`train_manifest.json` written right after the commit (size always, CRC32 on request). Each
check returns a `StepProblem` (or None) rather than raising, so the checkpointer can decide
whether to skip, fall back or raise.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from typing import Any

from etils import epath

from reasoning_jax.checkpoint.errors import StepProblem
from reasoning_jax.checkpoint.layout import (
  COMMIT_MARKER,
  FORMAT_VERSION,
  JSON_DATA_FILE,
  MANIFEST_FILE,
  META_ITEM,
  ORBAX_STEP_METADATA,
  PYTREE_METADATA,
)

_CHUNK = 8 << 20

# The file each item kind (as recorded in train_meta) must have in its directory.
_REQUIRED_FILE = {"json": JSON_DATA_FILE, "pytree": PYTREE_METADATA, "leaf": PYTREE_METADATA}


# -- File helpers ---------------------------------------------------------------------------


def read_json(path: epath.Path) -> Any:
  return json.loads(path.read_text())


def write_json_atomic(path: epath.Path, value: Any) -> None:
  tmp = path.parent / f".{path.name}.tmp"
  tmp.write_text(json.dumps(value, indent=1, sort_keys=True))
  tmp.rename(path)


def _crc32(path: epath.Path) -> int:
  crc = 0
  with path.open("rb") as f:
    while chunk := f.read(_CHUNK):
      crc = zlib.crc32(chunk, crc)
  return crc


def _walk_files(root: epath.Path) -> Iterable[epath.Path]:
  for child in sorted(root.iterdir(), key=lambda p: p.name):
    if child.is_dir():
      yield from _walk_files(child)
    else:
      yield child


def _file_size(path: epath.Path) -> int:
  return int(path.stat().length)


# -- The manifest ---------------------------------------------------------------------------


def build_manifest(step_dir: epath.Path, step: int, checksums: bool) -> dict[str, Any]:
  """The manifest of every file under `step_dir`: its size and (with `checksums`) CRC32."""
  files = {}
  for f in _walk_files(step_dir):
    rel = str(f.relative_to(step_dir))
    if rel == MANIFEST_FILE or f.name.startswith(f".{MANIFEST_FILE}"):
      continue
    entry: dict[str, int] = {"size": _file_size(f)}
    if checksums:
      entry["crc32"] = _crc32(f)
    files[rel] = entry
  return {"format_version": FORMAT_VERSION, "step": step, "files": files}


def check_manifest(path: epath.Path, *, checksums: bool) -> StepProblem | None:
  """Compares the files of step directory `path` with its manifest (if it has one)."""
  manifest_path = path / MANIFEST_FILE
  if not manifest_path.exists():
    return None
  try:
    files = read_json(manifest_path)["files"]
  except (ValueError, KeyError, OSError) as e:
    return StepProblem("corrupt", f"{MANIFEST_FILE} is unreadable: {e}")
  for rel, expected in files.items():
    f = path / rel
    if not f.exists():
      return StepProblem("corrupt", f"file {rel} is missing")
    size = _file_size(f)
    if size != expected["size"]:
      return StepProblem(
        "corrupt", f"file {rel} has {size} bytes, expected {expected['size']} (truncated?)"
      )
    if checksums and "crc32" in expected and _crc32(f) != expected["crc32"]:
      return StepProblem("corrupt", f"file {rel} fails its CRC32 check")
  return None


# -- The structure of a step ----------------------------------------------------------------


def check_structure(step: int, path: epath.Path, *, with_manifest: bool) -> StepProblem | None:
  """Commit markers, metadata, item directories and (optionally) manifest sizes."""
  if not path.is_dir():
    return StepProblem("incomplete", f"{path} does not exist")
  if not (path / COMMIT_MARKER).exists():
    return StepProblem("incomplete", f"commit marker {COMMIT_MARKER} is missing")
  try:
    orbax_meta = read_json(path / ORBAX_STEP_METADATA)
  except FileNotFoundError:
    return StepProblem("incomplete", f"{ORBAX_STEP_METADATA} is missing")
  except (ValueError, OSError) as e:
    return StepProblem("corrupt", f"{ORBAX_STEP_METADATA} is unreadable: {e}")
  if not orbax_meta.get("commit_timestamp_nsecs"):
    return StepProblem("incomplete", f"{ORBAX_STEP_METADATA} has no commit timestamp")
  try:
    meta = read_json(path / META_ITEM / JSON_DATA_FILE)
  except FileNotFoundError:
    return StepProblem(
      "corrupt", f"{META_ITEM}/{JSON_DATA_FILE} is missing (not written by TrainCheckpointer?)"
    )
  except (ValueError, OSError) as e:
    return StepProblem("corrupt", f"{META_ITEM}/{JSON_DATA_FILE} is unreadable: {e}")
  if meta.get("step") != step:
    return StepProblem("corrupt", f"{META_ITEM} records step {meta.get('step')}")
  for name, kind in meta.get("items", {}).items():
    required = _REQUIRED_FILE.get(kind)
    if required and not (path / name / required).exists():
      return StepProblem("corrupt", f"item {name!r} is missing {name}/{required}")
  if with_manifest:
    return check_manifest(path, checksums=False)
  return None
