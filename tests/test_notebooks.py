"""Runs every notebook in colab/ top to bottom at its CI size, as MaxText runs its notebooks in CI.

Each `colab/*.ipynb` (picked up by glob, so new notebooks are covered without editing this
file) is executed with nbclient in a fresh IPython kernel that runs this interpreter
(`sys.executable`, through a `python3` kernelspec written to a temporary directory, so a
user-wide Jupyter install cannot redirect it to another Python). The kernel gets:

  * `REASONING_JAX_NOTEBOOK_SIZE=tiny` (unless already set): the size knob each notebook
    documents in its first cell; `tiny` is the CI size;
  * this checkout first on `PYTHONPATH`, so the notebook tests the code the other tests test;
  * the real device count: the 8 forced host devices of `tests/conftest.py` are removed, so
    the notebook sees what a Colab runtime would;
  * no `MPLBACKEND`, so figures render inline as they do in Colab;
  * a temporary working directory, `TMPDIR`, IPython directory and Jupyter runtime directory
    (pytest's `tmp_path`, which pytest prunes).

A failing or timed-out cell fails the test with the notebook name, the cell number, its
source and the error. A second test keeps the committed notebooks small: valid nbformat, no
outputs, no execution counts.
"""

import glob
import json
import os
import re
import sys
import time

import nbformat
import pytest
from ipykernel.kernelspec import get_kernel_dict
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "colab", "*.ipynb")))
SIZE_VARIABLE = "REASONING_JAX_NOTEBOOK_SIZE"
CELL_TIMEOUT_S = 600
KERNEL_NAME = "python3"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _ids(paths):
  return [os.path.basename(p) for p in paths]


@pytest.fixture(scope="module")
def kernel_spec_manager(tmp_path_factory):
  """A `python3` kernelspec for this interpreter, in a directory only this test reads."""
  kernels = tmp_path_factory.mktemp("kernels")
  (kernels / KERNEL_NAME).mkdir()
  # ipykernel's own spec: argv = [sys.executable, "-m", "ipykernel_launcher", "-f", ...].
  (kernels / KERNEL_NAME / "kernel.json").write_text(json.dumps(get_kernel_dict()))
  manager = KernelSpecManager(kernel_dirs=[str(kernels)])
  spec = manager.get_kernel_spec(KERNEL_NAME)
  assert spec.argv[0] == sys.executable, spec.argv
  return manager


def _kernel_env(tmp_path):
  env = dict(os.environ)
  env.setdefault(SIZE_VARIABLE, "tiny")
  env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
  flags = [
    f
    for f in env.get("XLA_FLAGS", "").split()
    if not f.startswith("--xla_force_host_platform_device_count")
  ]
  if flags:
    env["XLA_FLAGS"] = " ".join(flags)
  else:
    env.pop("XLA_FLAGS", None)
  env.pop("MPLBACKEND", None)
  env["IPYTHONDIR"] = str(tmp_path / "ipython")
  env["TMPDIR"] = str(tmp_path)  # Notebook outputs (tempfile) go where pytest cleans up.
  return env


def _error_text(cell) -> str:
  for output in cell.get("outputs", []):
    if output.get("output_type") == "error":
      trace = "\n".join(output.get("traceback", [])) or f"{output['ename']}: {output['evalue']}"
      return _ANSI.sub("", trace)
  return ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_executes(path, tmp_path, monkeypatch, kernel_spec_manager):
  monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))  # Connection files.
  workdir = tmp_path / "cwd"
  workdir.mkdir()
  nb = nbformat.read(path, as_version=4)
  timings, current = [], {}

  def on_cell_start(cell, cell_index):
    current.update(index=cell_index, start=time.perf_counter())

  def on_cell_executed(cell, cell_index, execute_reply):
    timings.append((cell_index, time.perf_counter() - current["start"]))

  kernel = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_spec_manager)
  client = NotebookClient(
    nb,
    km=kernel,
    timeout=CELL_TIMEOUT_S,
    startup_timeout=180,
    kernel_name=KERNEL_NAME,
    resources={"metadata": {"path": str(workdir)}},
    on_cell_start=on_cell_start,
    on_cell_executed=on_cell_executed,
  )
  start, failure = time.perf_counter(), None
  try:
    client.execute(env=_kernel_env(tmp_path))
  except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
    index = current.get("index")
    cell = nb.cells[index] if index is not None else {"source": "<no cell started>"}
    error = _error_text(cell) or _ANSI.sub("", str(e))
    failure = (
      f"{os.path.relpath(path, REPO)}: cells[{index}] failed ({type(e).__name__})\n"
      f"--- source ---\n{cell['source']}\n--- error ---\n{error}"
    )
  if failure:  # Outside the except block, so the report is only this message.
    pytest.fail(failure, pytrace=False)
  total = time.perf_counter() - start
  slowest = sorted(timings, key=lambda t: -t[1])[:3]
  slowest = ", ".join(f"cells[{i}] {seconds:.0f} s" for i, seconds in slowest)
  print(f"{os.path.basename(path)}: {total:.0f} s ({slowest})")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_committed_without_outputs(path):
  nb = nbformat.read(path, as_version=4)
  nbformat.validate(nb)
  dirty = [
    i
    for i, cell in enumerate(nb.cells)
    if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
  ]
  assert not dirty, (
    f"{os.path.relpath(path, REPO)}: clear the outputs of cells {dirty} "
    f"before committing (Jupyter: Edit > Clear All Outputs)"
  )
