"""Writing an experiment's `results.json` and `results.md` into its workdir."""

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
