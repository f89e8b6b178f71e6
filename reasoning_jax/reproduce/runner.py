"""Runs the registered reproductions of a suite, resumably, and writes the report.

Layout of `workdir` (default `outputs/reproduce/<suite>`): one folder per experiment
(`<workdir>/<name>/`, the experiment's own outputs: `results.md`, `results.json`, plots,
`CITATIONS.bib`, `reproduce.json`: the config fingerprint, provenance, wall time and
verdicts of the finished run, and `payload.json`: what the experiment returned), folders
shared between experiments (the RL warm start), and `REPORT.md`. An experiment whose
`reproduce.json` matches its current config is skipped (`force=True` deletes its folder and
runs it again); one stopped midway resumes from what its own code keeps (RL checkpoints,
the recall sweep's finished runs, the SFT checkpoints of the models it trains).

`rejudge(workdir, only)` recomputes the verdicts of finished runs from their `payload.json`
under the current verdict functions (after a verdict rule is corrected), and marks the
record so that the report says so; the results themselves are not touched.
"""

from __future__ import annotations

import os
import shutil
import time
import traceback
from collections.abc import Sequence
from typing import Any

from absl import logging

from reasoning_jax.reproduce import provenance
from reasoning_jax.reproduce.records import (
  config_fingerprint,
  load_payload,
  load_record,
  write_payload,
  write_record,
)
from reasoning_jax.reproduce.registry import SUITES, Reproduction, ordered, repo_root
from reasoning_jax.reproduce.report import write_report

__all__ = ["default_workdir", "rejudge", "run_one", "run_suite", "select"]


def default_workdir(suite: str) -> str:
  return os.path.join("outputs", "reproduce", suite)


def select(only: Sequence[str] | None) -> list[Reproduction]:
  """The registered reproductions named in `only` (all when empty), in registry order."""
  entries = ordered()
  names = [e.name for e in entries]
  only = [n.strip() for n in (only or []) if n.strip()]
  unknown = [n for n in only if n not in names]
  if unknown:
    raise ValueError(f"--only names unknown reproductions {unknown}; registered: {names}")
  return [e for e in entries if not only or e.name in only]


def run_one(entry: Reproduction, suite: str, workdir: str, *, force: bool) -> dict[str, Any]:
  """Runs (or reuses) one reproduction; returns its record (status "done" or "failed")."""
  directory = os.path.join(workdir, entry.name)
  config = entry.make_config(suite, directory=directory, root=workdir)
  fingerprint = config_fingerprint(entry.fingerprint_config(suite))
  record = load_record(directory)
  if record is not None and record.get("fingerprint") == fingerprint and not force:
    logging.info("%s: finished earlier (%s); --force runs it again", entry.name, directory)
    return record
  if force and os.path.isdir(directory):
    shutil.rmtree(directory)
  os.makedirs(directory, exist_ok=True)
  record = {
    "name": entry.name,
    "suite": suite,
    "variant": entry.variants[suite],
    "config_file": entry.config,
    "fingerprint": fingerprint,
    "seeds": list(config.get("seeds", ())),
    "provenance": provenance.collect(repo_root()),
  }
  start = time.time()
  try:
    payload = entry.run(config)
    write_payload(directory, payload)
    record["verdicts"] = [v.__dict__ for v in entry.verdict(payload)]
    record["status"] = "done"
  except Exception as e:  # Reported and recorded; the suite goes on with the others.
    logging.error("%s failed:\n%s", entry.name, traceback.format_exc())
    record["status"] = "failed"
    record["error"] = f"{type(e).__name__}: {e}"
  record["wall_s"] = time.time() - start
  if record["status"] == "done":
    write_record(directory, record)
  return record


def rejudge(workdir: str, only: Sequence[str] | None = None) -> dict[str, list[str]]:
  """Recomputes the verdicts of the finished runs in `workdir` (those named in `only`, all
  when empty) from their `payload.json`; returns {name: [method: old -> new status]} for the
  records whose verdicts changed. A changed record keeps its old statuses and the commit of
  the rule that replaced them under "rejudged"."""
  changed = {}
  for entry in select(only):
    directory = os.path.join(workdir, entry.name)
    record, payload = load_record(directory), load_payload(directory)
    if record is None or record.get("status") != "done":
      continue
    if payload is None:
      logging.warning("%s: no payload.json in %s, its verdicts stay", entry.name, directory)
      continue
    verdicts = [v.__dict__ for v in entry.verdict(payload)]
    if verdicts == record["verdicts"]:
      continue
    old = {v["method"]: v["status"] for v in record["verdicts"]}
    changed[entry.name] = [
      f"{v['method']}: {old.get(v['method'], '-')} -> {v['status']}" for v in verdicts
    ]
    record["rejudged"] = {
      "commit": provenance.git_commit(repo_root()),
      "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
      "previous": record["verdicts"],
    }
    record["verdicts"] = verdicts
    write_record(directory, record)
    logging.info("%s: verdicts recomputed: %s", entry.name, "; ".join(changed[entry.name]))
  return changed


def run_suite(
  suite: str,
  *,
  workdir: str | None = None,
  only: Sequence[str] | None = None,
  force: bool = False,
  report_dir: str | None = None,
) -> dict[str, Any]:
  """Runs the selected reproductions of `suite` and writes the report.

  Args:
    suite: "quick" (tiny sizes, minutes) or "full" (the sizes the docs quote).
    workdir: where outputs go (default `outputs/reproduce/<suite>`).
    only: reproduction names (default: all registered).
    force: rerun experiments that finished earlier.
    report_dir: where REPORT.md and its figures go (default `workdir`).

  Returns:
    `{"report": path of REPORT.md, "records": {name: record}, "failed": [names]}`.
  """
  if suite not in SUITES:
    raise ValueError(f"--suite must be one of {SUITES}, got {suite!r}")
  workdir = os.path.abspath(workdir or default_workdir(suite))
  entries = select(only)
  os.makedirs(workdir, exist_ok=True)
  records = {}
  start = time.time()
  for i, entry in enumerate(entries):
    logging.info(
      "[%d/%d] %s (%s suite; full size: %s), %.0f s so far",
      i + 1,
      len(entries),
      entry.name,
      suite,
      entry.full_time or "time not stated",
      time.time() - start,
    )
    records[entry.name] = run_one(entry, suite, workdir, force=force)
    logging.info(
      "[%d/%d] %s: %s in %.0f s",
      i + 1,
      len(entries),
      entry.name,
      records[entry.name]["status"],
      records[entry.name].get("wall_s", 0.0),
    )
  report = write_report(workdir, suite, records, report_dir=report_dir)
  failed = [n for n, r in records.items() if r["status"] != "done"]
  logging.info("report: %s (%.0f s in all; failed: %s)", report, time.time() - start, failed)
  return {"report": report, "records": records, "failed": failed}
