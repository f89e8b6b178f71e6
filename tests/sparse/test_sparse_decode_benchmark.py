"""Smoke test of benchmarks/sparse_decode.py: every CPU section at `--quick` (figures not checked)."""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def bench():
  spec = importlib.util.spec_from_file_location(
    "sparse_decode_benchmark", os.path.join(ROOT, "benchmarks", "sparse_decode.py")
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_bytes_section_orders_the_methods(bench):
  out = bench.main(["--quick", "--section=bytes"])["bytes"]
  for s in (8192, 32768, 131072):
    full = out[(s, 4096, "full")]
    assert out[(s, 4096, "lychee")] < out[(s, 4096, "duo")] < full
    assert out[(s, 1024, "quest")] < out[(s, 4096, "quest")] < full


def test_lychee_role_map_keeps_layer_zero_and_the_count(bench):
  roles = bench.lychee_roles(32, 8, 32)
  assert roles[0].all() and roles.sum() == 32


@pytest.mark.parametrize("section", ["step", "kernels", "model", "breakdown", "gpu"])
def test_cpu_sections_run_quick(bench, section):
  # The chunked prefill path.
  extra = ["--prefill-chunk=256"] if section in ("model", "breakdown") else []
  out = bench.main(["--quick", f"--section={section}", *extra])[section]
  if section == "kernels":
    assert max(out.values()) < 1e-4
  elif section == "breakdown":
    row = out[1024]
    assert set(row["alone"]) == {"full", "layer 0", "kernel A", "select", "sparse"}
    assert set(row["model"]) == {"full", "lychee", "every layer retrieval"}
  elif section == "step":
    assert set(out[1024]) >= {"dense", "dpa", "lychee", "quest", "duo", "model"}
  elif section == "gpu" and bench.jax.default_backend() == "cpu":
    assert out == {}  # Skipped on CPU.
