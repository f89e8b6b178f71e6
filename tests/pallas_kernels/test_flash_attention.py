"""Pallas flash attention (interpret mode on CPU) vs its exported dense reference.

One test body per case runs forward and VJP of the kernel and of
`flash_attention_reference` (tolerances keyed by dtype, gradients looser) and
re-runs the kernel for bit-identical determinism. Cases cover both schedules
("grid" = TPU, "loop" = GPU), causal and bidirectional masks, windows w in
{1, 3, 8, T, 2T} (smaller than, equal to and not a multiple of the block),
GQA/MQA, segment ids and T not divisible by the block. Further tests pin the
window edge bit-exactly, show that skipped key blocks are never read (NaN
poisoning), check block-size invariance, run the TPU interpreter with
out-of-bounds and uninitialised-memory checks, lower for TPU and CUDA from CPU,
and check input validation and the registry adapter.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.flash_attention import (
  blocks,
  common,
  flash_attention,
  flash_attention_reference,
  pallas_attention,
  register,
  unsupported_reason,
)
from reasoning_jax.registry import Registry

TOL = {jnp.float32: 1e-5, jnp.bfloat16: 2e-2}
GRAD_TOL = {jnp.float32: 1e-4, jnp.bfloat16: 4e-2}


def _inputs(b, t, n, kh, d, dtype=jnp.float32, seed=0):
  ks = jax.random.split(jax.random.key(seed), 4)
  q = jax.random.normal(ks[0], (b, t, n, d), jnp.float32).astype(dtype)
  k = jax.random.normal(ks[1], (b, t, kh, d), jnp.float32).astype(dtype)
  v = jax.random.normal(ks[2], (b, t, kh, d), jnp.float32).astype(dtype)
  do = jax.random.normal(ks[3], (b, t, n, d), jnp.float32).astype(dtype)
  return q, k, v, do


def _segments(b, t, bounds):
  """[B, T] ids; row r of the batch shifts the segment starts by r."""
  ids = np.zeros((b, t), np.int32)
  for r in range(b):
    for s in bounds:
      ids[r, min(s + r, t) :] += 1
  return jnp.asarray(ids)


def _fwd_vjp(fn, **kwargs):
  """jit(q, k, v, do -> (o, dq, dk, dv)) for `fn(q, k, v, **kwargs)`."""

  def f(q, k, v, do):
    o, vjp = jax.vjp(lambda q, k, v: fn(q, k, v, **kwargs), q, k, v)
    return (o, *vjp(do))

  return jax.jit(f)


def _max_err(a, b):
  return float(jnp.max(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32))))


# (id, schedule, dtype, (B, T, N, K, D), mask kwargs, (block_q, block_k)).
CASES = [
  ("grid-causal-pad", "grid", jnp.float32, (2, 40, 4, 2, 8), {}, (16, 8)),
  ("grid-w1", "grid", jnp.float32, (1, 40, 4, 2, 8), {"sliding_window": 1}, (8, 8)),
  ("grid-w3", "grid", jnp.float32, (1, 40, 4, 2, 8), {"sliding_window": 3}, (8, 16)),
  ("grid-w8", "grid", jnp.float32, (1, 40, 4, 2, 8), {"sliding_window": 8}, (8, 8)),
  ("grid-wT", "grid", jnp.float32, (1, 40, 4, 2, 8), {"sliding_window": 40}, (16, 16)),
  ("grid-w2T", "grid", jnp.float32, (1, 40, 2, 2, 8), {"sliding_window": 80}, (8, 8)),
  (
    "grid-seg-w9",
    "grid",
    jnp.float32,
    (2, 40, 4, 2, 8),
    {"segments": (13, 29), "sliding_window": 9},
    (8, 8),
  ),
  (
    "grid-bidir-w13-pad",
    "grid",
    jnp.float32,
    (1, 40, 4, 2, 8),
    {"causal": False, "sliding_window": 13},
    (16, 16),
  ),
  ("grid-bidir-pad", "grid", jnp.float32, (1, 40, 2, 1, 8), {"causal": False}, (16, 8)),
  ("grid-mqa-w5", "grid", jnp.float32, (1, 16, 2, 1, 16), {"sliding_window": 5}, (8, 8)),
  ("grid-bf16-w8", "grid", jnp.bfloat16, (1, 40, 4, 2, 16), {"sliding_window": 8}, (8, 8)),
  ("loop-causal-pad", "loop", jnp.float32, (2, 40, 4, 2, 8), {}, (16, 8)),
  ("loop-w3", "loop", jnp.float32, (1, 40, 4, 2, 8), {"sliding_window": 3}, (8, 16)),
  (
    "loop-seg-bidir-pad",
    "loop",
    jnp.float32,
    (1, 40, 4, 2, 8),
    {"segments": (7, 20), "causal": False},
    (16, 16),
  ),
  (
    "loop-bidir-w13-pad",
    "loop",
    jnp.float32,
    (1, 40, 4, 1, 8),
    {"causal": False, "sliding_window": 13},
    (16, 16),
  ),
  ("loop-bf16-w3", "loop", jnp.bfloat16, (1, 16, 4, 2, 16), {"sliding_window": 3}, (8, 8)),
]


def _mask_kwargs(spec, b, t):
  spec = dict(spec)
  bounds = spec.pop("segments", None)
  if bounds is not None:
    ids = _segments(b, t, bounds)
    spec.update(q_segment_ids=ids, kv_segment_ids=ids)
  return spec


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_reference_forward_and_gradients(case):
  _, schedule, dtype, (b, t, n, kh, d), spec, (bq, bk) = case
  kwargs = _mask_kwargs(spec, b, t)
  q, k, v, do = _inputs(b, t, n, kh, d, dtype)
  kernel = _fwd_vjp(flash_attention, block_q=bq, block_k=bk, schedule=schedule, **kwargs)
  got = kernel(q, k, v, do)
  want = _fwd_vjp(flash_attention_reference, **kwargs)(q, k, v, do)
  for name, g, w, tol in zip(
    ("o", "dq", "dk", "dv"), got, want, (TOL[dtype],) + (GRAD_TOL[dtype],) * 3
  ):
    assert g.shape == w.shape and g.dtype == w.dtype, name
    scale = max(1.0, float(jnp.max(jnp.abs(w.astype(jnp.float32)))))
    assert _max_err(g, w) <= tol * scale, (name, _max_err(g, w))
  again = kernel(q, k, v, do)
  for g, g2 in zip(got, again):
    np.testing.assert_array_equal(np.asarray(g), np.asarray(g2))  # Deterministic.
  if kwargs.get("sliding_window") == 1 and dtype == jnp.float32:
    # Window 1: every query sees only itself, o = v of its key head, exactly.
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(jnp.repeat(v, n // kh, axis=2)))


@pytest.mark.parametrize("schedule,window", [("grid", 3), ("grid", 8), ("loop", 5)])
def test_window_edge_is_bit_exact(schedule, window):
  """The key exactly w back is out (o_t bit-identical); w - 1 back is in."""
  b, t, n, kh, d = 1, 40, 2, 1, 8
  q, k, v, _ = _inputs(b, t, n, kh, d)
  f = jax.jit(
    lambda q, k, v: flash_attention(
      q, k, v, sliding_window=window, block_q=8, block_k=8, schedule=schedule
    )
  )
  base = np.asarray(f(q, k, v))
  for row in (window, 17, 24, t - 1):
    for offset, visible in ((window, False), (window - 1, True)):
      j = row - offset
      k2, v2 = k.at[:, j].add(3.0), v.at[:, j].add(3.0)
      out = np.asarray(f(q, k2, v2))
      if visible:
        assert np.all(np.abs(out[:, row] - base[:, row]) > 0), (row, j)
      else:
        np.testing.assert_array_equal(out[:, row], base[:, row], err_msg=f"row {row} key {j}")


@pytest.mark.parametrize("schedule", ["grid", "loop"])
def test_skipped_key_blocks_are_never_read(schedule):
  """NaN-poison blocks outside the visible ranges: 0 * NaN would leak if they were read."""
  b, t, n, kh, d, w = 1, 40, 2, 1, 8, 3
  q, k, v, do = _inputs(b, t, n, kh, d)
  f = _fwd_vjp(flash_attention, sliding_window=w, block_q=8, block_k=8, schedule=schedule)
  ref = _fwd_vjp(flash_attention_reference, sliding_window=w)(q, k, v, do)
  # Key block 0 is below the window of query blocks >= 2 (rows >= 16); key block 4
  # is above the causal diagonal of query blocks <= 3 (rows < 32).
  for poisoned, clean_rows, clean_keys in (
    (slice(0, 8), slice(16, t), slice(16, t)),
    (slice(32, 40), slice(0, 32), slice(0, 24)),
  ):
    kn = k.at[:, poisoned].set(jnp.nan)
    vn = v.at[:, poisoned].set(jnp.nan)
    o, dq, dk, dv = f(q, kn, vn, do)
    for name, got, want, sl in (
      ("o", o, ref[0], clean_rows),
      ("dq", dq, ref[1], clean_rows),
      ("dk", dk, ref[2], clean_keys),
      ("dv", dv, ref[3], clean_keys),
    ):
      assert _max_err(got[:, sl], want[:, sl]) <= GRAD_TOL[jnp.float32], (name, poisoned)


def test_block_size_and_schedule_invariance():
  b, t, n, kh, d = 1, 40, 4, 2, 8
  q, k, v, do = _inputs(b, t, n, kh, d, seed=3)
  runs = [
    _fwd_vjp(flash_attention, sliding_window=11, block_q=bq, block_k=bk, schedule=schedule)(
      q, k, v, do
    )
    for bq, bk, schedule in ((8, 8, "grid"), (16, 16, "grid"), (16, 8, "loop"))
  ]
  for other in runs[1:]:
    for a, c in zip(runs[0], other):
      assert _max_err(a, c) <= 2e-6


def test_visited_block_counts():
  """The grid's inner extent is the window span, not T / block."""

  def cfg(t, bq, bk, window, causal=True):
    return common.Config(
      causal=causal,
      window=window,
      scale=1.0,
      seq_len=t,
      padded_len=t,
      block_q=bq,
      block_k=bk,
      num_heads=1,
      num_kv_heads=1,
      head_dim=8,
      has_segments=False,
      schedule="grid",
      interpret=True,
      lanes=1,
      sublanes=1,
    )

  c = cfg(1024, 128, 128, 100)
  assert common.max_visits(common.key_block_range, c.num_q_blocks, c) == 2
  assert common.max_visits(common.query_block_range, c.num_k_blocks, c) == 2
  c = cfg(1024, 128, 128, None)
  assert common.max_visits(common.key_block_range, c.num_q_blocks, c) == 8
  lo, hi, plain_lo, plain_hi = common.key_block_range(np.arange(8), c, common.StaticOps)
  np.testing.assert_array_equal(lo, 0)
  np.testing.assert_array_equal(hi, np.arange(8))
  np.testing.assert_array_equal(plain_hi, np.arange(8))  # Only the diagonal is masked.
  c = cfg(1024, 128, 128, 128 * 3)
  lo, hi, plain_lo, plain_hi = common.key_block_range(np.arange(8), c, common.StaticOps)
  np.testing.assert_array_equal(lo, np.maximum(np.arange(8) - 3, 0))
  np.testing.assert_array_equal(plain_lo, np.minimum(np.maximum(np.arange(8) - 2, 0), np.arange(8)))


def test_tpu_interpreter_checks_oob_and_uninitialised_memory():
  pltpu = pytest.importorskip("jax.experimental.pallas.tpu")
  if not hasattr(pltpu, "InterpretParams"):
    pytest.skip("this JAX has no TPU interpreter (pltpu.InterpretParams)")
  params = pltpu.InterpretParams(uninitialized_memory="nan", out_of_bounds_reads="raise")
  b, t, n, kh, d = 1, 40, 4, 2, 8
  ids = _segments(b, t, (11,))
  kwargs = dict(causal=False, sliding_window=13, q_segment_ids=ids, kv_segment_ids=ids)
  q, k, v, do = _inputs(b, t, n, kh, d, seed=1)
  got = _fwd_vjp(
    flash_attention, block_q=16, block_k=8, interpret=params, schedule="grid", **kwargs
  )(q, k, v, do)
  want = _fwd_vjp(flash_attention_reference, **kwargs)(q, k, v, do)
  for g, w in zip(got, want):
    assert _max_err(g, w) <= GRAD_TOL[jnp.float32]


# ------------------------------------------------------------------ lowering from CPU


def _custom_calls(fn, args, platform, context=contextlib.nullcontext):
  with context():
    text = jax.jit(fn).trace(*args).lower(lowering_platforms=(platform,)).as_text()
  return {
    line.split("custom_call @")[1].split("(")[0]
    for line in text.splitlines()
    if "custom_call @" in line
  }


def _lowering_cases(schedule):
  """Forward and value-and-grad at TPU-legal sizes (T=256, D=128, blocks 128)."""
  b, t, n, kh, d = 1, 256, 4, 2, 128
  q, k, v, _ = _inputs(b, t, n, kh, d, jnp.bfloat16)
  ids = _segments(b, t, (100,))
  for kwargs in (
    {},
    {"sliding_window": 200},
    {"causal": False, "q_segment_ids": ids, "kv_segment_ids": ids},
  ):

    def fwd(q, k, v, kwargs=kwargs):
      return flash_attention(
        q, k, v, block_q=128, block_k=128, interpret=False, schedule=schedule, **kwargs
      )

    def value_and_grad(q, k, v, fwd=fwd):
      loss = lambda *a: jnp.sum(fwd(*a).astype(jnp.float32))  # noqa: E731
      return jax.value_and_grad(loss, argnums=(0, 1, 2))(q, k, v)

    yield fwd, (q, k, v)
    yield value_and_grad, (q, k, v)


def test_lowers_for_tpu():
  for fn, args in _lowering_cases("grid"):
    assert _custom_calls(fn, args, "tpu") == {"tpu_custom_call"}


def _abstract_gpu_context():
  """JAX >= 0.11 lowers Pallas for CUDA without a GPU only under an abstract GPU device."""
  sharding = jax.sharding
  if not hasattr(sharding, "AbstractDevice"):
    return contextlib.nullcontext()
  device = sharding.AbstractDevice(device_kind="NVIDIA H100", num_cores=132, platform="gpu")
  mesh = sharding.AbstractMesh((1,), ("x",), (sharding.AxisType.Explicit,), abstract_device=device)
  return sharding.use_abstract_mesh(mesh)


@pytest.mark.filterwarnings("ignore:The Pallas Triton backend is deprecated:DeprecationWarning")
def test_lowers_for_cuda_triton():
  cases = list(_lowering_cases("loop"))
  fn, args = cases[0]
  context = contextlib.nullcontext
  try:
    _custom_calls(fn, args, "cuda")
  except RuntimeError as e:
    if "AbstractDevice" not in str(e):
      raise
    context = _abstract_gpu_context
    try:
      _custom_calls(fn, args, "cuda", context)
    except (RuntimeError, TypeError, AttributeError) as e2:
      pytest.skip(f"this JAX ({jax.__version__}) cannot lower Pallas for CUDA without a GPU: {e2}")
  for fn, args in cases:
    calls = _custom_calls(fn, args, "cuda", context)
    assert calls == {"__gpu$xla.gpu.triton"}, calls


# ------------------------------------------------------------------------- validation


def test_bad_inputs_raise_clear_errors():
  # Validation only reads shapes and dtypes: numpy inputs keep this test compile-free.
  q, k, v = (np.zeros(s, np.float32) for s in ((1, 16, 4, 8), (1, 16, 2, 8), (1, 16, 2, 8)))
  ids = np.zeros((1, 16), np.int32)
  cases = [
    ((q, k[:, :, :1].repeat(3, 2), v[:, :, :1].repeat(3, 2)), {}, "multiple of the K=3"),
    ((q, k, v[:, :, :1]), {}, "k and v must both be"),
    ((q[0], k, v), {}, "4-D array"),
    ((q, k[:, :8], v[:, :8]), {}, "S == T"),
    ((q, k[..., :4], v[..., :4]), {}, r"D=8"),
    ((q, k.astype(jnp.bfloat16), v), {}, "share one dtype"),
    ((q.astype(np.int32), k.astype(np.int32), v.astype(np.int32)), {}, "floating"),
    ((q, k, v), {"sliding_window": 0}, "sliding_window must be a positive int"),
    ((q, k, v), {"sliding_window": -2}, "sliding_window must be a positive int"),
    ((q, k, v), {"sliding_window": 2.0}, "sliding_window must be a positive int"),
    ((q, k, v), {"q_segment_ids": ids}, "given together"),
    ((q, k, v), {"q_segment_ids": ids[:, :8], "kv_segment_ids": ids}, r"\[B, T\] = \(1, 16\)"),
    (
      (q, k, v),
      {"q_segment_ids": ids.astype(np.float32), "kv_segment_ids": ids},
      "must be integers",
    ),
    ((q, k, v), {"block_q": 12}, "block_q must be a positive multiple of 8"),
    ((q, k, v), {"block_k": 0}, "block_k must be a positive multiple of 8"),
    ((q, k, v), {"schedule": "tiles"}, "schedule must be"),
    ((q, k, v), {"causal": None}, "causal must be a bool"),
  ]
  for args, kwargs, match in cases:
    with pytest.raises(ValueError, match=match):
      flash_attention(*args, **kwargs)


def test_fit_block_sizes():
  assert blocks.fit_block_sizes(40, 128, 128, schedule="grid", compiled=False) == (40, 40, 40)
  assert blocks.fit_block_sizes(40, 16, 8, schedule="grid", compiled=False) == (16, 8, 48)
  assert blocks.fit_block_sizes(300, 128, 128, schedule="grid", compiled=True) == (128, 128, 384)
  assert blocks.fit_block_sizes(100, 128, 64, schedule="grid", compiled=False) == (104, 104, 104)
  assert blocks.fit_block_sizes(40, 128, 64, schedule="loop", compiled=True) == (64, 64, 64)
  with pytest.raises(ValueError, match="block_k=64 must be a multiple of 128"):
    blocks.fit_block_sizes(1000, 128, 64, schedule="grid", compiled=True)
  with pytest.raises(ValueError, match="power of two"):
    blocks.fit_block_sizes(1000, 96, 64, schedule="loop", compiled=True)
  assert blocks.padded_head_dim(80, schedule="loop", compiled=True) == 128
  assert blocks.padded_head_dim(80, schedule="grid", compiled=True) == 80


# ------------------------------------------------------------------------ registry adapter


def test_registry_adapter():
  target = Registry("attention implementation")
  fn = register(target)
  assert register(target) is fn and target.get("pallas") is pallas_attention
  b, t, n, kh, d = 1, 16, 2, 1, 8
  q, k, v, _ = _inputs(b, t, n, kh, d)
  ids = _segments(b, t, (5,))
  info = dict(
    causal=True,
    sliding_window=4,
    q_segment_ids=ids,
    kv_segment_ids=ids,
    kv_mask=None,
    index_positions=True,
  )
  got = jax.jit(lambda q, k, v: fn(q, k, v, None, scale=0.3, block_q=8, block_k=8, **info))(q, k, v)
  want = flash_attention_reference(
    q, k, v, causal=True, sliding_window=4, q_segment_ids=ids, kv_segment_ids=ids, scale=0.3
  )
  assert _max_err(got, want) <= TOL[jnp.float32]
  assert unsupported_reason(q, k, **info) is None
  assert fn.unsupported_reason is unsupported_reason
  mask = jnp.ones((b, 1, t, t), bool)
  for kwargs, match in (
    ({}, "dense mask"),  # Today's ops.attention passes only the dense mask.
    ({**info, "index_positions": False}, "positions"),
    ({**info, "kv_mask": jnp.ones((b, t), bool)}, "kv_mask"),
  ):
    with pytest.raises(ValueError, match=f"implementation='pallas'.*{match}"):
      fn(q, k, v, mask, scale=0.3, **kwargs)
  with pytest.raises(ValueError, match="KV cache"):
    fn(q[:, :1], k, v, mask[:, :, :1], scale=0.3, **info)


def test_on_a_gpu_without_the_triton_backend_attention_falls_back_to_xla(monkeypatch):
  """The GPU form lowers through the Pallas Triton backend (deprecated in JAX 0.11): a JAX
  without it makes `ops.attention` pick XLA on a GPU instead of failing at trace time."""
  import importlib
  import sys

  attention_lib = importlib.import_module("reasoning_jax.ops.attention")  # The module.

  b, t, n, kh, d = 1, 16, 2, 1, 8
  q, k, v, _ = _inputs(b, t, n, kh, d)
  info = dict(causal=True, sliding_window=None, q_segment_ids=None, kv_segment_ids=None)
  info.update(kv_mask=None, index_positions=True)
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert unsupported_reason(q, k, **info) is None  # This JAX still has it.
  assert attention_lib._default_implementation(q, k, info) == "pallas"
  from jax.experimental import pallas as pallas_pkg

  monkeypatch.delattr(pallas_pkg, "triton", raising=False)  # As if JAX had removed it:
  monkeypatch.setitem(sys.modules, "jax.experimental.pallas.triton", None)  # import fails.
  assert "has no Pallas Triton backend" in unsupported_reason(q, k, **info)
  assert attention_lib._default_implementation(q, k, info) == "xla"
  # A bfloat16 call the Mosaic GPU kernels take (forward and backward) does not need Triton.
  q16, k16 = (jnp.zeros(x.shape[:-1] + (64,), jnp.bfloat16) for x in (q, k))
  from pallas_kernels import gpu_backend

  if gpu_backend.mosaic_gpu_missing() is None:
    monkeypatch.setattr(gpu_backend, "gpu_compute_capability", lambda: 9.0)
    assert unsupported_reason(q16, k16, **info) is None
    monkeypatch.setattr(gpu_backend, "gpu_compute_capability", lambda: 8.0)
    assert "needs a Hopper GPU" in unsupported_reason(q16, k16, **info)
  monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
  assert unsupported_reason(q, k, **info) is None  # Interpret mode / TPU do not need it.
