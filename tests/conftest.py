"""Test-wide setup: 8 host CPU devices for every test process; shared session fixtures.

Multi-device tests need the host device count fixed before JAX initialises its
backend; under pytest-xdist one worker runs many modules, so a per-module flag
would depend on test order. Setting it here, once, is order-independent.

Compile time, not run time, is most of this suite on CPU (tests/layers and
tests/ops/test_ovq.py: 201 s cold, 89 s with every executable already cached), so:

  * XLA:CPU compiles at LLVM -O0 (`--xla_backend_optimization_level=0`): the same HLO and
    the same XLA passes, less machine-code optimisation; 201 s -> 128 s on that subset.
    `RJ_TEST_XLA_OPT=1` keeps XLA's default level (e.g. to time something under pytest).
  * where jaxlib still has it (0.10; the newest jaxlib removed it), XLA:CPU emits fusions
    through its legacy elemental emitter (`--xla_cpu_use_fusion_emitters=false`) instead of
    the MLIR fusion emitters, which take longer to compile than their faster code saves on
    test-sized arrays: tests/layers/test_ovq_layer.py 85 s -> 50 s on top of -O0. The same
    ops, reductions and dtypes; `RJ_TEST_XLA_OPT=1` drops it with the -O0 flag.
  * one persistent compilation cache per test run, shared by the xdist workers and the
    notebook kernels (they inherit the environment): the module-scoped `clear_caches` below
    frees executables between modules, and the next module that traces the same program
    loads it instead of compiling it (128 s -> 117 s). The directory is new for every run
    (so a run measures cold compiles, as CI does) and removed when the run ends. Subprocesses
    that test the experiments' own caches (tests/test_reproduce.py) or run two JAX processes
    (tests/helpers/two_processes.py) drop it from their environment.
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

# The flag XLA:CPU reads to emit fusions through its legacy elemental IR emitter rather than
# the MLIR fusion emitters; jaxlib 0.10 has it, newer jaxlib (where the legacy route is gone)
# aborts the process on it as an unknown flag, so it is probed in a subprocess first.
_LEGACY_FUSION_FLAG = "--xla_cpu_use_fusion_emitters=false"


def _xla_accepts(flag: str) -> bool:
  """Whether this jaxlib starts and runs a jitted add with `flag` in XLA_FLAGS (~2 s)."""
  env = dict(os.environ, XLA_FLAGS=flag, JAX_PLATFORMS="cpu")
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  probe = "import jax; jax.jit(lambda x: x + 1)(1.0).block_until_ready()"
  try:
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, timeout=120)
  except (OSError, subprocess.TimeoutExpired):
    return False
  return done.returncode == 0


# The device count is appended unless exactly it is there (a later flag wins); an
# optimisation level the caller set is kept.
_FLAGS = ["--xla_force_host_platform_device_count=8"]
if not os.environ.get("RJ_TEST_XLA_OPT") and "--xla_backend_optimization_level" not in (
  os.environ.get("XLA_FLAGS", "")
):
  _FLAGS.append("--xla_backend_optimization_level=0")
  if "--xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
    # Probed once, in pytest's controller; workers (and reruns in one shell) read the answer.
    if "RJ_TEST_LEGACY_FUSION" not in os.environ:
      os.environ["RJ_TEST_LEGACY_FUSION"] = str(int(_xla_accepts(_LEGACY_FUSION_FLAG)))
    if os.environ["RJ_TEST_LEGACY_FUSION"] == "1":
      _FLAGS.append(_LEGACY_FUSION_FLAG)
for _flag in _FLAGS:
  if _flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  # Set in the first process (pytest's controller); xdist workers inherit it.
  _CACHE = tempfile.mkdtemp(prefix="reasoning_jax_test_jax_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_hf_folder(tmp_path_factory):
  """`tiny_hf_folder(family)`: a tiny random HF checkpoint folder ("qwen3" | "llama"),
  written once per session (tests/helpers/tiny_hf.py; needs the `hf` extra)."""
  pytest.importorskip("transformers", reason="needs the `hf` extra (pip install -e .[hf])")
  from tests.helpers.tiny_hf import write_tiny_checkpoint

  root, written = tmp_path_factory.mktemp("tiny_hf"), {}

  def folder(family: str = "qwen3") -> str:
    if family not in written:
      written[family] = write_tiny_checkpoint(str(root / family), family)
    return written[family]

  return folder


def _mapped_regions() -> int:
  try:
    with open("/proc/self/maps") as maps:
      return sum(1 for _ in maps)
  except OSError:  # not Linux
    return 0


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_executables():
  """Drop JAX's compiled executables after every test module.

  Each XLA:CPU executable keeps its JIT code in its own memory mappings; a pytest-xdist
  worker that runs ~900 tests without freeing them reaches the kernel's per-process limit
  (vm.max_map_count, 65530 by default), after which LLVM's next mmap fails and the worker
  dies with a segfault inside `backend_compile_and_load` (seen in CI, late in the run, in a
  different test each time). Clearing the caches between modules keeps the count bounded.
  `RJ_TEST_MAPS=1 pytest -s ...` prints the count before and after each clear.
  """
  yield
  import jax

  before = _mapped_regions()
  jax.clear_caches()
  if os.environ.get("RJ_TEST_MAPS"):
    print(f"\n[maps] {before} -> {_mapped_regions()} mapped regions (clear_caches)")


def pytest_addoption(parser):
  parser.addoption(
    "--run-slow",
    action="store_true",
    default=False,
    help="also run tests marked slow (end-to-end experiment pipelines the notebooks cover)",
  )


def pytest_configure(config):
  config.addinivalue_line(
    "markers",
    "slow: over ~60 s on 2 shared CPU cores; skipped unless --run-slow (CI's README command "
    "leaves them out: the notebooks run the same pipelines)",
  )


def pytest_collection_modifyitems(config, items):
  if config.getoption("--run-slow"):
    return
  skip = pytest.mark.skip(reason="slow: pass --run-slow to run it")
  for item in items:
    if "slow" in item.keywords:
      item.add_marker(skip)
