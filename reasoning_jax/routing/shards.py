"""The benchmark's files: append-only JSONL shards with atomic completion markers.

One shard per (model, column) holds one JSON line per finished batch of queries
(`{"batch": j, "indices": [...], ...}`); `<shard>.done`, written to a temporary file and
renamed, closes it. A killed writer leaves at most a torn last line, which `read_shard` cuts
off before appends resume, so no batch is written twice. The judge's scores of a shard live in
their own shard beside it (`judge_shard_path`), under the same scheme, so a judge is added to a
finished benchmark without touching its completions (`routing.bench`).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

__all__ = [
  "DEFAULT",
  "append_record",
  "atomic_json",
  "judge_shard_path",
  "read_shard",
  "shard_path",
]

DEFAULT = "default"  # The no-instruction column's option label (`RouterConfig.option_labels`).


def _safe(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def shard_path(out_dir: str, model: str, budget: int | None) -> str:
  """The JSONL shard of (model, budget) (None: the no-instruction "default" column); its
  completion marker is this path + ".done"."""
  tag = DEFAULT if budget is None else f"b{budget}"
  return os.path.join(out_dir, "shards", f"{_safe(model)}__{tag}.jsonl")


def judge_shard_path(out_dir: str, model: str, budget: int | None, judge: str) -> str:
  """The JSONL shard of judge `judge`'s scores of (model, budget)'s completions."""
  tag = DEFAULT if budget is None else f"b{budget}"
  return os.path.join(out_dir, "shards", f"{_safe(model)}__{tag}__judge-{_safe(judge)}.jsonl")


def atomic_json(path: str, value: Any) -> None:
  """Writes `value` as JSON to `path` through a temporary file and a rename."""
  tmp = f"{path}.tmp.{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(value, f)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def append_record(path: str, record: dict[str, Any]) -> None:
  """Appends one batch record as a whole line, synced to disk."""
  with open(path, "a") as f:
    f.write(json.dumps(record) + "\n")
    f.flush()
    os.fsync(f.fileno())


def read_shard(path: str, *, repair: bool) -> dict[int, dict]:
  """Batch index -> record of the shard's whole lines (the first of any repeated batch). With
  `repair`, a torn last line is cut off so that appends start on a fresh line."""
  if not os.path.exists(path):
    return {}
  records: dict[int, dict] = {}
  good = 0
  with open(path, "rb") as f:
    data = f.read()
  pos = 0
  while pos < len(data):
    end = data.find(b"\n", pos)
    if end < 0:
      break  # no newline: a torn write
    try:
      rec = json.loads(data[pos:end])
    except json.JSONDecodeError:
      break
    records.setdefault(int(rec["batch"]), rec)
    pos = good = end + 1
  if repair and good < len(data):
    with open(path, "r+b") as f:
      f.truncate(good)
  return records
