"""Writing an experiment's `results.json` and `results.md`, and its per-run JSON records."""

from __future__ import annotations

import json
import os
from typing import Any


def write_results(workdir: str, payload: dict[str, Any], markdown: str) -> None:
  """`<workdir>/results.json` (the payload; non-JSON values as strings) and `results.md`."""
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(payload, f, indent=2, default=str)
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write(markdown)


def shown_path(path: str, workdir: str) -> str:
  """`path` as a results table should name it: `<workdir>/...` when it lies inside `workdir`.

  An absolute path under this machine's output folder means nothing on another machine (or in
  the report archived in `docs/report/`); paths elsewhere (a user's checkpoint) stay as given.
  """
  path = str(path)
  root = os.path.abspath(workdir)
  full = os.path.abspath(path)
  if full == root or full.startswith(root + os.sep):
    return os.path.join("<workdir>", os.path.relpath(full, root))
  return path


def write_json(path: str, payload: Any, **dump_kwargs: Any) -> None:
  """`payload` as JSON at `path`, atomically (a killed run never leaves half a record)."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f, **dump_kwargs)
  os.replace(tmp, path)


def read_json(path: str) -> Any:
  """The JSON at `path`, None when there is no such file (a run not finished yet)."""
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)
