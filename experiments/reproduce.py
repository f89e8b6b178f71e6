r"""Reproduce every table: `python -m experiments.reproduce --suite=quick|full`.

  python -m experiments.reproduce --suite=quick                 # tiny sizes, ~4 min on 2 cores
  python -m experiments.reproduce --suite=full                  # the sizes the docs quote
  python -m experiments.reproduce --suite=full --only=induction,mqar --force
  python -m experiments.reproduce --suite=full --report_only --report_dir=docs/report
  python -m experiments.reproduce --suite=full --only=infmem --rejudge --report_only

Thin absl main over `reasoning_jax.reproduce.run_suite`: runs each registered reproduction
(`reasoning_jax/reproduce/entries.py`: the main job, compare_rl, induction, MQAR, the monotone
attack, and every later method's experiment) into `--workdir` (default
`outputs/reproduce/<suite>`), skipping those finished earlier unless `--force`, and writes
`REPORT.md` (claims, per-method verdicts, tables, plots, provenance). Exits with status 1 when
an experiment failed (the others still run and the report says which).
"""

import os

from absl import app, flags

_SUITE = flags.DEFINE_enum("suite", "quick", ["quick", "full"], "Which sizes to run.")
_ONLY = flags.DEFINE_list("only", [], "Reproduction names to run (default: all).")
_WORKDIR = flags.DEFINE_string("workdir", "", "Output folder (default outputs/reproduce/<suite>).")
_FORCE = flags.DEFINE_bool("force", False, "Run experiments that finished earlier again.")
_REPORT_DIR = flags.DEFINE_string("report_dir", "", "Where REPORT.md goes (default: workdir).")
_LIST = flags.DEFINE_bool("list", False, "List the registered reproductions and exit.")
_REPORT_ONLY = flags.DEFINE_bool(
  "report_only", False, "Write REPORT.md from the finished experiments in --workdir; run none."
)
_REJUDGE = flags.DEFINE_bool(
  "rejudge",
  False,
  "Before anything else, recompute the verdicts of the finished experiments (--only, default "
  "all) from their saved payload.json under the current verdict rules.",
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from reasoning_jax.reproduce import ordered, run_suite
  from reasoning_jax.reproduce.runner import default_workdir
  from reasoning_jax.train.metrics import quiet_library_logs, use_compilation_cache

  if _LIST.value:
    for entry in ordered():
      print(f"{entry.name}: {entry.title} [{', '.join(entry.methods)}]; full: {entry.full_time}")
    return
  quiet_library_logs()
  workdir = _WORKDIR.value or default_workdir(_SUITE.value)
  if _REJUDGE.value:
    from reasoning_jax.reproduce.runner import rejudge

    for name, changes in rejudge(workdir, _ONLY.value).items():
      print(f"{name}: verdicts recomputed: {'; '.join(changes)}")
  if _REPORT_ONLY.value:
    from reasoning_jax.reproduce import write_report

    path = write_report(workdir, _SUITE.value, {}, report_dir=_REPORT_DIR.value or None)
    print(f"report: {path}")
    return
  # One persistent compilation cache for every experiment of the suite: runs of other seeds,
  # recipes and experiments (and reruns) compile the same steps again as new closures.
  use_compilation_cache(os.path.join(os.path.abspath(workdir), "jax_cache"))
  try:
    result = run_suite(
      _SUITE.value,
      workdir=workdir,
      only=_ONLY.value,
      force=_FORCE.value,
      report_dir=_REPORT_DIR.value or None,
    )
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  print(f"report: {result['report']}")
  if result["failed"]:
    raise SystemExit(f"failed: {', '.join(result['failed'])} (see the log and the report)")


if __name__ == "__main__":
  app.run(main)
