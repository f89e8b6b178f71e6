"""What a finished reproduction leaves in its folder: `reproduce.json` (its fingerprint,
provenance and verdicts) and `payload.json` (what the experiment returned, from which the
verdicts are computed: `runner.rejudge` recomputes them under a changed verdict rule without
running the experiment again)."""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging

__all__ = [
  "OUTPUT_ONLY_KEYS",
  "PAYLOAD_FILE",
  "RECORD_FILE",
  "config_fingerprint",
  "load_payload",
  "load_record",
  "write_payload",
  "write_record",
]

RECORD_FILE = "reproduce.json"
PAYLOAD_FILE = "payload.json"


# Config keys that change only what a run writes for people to read, never a number it
# computes; the fingerprint leaves them out at any depth, so turning them up or down keeps
# finished runs (and the report's records) current.
OUTPUT_ONLY_KEYS = frozenset({"log_rollouts"})


def _without_output_only(value: Any) -> Any:
  if isinstance(value, dict):
    return {k: _without_output_only(v) for k, v in value.items() if k not in OUTPUT_ONLY_KEYS}
  if isinstance(value, (list, tuple)):
    return [_without_output_only(v) for v in value]
  return value


def config_fingerprint(config) -> str:
  """A stable text of everything in `config` but its `OUTPUT_ONLY_KEYS` (a finished run is
  reused only if it matches)."""
  return json.dumps(_without_output_only(config.to_dict()), sort_keys=True, default=str)


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


def _plain(value: Any) -> Any:
  """JSON for numpy scalars and arrays (payloads are dicts of lists and numbers)."""
  if hasattr(value, "tolist"):
    return value.tolist()
  raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_payload(directory: str, payload: Any) -> bool:
  """Writes `payload` to `<directory>/payload.json` atomically; False (and a warning) when it
  is not JSON (its verdicts then cannot be recomputed, the run is not affected)."""
  path = os.path.join(directory, PAYLOAD_FILE)
  try:
    text = json.dumps(payload, default=_plain)
  except (TypeError, ValueError) as e:
    logging.warning("not saving %s: the payload is not JSON (%s)", path, e)
    return False
  with open(path + ".tmp", "w") as f:
    f.write(text)
  os.replace(path + ".tmp", path)
  return True


def load_payload(directory: str) -> Any | None:
  """The `payload.json` of an experiment folder, or None."""
  path = os.path.join(directory, PAYLOAD_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)
