"""Reproduce every table: a registry of reproduction experiments, a resumable runner, a report.

  python -m experiments.reproduce --suite=quick|full [--only=main_job,induction] \
      [--workdir=outputs/reproduce/full] [--force] [--report_dir=docs/report]

`registry` (what an experiment runs, claims and how its verdict is read), `entries`,
`entries_semantic`, `entries_quant`, `entries_credit`, `entries_selfimprove` and
`entries_memory`, `entries_inference` (the registered experiments), `runner` (resumable, with progress), `report`
(REPORT.md), `provenance` (commit, versions, device).
"""

from reasoning_jax.reproduce import entries as _entries  # noqa: F401  (registers them)
from reasoning_jax.reproduce import entries_semantic as _entries_semantic  # noqa: F401, I001
from reasoning_jax.reproduce import entries_quant as _entries_quant  # noqa: F401, I001
from reasoning_jax.reproduce import entries_credit as _entries_credit  # noqa: F401, I001
from reasoning_jax.reproduce import entries_selfimprove as _entries_selfimprove  # noqa: F401, I001
from reasoning_jax.reproduce import entries_memory as _entries_memory  # noqa: F401, I001
from reasoning_jax.reproduce import entries_inference as _entries_inference  # noqa: F401, I001
from reasoning_jax.reproduce.registry import (
  NOT_REPRODUCED,
  REPRODUCTIONS,
  STATUSES,
  SUITES,
  Reproduction,
  Verdict,
  load_config,
  ordered,
  register,
)
from reasoning_jax.reproduce.report import write_report
from reasoning_jax.reproduce.runner import run_suite

__all__ = [
  "NOT_REPRODUCED",
  "REPRODUCTIONS",
  "STATUSES",
  "SUITES",
  "Reproduction",
  "Verdict",
  "load_config",
  "ordered",
  "register",
  "run_suite",
  "write_report",
]
