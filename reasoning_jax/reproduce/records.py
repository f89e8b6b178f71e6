"""What a finished reproduction leaves in its folder: `reproduce.json` and its fingerprint."""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging

__all__ = ["RECORD_FILE", "config_fingerprint", "load_record", "write_record"]

RECORD_FILE = "reproduce.json"


def config_fingerprint(config) -> str:
  """A stable text of everything in `config` (a finished run is reused only if it matches)."""
  return json.dumps(config.to_dict(), sort_keys=True, default=str)


def load_record(directory: str) -> dict[str, Any] | None:
  """The `reproduce.json` of a finished experiment folder, or None."""
  path = os.path.join(directory, RECORD_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    logging.warning("ignoring unreadable %s (%s)", path, e)
    return None


def write_record(directory: str, record: dict[str, Any]) -> None:
  """Writes `record` to `<directory>/reproduce.json` atomically (temporary file + rename)."""
  path = os.path.join(directory, RECORD_FILE)
  with open(path + ".tmp", "w") as f:
    json.dump(record, f, indent=2, default=str)
  os.replace(path + ".tmp", path)
