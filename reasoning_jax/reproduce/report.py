"""REPORT.md: every reproduction's claim, verdicts, tables, plots and provenance in one page.

The report covers every registered reproduction: the ones run now (their records), the ones
finished earlier in the same workdir (their `reproduce.json`), and lists the others as not
run. Tables are the experiments' own `results.md`; plots are linked (and copied when the
report goes to another folder, e.g. `docs/report/`, which the documentation site includes).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any

from reasoning_jax.reproduce.registry import NOT_REPRODUCED, Reproduction, ordered
from reasoning_jax.reproduce.records import config_fingerprint, load_record

__all__ = ["REPORT_FILE", "write_report"]

REPORT_FILE = "REPORT.md"


def _record_for(entry: Reproduction, suite: str, workdir: str, records) -> dict[str, Any] | None:
  if entry.name in records:
    return records[entry.name]
  directory = os.path.join(workdir, entry.name)
  record = load_record(directory)
  if record is None:
    return None
  config = entry.make_config(suite, directory=directory, root=workdir)
  if record.get("fingerprint") != config_fingerprint(config):
    record = {**record, "stale": True}
  return record


def _provenance_lines(record: Mapping[str, Any]) -> list[str]:
  p = record["provenance"]
  packages = ", ".join(f"{k} {v}" for k, v in p["packages"].items())
  return [
    f"- commit `{p['commit']}`, run {p['date_utc']} UTC, wall time {record['wall_s']:.0f} s",
    f"- device: {p['device_count']} x {p['device_kind']} ({p['platform']}), "
    f"{p['process_count']} process(es), host {p['host']}; Python {p['python']}",
    f"- packages: {packages}",
    f"- seeds: {tuple(record.get('seeds', ()))}; config `{record['config_file']}` variant "
    f"`{record['variant'] or '(default)'}`",
  ]


def _section(entry: Reproduction, record, suite: str, workdir: str, out: str) -> list[str]:
  lines = [f"## {entry.name}: {entry.title}", ""]
  lines += [f"**Claim tested.** {entry.claim}", ""]
  lines += [
    f"**Command** (full size): `{entry.command}`; expected time: "
    f"{entry.full_time or 'not stated'}. In this suite: `python -m experiments.reproduce "
    f"--suite={suite} --only={entry.name}`.",
    "",
  ]
  if record is None:
    return lines + ["Not run in this workdir.", ""]
  if record["status"] != "done":
    return lines + [f"**Failed:** `{record.get('error', 'unknown error')}`", ""]
  if record.get("stale"):
    lines += ["*This result was made with another config than the current one (stale).*", ""]
  lines += ["**Verdicts.**", ""]
  lines += [f"- {v['method']}: **{v['status']}**. {v['reason']}" for v in record["verdicts"]]
  lines += ["", "**Provenance.**", ""] + _provenance_lines(record) + [""]
  directory = os.path.join(workdir, entry.name)
  results = os.path.join(directory, "results.md")
  if os.path.exists(results):
    with open(results) as f:
      lines += ["**Results** (the experiment's `results.md`).", "", f.read().strip(), ""]
  for figure in entry.figures:
    source = os.path.join(directory, figure)
    if not os.path.exists(source):
      continue
    target = os.path.join(out, entry.name, figure)
    if os.path.abspath(source) != os.path.abspath(target):
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.copyfile(source, target)
    lines += [f"![{entry.name}: {figure}]({entry.name}/{figure})", ""]
  return lines


def write_report(
  workdir: str, suite: str, records: Mapping[str, Any], *, report_dir: str | None = None
) -> str:
  """Writes `REPORT.md` (into `report_dir`, default `workdir`) and returns its path."""
  out = os.path.abspath(report_dir or workdir)
  os.makedirs(out, exist_ok=True)
  entries = ordered()
  found = {e.name: _record_for(e, suite, workdir, records) for e in entries}
  lines = [
    f"# Reproduction report ({suite} suite)",
    "",
    f"Made by `python -m experiments.reproduce --suite={suite}`. Each experiment's section "
    "gives the claim it tests, the exact command, its provenance (commit, package versions, "
    "device, seeds, wall time), its tables and plots.",
  ]
  if suite == "quick":
    lines += [
      "",
      "**Quick suite: tiny sizes.** These runs check that every experiment runs end to end "
      "and fills its tables; their numbers and verdicts say nothing about the methods. The "
      "`full` suite gives the verdicts the documentation quotes.",
    ]
  lines += [
    "",
    "## Verdicts",
    "",
    "| method | experiment | verdict | evidence |",
    "|---|---|---|---|",
  ]
  for entry in entries:
    record = found[entry.name]
    if record is None or record["status"] != "done":
      state = "not run" if record is None else "failed"
      for method in entry.methods:
        lines.append(f"| {method} | {entry.name} | {state} | |")
      continue
    for v in record["verdicts"]:
      lines.append(f"| {v['method']} | {entry.name} | {v['status']} | {v['reason']} |")
  lines += ["", "Method pages without a reproduction experiment:", ""]
  lines += [f"- {name}: {why}." for name, why in NOT_REPRODUCED.items()]
  lines.append("")
  for entry in entries:
    lines += _section(entry, found[entry.name], suite, workdir, out)
  path = os.path.join(out, REPORT_FILE)
  with open(path, "w") as f:
    f.write("\n".join(lines).rstrip() + "\n")
  return path
