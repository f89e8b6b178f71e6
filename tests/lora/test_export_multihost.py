"""`export_merged` / `to_hf` on two processes (jax.distributed + gloo) and the folder rules that
make it safe there: one writer, all processes agreeing on errors, no stale or partial files."""

import json
import os
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.lora import export_merged, merge_adapters
from reasoning_jax.models import from_hf, hf

HELPERS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "helpers")
sys.path.insert(0, HELPERS)
import lora_export_problem  # noqa: E402

safetensors_numpy = pytest.importorskip("safetensors.numpy")


@pytest.fixture(scope="module")
def adapted():
  return lora_export_problem.build()


def _merged(adapted):
  return merge_adapters(nnx.clone(adapted))


def _tensors(directory) -> dict[str, np.ndarray]:
  out = {}
  for name in os.listdir(directory):
    if name.endswith(".safetensors"):
      out.update(safetensors_numpy.load_file(os.path.join(directory, name)))
  return out


def test_export_merged_on_two_processes(adapted, tmp_path):
  """Two processes x 2 devices, the adapted model split over both (fsdp across processes,
  A factors too): the merged export reloads (single process) with the merged model's logits,
  as one file or as several, written once; errors reach both processes."""
  from two_processes import run_two_processes

  lora_export_problem.save(adapted, str(tmp_path / "params.npz"))
  logs = run_two_processes(os.path.join(HELPERS, "multihost_export.py"), tmp_path, timeout=240)
  for log in logs:
    assert "REFUSED" in log and "WRITE_FAILED" in log and "DONE" in log, log[-2000:]

  ids = jnp.asarray(lora_export_problem.token_ids())
  expected = np.asarray(_merged(adapted)(ids))  # The same model, merged on one process.
  reference = export_merged(adapted, tmp_path / "reference")
  reference_tensors = _tensors(reference)

  assert sorted(os.listdir(tmp_path / "single")) == ["config.json", "model.safetensors"]
  files = sorted(os.listdir(tmp_path / "sharded"))
  shards = [f for f in files if f.endswith(".safetensors")]
  n = len(shards)
  assert n > 2
  assert files == ["config.json"] + [
    f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)
  ] + ["model.safetensors.index.json"]
  with open(tmp_path / "sharded" / "model.safetensors.index.json") as f:
    weight_map = json.load(f)["weight_map"]
  assert sorted(set(weight_map.values())) == shards
  assert set(weight_map) == set(reference_tensors)

  for name in ("single", "sharded"):
    tensors = _tensors(tmp_path / name)
    assert tensors.keys() == reference_tensors.keys()
    for key, value in tensors.items():
      np.testing.assert_allclose(value, reference_tensors[key], atol=1e-6, rtol=0, err_msg=key)
    loaded = from_hf(tmp_path / name)
    np.testing.assert_allclose(np.asarray(loaded(ids)), expected, atol=1e-5, rtol=0)
  # The failed export left only what it had finished: no partial file, no config.json.
  failing = sorted(os.listdir(tmp_path / "failing"))
  assert failing == [f"model-00001-of-{n:05d}.safetensors"], failing


def test_to_hf_replaces_stale_weights_and_reports_unwritable_folders(adapted, tmp_path):
  model = _merged(adapted)
  ids = jnp.asarray(lora_export_problem.token_ids())
  expected = np.asarray(model(ids))
  out = tmp_path / "out"
  hf.to_hf(model, out, max_shard_bytes=lora_export_problem.SHARD_BYTES)
  hf.to_hf(model, out)  # A one-file export over a sharded one: the old index must go.
  assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]
  np.testing.assert_allclose(np.asarray(from_hf(out)(ids)), expected, atol=1e-6, rtol=0)

  (tmp_path / "file").write_text("x")
  with pytest.raises(hf.ExportError, match="cannot write to .*NotADirectoryError"):
    hf.to_hf(model, tmp_path / "file" / "export")


def test_to_hf_failed_write_leaves_no_partial_file(adapted, tmp_path, monkeypatch):
  model = _merged(adapted)

  def fail(tensors, path, metadata=None):
    with open(path, "wb") as f:
      f.write(b"half a file")
    raise OSError("disk full (simulated)")

  monkeypatch.setattr(safetensors_numpy, "save_file", fail)
  with pytest.raises(hf.ExportError, match="could not write .*disk full"):
    hf.to_hf(model, tmp_path / "out")
  assert os.listdir(tmp_path / "out") == []
