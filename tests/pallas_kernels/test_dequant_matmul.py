"""Pallas fused dequant-matmul (BPDQ, arXiv:2602.04163) in interpret mode vs its references.

The kernel (`pallas_kernels.dequant_matmul`) against `dequant_matmul_reference` (same rounding:
weight built in float32, cast to the compute dtype, float32 accumulation) and against
`x @ qw.dequantize().T` in float32, for both storage kinds (BPDQ coefficients, uniform
scales/zeros), k in {2, 3, 4}, group sizes 32/128/256, M in {1, 7, 64}; tolerances by dtype
(bf16 rtol 2e-2 / atol 1e-2, the spec's section 4.5; float32 tight). Also: act-order perm,
ragged M over several row / column / K tiles, leading batch dims, the GPU ("loop") kernel body
in interpret mode, a determinism re-run, argument errors, default tile sizes, and ahead-of-time
lowering for TPU (Mosaic) and CUDA (Triton) at decode and prefill shapes. The Mosaic GPU form
has its own tests (test_dequant_matmul_mosaic.py). Lowering checks the
Pallas lowering rules, not Mosaic's layout passes or Triton's PTX compilation (those need the
device: benchmarks/kernel_check.py --kernels dequant).
"""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.dequant_matmul import dequant_matmul_pallas, dequant_matmul_reference
from pallas_kernels.dequant_matmul import blocks as blocks_lib
from pallas_kernels.dequant_matmul.kernel import dequant_matmul_loop_interpret
from reasoning_jax import registry
from reasoning_jax.ops.quant import from_bitplanes, from_codes

TOL = {jnp.float32: dict(rtol=1e-5, atol=1e-5), jnp.bfloat16: dict(rtol=2e-2, atol=1e-2)}
# Against the float32 weight (W not rounded to bf16 as the kernel and the spec's check round it;
# over d_in = 512 terms that rounding alone moves a near-zero output by ~1e-2).
TOL_F32_WEIGHT = {jnp.float32: TOL[jnp.float32], jnp.bfloat16: dict(rtol=3e-2, atol=2e-2)}


def make_weight(kind, bits, group_size, d_out=256, d_in=512, *, perm=False, seed=0):
  """A random `QuantizedWeight` whose outputs are O(1) for unit-normal x."""
  rng = np.random.RandomState(seed)
  n_groups = d_in // group_size
  scale = 1.0 / np.sqrt(d_in)
  if kind == "bitplane":
    planes = rng.randint(0, 2, (bits, d_out, d_in))
    coeffs = rng.randn(n_groups, bits + 1, d_out) * scale
    return from_bitplanes(jnp.asarray(planes), jnp.asarray(coeffs), group_size=group_size)
  codes = rng.randint(0, 2**bits, (d_out, d_in))
  scales = rng.uniform(0.5, 1.5, (n_groups, d_out)) * scale / 2 ** (bits - 1)
  zeros = rng.randint(0, 2**bits, (n_groups, d_out))
  order = rng.permutation(d_in) if perm else None
  return from_codes(
    jnp.asarray(codes),
    jnp.asarray(scales),
    jnp.asarray(zeros),
    bits=bits,
    group_size=group_size,
    perm=order,
    method="gptq" if perm else "rtn",
  )


def make_x(shape, dtype, seed=1):
  return jnp.asarray(np.random.RandomState(seed).randn(*shape), dtype)


def assert_close(actual, expected, tol):
  np.testing.assert_allclose(
    np.asarray(actual, np.float32), np.asarray(expected, np.float32), **tol
  )


def check_against_references(y, x, qw, dtype):
  """y vs `dequant_matmul_reference`, vs `x @ dequant(W)^T` with W in the compute dtype (the
  spec's check, section 4.5; perm undone by `dequantize`) and vs the float32 weight."""
  assert y.dtype == dtype and y.shape == (*x.shape[:-1], qw.d_out)
  assert_close(y, dequant_matmul_reference(x, qw), TOL[dtype])
  hi = jax.lax.Precision.HIGHEST
  dense = jnp.matmul(x, qw.dequantize(dtype).T, precision=hi, preferred_element_type=jnp.float32)
  assert_close(y, dense, TOL[dtype])
  dense_f32 = jnp.matmul(x.astype(jnp.float32), qw.dequantize().T, precision=hi)
  assert_close(y, dense_f32, TOL_F32_WEIGHT[dtype])


_kernel = jax.jit(dequant_matmul_pallas, static_argnames=("block_m", "block_n", "block_k"))


# Every kind, k and group size, each dtype twice, at M = 1, 7, 64.
@pytest.mark.parametrize(
  "kind,bits,group_size,dtype",
  [
    ("bitplane", 2, 256, jnp.bfloat16),
    ("bitplane", 3, 128, jnp.float32),
    ("bitplane", 4, 32, jnp.bfloat16),
    ("uniform", 2, 32, jnp.float32),
    ("uniform", 3, 256, jnp.bfloat16),
    ("uniform", 4, 128, jnp.float32),
  ],
)
def test_kernel_matches_references(kind, bits, group_size, dtype):
  qw = make_weight(kind, bits, group_size)
  for m in (1, 7, 64):
    x = make_x((m, qw.d_in), dtype, seed=m)
    check_against_references(_kernel(x, qw), x, qw, dtype)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_act_order_perm(dtype):
  qw = make_weight("uniform", 4, 128, perm=True)
  x = make_x((7, qw.d_in), dtype)
  check_against_references(_kernel(x, qw), x, qw, dtype)


def test_ragged_m_over_several_tiles():
  """M = 100 in row tiles of 32 (padded to 128), 2 column tiles, 4 K steps of one group."""
  qw = make_weight("bitplane", 2, 128)
  x = make_x((100, qw.d_in), jnp.float32)
  y = _kernel(x, qw, block_m=32, block_n=128, block_k=128)
  check_against_references(y, x, qw, jnp.float32)


def test_tpu_interpreter_nan_memory_and_bounds():
  """The TPU interpreter with NaN-filled scratch and out-of-bounds reads raising: the accumulator
  is initialised at each tile's first K step and every block index stays in bounds (2 x 2 x 2
  tiles, M = 20 padded to 24)."""
  from jax.experimental.pallas import tpu as pltpu

  qw = make_weight("uniform", 2, 128, d_out=256, d_in=256)
  x = make_x((20, qw.d_in), jnp.float32)
  params = pltpu.InterpretParams(uninitialized_memory="nan", out_of_bounds_reads="raise")
  y = dequant_matmul_pallas(x, qw, interpret=params, block_m=8, block_n=128, block_k=128)
  check_against_references(y, x, qw, jnp.float32)


def test_leading_dims_and_dtype_argument():
  qw = make_weight("bitplane", 3, 32, d_out=128, d_in=256)
  x = make_x((2, 3, qw.d_in), jnp.float32)
  y = dequant_matmul_pallas(x, qw, dtype=jnp.bfloat16)
  assert y.shape == (2, 3, qw.d_out) and y.dtype == jnp.bfloat16
  assert_close(y, dequant_matmul_reference(x, qw, dtype=jnp.bfloat16), TOL[jnp.bfloat16])


@pytest.mark.parametrize(
  "kind,bits,group_size,dtype,m,block_n",
  [("uniform", 3, 32, jnp.bfloat16, 7, None), ("bitplane", 2, 256, jnp.float32, 20, 128)],
)
def test_gpu_loop_schedule_in_interpret_mode(kind, bits, group_size, dtype, m, block_n):
  qw = make_weight(kind, bits, group_size, perm=kind == "uniform")
  x = make_x((m, qw.d_in), dtype)
  y = jax.jit(dequant_matmul_loop_interpret, static_argnames="block_n")(x, qw, block_n=block_n)
  check_against_references(y, x, qw, dtype)


def test_deterministic_and_registered():
  assert registry.DEQUANT_MATMUL_KERNELS.get("pallas") is dequant_matmul_pallas
  qw = make_weight("bitplane", 2, 128)
  x = make_x((7, qw.d_in), jnp.bfloat16)
  a, b = _kernel(x, qw), _kernel(x, qw)
  np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


def test_empty_rows():
  qw = make_weight("bitplane", 2, 128, d_out=128, d_in=256)
  y = dequant_matmul_pallas(jnp.zeros((0, 256), jnp.bfloat16), qw)
  assert y.shape == (0, 128) and y.dtype == jnp.bfloat16


def _bad_planes():
  qw = make_weight("bitplane", 2, 128, d_out=128, d_in=256)
  return dataclasses.replace(qw, planes=qw.planes[:, :1])


@pytest.mark.parametrize(
  "make_args,match",
  [
    (lambda qw: (jnp.ones((3, 255)), qw, {}), r"^x must be \[\.\.\., d_in\]"),
    (lambda qw: (jnp.ones((3, 256), jnp.int32), qw, {}), r"^x must be floating"),
    (lambda qw: (jnp.ones((3, 256)), qw.planes, {}), r"^qw must be"),
    (lambda qw: (jnp.ones((3, 256)), qw, dict(dtype=jnp.int8)), r"^dtype must be"),
    (lambda qw: (jnp.ones((3, 256)), qw, dict(block_n=96)), r"^block_n=96 does not divide"),
    (lambda qw: (jnp.ones((3, 256)), qw, dict(block_k=64)), r"^block_k=64 must be a multiple"),
    (lambda qw: (jnp.ones((3, 256)), qw, dict(block_m=12)), r"^block_m must be a multiple of 8"),
    (lambda qw: (jnp.ones((3, 256)), qw, dict(block_m=0)), r"^block_m must be a positive int"),
    (lambda qw: (jnp.ones((3, 256)), _bad_planes(), {}), r"^qw\.planes must be int32"),
  ],
)
def test_bad_arguments_raise_naming_them(make_args, match):
  x, qw, kwargs = make_args(make_weight("bitplane", 2, 128, d_out=128, d_in=256))
  with pytest.raises(ValueError, match=match):
    dequant_matmul_pallas(x, qw, **kwargs)


def test_group_size_not_a_word_multiple_raises():
  qw = make_weight("uniform", 2, 48, d_out=128, d_in=192)
  with pytest.raises(ValueError, match=r"^qw\.group_size=48 is not a multiple of 32"):
    dequant_matmul_pallas(jnp.ones((1, 192)), qw)


@pytest.mark.parametrize(
  "args,schedule,expected",
  [
    ((1, 4096, 4096, 256, jnp.bfloat16), "grid", (16, 1024, 256)),  # decode: widest bn
    ((1, 4096, 4096, 128, jnp.float32), "grid", (8, 1024, 256)),
    ((8, 4096, 11008, 256, jnp.bfloat16), "grid", (16, 256, 256)),  # 11008 = 43 * 256
    ((64, 4096, 4096, 32, jnp.bfloat16), "grid", (64, 512, 256)),  # 8 groups per K step
    ((1000, 11008, 4096, 64, jnp.bfloat16), "grid", (256, 512, 256)),
    ((7, 512, 96, 128, jnp.float32), "grid", (8, 96, 256)),  # full-width fallback
    ((1, 4096, 4096, 256, jnp.bfloat16), "loop", (16, 64, 256)),
    ((300, 4096, 4096, 128, jnp.float32), "loop", (128, 128, 256)),
  ],
)
def test_default_blocks(args, schedule, expected):
  blk = blocks_lib.choose_blocks(*args, schedule)
  assert (blk.bm, blk.bn, blk.bk) == expected


def test_gpu_blocks_need_a_power_of_two_tile():
  with pytest.raises(ValueError, match=r"^qw has d_out = 200 output rows"):
    blocks_lib.choose_blocks(1, 512, 200, 128, jnp.bfloat16, "loop")


# Decode (M = 1, widest column tile) and prefill (M = 256, two K steps per group pair) shapes.
LOWERING_CASES = [
  (1, jnp.bfloat16, "bitplane", 2, 256),
  (7, jnp.float32, "uniform", 4, 32),
  (256, jnp.bfloat16, "uniform", 3, 128),
]


def _abstract_weight(kind, bits, group_size):
  """The weight as shapes only (built eagerly first: under an abstract mesh nothing can run)."""
  qw = make_weight(kind, bits, group_size, d_out=1024, d_in=1024)
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), qw)


def _lowered_text(platform, m, dtype, kind, bits, group_size, qw=None, gpu_kernel="auto"):
  qw = _abstract_weight(kind, bits, group_size) if qw is None else qw
  x = jax.ShapeDtypeStruct((m, qw.d_in), dtype)
  fn = lambda x, qw: dequant_matmul_pallas(x, qw, interpret=False, gpu_kernel=gpu_kernel)
  return jax.jit(fn).trace(x, qw).lower(lowering_platforms=(platform,)).as_text()


@pytest.mark.parametrize("m,dtype,kind,bits,group_size", LOWERING_CASES)
def test_lowers_for_tpu(m, dtype, kind, bits, group_size):
  text = _lowered_text("tpu", m, dtype, kind, bits, group_size)
  assert len(re.findall(r"custom_call @tpu_custom_call", text)) == 1
  assert "dequant_matmul" in text


@pytest.mark.parametrize("m,dtype,kind,bits,group_size", LOWERING_CASES)
def test_lowers_for_cuda(m, dtype, kind, bits, group_size):
  # Triton lowering reads the target GPU from the abstract mesh when no GPU is attached.
  if not hasattr(jax.sharding, "AbstractDevice"):
    pytest.skip("this JAX cannot name an abstract GPU target (no jax.sharding.AbstractDevice)")
  device = jax.sharding.AbstractDevice(device_kind="NVIDIA H100", num_cores=None, platform="gpu")
  mesh = jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)
  qw = _abstract_weight(kind, bits, group_size)
  with jax.sharding.use_abstract_mesh(mesh):
    text = _lowered_text("cuda", m, dtype, kind, bits, group_size, qw, gpu_kernel="triton")
  assert len(re.findall(r"custom_call @__gpu\$xla\.gpu\.triton", text)) == 1
  assert "dequant_matmul_loop" in text


def test_tpu_only_shape_lowers_for_tpu():
  """d_out = 200 has no Triton tile (GPU is left out of the platform branches) but is one
  full-width TPU block."""
  qw = make_weight("bitplane", 2, 128, d_out=200, d_in=256)
  x = jax.ShapeDtypeStruct((3, qw.d_in), jnp.bfloat16)
  fn = lambda x, qw: dequant_matmul_pallas(x, qw, interpret=False)
  text = jax.jit(fn).trace(x, qw).lower(lowering_platforms=("tpu",)).as_text()
  assert len(re.findall(r"custom_call @tpu_custom_call", text)) == 1
