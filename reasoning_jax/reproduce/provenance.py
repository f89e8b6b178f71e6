"""Where a result came from: the code's commit, the package versions, the devices, the time."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from typing import Any

__all__ = ["PACKAGES", "collect", "git_commit"]

# The packages whose versions change results (the numerics stack and the input pipeline).
PACKAGES = (
  "jax",
  "jaxlib",
  "flax",
  "optax",
  "orbax-checkpoint",
  "grain",
  "tensorflow-datasets",
  "numpy",
  "ml-collections",
  "reasoning_jax",
)


def git_commit(root: str) -> str:
  """HEAD of the checkout at `root`, with "+dirty" for uncommitted changes to tracked files;
  "unknown" outside a git checkout."""
  try:
    head = subprocess.run(
      ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()
    dirty = subprocess.run(
      ["git", "status", "--porcelain", "--untracked-files=no"],
      cwd=root,
      capture_output=True,
      text=True,
      check=True,
    ).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"
  return head + ("+dirty" if dirty else "")


def _version(package: str) -> str:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return "not installed"


def collect(root: str) -> dict[str, Any]:
  """Provenance of a run started now from the checkout at `root`."""
  import jax

  devices = jax.devices()
  return {
    "commit": git_commit(root),
    "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
    "python": platform.python_version(),
    "packages": {p: _version(p) for p in PACKAGES},
    "platform": devices[0].platform,
    "device_kind": devices[0].device_kind,
    "device_count": len(devices),
    "process_count": jax.process_count(),
    "host": f"{platform.machine()}, {os.cpu_count()} CPU cores",
  }
