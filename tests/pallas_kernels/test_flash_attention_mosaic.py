"""The flash attention in its Mosaic GPU schedule ("mosaic"), on CPU.

`pallas_kernels/flash_attention/kernel_mgpu.py` (forward) and `backward_mgpu.py` (dQ, dK/dV)
in JAX's GPU interpreter (JAX >= 0.12; on 0.10 these skip and only the lowering runs) against
`flash_attention_reference`, forward and gradients (the loop schedule's backward above
D = 128): causal, sliding windows smaller and larger than a key block, bidirectional with
padding keys, packed segments, GQA and MQA, head dims padded to 64 / 256, T not a block
multiple, bfloat16 and float16, key blocks 64, 128 and 256. Also: skipped key blocks are never read
(NaN poisoning), no races under the interpreter's race detector, CUDA lowering on every JAX here (one Mosaic GPU kernel forward, three with the
gradient), which schedule None picks on a GPU, block fitting and the argument errors.
Compilation and speed need a GPU (`benchmarks/kernel_check.py --kernels flash`,
`benchmarks/attention.py`).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels import gpu_backend
from pallas_kernels.flash_attention import blocks, flash_attention, flash_attention_reference
from pallas_kernels.flash_attention import kernel as kernel_lib
from tests.pallas_kernels.test_flash_attention import _abstract_gpu_context, _fwd_vjp

needs_interpreter = pytest.mark.skipif(
  gpu_backend.mosaic_interpret_missing() is not None,
  reason=str(gpu_backend.mosaic_interpret_missing()),
)
needs_mosaic = pytest.mark.skipif(
  gpu_backend.mosaic_gpu_missing() is not None, reason=str(gpu_backend.mosaic_gpu_missing())
)
TOL = 2e-2  # relative to max |reference|, bfloat16 / float16 inputs


def _inputs(b, t, n, kh, d, dtype, seed=0):
  ks = jax.random.split(jax.random.key(seed), 4)
  shapes = ((b, t, n, d), (b, t, kh, d), (b, t, kh, d), (b, t, n, d))
  return tuple(jax.random.normal(k, s, jnp.float32).astype(dtype) for k, s in zip(ks, shapes))


def _segments(b, t, bounds):
  ids = np.zeros((b, t), np.int32)
  for r in range(b):
    for s in bounds:
      ids[r, min(s + 3 * r, t) :] += 1
  return jnp.asarray(ids)


def _f32(*xs):
  return tuple(x.astype(jnp.float32) for x in xs)


def _rel_err(a, b):
  a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
  return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1.0)


# (id, (B, T, N, K, D), dtype, mask kwargs, block_k)
CASES = [
  ("causal-gqa-pad-d48", (2, 150, 4, 2, 48), jnp.bfloat16, {}, 64),
  ("window37-bk128", (1, 200, 2, 1, 64), jnp.bfloat16, {"sliding_window": 37}, 128),
  ("causal-bk256-pad", (1, 300, 2, 1, 64), jnp.bfloat16, {}, 256),
  ("window1-mqa", (1, 96, 2, 1, 64), jnp.float16, {"sliding_window": 1}, 64),
  (
    "bidir-pad-segments",
    (2, 130, 2, 2, 64),
    jnp.bfloat16,
    {"causal": False, "segments": (61,)},
    64,
  ),
  ("window-d200-triton-backward", (1, 128, 2, 1, 200), jnp.bfloat16, {"sliding_window": 70}, 64),
  (
    "causal-window200-segments",
    (1, 192, 2, 1, 128),
    jnp.bfloat16,
    {"sliding_window": 200, "segments": (50, 140)},
    64,
  ),
]


@needs_interpreter
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_reference_forward_and_gradients(case):
  _, (b, t, n, kh, d), dtype, spec, block_k = case
  spec = dict(spec)
  bounds = spec.pop("segments", None)
  if bounds is not None:
    ids = _segments(b, t, bounds)
    spec.update(q_segment_ids=ids, kv_segment_ids=ids)
  q, k, v, do = _inputs(b, t, n, kh, d, dtype)
  kernel = _fwd_vjp(flash_attention, schedule="mosaic", interpret=True, block_k=block_k, **spec)
  got = kernel(q, k, v, do)
  want = _fwd_vjp(flash_attention_reference, **spec)(*_f32(q, k, v, do))
  for name, g, w, x in zip(("o", "dq", "dk", "dv"), got, want, (q, q, k, v)):
    assert g.shape == x.shape and g.dtype == dtype, name
    assert _rel_err(g, w) <= TOL, (name, _rel_err(g, w))
  again = kernel(q, k, v, do)
  for g, g2 in zip(got, again):
    np.testing.assert_array_equal(np.asarray(g), np.asarray(g2))  # deterministic
  if spec.get("sliding_window") == 1:  # every query sees only itself: o = v of its key head
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(jnp.repeat(v, n // kh, axis=2)))


@needs_interpreter
def test_skipped_key_blocks_are_never_read():
  """NaN-poison key block 0 (rows 0..63): with a 50-token window query blocks 2 and 3 (rows
  128..255) never reach it, so their outputs and the other keys' gradients stay finite and
  right; the forward pipeline starts at the first visible block."""
  b, t, n, kh, d, w = 1, 256, 2, 1, 64, 50
  q, k, v, do = _inputs(b, t, n, kh, d, jnp.bfloat16, seed=2)
  f = _fwd_vjp(flash_attention, sliding_window=w, schedule="mosaic", interpret=True, block_k=64)
  want = _fwd_vjp(flash_attention_reference, sliding_window=w)(*_f32(q, k, v, do))
  kn, vn = k.at[:, :64].set(jnp.nan), v.at[:, :64].set(jnp.nan)
  o, dq, dk, dv = f(q, kn, vn, do)
  for name, got, ref, rows in (
    ("o", o, want[0], slice(128, t)),
    ("dq", dq, want[1], slice(128, t)),
    ("dk", dk, want[2], slice(128, t)),
    ("dv", dv, want[3], slice(128, t)),
  ):
    assert np.all(np.isfinite(np.asarray(got[:, rows], np.float32))), name
    assert _rel_err(got[:, rows], ref[:, rows]) <= TOL, name


@needs_interpreter
def test_no_races_in_the_pipelines():
  """JAX's GPU interpreter with its race detector (vector clocks over every shared-memory and
  TMA access) on the forward, dQ and dK/dV kernels, GQA with segments and a window."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  b, t, n, kh, d = 1, 192, 4, 2, 64
  q, k, v, do = _inputs(b, t, n, kh, d, jnp.bfloat16, seed=4)
  ids = _segments(b, t, (70,))
  f = _fwd_vjp(
    flash_attention,
    sliding_window=100,
    q_segment_ids=ids,
    kv_segment_ids=ids,
    schedule="mosaic",
    interpret=plgpu.InterpretGPUParams(detect_races=True),
    block_k=64,
  )
  got = f(q, k, v, do)  # raises "RACE DETECTED" on a race
  want = _fwd_vjp(
    flash_attention_reference, sliding_window=100, q_segment_ids=ids, kv_segment_ids=ids
  )(*_f32(q, k, v, do))
  for g, w in zip(got, want):
    assert _rel_err(g, w) <= TOL


def _lowered(fn, args):
  return jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()


@needs_mosaic
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_forward_lowers_for_cuda_as_one_mosaic_gpu_kernel(dtype):
  b, t, n, kh, d = 1, 300, 4, 2, 128
  q, k, v, _ = (
    jax.ShapeDtypeStruct(s, dtype)
    for s in ((b, t, n, d), (b, t, kh, d), (b, t, kh, d), (b, t, n, d))
  )
  ids = jax.ShapeDtypeStruct((b, t), jnp.int32)
  for kwargs, args in (
    (dict(sliding_window=100), (q, k, v)),
    (dict(causal=False), (q, k, v)),
  ):
    text = _lowered(
      lambda q, k, v: flash_attention(q, k, v, schedule="mosaic", interpret=False, **kwargs), args
    )
    assert len(re.findall(r"custom_call @mosaic_gpu", text)) == 1, kwargs
    assert "flash_attention_fwd_mosaic" in text and "triton" not in text
  text = _lowered(
    lambda q, k, v, s: flash_attention(
      q, k, v, q_segment_ids=s, kv_segment_ids=s, schedule="mosaic", interpret=False
    ),
    (q, k, v, ids),
  )
  assert len(re.findall(r"custom_call @mosaic_gpu", text)) == 1


@needs_mosaic
def test_gradient_lowers_as_three_mosaic_gpu_kernels():
  """Forward, dQ and dK/dV: three Mosaic GPU kernels and no Triton (head dims up to 128)."""
  b, t, n, kh, d = 1, 256, 4, 2, 128
  args = tuple(
    jax.ShapeDtypeStruct(s, jnp.bfloat16) for s in ((b, t, n, d), (b, t, kh, d), (b, t, kh, d))
  )
  ids = jax.ShapeDtypeStruct((b, t), jnp.int32)

  def loss(q, k, v, s=None):
    kw = {} if s is None else dict(q_segment_ids=s, kv_segment_ids=s)
    o = flash_attention(q, k, v, sliding_window=100, schedule="mosaic", interpret=False, **kw)
    return jnp.sum(o.astype(jnp.float32))

  for extra in ((), (ids,)):
    text = _lowered(jax.grad(loss, argnums=(0, 1, 2)), (*args, *extra))
    assert len(re.findall(r"custom_call @mosaic_gpu", text)) == 3
    assert "flash_attention_dq_mosaic" in text and "flash_attention_dkv_mosaic" in text
    assert "triton" not in text


@needs_mosaic
@pytest.mark.filterwarnings("ignore:The Pallas Triton backend is deprecated:DeprecationWarning")
def test_wide_heads_take_the_triton_backward():
  """D > 128 (two [64, D] float32 accumulators would not fit in registers): the Mosaic GPU
  forward with the loop schedule's dQ and dK/dV kernels."""
  if gpu_backend.triton_missing() is not None:
    pytest.skip(gpu_backend.triton_missing())
  b, t, n, kh, d = 1, 256, 2, 1, 256
  args = tuple(
    jax.ShapeDtypeStruct(s, jnp.bfloat16) for s in ((b, t, n, d), (b, t, kh, d), (b, t, kh, d))
  )

  def loss(q, k, v):
    o = flash_attention(q, k, v, sliding_window=64, schedule="mosaic", interpret=False)
    return jnp.sum(o.astype(jnp.float32))

  try:
    text = _lowered(jax.grad(loss, argnums=(0, 1, 2)), args)
  except RuntimeError as e:  # JAX >= 0.11 lowers Triton without a GPU only under an abstract mesh
    if "AbstractDevice" not in str(e):
      raise
    with _abstract_gpu_context():
      text = _lowered(jax.grad(loss, argnums=(0, 1, 2)), args)
  assert len(re.findall(r"custom_call @mosaic_gpu", text)) == 1
  assert len(re.findall(r"__gpu\$xla\.gpu\.triton", text)) == 2  # dQ and dK/dV kernels


def _resolve(monkeypatch, dtype, *, d=128, capability=None, schedule=None, interpret=False):
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  monkeypatch.setattr(gpu_backend, "gpu_compute_capability", lambda: capability)
  return kernel_lib._resolve_schedule(schedule, "gpu", d, jnp.dtype(dtype), interpret)


@needs_mosaic
def test_a_gpu_defaults_to_triton_and_to_mosaic_without_it(monkeypatch):
  """Triton (measured on an H100) while JAX has it; without it Mosaic GPU where it can take
  the call, else the loop schedule (which then stops naming the XLA path)."""
  for dtype, d in ((jnp.bfloat16, 128), (jnp.float32, 128)):
    assert _resolve(monkeypatch, dtype, d=d, capability=9.0) == "loop"
  monkeypatch.setattr(gpu_backend, "triton_missing", lambda: "no Triton")
  assert _resolve(monkeypatch, jnp.bfloat16) == "mosaic"
  assert _resolve(monkeypatch, jnp.float16, capability=9.0, d=48) == "mosaic"
  assert _resolve(monkeypatch, jnp.bfloat16, capability=8.0) == "loop"  # no wgmma before sm_90
  assert _resolve(monkeypatch, jnp.bfloat16, capability=10.0) == "loop"  # nor on Blackwell
  assert _resolve(monkeypatch, jnp.float32) == "loop"
  assert _resolve(monkeypatch, jnp.bfloat16, d=512) == "loop"


@needs_mosaic
def test_explicit_mosaic_says_why_it_cannot(monkeypatch):
  for kwargs, match in (
    (dict(dtype=jnp.float32), r"computes in bfloat16 or float16 \(wgmma\), got float32"),
    (dict(dtype=jnp.bfloat16, d=320), r"head dim D up to 256, got 320"),
    (dict(dtype=jnp.bfloat16, capability=8.6), r"needs a Hopper GPU \(sm_90\), this GPU is sm_8.6"),
  ):
    with pytest.raises(ValueError, match=r"^schedule='mosaic': .*" + match):
      _resolve(monkeypatch, schedule="mosaic", **kwargs)
  monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
  with pytest.raises(ValueError, match=r"schedule='mosaic': it is a GPU schedule"):
    kernel_lib._resolve_schedule("mosaic", "tpu", 128, jnp.dtype(jnp.bfloat16), False)


def test_mosaic_block_sizes():
  fit = lambda t, bq, bk: blocks.fit_block_sizes(t, bq, bk, schedule="mosaic", compiled=True)  # noqa: E731
  assert fit(150, 64, 128) == (64, 128, 256)
  assert fit(40, 64, 128) == (64, 64, 64)  # a short sequence takes the smallest key tile
  assert fit(100, 64, 256) == (64, 128, 128)
  assert fit(1000, 64, 128) == (64, 128, 1024)
  with pytest.raises(ValueError, match=r"block_q must be 64 for the Mosaic GPU kernel, got 128"):
    fit(1000, 128, 128)
  with pytest.raises(ValueError, match=r"block_k must be one of \(64, 128, 256\).*got 96"):
    fit(1000, 64, 96)
  assert [
    blocks.padded_head_dim(d, schedule="mosaic", compiled=False) for d in (16, 64, 80, 128, 200)
  ] == [64, 64, 128, 128, 256]
  assert blocks.mosaic_unsupported(128, jnp.bfloat16) is None
  # Shared memory: the query tile plus two stages of K and V tiles must fit in 227 KiB.
  assert blocks.mosaic_block_k(128, 128, 2) == 128 and blocks.mosaic_block_k(256, 128, 2) == 128
  assert blocks.mosaic_block_k(128, 256, 2) == 64
  assert blocks.mosaic_block_k(128, 128, 2, fixed_rows=128) == 128
  with pytest.raises(
    ValueError, match=r"block_k=256 with head dim 128 needs 279552 bytes.*use block_k=128"
  ):
    blocks.fit_block_sizes(1000, 64, 256, schedule="mosaic", compiled=True, head_dim=128)
