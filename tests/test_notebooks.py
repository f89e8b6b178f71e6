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

The first code cell (the Colab install cell) is also run without a kernel, with IPython's own
input transformer turning `%pip` into a recorded call, in fake runtimes (Colab with a TPU, an
NVIDIA GPU or neither, and outside Colab): on Colab, when reasoning_jax is not importable, it
must install the package and the matching jax (`jax[tpu]`, `jax[cuda12]` or CPU jax) in one
pip call, and it must install nothing outside Colab or when the package is importable.
"""

import glob
import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
import time
import types

import jax
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


# The first code cell, without a kernel: the accelerator each fake runtime shows (the
# variables, paths and commands the cell reads) and the jax requirement it must install with the
# package. `paths` fake answers for /dev and /proc only; `commands` for shutil.which.
FAKE_RUNTIMES = {
  "colab-tpu-vm": (dict(colab="tag", paths={"/dev/accel0"}), "jax[tpu]"),
  "colab-tpu-v5e": (dict(colab="module", paths={"/dev/vfio"}), "jax[tpu]"),
  "colab-tpu-node": (dict(colab="tag", environ={"COLAB_TPU_ADDR": "10.0.0.2:8470"}), "jax[tpu]"),
  "colab-gpu": (dict(colab="tag", commands={"nvidia-smi"}, paths={"/dev/vfio"}), "jax[cuda12]"),
  "colab-gpu-driver": (dict(colab="module", paths={"/proc/driver/nvidia"}), "jax[cuda12]"),
  "colab-cpu": (dict(colab="tag"), None),
}
_ACCELERATOR_ENV = ("COLAB_RELEASE_TAG", "COLAB_TPU_ADDR", "TPU_NAME", "REASONING_JAX_SOURCE")
_GIT_SOURCE = "git+https://example.invalid/reasoning_jax.git"


class _RecordingShell:
  """Stands in for `get_ipython()`: records each `%pip` line, expanded as IPython expands it."""

  def __init__(self):
    self.pip_calls = []

  def run_line_magic(self, name, line):
    from IPython.utils.text import DollarFormatter

    assert name == "pip", f"the install cell runs %{name} {line}; only %pip is expected"
    frame = sys._getframe(1)  # InteractiveShell.var_expand: the caller's names fill {...}.
    namespace = {**frame.f_globals, **frame.f_locals}
    self.pip_calls.append(shlex.split(DollarFormatter().vformat(line, args=[], kwargs=namespace)))


def _run_first_cell(
  path, monkeypatch, *, colab=None, environ=(), paths=(), commands=(), installed=False
):
  """Executes the notebook's first code cell in a fake runtime; returns the recorded pip calls."""
  from IPython.core.inputtransformer2 import TransformerManager

  jax.devices()  # Backends are chosen before the fake /dev and /proc below exist.
  for name in _ACCELERATOR_ENV:
    monkeypatch.delenv(name, raising=False)
  monkeypatch.delitem(sys.modules, "google.colab", raising=False)
  if colab == "tag":
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20260101-060000_RC00")
  elif colab == "module":
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
  for name, value in dict(environ).items():
    monkeypatch.setenv(name, value)
  monkeypatch.setenv("REASONING_JAX_SOURCE", _GIT_SOURCE)

  exists, which, find_spec = os.path.exists, shutil.which, importlib.util.find_spec

  def fake_exists(p):
    p = os.fspath(p)
    return p in paths if p.startswith(("/dev/", "/proc/")) else exists(p)

  def fake_which(command, *args, **kwargs):
    if command == "nvidia-smi":
      return f"/usr/bin/{command}" if command in commands else None
    return which(command, *args, **kwargs)

  def fake_find_spec(name, *args, **kwargs):
    return find_spec(name, *args, **kwargs) if installed or name != "reasoning_jax" else None

  monkeypatch.setattr(os.path, "exists", fake_exists)
  monkeypatch.setattr(shutil, "which", fake_which)
  monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
  monkeypatch.setattr(sys, "path", list(sys.path))  # layers.ipynb may add a checkout to it.

  nb = nbformat.read(path, as_version=4)
  cell = next(c for c in nb.cells if c.cell_type == "code")
  code = TransformerManager().transform_cell(cell.source)  # `%pip ...` as the kernel runs it.
  shell = _RecordingShell()
  exec(
    compile(code, f"{os.path.basename(path)}:cells[first code]", "exec"),
    {"__name__": "__main__", "get_ipython": lambda: shell},
  )
  return shell.pip_calls


@pytest.mark.parametrize("runtime", list(FAKE_RUNTIMES))
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_first_cell_installs_for_the_accelerator(path, runtime, monkeypatch, capsys):
  fake, jax_extra = FAKE_RUNTIMES[runtime]
  calls = _run_first_cell(path, monkeypatch, **fake)
  name = os.path.relpath(path, REPO)
  assert len(calls) == 1, f"{name} on {runtime}: expected one %pip call, got {calls}"
  (args,) = calls
  assert args[0] == "install" and _GIT_SOURCE in args, f"{name}: {args}"
  extras = [a for a in args if a.startswith("jax[")]
  assert extras == ([jax_extra] if jax_extra else []), (
    f"{name} on {runtime}: pip {' '.join(args)} should install the package with "
    f"{jax_extra or 'CPU jax (no jax[tpu] / jax[cuda12])'} in the same call"
  )
  out = capsys.readouterr().out
  assert f"backend {jax.default_backend()}" in out, f"{name}: no backend report in {out!r}"
  fell_back = jax_extra is not None and jax.default_backend() == "cpu"
  assert ("fell back to CPU" in out) == fell_back, f"{name} on {runtime}: {out}"


NO_INSTALL = {
  "outside-colab": dict(),  # CI, a local Jupyter: only the backend report.
  "colab-importable": dict(colab="tag", installed=True),  # Second run, or a preinstalled package.
}


@pytest.mark.parametrize("case", list(NO_INSTALL))
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_first_cell_installs_nothing_outside_colab_or_when_importable(
  path, case, monkeypatch, capsys
):
  gpu = dict(commands={"nvidia-smi"}, paths={"/proc/driver/nvidia"})
  calls = _run_first_cell(path, monkeypatch, **NO_INSTALL[case], **gpu)
  assert calls == [], f"{os.path.relpath(path, REPO)} ({case}) runs pip: {calls}"
  out = capsys.readouterr().out
  assert f"backend {jax.default_backend()}" in out, f"{path}: no backend report in {out!r}"
  if case == "outside-colab":  # No accelerator detection either: nothing to fall back from.
    assert "fell back" not in out, out
