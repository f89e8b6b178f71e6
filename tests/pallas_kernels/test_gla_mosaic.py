"""The GLA chunk kernels in their Mosaic GPU schedule ("mosaic"), forward and backward, on CPU.

`pallas_kernels/gla/kernel_mgpu.py` in JAX's GPU interpreter (JAX >= 0.12; on 0.10 these skip
and only the lowering runs) against `gla_reference` (the fp32 scan): vector and scalar gates,
weak and very strong decay (nothing overflows), an initial state, T not a chunk multiple,
Dk != Dv, head dims 64 and 128, bfloat16 and float16, packed sequences (starts inside a
sub-chunk, on a sub-chunk boundary, at a chunk start, several in one chunk); gradients from the
Mosaic GPU backward (`backward_mgpu.py`) against `jax.grad` of the reference; no races under
the interpreter's race detector; CUDA lowering on every JAX here (one Mosaic GPU kernel forward,
two with the gradient, no Triton); which schedule
None picks on a GPU, and the argument errors. Compilation and speed need a GPU
(`benchmarks/kernel_check.py`).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels import gpu_backend
from pallas_kernels.gla import gla_chunk_pallas, gla_reference
from pallas_kernels.gla import kernel as kernel_lib

needs_interpreter = pytest.mark.skipif(
  gpu_backend.mosaic_interpret_missing() is not None,
  reason=str(gpu_backend.mosaic_interpret_missing()),
)
needs_mosaic = pytest.mark.skipif(
  gpu_backend.mosaic_gpu_missing() is not None, reason=str(gpu_backend.mosaic_gpu_missing())
)
TOL = 2e-2  # relative to max |reference|, 16-bit inputs (the scores and state meet wgmma in them)


def _inputs(b, t, h, dk, dv, dtype, *, gate="vector", decay=1.0, seed=0):
  ks = jax.random.split(jax.random.key(seed), 5)
  q = jax.random.normal(ks[0], (b, t, h, dk)).astype(dtype)
  k = jax.random.normal(ks[1], (b, t, h, dk)).astype(dtype)
  v = jax.random.normal(ks[2], (b, t, h, dv)).astype(dtype)
  shape = (b, t, h, dk) if gate == "vector" else (b, t, h)
  g = -jax.nn.softplus(jax.random.normal(ks[3], shape)) * decay
  h0 = jax.random.normal(ks[4], (b, h, dk, dv)) * 0.1
  return q, k, v, g, h0


def _f32(*xs):
  return tuple(x.astype(jnp.float32) for x in xs)


def _rel_err(a, b):
  a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
  assert np.all(np.isfinite(a)), "non-finite output"
  return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1.0)


def _segments(b, t, starts):
  """`[B, T]` ids: a new sequence at each of `starts` (row r shifted by 5 r)."""
  ids = np.zeros((b, t), np.int32)
  for r in range(b):
    for s in starts:
      ids[r, min(s + 5 * r, t) :] += 1
  return jnp.asarray(ids)


# (id, (B, T, H, Dk, Dv), dtype, gate, decay, with initial state, sequence starts or None)
CASES = [
  ("vector-pad", (2, 150, 2, 64, 64), jnp.bfloat16, "vector", 1.0, False, None),
  ("strong-decay-h0", (1, 128, 1, 64, 128), jnp.bfloat16, "vector", 30.0, True, None),
  ("scalar-f16", (1, 100, 2, 128, 64), jnp.float16, "scalar", 0.5, True, None),
  ("no-decay-d128", (1, 64, 1, 128, 128), jnp.bfloat16, "vector", 0.0, False, None),
  ("packed-h0", (2, 200, 2, 64, 64), jnp.bfloat16, "vector", 0.3, True, (21, 32, 64, 70, 150)),
  ("packed-no-decay", (1, 128, 1, 64, 64), jnp.bfloat16, "vector", 0.0, False, (40, 45, 100)),
]


@needs_interpreter
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_the_reference(case):
  _, (b, t, h, dk, dv), dtype, gate, decay, with_h0, starts = case
  q, k, v, g, h0 = _inputs(b, t, h, dk, dv, dtype, gate=gate, decay=decay)
  h0 = h0 if with_h0 else None
  kw = dict(initial_state=h0, segment_ids=None if starts is None else _segments(b, t, starts))
  o, final = gla_chunk_pallas(q, k, v, g, schedule="mosaic", interpret=True, **kw)
  o_ref, final_ref = gla_reference(*_f32(q, k, v), g, **kw)
  assert o.dtype == dtype and o.shape == (b, t, h, dv)
  assert _rel_err(o, o_ref) <= TOL
  assert _rel_err(final, final_ref) <= TOL  # stage 1 (XLA), shared with the other schedule


# (id, (B, T, H, Dk, Dv), decay, sequence starts or None)
GRAD_CASES = [
  ("plain-pad", (1, 130, 2, 64, 64), 1.0, None),
  ("packed-dv128", (2, 200, 1, 64, 128), 0.3, (21, 32, 64, 70, 150)),
  ("strong-decay-dk128", (1, 128, 1, 128, 64), 30.0, (40,)),
]


@needs_interpreter
@pytest.mark.parametrize("case", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradients_match_the_reference(case):
  """The Mosaic GPU backward (`backward_mgpu.py` + dg's reverse cumsum in XLA) against
  `jax.grad` of the fp32 scan: dq, dk, dv, dg and the initial state's gradient."""
  _, (b, t, h, dk, dv), decay, starts = case
  q, k, v, g, h0 = _inputs(b, t, h, dk, dv, jnp.bfloat16, decay=decay, seed=3)
  ids = None if starts is None else _segments(b, t, starts)
  w = jax.random.normal(jax.random.key(9), (b, t, h, dv))

  def grads(fn, **kw):
    def f(q, k, v, g, h0):
      o, final = fn(q, k, v, g, initial_state=h0, segment_ids=ids, **kw)
      return jnp.sum(o.astype(jnp.float32) * w) + 0.3 * jnp.sum(final)

    return jax.grad(f, argnums=(0, 1, 2, 3, 4))

  got = grads(gla_chunk_pallas, schedule="mosaic", interpret=True)(q, k, v, g, h0)
  want = grads(gla_reference)(*_f32(q, k, v), g, h0)
  for name, a, w_ in zip(("dq", "dk", "dv", "dg", "dh0"), got, want):
    assert a.dtype == (jnp.bfloat16 if name in ("dq", "dk", "dv") else jnp.float32), name
    assert _rel_err(a, w_) <= TOL, name


@needs_interpreter
def test_no_races():
  """JAX's GPU interpreter with its race detector (every shared-memory and TMA access) on the
  forward and backward kernels: the decayed-key / decayed-query tile is rewritten for each
  sub-chunk's wgmma after the previous one read it, and dq, dk, dv replace the q, k, v tiles."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  q, k, v, g, h0 = _inputs(1, 128, 1, 64, 64, jnp.bfloat16, seed=2)
  kw = dict(initial_state=h0, segment_ids=_segments(1, 128, (30, 90)))
  params = plgpu.InterpretGPUParams(detect_races=True)

  def loss(fn, **extra):
    def f(q, k, v):
      return jnp.sum(fn(q, k, v, g, **kw, **extra)[0].astype(jnp.float32) ** 2)

    return jax.value_and_grad(f, argnums=(0, 1, 2))

  got = loss(gla_chunk_pallas, schedule="mosaic", interpret=params)(q, k, v)  # raises on a race
  want = loss(gla_reference)(*_f32(q, k, v))
  for a, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert _rel_err(a, w) <= TOL


@needs_mosaic
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_lowers_for_cuda_as_one_mosaic_gpu_kernel(dtype):
  b, t, h, dk, dv = 1, 300, 2, 128, 64
  args = tuple(
    jax.ShapeDtypeStruct(s, dtype if i < 3 else jnp.float32)
    for i, s in enumerate(((b, t, h, dk), (b, t, h, dk), (b, t, h, dv), (b, t, h, dk)))
  )

  def fwd(q, k, v, g, ids=None):
    return gla_chunk_pallas(q, k, v, g, segment_ids=ids, schedule="mosaic", interpret=False)

  ids = jax.ShapeDtypeStruct((b, t), jnp.int32)
  for extra in ((), (ids,)):
    text = jax.jit(fwd).trace(*args, *extra).lower(lowering_platforms=("cuda",)).as_text()
    assert len(re.findall(r"custom_call @mosaic_gpu", text)) == 1
    if gpu_backend.mosaic_kernel_name("gla_chunk_fwd_mosaic"):  # JAXes that name kernels
      assert "gla_chunk_fwd_mosaic" in text
    assert "triton" not in text


@needs_mosaic
def test_gradient_lowers_as_two_mosaic_gpu_kernels():
  """Forward and backward: two Mosaic GPU kernels and no Triton, with and without segments."""
  b, t, h, dk, dv = 1, 256, 2, 64, 128
  args = tuple(
    jax.ShapeDtypeStruct(s, jnp.bfloat16 if i < 3 else jnp.float32)
    for i, s in enumerate(((b, t, h, dk), (b, t, h, dk), (b, t, h, dv), (b, t, h, dk)))
  )
  ids = jax.ShapeDtypeStruct((b, t), jnp.int32)

  def loss(q, k, v, g, ids=None):
    o, final = gla_chunk_pallas(q, k, v, g, segment_ids=ids, schedule="mosaic", interpret=False)
    return jnp.sum(o.astype(jnp.float32)) + jnp.sum(final)

  for extra in ((), (ids,)):
    grad = jax.value_and_grad(loss, argnums=(0, 1, 2, 3))  # the value keeps the forward
    text = jax.jit(grad).trace(*args, *extra).lower(lowering_platforms=("cuda",)).as_text()
    assert len(re.findall(r"custom_call @mosaic_gpu", text)) == 2
    if gpu_backend.mosaic_kernel_name("gla_chunk_bwd_mosaic"):
      assert "gla_chunk_fwd_mosaic" in text and "gla_chunk_bwd_mosaic" in text
    assert "triton" not in text


def _resolve(monkeypatch, *, capability=None, schedule=None, interpret=False, **call):
  monkeypatch.setattr(gpu_backend, "gpu_compute_capability", lambda: capability)
  kw = dict(dtype=jnp.dtype(jnp.bfloat16), chunk_size=64, dk=128, dv=128)
  kw.update(call)
  return kernel_lib.resolve_schedule(schedule, backend="gpu", interpret=interpret, **kw)


@needs_mosaic
def test_a_gpu_keeps_triton_and_takes_mosaic_without_it(monkeypatch):
  """The pallas_call (Triton) kernel while JAX has Triton; without it the Mosaic GPU kernels
  where it can take the call, else the pallas_call kernel; never on TPU or in interpret mode."""
  assert _resolve(monkeypatch, capability=9.0) == "pallas_call"
  monkeypatch.setattr(gpu_backend, "triton_missing", lambda: "no Triton")
  assert _resolve(monkeypatch, capability=9.0) == "mosaic"
  assert _resolve(monkeypatch) == "mosaic"  # lowering ahead of time, no GPU attached
  assert _resolve(monkeypatch, capability=8.0) == "pallas_call"  # no wgmma before sm_90
  assert _resolve(monkeypatch, dtype=jnp.dtype(jnp.float32)) == "pallas_call"
  assert _resolve(monkeypatch, chunk_size=32) == "pallas_call"
  assert _resolve(monkeypatch, dk=256) == "pallas_call"
  assert _resolve(monkeypatch, interpret=True) == "pallas_call"
  kw = dict(dtype=jnp.dtype(jnp.bfloat16), chunk_size=64, dk=64, dv=64)
  assert kernel_lib.resolve_schedule(None, backend="tpu", interpret=False, **kw) == "pallas_call"


@needs_mosaic
def test_explicit_mosaic_says_why_it_cannot(monkeypatch):
  for kwargs, match in (
    (dict(dtype=jnp.dtype(jnp.float32)), r"computes in bfloat16 or float16 \(wgmma\), got float32"),
    (dict(chunk_size=128), r"takes chunk_size=64 \(one warpgroup\), got 128"),
    (dict(dv=96), r"takes Dk and Dv in \(64, 128\), got Dk=128, Dv=96"),
    (dict(capability=8.6), r"needs a Hopper GPU \(sm_90\), this GPU is sm_8.6"),
  ):
    with pytest.raises(ValueError, match=r'^schedule="mosaic": .*' + match):
      _resolve(monkeypatch, schedule="mosaic", **kwargs)
  kw = dict(dtype=jnp.dtype(jnp.bfloat16), chunk_size=64, dk=64, dv=64)
  with pytest.raises(ValueError, match=r'schedule="mosaic": it is a GPU schedule'):
    kernel_lib.resolve_schedule("mosaic", backend="tpu", interpret=False, **kw)
  with pytest.raises(ValueError, match=r"schedule must be None or one of \('pallas_call', "):
    kernel_lib.resolve_schedule("loop", backend="gpu", interpret=False, **kw)
