"""The Mosaic GPU form of the fused dequant-matmul (BPDQ, arXiv:2602.04163), on CPU.

`pallas_kernels/dequant_matmul/kernel_mgpu.py` in JAX's GPU interpreter (JAX >= 0.12; 0.10's
private interpreter cannot evaluate `plgpu.load`, so there these tests skip and only the
lowering runs) against `dequant_matmul_reference` and the dense products, for both storage
kinds, k in {2, 3, 4}, group sizes 32 / 64 / 128 / 256, M = 1 (x padded to 8 rows), 7, 20
over several row and column tiles, bfloat16 and float16; the CUDA lowering of the public
entry point (which form "auto" picks, kernel names, one custom call), the block choice and
the argument errors. Lowering checks the Pallas-to-Mosaic-GPU lowering; PTX compilation and
speed need a GPU (`benchmarks/dequant_matmul.py --gpu-kernels mosaic,triton`).
"""

import re

import jax
import jax.numpy as jnp
import pytest

from pallas_kernels import gpu_backend
from pallas_kernels.dequant_matmul import blocks as blocks_lib
from pallas_kernels.dequant_matmul import dequant_matmul_pallas
from pallas_kernels.dequant_matmul import kernel as kernel_lib
from pallas_kernels.dequant_matmul.kernel import dequant_matmul_mosaic_interpret
from tests.pallas_kernels.test_dequant_matmul import (
  TOL,
  _abstract_weight,
  assert_close,
  check_against_references,
  make_weight,
  make_x,
)
from reasoning_jax.ops.quant import dequant_matmul_reference

needs_interpreter = pytest.mark.skipif(
  gpu_backend.mosaic_interpret_missing() is not None,
  reason=str(gpu_backend.mosaic_interpret_missing()),
)
_interpret = jax.jit(dequant_matmul_mosaic_interpret, static_argnames=("dtype", "block_m"))


@needs_interpreter
@pytest.mark.parametrize(
  "kind,bits,group_size,dtype,m",
  [
    ("bitplane", 2, 32, jnp.bfloat16, 1),  # two groups per 64-column step
    ("bitplane", 3, 64, jnp.float16, 7),
    ("bitplane", 4, 256, jnp.bfloat16, 20),
    ("uniform", 2, 128, jnp.float16, 1),
    ("uniform", 4, 32, jnp.bfloat16, 7),
  ],
)
def test_interpreted_kernel_matches_references(kind, bits, group_size, dtype, m):
  qw = make_weight(kind, bits, group_size, d_out=128, d_in=256)
  x = make_x((m, qw.d_in), dtype, seed=m)
  y = _interpret(x, qw)
  if dtype == jnp.float16:  # check_against_references knows float32 / bfloat16 tolerances
    assert y.dtype == dtype and y.shape == (m, qw.d_out)
    assert_close(y, dequant_matmul_reference(x, qw), TOL[jnp.bfloat16])
  else:
    check_against_references(y, x, qw, dtype)


@needs_interpreter
def test_interpreted_kernel_over_row_and_column_tiles_with_act_order():
  """M = 20 in x tiles of 8 (3 tiles, padded to 24), d_out = 256 in 4 weight-row tiles,
  d_in = 512 in 8 pipeline steps over 4 groups, GPTQ act-order perm applied to x."""
  qw = make_weight("uniform", 3, 128, perm=True)
  x = make_x((2, 10, qw.d_in), jnp.bfloat16)
  y = _interpret(x, qw, block_m=8)
  check_against_references(y, x, qw, jnp.bfloat16)


def _cuda_text(m, dtype, qw, **kwargs):
  x = jax.ShapeDtypeStruct((m, qw.d_in), dtype)
  fn = lambda x, qw: dequant_matmul_pallas(x, qw, interpret=False, **kwargs)  # noqa: E731
  return jax.jit(fn).trace(x, qw).lower(lowering_platforms=("cuda",)).as_text()


@pytest.mark.parametrize("m", [1, 8, 256])
@pytest.mark.parametrize("kind,bits,group_size", [("bitplane", 2, 256), ("uniform", 4, 32)])
def test_auto_lowers_sixteen_bit_calls_for_cuda_with_mosaic_gpu(m, kind, bits, group_size):
  text = _cuda_text(m, jnp.bfloat16, _abstract_weight(kind, bits, group_size))
  assert len(re.findall(r"custom_call @mosaic_gpu", text)) == 1
  assert "dequant_matmul_mosaic" in text and "triton" not in text


def test_explicit_mosaic_lowers_and_explicit_triton_keeps_the_old_form():
  qw = _abstract_weight("bitplane", 2, 128)
  assert "custom_call @mosaic_gpu" in _cuda_text(4, jnp.float16, qw, gpu_kernel="mosaic")
  if not hasattr(jax.sharding, "AbstractDevice"):
    pytest.skip("this JAX cannot name an abstract GPU target for Triton lowering")
  device = jax.sharding.AbstractDevice(device_kind="NVIDIA H100", num_cores=None, platform="gpu")
  with jax.sharding.use_abstract_mesh(
    jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)
  ):
    text = _cuda_text(4, jnp.bfloat16, qw, gpu_kernel="triton")
  assert "mosaic_gpu" not in text and "dequant_matmul_loop" in text


def test_auto_falls_back_to_triton_where_mosaic_cannot_take_the_call():
  """float32 (no wgmma register operand) and d_out = 208 (not a multiple of 64) stay Triton."""
  assert kernel_lib._mosaic_choice("auto", (1, 1024, 1024, 128, jnp.float32), {}) is None
  assert kernel_lib._mosaic_choice("auto", (1, 256, 208, 128, jnp.bfloat16), {}) is None
  assert (
    kernel_lib._mosaic_choice("auto", (1, 256, 128, 128, jnp.bfloat16), {"block_n": 128}) is None
  )
  blk = kernel_lib._mosaic_choice("auto", (1, 256, 128, 128, jnp.bfloat16), {})
  assert (blk.bm, blk.bn, blk.bk) == (8, 64, 64)


@pytest.mark.parametrize("capability", [8.0, 10.0, 12.0])  # Ampere; Blackwell has no wgmma
def test_auto_keeps_triton_on_a_gpu_without_wgmma(monkeypatch, capability):
  monkeypatch.setattr(gpu_backend, "gpu_compute_capability", lambda: capability)
  shape = (1, 256, 128, 128, jnp.bfloat16)
  assert kernel_lib._mosaic_choice("auto", shape, {}) is None
  with pytest.raises(ValueError, match=r"gpu_kernel='mosaic'.*needs a Hopper GPU \(sm_90\)"):
    kernel_lib._mosaic_choice("mosaic", shape, {})
  monkeypatch.setattr(gpu_backend, "gpu_compute_capability", lambda: 9.0)
  assert kernel_lib._mosaic_choice("auto", shape, {}) is not None


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(gpu_kernel="cuda"), r"^gpu_kernel must be one of \('auto', 'mosaic', 'triton'\)"),
    (dict(gpu_kernel="mosaic", dtype=jnp.float32), r"^gpu_kernel='mosaic'.*bfloat16 or float16"),
    (dict(gpu_kernel="mosaic", block_n=128), r"^block_n is fixed at 64 in the Mosaic GPU"),
    (dict(gpu_kernel="mosaic", block_m=264), r"^block_m must be a multiple of 8 up to 256"),
  ],
)
def test_bad_gpu_kernel_arguments_raise_naming_them(kwargs, match):
  qw = make_weight("bitplane", 2, 128, d_out=128, d_in=256)
  with pytest.raises(ValueError, match=match):
    dequant_matmul_pallas(jnp.ones((3, 256), jnp.bfloat16), qw, interpret=False, **kwargs)


@pytest.mark.parametrize("m,expected_bm", [(1, 8), (8, 8), (9, 16), (100, 128), (4096, 128)])
def test_mosaic_blocks(m, expected_bm):
  blk = blocks_lib.choose_blocks(m, 4096, 4096, 256, jnp.bfloat16, "mosaic")
  assert (blk.bm, blk.bn, blk.bk) == (expected_bm, 64, 64)


@pytest.mark.parametrize(
  "args,match",
  [
    ((512, 128, 128, jnp.float32), r"computes in bfloat16 or float16"),
    ((512, 96, 128, jnp.bfloat16), r"d_out and d_in multiples of 64, got d_out = 96"),
    ((480, 128, 96, jnp.bfloat16), r"multiples of 64, got d_out = 128, d_in = 480"),
    ((512, 128, 96, jnp.bfloat16), r"group_size 32 or a multiple of 64, got 96"),
  ],
)
def test_mosaic_unsupported_says_why(args, match):
  assert re.search(match, blocks_lib.mosaic_unsupported(*args))
  assert blocks_lib.mosaic_unsupported(512, 128, 32, jnp.float16) is None


def test_unknown_schedule_raises():
  with pytest.raises(ValueError, match=r"^schedule must be one of"):
    blocks_lib.choose_blocks(1, 256, 128, 128, jnp.bfloat16, "cuda")


@needs_interpreter
def test_no_races_in_the_pipeline(monkeypatch):
  """The kernel under JAX's GPU interpreter race detector (TMA pipeline over K, weight tiles
  rebuilt in registers), against the reference."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  from pallas_kernels.dequant_matmul import kernel_mgpu

  call = kernel_mgpu.mosaic_call
  params = plgpu.InterpretGPUParams(detect_races=True)
  monkeypatch.setattr(
    kernel_mgpu, "mosaic_call", lambda *a, interpret, **kw: call(*a, interpret=params, **kw)
  )
  qw = make_weight("bitplane", 2, 32, d_out=128, d_in=256)
  x = make_x((7, qw.d_in), jnp.bfloat16, seed=1)
  y = dequant_matmul_mosaic_interpret(x, qw)  # raises on a race
  check_against_references(y, x, qw, jnp.bfloat16)
