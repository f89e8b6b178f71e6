"""Pallas GLA forward kernel (arXiv:2312.06635): interpret mode vs its exported reference.

On CPU the kernel runs in interpret mode: same tolerances-by-dtype test body as a
device run would use, packed sequences (segment_ids) == each sequence run alone, a
determinism re-run, gradients through the custom VJP, and ahead-of-time lowering of
forward + backward for TPU (Mosaic) and CUDA (Triton) at TPU-legal block sizes
(Dk = Dv = 128, chunk 64 and 128). Lowering checks the Pallas lowering rules, not
Mosaic's layout passes or Triton's PTX compilation, which need the device. The fused
backward kernel has its own tests in test_gla_backward.py.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.gla import gla_chunk_pallas, gla_reference
from reasoning_jax.ops.gla import gated_linear_attention
from tests.helpers import packed_gla

B, T, H, DK, DV = 1, 23, 2, 8, 16  # T = 23: padding inside the kernel's last chunk.
TOL = {jnp.float32: 1e-5, jnp.bfloat16: 2e-2}


def _inputs(*, b=B, t=T, dtype=jnp.float32, gate="vector", seed=0):
  return packed_gla.gla_inputs(b, t, heads=H, dk=DK, dv=DV, gate=gate, dtype=dtype, seed=seed)


def random_segments(b, t, seed):
  """`[b, t]` int32 ids with random boundaries (about one every 9 positions)."""
  starts = np.random.RandomState(seed).rand(b, t) < 0.11
  return jnp.asarray(np.cumsum(starts, axis=1), jnp.int32)


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _kernel(q, k, v, g, h0, chunk_size, seg=None):
  return gla_chunk_pallas(
    q, k, v, g, initial_state=h0, chunk_size=chunk_size, segment_ids=seg, interpret=True
  )


_reference = jax.jit(
  lambda q, k, v, g, h0: gla_reference(q, k, v, g, initial_state=h0, chunk_size=8)
)


@pytest.mark.parametrize(
  "dtype,chunk_size,gate,with_state",
  [
    (jnp.float32, 8, "vector", True),
    (jnp.float32, 16, "scalar", False),
    (jnp.float32, 5, None, True),
    (jnp.bfloat16, 16, "vector", True),
    # Several query sub-chunks per chunk (R = 16 x 2, R = 8 x 3): the factorised
    # off-diagonal matmuls run, over several chunks and a ragged last chunk.
    (jnp.float32, 32, "vector", True),
    (jnp.float32, 24, "scalar", False),
    (jnp.bfloat16, 32, "vector", False),
  ],
)
def test_kernel_matches_reference(dtype, chunk_size, gate, with_state):
  t = T if chunk_size <= 16 else 3 * chunk_size - 5
  q, k, v, g, h0 = _inputs(dtype=dtype, gate=gate, t=t)
  h0 = h0 if with_state else None
  o, state = _kernel(q, k, v, g, h0, chunk_size)
  assert o.shape == (B, t, H, DV) and o.dtype == dtype
  assert state.shape == (B, H, DK, DV) and state.dtype == jnp.float32
  o_ref, state_ref = _reference(q, k, v, g, h0)
  tol = TOL[dtype]
  np.testing.assert_allclose(
    np.asarray(o, np.float32), np.asarray(o_ref, np.float32), atol=tol, rtol=tol
  )
  np.testing.assert_allclose(np.asarray(state), np.asarray(state_ref), atol=tol, rtol=tol)


@pytest.mark.parametrize(
  "chunk_size,gate,with_state,layout",
  [
    (8, "vector", True, "layouts"),  # several chunks; sequences start mid-chunk, length-1 ones
    (16, "scalar", False, "layouts"),  # one sub-chunk of 16, padding
    (24, None, True, "layouts"),  # three sub-chunks of 8 in one chunk
    (32, "vector", True, "random"),  # two sub-chunks of 16 per chunk, three chunks (T = 91)
    (5, "vector", False, "random"),  # odd chunk, interpret only
  ],
)
def test_kernel_packed_matches_separate_runs(chunk_size, gate, with_state, layout):
  """Packed rows: outputs and final states equal each sequence run alone (float64 recurrence),
  initial_state reaching each row's first sequence only."""
  if layout == "layouts":
    seg = packed_gla.layout_batch()
  else:
    seg = random_segments(2, 3 * 32 - 5, seed=chunk_size)
  q, k, v, g, h0 = _inputs(b=seg.shape[0], t=seg.shape[1], gate=gate)
  h0 = h0 if with_state else None
  out = _kernel(q, k, v, g, h0, chunk_size, seg)
  packed_gla.assert_close(out, packed_gla.separate_reference(q, k, v, g, h0, seg), atol=1e-5)


def test_dispatcher_pallas_with_segments_matches_xla():
  seg = packed_gla.layout_batch("mixed")
  q, k, v, g, h0 = _inputs(b=2)
  run = lambda impl: gated_linear_attention(
    q, k, v, g, initial_state=h0, chunk_size=8, segment_ids=seg, implementation=impl
  )
  packed_gla.assert_close(run("pallas"), run("xla"), atol=1e-5)


@pytest.mark.parametrize("chunk_size", [16, 32])
def test_tpu_interpreter_at_tpu_shapes(chunk_size):
  """The TPU interpreter (NaN-filled uninitialised memory, out-of-bounds reads raise) at
  Dk = Dv = 128 with a ragged T: every output element is written, nothing is read past a block
  (chunk 32: two 16-row query sub-chunks per program)."""
  from jax.experimental.pallas import tpu as pltpu

  ks = jax.random.split(jax.random.key(3), 4)
  q, k, v = (jax.random.normal(key, (1, 40, 1, 128)) for key in ks[:3])
  g = jax.nn.log_sigmoid(jax.random.normal(ks[3], (1, 40, 1, 128)) + 1.5)
  params = pltpu.InterpretParams(out_of_bounds_reads="raise", uninitialized_memory="nan")
  out = gla_chunk_pallas(q, k, v, g, chunk_size=chunk_size, interpret=params)
  for a, e in zip(out, gla_reference(q, k, v, g)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunk_size", [8, 32])
def test_kernel_strong_decay_is_finite(chunk_size):
  q, k, v, _, h0 = _inputs(t=70)
  g = jnp.full(q.shape, -30.0)
  out = _kernel(q, k, v, g, h0, chunk_size)
  assert all(bool(jnp.isfinite(x).all()) for x in out)
  for a, e in zip(out, _reference(q, k, v, g, h0)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=1e-5, rtol=1e-5)


def test_kernel_is_deterministic():
  args = _inputs()
  first, second = _kernel(*args, 8), _kernel(*args, 8)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_gradients_through_custom_vjp():
  q, k, v, g, h0 = _inputs()
  wo = jax.random.normal(jax.random.key(7), (B, T, H, DV))
  ws = jax.random.normal(jax.random.key(8), (B, H, DK, DV))

  def loss(fn, q, k, v, g, h0):
    o, state = fn(q, k, v, g, h0)
    return jnp.sum(o * wo) + jnp.sum(state * ws)

  grad = lambda fn: jax.jit(jax.grad(functools.partial(loss, fn), argnums=(0, 1, 2, 3, 4)))(
    q, k, v, g, h0
  )
  actual = grad(lambda *a: _kernel(*a, 8))
  expected = grad(lambda q, k, v, g, h0: gla_reference(q, k, v, g, initial_state=h0))
  for name, a, e in zip("q k v g initial_state".split(), actual, expected):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=2e-4, rtol=2e-4, err_msg=name)


def test_dispatcher_pallas_matches_xla():
  q, k, v, g, h0 = _inputs()
  run = lambda impl: gated_linear_attention(
    q, k, v, g, initial_state=h0, chunk_size=8, implementation=impl
  )
  for a, e in zip(run("pallas"), run("xla")):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=1e-5, rtol=1e-5)


def test_compiled_kernel_rejects_unaligned_chunk():
  q, k, v, g, h0 = _inputs(dtype=jnp.bfloat16)
  with pytest.raises(ValueError, match="chunk_size must be a multiple of 16"):
    gla_chunk_pallas(q, k, v, g, chunk_size=8, interpret=False)


LOWERING_CASES = [(jnp.float32, 64), (jnp.bfloat16, 128)]
KERNEL_NAMES = {"gla_chunk_fwd", "gla_chunk_bwd"}  # forward and fused backward


def _lowered_text(platform, dtype, chunk_size):
  """Lower forward and backward (value_and_grad) for `platform` from this (CPU) host."""
  shape, state_shape = (1, 256, 2, 128), (1, 2, 128, 128)
  args = [jax.ShapeDtypeStruct(shape, dtype)] * 3 + [
    jax.ShapeDtypeStruct(shape, jnp.float32),
    jax.ShapeDtypeStruct(state_shape, jnp.float32),
  ]

  def loss(q, k, v, g, h0):
    o, state = gla_chunk_pallas(
      q, k, v, g, initial_state=h0, chunk_size=chunk_size, interpret=False
    )
    return jnp.sum(o.astype(jnp.float32)) + jnp.sum(state)

  fwd_and_grad = jax.value_and_grad(loss, argnums=(0, 1, 2, 3, 4))
  return jax.jit(fwd_and_grad).trace(*args).lower(lowering_platforms=(platform,)).as_text()


@pytest.mark.parametrize("dtype,chunk_size", LOWERING_CASES)
def test_lowers_for_tpu(dtype, chunk_size):
  text = _lowered_text("tpu", dtype, chunk_size)
  assert len(re.findall(r"custom_call @tpu_custom_call", text)) == 2
  assert KERNEL_NAMES <= set(re.findall(r"gla_chunk_\w+", text))


@pytest.mark.parametrize("dtype,chunk_size", LOWERING_CASES)
def test_lowers_for_cuda(dtype, chunk_size):
  # Triton lowering reads the target GPU from the abstract mesh when no GPU is attached.
  if not hasattr(jax.sharding, "AbstractDevice"):
    pytest.skip("this JAX cannot name an abstract GPU target (no jax.sharding.AbstractDevice)")
  device = jax.sharding.AbstractDevice(device_kind="NVIDIA H100", num_cores=None, platform="gpu")
  mesh = jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)
  with jax.sharding.use_abstract_mesh(mesh):
    text = _lowered_text("cuda", dtype, chunk_size)
  assert len(re.findall(r"custom_call @__gpu\$xla\.gpu\.triton", text)) == 2
  assert KERNEL_NAMES <= set(re.findall(r"gla_chunk_\w+", text))
