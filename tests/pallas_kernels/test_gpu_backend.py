"""The kernels on a JAX without the Pallas Triton backend (deprecated in 0.11 for Mosaic GPU):
TPU lowering unaffected, a GPU run refused with a message naming the XLA path, except where a
kernel has a Mosaic GPU form (the dequant matmul, sparse decode); and the Mosaic GPU helpers."""

import sys

import jax
import jax.numpy as jnp
import pytest

from pallas_kernels import gpu_backend


@pytest.fixture
def no_triton(monkeypatch):
  """As if JAX had removed `jax.experimental.pallas.triton` (its import fails)."""
  from jax.experimental import pallas as pallas_pkg

  monkeypatch.delattr(pallas_pkg, "triton", raising=False)
  monkeypatch.setitem(sys.modules, "jax.experimental.pallas.triton", None)
  return monkeypatch


def test_the_gpu_branches_follow_this_jax():
  branches = gpu_backend.gpu_branches(
    lambda params: params, num_warps=4, num_stages=2, kernel="k", instead="xla"
  )
  if gpu_backend.triton_missing() is None:  # JAX 0.10 - 0.12 still ship it.
    assert set(branches) == {"cuda", "rocm"} and branches["cuda"].num_warps == 4
  else:
    assert branches == {}


def test_without_triton_no_gpu_branch_and_a_clear_error_on_a_gpu(no_triton):
  assert "no Pallas Triton backend" in gpu_backend.triton_missing()
  make = lambda params: params  # noqa: E731
  assert gpu_backend.gpu_branches(make, num_warps=4, num_stages=2, kernel="k", instead="x") == {}
  no_triton.setattr(jax, "default_backend", lambda: "gpu")
  with pytest.raises(RuntimeError, match=r"the GLA kernel cannot run on a GPU.*use XLA"):
    gpu_backend.gpu_branches(
      make, num_warps=4, num_stages=2, kernel="the GLA kernel", instead="XLA"
    )


def _tpu_lowerings():
  from tests.pallas_kernels import test_dequant_matmul, test_gla_kernel, test_ovq_kernel
  from tests.pallas_kernels import test_sparse_decode_kernels as sparse

  return {
    "gla": lambda: test_gla_kernel._lowered_text("tpu", jnp.float32, 64),
    "ovq": lambda: test_ovq_kernel._lowered_text("tpu", jnp.float32, 64, 1024, False),
    "dequant": lambda: test_dequant_matmul._lowered_text("tpu", 7, jnp.float32, "uniform", 4, 32),
    "sparse": lambda: sparse._lowered(sparse._retrieval, sparse._abstract_args(jnp.float32), "tpu"),
  }


@pytest.mark.parametrize("kernel", ["gla", "ovq", "dequant", "sparse"])
def test_tpu_lowering_needs_no_triton(no_triton, kernel):
  text = _tpu_lowerings()[kernel]()
  assert "tpu_custom_call" in text


def test_gpu_runs_without_triton_name_the_xla_path(no_triton):
  """On a GPU (faked: only the backend name), each kernel's trace stops with the message."""
  from tests.pallas_kernels import test_dequant_matmul, test_gla_kernel, test_ovq_kernel
  from tests.pallas_kernels import test_sparse_decode_kernels as sparse

  no_triton.setattr(jax, "default_backend", lambda: "gpu")
  cases = {
    "GLA": lambda: test_gla_kernel._lowered_text("cuda", jnp.float32, 64),
    "OVQ": lambda: test_ovq_kernel._lowered_text("cuda", jnp.float32, 64, 1024, False),
    "dequant-matmul": lambda: test_dequant_matmul._lowered_text(
      "cuda", 7, jnp.float32, "uniform", 4, 32
    ),
    "sparse-decode": lambda: sparse._lowered(
      lambda *a: sparse._retrieval(*a, schedule="loop"),
      sparse._abstract_args(jnp.float32),
      "cuda",
    ),
  }
  for name, lower in cases.items():
    with pytest.raises(RuntimeError, match=rf"{name}.*cannot run on a GPU.*xla"):
      lower()


def test_without_triton_sixteen_bit_calls_lower_through_mosaic_gpu(no_triton):
  """The dequant matmul and the sparse-decode kernels have Mosaic GPU forms: on a GPU host
  without the Triton backend their bfloat16 calls still lower (one Mosaic GPU custom call
  each, the default schedule) instead of raising."""
  from tests.pallas_kernels import test_dequant_matmul
  from tests.pallas_kernels import test_sparse_decode_kernels as sparse

  no_triton.setattr(jax, "default_backend", lambda: "gpu")
  assert gpu_backend.gpu_compute_capability() is None  # no real GPU: capability unknown
  ids = jax.ShapeDtypeStruct((sparse.B, sparse.R, sparse.N_SEL), jnp.int32)
  args = sparse._abstract_args(jnp.bfloat16)
  for text in (
    test_dequant_matmul._lowered_text("cuda", 1, jnp.bfloat16, "bitplane", 2, 256),
    sparse._lowered(sparse._retrieval, args, "cuda"),
    sparse._lowered(sparse._sparse, (*args, ids), "cuda"),
  ):
    assert text.count("custom_call @mosaic_gpu") == 1 and "triton" not in text


def test_mosaic_helpers_follow_this_jax():
  assert gpu_backend.mosaic_gpu_missing() is None  # JAX 0.10 - 0.12 ship Mosaic GPU
  reason = gpu_backend.mosaic_interpret_missing()
  if reason is None:
    assert type(gpu_backend.mosaic_interpret_params()).__name__ == "InterpretGPUParams"
  else:
    with pytest.raises(RuntimeError, match=r"no public GPU interpreter"):
      gpu_backend.mosaic_interpret_params()
  assert gpu_backend.mosaic_kernel_name("k") in ({"kernel_name": "k"}, {})


@pytest.mark.parametrize(
  "capability,ok", [(None, True), (9.0, True), (8.6, False), (10.0, False), (12.0, False)]
)
def test_wgmma_only_on_hopper(monkeypatch, capability, ok):
  """wgmma is sm_90's: Ampere lacks it, Blackwell replaced it; no GPU attached is not refused."""
  monkeypatch.setattr(gpu_backend, "gpu_compute_capability", lambda: capability)
  reason = gpu_backend.wgmma_unavailable()
  assert (reason is None) == ok
  if not ok:
    assert f"this GPU is sm_{capability}" in reason
