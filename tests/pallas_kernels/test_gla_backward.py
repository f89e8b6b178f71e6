"""Fused Pallas GLA backward (arXiv:2312.06635): interpret mode vs `jax.grad` of the fp32 scan.

The custom VJP of `gla_chunk_pallas` runs the backward kernel (`pallas_kernels/gla/backward.py`);
its gradients of q, k, v, g and the initial state must equal autodiff of `gla_naive` with and
without packed sequences, for vector / scalar / no gates, several sub-chunk layouts and a
ragged last chunk, stay finite under strong decay, be deterministic, write every output element
(TPU interpreter with NaN-filled memory), and lower for TPU (Mosaic) and CUDA (Triton).
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.gla import gla_chunk_pallas, gla_reference
from tests.helpers import packed_gla

H, DK, DV = 2, 8, 16
NAMES = "q k v g initial_state".split()


def _inputs(b, t, *, gate="vector", dtype=jnp.float32, seed=0):
  return packed_gla.gla_inputs(b, t, heads=H, dk=DK, dv=DV, gate=gate, dtype=dtype, seed=seed)


def _segments(name, b, t):
  if name is None:
    return None
  if name == "layouts":
    return packed_gla.layout_batch()
  starts = np.random.RandomState(t).rand(b, t) < 0.11  # about one boundary every 9 positions
  return jnp.asarray(np.cumsum(starts, axis=1), jnp.int32)


def _grads(fn, q, k, v, g, h0, seg):
  """Gradients of a random linear functional of (o, final_state), so every entry gets one."""
  wo = jax.random.normal(jax.random.key(7), v.shape)
  ws = jax.random.normal(jax.random.key(8), h0.shape)

  def loss(q, k, v, g, h0):
    o, state = fn(q, k, v, g, initial_state=h0, segment_ids=seg)
    return jnp.sum(o.astype(jnp.float32) * wo) + jnp.sum(state * ws)

  argnums = (0, 1, 2, 4) if g is None else (0, 1, 2, 3, 4)
  return jax.jit(jax.grad(loss, argnums=argnums))(q, k, v, g, h0)


def _kernel(chunk_size, interpret=True):
  return functools.partial(gla_chunk_pallas, chunk_size=chunk_size, interpret=interpret)


@pytest.mark.parametrize(
  "chunk_size,t,gate,segments",
  [
    (8, 23, "vector", None),  # one sub-chunk per chunk, three chunks, ragged
    (32, 91, "vector", None),  # two sub-chunks of 16 per chunk, three chunks
    (8, 23, "vector", "layouts"),  # six packed layouts, sequences start mid-chunk
    (32, 91, "vector", "random"),  # packed, off-diagonal sub-blocks across sequences
    (24, 23, "scalar", "layouts"),  # three sub-chunks of 8, scalar gate
    (16, 40, None, "random"),  # vanilla linear attention, packed
    (5, 23, "vector", "layouts"),  # odd chunk (interpret only), sub-chunk of 5
  ],
)
def test_fused_backward_matches_naive_grad(chunk_size, t, gate, segments):
  seg = _segments(segments, 2, t)
  q, k, v, g, h0 = _inputs(2 if seg is None else seg.shape[0], t, gate=gate)
  actual = _grads(_kernel(chunk_size), q, k, v, g, h0, seg)
  expected = _grads(gla_reference, q, k, v, g, h0, seg)
  names = NAMES if g is not None else ["q", "k", "v", "initial_state"]
  for name, a, e in zip(names, actual, expected):
    assert a.shape == e.shape and a.dtype == e.dtype, name
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=2e-5, rtol=2e-5, err_msg=name)


def test_fused_backward_bf16_inputs():
  seg = _segments("layouts", 6, 23)
  q, k, v, g, h0 = _inputs(seg.shape[0], 23, dtype=jnp.bfloat16)
  actual = _grads(_kernel(16), q, k, v, g, h0, seg)
  expected = _grads(gla_reference, q, k, v, g, h0, seg)
  for name, a, e in zip(NAMES, actual, expected):
    assert a.dtype == e.dtype, name
    np.testing.assert_allclose(
      np.asarray(a, np.float32), np.asarray(e, np.float32), atol=4e-2, rtol=4e-2, err_msg=name
    )


def test_backward_runs_the_pallas_kernel():
  q, k, v, g, h0 = _inputs(1, 16)
  loss = lambda q: _kernel(8)(q, k, v, g, initial_state=h0)[0].sum()
  kernels = set(re.findall(r"gla_chunk_\w+", str(jax.make_jaxpr(jax.grad(loss))(q))))
  assert kernels == {"gla_chunk_fwd", "gla_chunk_bwd"}


def test_backward_strong_decay_finite_and_gate_at_starts_zero():
  """g = -30 everywhere (the whole past vanishes within a step): finite gradients equal to the
  reference's; the gate at a sequence start is unused and gets exactly zero gradient."""
  seg = _segments("random", 2, 70)
  q, k, v, _, h0 = _inputs(2, 70)
  g = jnp.full(q.shape, -30.0)
  actual = _grads(_kernel(32), q, k, v, g, h0, seg)
  expected = _grads(gla_reference, q, k, v, g, h0, seg)
  for name, a, e in zip(NAMES, actual, expected):
    assert bool(jnp.isfinite(a).all()), name
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=2e-5, rtol=2e-5, err_msg=name)
  starts = np.asarray(seg[:, 1:] != seg[:, :-1])
  assert np.all(np.asarray(actual[3])[:, 1:][starts] == 0.0)


def test_backward_is_deterministic():
  seg = _segments("layouts", 6, 23)
  args = _inputs(seg.shape[0], 23)
  first, second = _grads(_kernel(8), *args, seg), _grads(_kernel(8), *args, seg)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_backward_tpu_interpreter_at_tpu_shapes():
  """The TPU interpreter (NaN-filled uninitialised memory, out-of-bounds reads raise) at
  Dk = Dv = 128, two 16-row sub-chunks per chunk, a ragged T and packed sequences: every
  gradient element is written and nothing is read past a block."""
  from jax.experimental.pallas import tpu as pltpu

  ks = jax.random.split(jax.random.key(3), 5)
  q, k, v = (jax.random.normal(key, (1, 40, 1, 128)) for key in ks[:3])
  g = jax.nn.log_sigmoid(jax.random.normal(ks[3], (1, 40, 1, 128)) + 1.5)
  h0 = jax.random.normal(ks[4], (1, 1, 128, 128))
  seg = jnp.asarray([[0] * 13 + [1] * 20 + [2] * 7], jnp.int32)
  params = pltpu.InterpretParams(out_of_bounds_reads="raise", uninitialized_memory="nan")
  actual = _grads(_kernel(32, params), q, k, v, g, h0, seg)
  expected = _grads(gla_reference, q, k, v, g, h0, seg)
  for name, a, e in zip(NAMES, actual, expected):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=1e-4, rtol=1e-4, err_msg=name)


def _lowered_grad_text(platform, dtype, chunk_size):
  """Lower `jax.grad` (packed sequences) for `platform` from this (CPU) host."""
  shape, state_shape = (1, 256, 2, 128), (1, 2, 128, 128)
  args = [jax.ShapeDtypeStruct(shape, dtype)] * 3 + [
    jax.ShapeDtypeStruct(shape, jnp.float32),
    jax.ShapeDtypeStruct(state_shape, jnp.float32),
    jax.ShapeDtypeStruct((1, 256), jnp.int32),
  ]

  def loss(q, k, v, g, h0, seg):
    o, state = _kernel(chunk_size, interpret=False)(q, k, v, g, initial_state=h0, segment_ids=seg)
    return jnp.sum(o.astype(jnp.float32)) + jnp.sum(state)

  grad = jax.grad(loss, argnums=(0, 1, 2, 3, 4))
  return jax.jit(grad).trace(*args).lower(lowering_platforms=(platform,)).as_text()


LOWERING_CASES = [(jnp.float32, 64), (jnp.bfloat16, 128)]


@pytest.mark.parametrize("dtype,chunk_size", LOWERING_CASES)
def test_backward_lowers_for_tpu(dtype, chunk_size):
  text = _lowered_grad_text("tpu", dtype, chunk_size)
  assert "gla_chunk_bwd" in set(re.findall(r"gla_chunk_\w+", text))
  assert re.search(r"custom_call @tpu_custom_call", text)


@pytest.mark.parametrize("dtype,chunk_size", LOWERING_CASES)
def test_backward_lowers_for_cuda(dtype, chunk_size):
  # Triton lowering reads the target GPU from the abstract mesh when no GPU is attached.
  if not hasattr(jax.sharding, "AbstractDevice"):
    pytest.skip("this JAX cannot name an abstract GPU target (no jax.sharding.AbstractDevice)")
  device = jax.sharding.AbstractDevice(device_kind="NVIDIA H100", num_cores=None, platform="gpu")
  mesh = jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)
  with jax.sharding.use_abstract_mesh(mesh):
    text = _lowered_grad_text("cuda", dtype, chunk_size)
  assert "gla_chunk_bwd" in set(re.findall(r"gla_chunk_\w+", text))
  assert re.search(r"custom_call @__gpu\$xla\.gpu\.triton", text)
