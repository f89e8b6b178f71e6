"""Test-wide setup: 8 host CPU devices for every test process; shared session fixtures.

Multi-device tests need the host device count fixed before JAX initialises its
backend; under pytest-xdist one worker runs many modules, so a per-module flag
would depend on test order. Setting it here, once, is order-independent.
"""

import os

import pytest

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")


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
