"""REPORT.md: every reproduction's claim, verdicts, tables, plots and provenance in one page.

The report covers every registered reproduction: the ones run now (their records), the ones
finished earlier in the same workdir (their `reproduce.json`), the ones archived in the report
folder by an earlier report, and lists the others as not run. Tables are the experiments' own
`results.md`; plots are linked.

When the report goes to another folder (e.g. `docs/report/`, which the documentation site
includes), each reported experiment's record, `results.md` and figures are archived there as
`<report_dir>/<name>/`. The next report into that folder reuses them for the experiments it
did not run, so the full suite (hours on a CPU) can be brought up to date a few experiments at
a time, on any machine: a record's fingerprint holds the config with its output folders as
placeholders, so an archived record made with another config than the current one is marked
stale.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any

from reasoning_jax.reproduce.registry import NOT_REPRODUCED, Reproduction, ordered
from reasoning_jax.reproduce.records import RECORD_FILE, config_fingerprint, load_record

__all__ = ["REPORT_FILE", "nest_headings", "write_report"]

REPORT_FILE = "REPORT.md"


def _record_for(
  entry: Reproduction, suite: str, folders: list[str], records
) -> tuple[dict[str, Any] | None, str | None]:
  """(record, the folder holding its files): this run's, else the first current one found in
  `folders` (the workdir, then the report's archive), else the first stale one."""
  if entry.name in records:
    return records[entry.name], folders[0]
  fingerprint = config_fingerprint(entry.fingerprint_config(suite))
  stale = None
  for folder in folders:
    record = load_record(folder)
    if record is None or record.get("suite", suite) != suite:
      continue
    if record.get("fingerprint") in (None, fingerprint):  # None: carried over (see _section)
      return record, folder
    if stale is None:
      stale = ({**record, "stale": True}, folder)
  return stale or (None, None)


def _archive(folder: str, target: str, figures) -> None:
  """Copies a finished experiment's record, `results.md` and figures to `target`."""
  if os.path.abspath(folder) == os.path.abspath(target):
    return
  os.makedirs(target, exist_ok=True)
  for name in (RECORD_FILE, "results.md", *figures):
    source = os.path.join(folder, name)
    if os.path.exists(source):
      shutil.copyfile(source, os.path.join(target, name))


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


def nest_headings(markdown: str, top: int) -> str:
  """`markdown` with its heading levels renumbered `top`, `top + 1`, ... in their order.

  An experiment's `results.md` is a page of its own (some start with a `#` title); inside a
  report section (`##`) its headings must nest below it, keep their order of rank and skip no
  level (`#` then `###` breaks the docs build: it becomes `###` then `####`). Fenced code is
  left alone.
  """
  lines = markdown.split("\n")
  fenced, levels = False, {}
  for i, line in enumerate(lines):
    if line.lstrip().startswith(("```", "~~~")):
      fenced = not fenced
    elif not fenced:
      level = len(line) - len(line.lstrip("#"))
      if 1 <= level <= 6 and line[level : level + 1] == " ":
        levels[i] = level
  if not levels:
    return markdown
  rank = {level: top + k for k, level in enumerate(sorted(set(levels.values())))}
  for i, level in levels.items():
    lines[i] = "#" * min(6, rank[level]) + lines[i][level:]
  return "\n".join(lines)


def _section(entry: Reproduction, record, suite: str, folder: str | None) -> list[str]:
  lines = [f"## {entry.name}: {entry.title}", ""]
  lines += [f"**Claim tested.** {entry.claim}", ""]
  lines += [
    f"**Command** (full size): `{entry.command}`; expected time: "
    f"{entry.full_time or 'not stated'}. In this suite: `python -m experiments.reproduce "
    f"--suite={suite} --only={entry.name}`.",
    "",
  ]
  if record is None:
    return lines + ["Not run in this workdir, nor archived in the report folder.", ""]
  if record["status"] != "done":
    return lines + [f"**Failed:** `{record.get('error', 'unknown error')}`", ""]
  if record.get("stale"):
    lines += ["*This result was made with another config than the current one (stale).*", ""]
  if record.get("carried_over"):
    lines += [f"*{record['carried_over']}*", ""]
  lines += ["**Verdicts.**", ""]
  lines += [f"- {v['method']}: **{v['status']}**. {v['reason']}" for v in record["verdicts"]]
  if record.get("rejudged"):
    r = record["rejudged"]
    before = ", ".join(f"{v['method']} {v['status']}" for v in r["previous"])
    lines += [
      "",
      f"*Verdicts recomputed from this run's saved payload on {r['date_utc']} UTC by the "
      f"verdict rule of commit `{r['commit']}` (the run and its tables are unchanged); "
      f"before: {before}.*",
    ]
  lines += ["", "**Provenance.**", ""] + _provenance_lines(record) + [""]
  results = os.path.join(folder, "results.md")
  if os.path.exists(results):
    with open(results) as f:
      text = nest_headings(f.read().strip(), top=3)
      lines += ["**Results** (the experiment's `results.md`).", "", text, ""]
  for figure in entry.figures:
    if os.path.exists(os.path.join(folder, figure)):
      lines += [f"![{entry.name}: {figure}]({entry.name}/{figure})", ""]
  return lines


def write_report(
  workdir: str, suite: str, records: Mapping[str, Any], *, report_dir: str | None = None
) -> str:
  """Writes `REPORT.md` (into `report_dir`, default `workdir`) and returns its path.

  An experiment neither run now nor finished in `workdir` is taken from the archive in
  `report_dir` when an earlier report left it there; every reported experiment is archived
  into `report_dir` (see the module docstring).
  """
  out = os.path.abspath(report_dir or workdir)
  os.makedirs(out, exist_ok=True)
  entries = ordered()
  found, folders = {}, {}
  for e in entries:
    candidates = list(dict.fromkeys([os.path.join(workdir, e.name), os.path.join(out, e.name)]))
    found[e.name], folders[e.name] = _record_for(e, suite, candidates, records)
    if found[e.name] is not None and found[e.name]["status"] == "done":
      _archive(folders[e.name], os.path.join(out, e.name), e.figures)
      folders[e.name] = os.path.join(out, e.name)
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
    lines += _section(entry, found[entry.name], suite, folders[entry.name])
  path = os.path.join(out, REPORT_FILE)
  with open(path, "w") as f:
    f.write("\n".join(lines).rstrip() + "\n")
  return path
