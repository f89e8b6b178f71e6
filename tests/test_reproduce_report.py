"""The report's archive: records keyed by a path-free fingerprint, reused from `report_dir`.

A full suite takes hours on a CPU, so `docs/report/` is brought up to date a few experiments
at a time: each report archives the records, tables and figures it shows, and the next one
reuses them for the experiments it did not run (current, stale or carried over)."""

from __future__ import annotations

import json
import os
import pathlib

from reasoning_jax.reproduce import REPRODUCTIONS, write_report
from reasoning_jax.reproduce.records import RECORD_FILE, config_fingerprint, write_record
from reasoning_jax.reproduce.report import nest_headings
from reasoning_jax.reproduce.runner import run_one

_ENTRY = "induction"


def _section(report: str, name: str) -> str:
  return report.split(f"## {name}: ", 1)[1].split("\n## ", 1)[0]


def _finished(folder, fingerprint, reason="1-layer momentum 1.000 vs softmax 0.146", **extra):
  """Writes what a finished experiment leaves: its record, results.md and its figure."""
  os.makedirs(folder, exist_ok=True)
  record = {
    "name": _ENTRY,
    "suite": "full",
    "variant": "",
    "config_file": "configs/induction.py",
    "fingerprint": fingerprint,
    "seeds": [0, 1, 2],
    "provenance": {
      "commit": "abc",
      "date_utc": "2026-12-06 00:00:00",
      "python": "3.11",
      "packages": {"jax": "0.10.2"},
      "platform": "cpu",
      "device_kind": "cpu",
      "device_count": 1,
      "process_count": 1,
      "host": "x86_64",
    },
    "wall_s": 276.0,
    "status": "done",
    "verdicts": [{"method": "momentum_attention", "status": "reproduced", "reason": reason}],
    **extra,
  }
  write_record(str(folder), record)
  (folder / "results.md").write_text("| model | final accuracy |\n|---|---|\n| a | 0.146 |\n")
  (folder / "accuracy.png").write_bytes(b"png")
  return record


def test_the_fingerprint_does_not_depend_on_where_the_suite_runs(tmp_path):
  entry = REPRODUCTIONS.get(_ENTRY)
  a = entry.make_config("full", directory=str(tmp_path / "a"), root=str(tmp_path))
  b = entry.make_config("full", directory="/elsewhere/x", root="/elsewhere")
  assert config_fingerprint(a) != config_fingerprint(b)  # The run's config has its folders...
  assert "{dir}" in config_fingerprint(entry.fingerprint_config("full"))  # ... the key does not.
  assert config_fingerprint(entry.fingerprint_config("full")) != config_fingerprint(
    entry.fingerprint_config("quick")
  )
  # run_one records that key, and reuses a record made in another folder that holds it.
  fingerprint = config_fingerprint(entry.fingerprint_config("full"))
  _finished(tmp_path / "wd" / _ENTRY, fingerprint)
  record = run_one(entry, "full", str(tmp_path / "wd"), force=False)
  assert record["wall_s"] == 276.0  # Reused, not run.


def test_a_report_archives_what_it_shows_and_the_next_one_reuses_it(tmp_path):
  entry = REPRODUCTIONS.get(_ENTRY)
  current = config_fingerprint(entry.fingerprint_config("full"))
  docs = tmp_path / "docs"
  record = _finished(tmp_path / "run1" / _ENTRY, current)
  report = pathlib.Path(
    write_report(str(tmp_path / "run1"), "full", {}, report_dir=str(docs))
  ).read_text()
  assert "**reproduced**. 1-layer momentum 1.000" in _section(report, _ENTRY)
  archived = docs / _ENTRY
  assert json.loads((archived / RECORD_FILE).read_text()) == record
  assert (archived / "results.md").exists() and (archived / "accuracy.png").read_bytes() == b"png"

  # Another machine, another workdir without this experiment: the archive fills its section.
  report = pathlib.Path(
    write_report(str(tmp_path / "run2"), "full", {}, report_dir=str(docs))
  ).read_text()
  section = _section(report, _ENTRY)
  assert "**reproduced**" in section and "| a | 0.146 |" in section
  assert f"({_ENTRY}/accuracy.png)" in section and "stale" not in section
  assert "| momentum_attention | induction | reproduced |" in report
  # Experiments never run anywhere are listed as such.
  assert "Not run in this workdir, nor archived" in _section(report, "mqar_hybrid")

  # A workdir's new result replaces the archived one (and is archived in its place).
  _finished(tmp_path / "run3" / _ENTRY, current, reason="rerun: 0.999")
  report = pathlib.Path(
    write_report(str(tmp_path / "run3"), "full", {}, report_dir=str(docs))
  ).read_text()
  assert "rerun: 0.999" in _section(report, _ENTRY)
  assert "rerun: 0.999" in (archived / RECORD_FILE).read_text()


def test_archived_records_made_with_another_config_or_suite(tmp_path):
  docs = tmp_path / "docs"
  # Another config: shown, marked stale.
  _finished(docs / _ENTRY, "another config")
  report = pathlib.Path(
    write_report(str(tmp_path / "wd"), "full", {}, report_dir=str(docs))
  ).read_text()
  assert "(stale)" in _section(report, _ENTRY) and "**reproduced**" in _section(report, _ENTRY)
  # A record of the quick suite never stands in for the full suite's.
  _finished(docs / _ENTRY, "x")
  record = json.loads((docs / _ENTRY / RECORD_FILE).read_text())
  write_record(str(docs / _ENTRY), {**record, "suite": "quick"})
  report = pathlib.Path(
    write_report(str(tmp_path / "wd"), "full", {}, report_dir=str(docs))
  ).read_text()
  assert "Not run in this workdir, nor archived" in _section(report, _ENTRY)
  # Carried over from a report made before records were archived (no fingerprint): shown
  # with its note, not called stale.
  note = "Carried over from the report of commit f53b171."
  _finished(docs / _ENTRY, None, carried_over=note)
  section = _section(
    pathlib.Path(write_report(str(tmp_path / "wd"), "full", {}, report_dir=str(docs))).read_text(),
    _ENTRY,
  )
  assert f"*{note}*" in section and "(stale)" not in section and "**reproduced**" in section


def test_results_headings_nest_below_the_section_without_skips():
  text = "# Title\n\nintro\n\n### Verdict\n\n```\n# not a heading\n```\n\n#### Detail\n#hashtag"
  assert nest_headings(text, top=3).split("\n") == [
    "### Title",
    "",
    "intro",
    "",
    "#### Verdict",
    "",
    "```",
    "# not a heading",
    "```",
    "",
    "##### Detail",
    "#hashtag",
  ]
  assert nest_headings("### a\n### b", top=3) == "### a\n### b"
  assert nest_headings("no headings", top=3) == "no headings"


def test_rejudge_recomputes_verdicts_from_the_saved_payload(tmp_path):
  """A corrected verdict rule is applied to a finished run from its payload.json, without
  running it again; the record keeps the old verdicts and the report says so."""
  from reasoning_jax.reproduce.records import load_record, write_payload
  from reasoning_jax.reproduce.runner import rejudge

  folder = tmp_path / "infmem"
  cell = lambda a, c: {"accuracy": [a] * 3, "calls_per_question": [c] * 3}  # noqa: E731
  payload = {  # Neither trained reader answers: the current rule does not judge it.
    "seeds": [0, 1, 2],
    "table": {
      "MemAgent (SFT)": {"32k": cell(0.0, 129)},
      "InfMem (SFT)": {"32k": cell(0.0, 20)},
    },
  }
  _finished(folder, "fp")
  record = load_record(str(folder))
  record.update(name="infmem", verdicts=[{"method": "infmem", "status": "partly", "reason": "x"}])
  write_record(str(folder), record)
  assert rejudge(str(tmp_path), ["infmem"]) == {}  # No payload.json: nothing to recompute.
  assert write_payload(str(folder), payload)
  assert rejudge(str(tmp_path), ["infmem"]) == {"infmem": ["infmem: partly -> not measured"]}
  record = load_record(str(folder))
  assert record["verdicts"][0]["status"] == "not measured"
  assert record["rejudged"]["previous"][0]["status"] == "partly"
  assert rejudge(str(tmp_path), ["infmem"]) == {}  # Already current.
  report = pathlib.Path(write_report(str(tmp_path), "full", {"infmem": record})).read_text()
  assert "Verdicts recomputed from this run's saved payload" in _section(report, "infmem")
  assert not write_payload(str(folder), {"a": object()})  # Not JSON: skipped, said.
