"""Pallas GLA forward kernel (arXiv:2312.06635): interpret mode vs its exported reference.

On CPU the kernel runs in interpret mode: same tolerances-by-dtype test body as a
device run would use, a determinism re-run, gradients through the custom VJP,
and ahead-of-time lowering for TPU (Mosaic) and CUDA (Triton) at TPU-legal block
sizes (Dk = Dv = 128, chunk 64 and 128). Lowering checks the Pallas lowering rules,
not Mosaic's layout passes or Triton's PTX compilation, which need the device.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.gla import gla_chunk_pallas, gla_reference
from reasoning_jax.ops.gla import gated_linear_attention

B, T, H, DK, DV = 1, 23, 2, 8, 16  # T = 23: padding inside the kernel's last chunk.
TOL = {jnp.float32: 1e-5, jnp.bfloat16: 2e-2}


def _inputs(*, t=T, dtype=jnp.float32, gate="vector", seed=0):
  ks = jax.random.split(jax.random.key(seed), 5)
  q = jax.random.normal(ks[0], (B, t, H, DK), dtype)
  k = jax.random.normal(ks[1], (B, t, H, DK), dtype)
  v = jax.random.normal(ks[2], (B, t, H, DV), dtype)
  gate_shape = {"vector": (B, t, H, DK), "scalar": (B, t, H)}
  g = None if gate is None else jax.nn.log_sigmoid(jax.random.normal(ks[3], gate_shape[gate]) + 1.5)
  h0 = jax.random.normal(ks[4], (B, H, DK, DV), jnp.float32)
  return q, k, v, g, h0


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _kernel(q, k, v, g, h0, chunk_size):
  return gla_chunk_pallas(q, k, v, g, initial_state=h0, chunk_size=chunk_size, interpret=True)


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


def _lowered_text(platform, dtype, chunk_size):
  """Lower forward and backward for `platform` from this (CPU) host."""
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
  assert re.search(r"custom_call @tpu_custom_call", text)


@pytest.mark.parametrize("dtype,chunk_size", LOWERING_CASES)
def test_lowers_for_cuda(dtype, chunk_size):
  # Triton lowering reads the target GPU from the abstract mesh when no GPU is attached.
  if not hasattr(jax.sharding, "AbstractDevice"):
    pytest.skip("this JAX cannot name an abstract GPU target (no jax.sharding.AbstractDevice)")
  device = jax.sharding.AbstractDevice(device_kind="NVIDIA H100", num_cores=None, platform="gpu")
  mesh = jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)
  with jax.sharding.use_abstract_mesh(mesh):
    text = _lowered_text("cuda", dtype, chunk_size)
  assert re.search(r"custom_call @__gpu\$xla\.gpu\.triton", text)
