"""One process of the two-process LoRA export test (tests/lora/test_export_multihost.py).

Usage: python multihost_export.py PORT PROCESS_ID OUT_DIR
Each process owns 2 CPU devices; the adapted model (OUT_DIR/params.npz, written by the test)
is placed on a (fsdp=2, tensor=2) mesh, fsdp across the processes, and exported merged to
OUT_DIR/single (one file) and OUT_DIR/sharded (several files); then an export into an
unwritable path, and one whose second file fails to write on process 0, must raise on both
processes (no hang).
"""

import os
import sys

# The test run's compile-speed flags (tests/conftest.py) come through; the device count is ours.
os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
)
os.environ["JAX_PLATFORMS"] = "cpu"

HELPERS = os.path.dirname(os.path.abspath(__file__))
# This checkout's package first (not whichever one the environment installed).
sys.path[:0] = [os.path.dirname(os.path.dirname(HELPERS)), HELPERS]

import jax  # noqa: E402

from reasoning_jax import distributed  # noqa: E402

port, pid, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
assert jax.process_count() == 2 and jax.device_count() == 4

from flax import nnx  # noqa: E402

import lora_export_problem  # noqa: E402

from reasoning_jax import sharding  # noqa: E402
from reasoning_jax.lora import export_merged, lora_kernels, merge_adapters  # noqa: E402
from reasoning_jax.models import hf  # noqa: E402

model = lora_export_problem.load(
  os.path.join(out, "params.npz"), sharding.make_mesh({"fsdp": 2, "tensor": 2})
)
q = model.layers[0].mixer.q_proj
assert not q.base[...].is_fully_addressable and not q.lora_a[...].is_fully_addressable

if pid == 1:  # Only process 0 touches the folder.

  def no_write(*args):
    raise AssertionError(f"process 1 wrote to the folder: {args[0]}")

  hf.prepare_directory = hf.save_safetensors = hf.write_json = no_write

# The merge is array math under the params' shardings: the merged kernel stays split.
merged = merge_adapters(nnx.clone(model)).layers[0].mixer.q_proj[...]
assert not merged.is_fully_addressable and merged.sharding == q.base[...].sharding, merged.sharding

export_merged(model, os.path.join(out, "single"))
export_merged(model, os.path.join(out, "sharded"), max_shard_bytes=lora_export_problem.SHARD_BYTES)
# The folder is complete on return, on every process (process 0 wrote it).
assert os.path.exists(os.path.join(out, "sharded", "config.json"))
assert lora_kernels(model)  # The model keeps its adapters.

blocker = os.path.join(out, "not_a_dir")
if pid == 0:
  with open(blocker, "w") as f:
    f.write("x")
try:
  export_merged(model, os.path.join(blocker, "export"))
except hf.ExportError as e:
  assert "cannot write to" in str(e) and "process 0" in str(e), e
  print("REFUSED", pid, e, flush=True)

if pid == 0:  # Process 0's second file fails; process 1 only learns it from the agreement.
  save, calls = hf.save_safetensors, []

  def failing_save(path, tensors):
    calls.append(path)
    if len(calls) == 2:
      raise OSError("disk full (simulated)")
    save(path, tensors)

  hf.save_safetensors = failing_save
try:
  export_merged(
    model, os.path.join(out, "failing"), max_shard_bytes=lora_export_problem.SHARD_BYTES
  )
except hf.ExportError as e:
  assert "could not write" in str(e) and "disk full (simulated)" in str(e), e
  print("WRITE_FAILED", pid, e, flush=True)
print("DONE", pid, flush=True)
