"""LycheeDecode's Pallas decode kernels (arXiv:2602.04541) in interpret mode vs their references.

Kernel A (`retrieval_decode_pallas`) against `retrieval_decode_reference` and, for its scores,
an independent numpy max-pool of `qbar . K^T` over the visible tokens; kernel B
(`block_sparse_decode_pallas`) against `block_sparse_decode_reference` and numpy dense
attention under the block mask (inference.md section 8.6). Shapes: G in {1, 2, 4}, D in
{16, 128}, S in {128, 512}, block 16/32/64, lengths 1 / mid-block / S / per-row different,
head subsets ([1, 3] of K = 4, unordered), block ids with -1 padding, unordered, and beyond the
length; float32 (1e-5) and bf16 (2e-2); both schedules, "grid" (TPU, `kernel.py`) and "loop"
(GPU, Triton, split-K, `kernel_gpu.py`), the loop one also with one block per split. Also: the
TPU interpreter with NaN-filled scratch and out-of-bounds reads raising, the block-id encoding
and compaction, the split-K merge, the registry, argument errors, the per-backend schedule
checks, and ahead-of-time lowering of the grid schedule for TPU (Mosaic) and of the loop
schedule for CUDA (Triton). The Mosaic GPU schedule: test_sparse_decode_mosaic.py.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.sparse_decode import (
  KERNELS,
  block_sparse_decode_pallas,
  block_sparse_decode_reference,
  retrieval_decode_pallas,
  retrieval_decode_reference,
)
from pallas_kernels.sparse_decode import blocks as blocks_lib
from pallas_kernels.sparse_decode.kernel import encode_block_ids
from pallas_kernels.sparse_decode.kernel_gpu import combine_splits, compact_block_ids
from reasoning_jax import registry

TOL = {jnp.float32: dict(rtol=1e-5, atol=1e-5), jnp.bfloat16: dict(rtol=2e-2, atol=2e-2)}

_kernel_a = jax.jit(
  retrieval_decode_pallas, static_argnames=("block_size", "kernel_block", "schedule")
)
_kernel_b = jax.jit(
  block_sparse_decode_pallas, static_argnames=("block_size", "schedule", "blocks_per_split")
)
SCHEDULES = pytest.mark.parametrize("schedule", ["grid", "loop"])


def make_inputs(b, s, kh, g, d, dtype, seed=0):
  rng = np.random.RandomState(seed)
  q = jnp.asarray(rng.randn(b, kh, g, d), dtype)
  k = jnp.asarray(rng.randn(b, s, kh, d), dtype)
  v = jnp.asarray(rng.randn(b, s, kh, d), dtype)
  return q, k, v


def assert_close(actual, expected, tol):
  np.testing.assert_allclose(
    np.asarray(actual, np.float32), np.asarray(expected, np.float32), **tol
  )


def numpy_scores(q, k, lengths, heads, block_size):
  """maxpool_block(qbar . K^T) over visible tokens, qbar rounded to q's dtype (float64 math)."""
  qbar = jnp.mean(q.astype(jnp.float32), axis=2).astype(q.dtype)  # [B, K, D]
  qbar = np.asarray(qbar, np.float64)[:, heads]  # [B, R, D]
  kk = np.asarray(k, np.float64)[:, :, heads]  # [B, S, R, D]
  logits = np.einsum("brd,bsrd->brs", qbar, kk)
  s = k.shape[1]
  logits = np.where(
    np.arange(s)[None, None, :] < np.asarray(lengths)[:, None, None], logits, -np.inf
  )
  return logits.reshape(*logits.shape[:2], s // block_size, block_size).max(-1)


def numpy_masked_attention(q, k, v, mask, heads):
  """Dense attention of q[:, heads] under a token mask `[B, R, S]` (zeros if empty), float64."""
  qh = np.asarray(q, np.float64)[:, heads]
  kh = np.asarray(k, np.float64)[:, :, heads]
  vh = np.asarray(v, np.float64)[:, :, heads]
  logits = np.einsum("brgd,bsrd->brgs", qh, kh) / np.sqrt(q.shape[-1])
  logits = np.where(mask[:, :, None], logits, -np.inf)
  peak = np.max(logits, -1, keepdims=True)
  w = np.where(mask[:, :, None], np.exp(logits - np.where(np.isfinite(peak), peak, 0)), 0)
  tot = w.sum(-1, keepdims=True)
  return np.einsum("brgs,bsrd->brgd", w / np.where(tot > 0, tot, 1), vh)


def numpy_block_mask(block_idx, lengths, s, block_size):
  ids = np.asarray(block_idx)
  tok_block = np.arange(s) // block_size
  chosen = (tok_block[None, None, :, None] == ids[:, :, None, :]).any(-1)
  return chosen & (np.arange(s)[None, None, :] < np.asarray(lengths)[:, None, None])


# (B, S, K, G, D, block, kernel_block, lengths, heads, dtype)
RETRIEVAL_CASES = [
  (3, 128, 4, 1, 16, 16, None, [1, 77, 128], [1, 3], jnp.float32),
  (3, 512, 4, 2, 128, 64, 128, [512, 1, 300], [3, 0, 2], jnp.float32),
  (2, 512, 4, 4, 16, 32, None, [200, 512], [2, 1], jnp.bfloat16),
  (2, 128, 4, 2, 128, 64, None, [65, 128], [3], jnp.bfloat16),
]


@SCHEDULES
@pytest.mark.parametrize("b,s,kh,g,d,bs,kb,lengths,heads,dtype", RETRIEVAL_CASES)
def test_retrieval_kernel_matches_reference(
  schedule, b, s, kh, g, d, bs, kb, lengths, heads, dtype
):
  q, k, v = make_inputs(b, s, kh, g, d, dtype)
  lengths, heads = jnp.asarray(lengths, jnp.int32), jnp.asarray(heads, jnp.int32)
  out, scores = _kernel_a(
    q, k, v, lengths, heads, block_size=bs, kernel_block=kb, schedule=schedule
  )
  ref_out, ref_scores = retrieval_decode_reference(q, k, v, lengths, heads, block_size=bs)
  assert out.shape == (b, len(heads), g, d) and out.dtype == dtype
  assert scores.shape == (b, len(heads), s // bs) and scores.dtype == jnp.float32
  assert_close(out, ref_out, TOL[dtype])
  # Scores: -inf exactly where no token of the block is visible, else the max-pooled logits.
  expected = numpy_scores(q, k, lengths, np.asarray(heads), bs)
  np.testing.assert_array_equal(np.isneginf(np.asarray(scores)), np.isneginf(expected))
  finite = np.isfinite(expected)
  assert_close(np.asarray(scores)[finite], expected[finite], TOL[jnp.float32])
  assert_close(np.asarray(scores)[finite], np.asarray(ref_scores)[finite], TOL[jnp.float32])
  # The output is dense attention over the visible tokens.
  mask = np.broadcast_to(
    np.arange(s)[None, None, :] < np.asarray(lengths)[:, None, None], (b, len(heads), s)
  )
  assert_close(out, numpy_masked_attention(q, k, v, mask, np.asarray(heads)), TOL[dtype])


# (B, S, K, G, D, block, lengths, heads, block_idx, dtype)
SPARSE_CASES = [
  (
    3,
    128,
    4,
    1,
    16,
    16,
    [1, 77, 128],
    [1, 3],
    # row 0: only block 0 visible; row 1: blocks 5+ are beyond the length (77 -> blocks 0..4);
    # head 1 of row 1 selects only unusable blocks (zeros out).
    [
      [[3, -1, 0, -1], [7, 2, -1, -1]],
      [[4, 1, -1, 6], [-1, 6, 7, -1]],
      [[7, 0, 3, 5], [-1, -1, -1, 2]],
    ],
    jnp.float32,
  ),
  (
    2,
    512,
    4,
    4,
    128,
    64,
    [300, 512],
    [3, 0, 2],
    [[[4, 0, -1], [2, 1, 3], [-1, -1, 0]], [[7, 6, 5], [0, -1, 7], [1, 3, -1]]],
    jnp.float32,
  ),
  (
    2,
    512,
    4,
    2,
    16,
    32,
    [200, 512],
    [1, 3],
    [[[6, 0, 2, -1, -1], [5, 3, 1, 0, -1]], [[15, 0, 8, 9, -1], [-1, 14, 1, 2, 3]]],
    jnp.bfloat16,
  ),
  (1, 128, 4, 2, 128, 64, [100], [2], [[[1, -1]]], jnp.bfloat16),
]


@pytest.mark.parametrize(
  "schedule,per_split", [("grid", None), ("loop", None), ("loop", 1), ("loop", 2)]
)
@pytest.mark.parametrize("b,s,kh,g,d,bs,lengths,heads,block_idx,dtype", SPARSE_CASES)
def test_block_sparse_kernel_matches_reference(
  schedule, per_split, b, s, kh, g, d, bs, lengths, heads, block_idx, dtype
):
  q, k, v = make_inputs(b, s, kh, g, d, dtype, seed=1)
  lengths, heads = jnp.asarray(lengths, jnp.int32), jnp.asarray(heads, jnp.int32)
  block_idx = jnp.asarray(block_idx, jnp.int32)
  out = _kernel_b(
    q,
    k,
    v,
    lengths,
    heads,
    block_idx,
    block_size=bs,
    schedule=schedule,
    blocks_per_split=per_split,
  )
  assert out.shape == (b, len(heads), g, d) and out.dtype == dtype
  ref = block_sparse_decode_reference(q, k, v, lengths, heads, block_idx, block_size=bs)
  assert_close(out, ref, TOL[dtype])
  mask = numpy_block_mask(block_idx, lengths, s, bs)
  assert_close(out, numpy_masked_attention(q, k, v, mask, np.asarray(heads)), TOL[dtype])
  empty = ~mask.any(-1)  # rows with no visible selected token are exactly zero
  assert np.all(np.asarray(out, np.float32)[empty] == 0)


@SCHEDULES
def test_all_blocks_selected_equals_retrieval_output(schedule):
  """Budget >= S: kernel B over every block (shuffled, padded) equals kernel A's dense output."""
  b, s, kh, g, d, bs = 2, 128, 4, 2, 16, 32
  q, k, v = make_inputs(b, s, kh, g, d, jnp.float32, seed=2)
  lengths, heads = jnp.asarray([90, 128], jnp.int32), jnp.asarray([0, 3], jnp.int32)
  ids = jnp.asarray([[[2, -1, 0, 3, 1]] * 2, [[3, 1, -1, 2, 0]] * 2], jnp.int32)
  dense, _ = _kernel_a(q, k, v, lengths, heads, block_size=bs, kernel_block=None, schedule=schedule)
  sparse = _kernel_b(q, k, v, lengths, heads, ids, block_size=bs, schedule=schedule)
  assert_close(sparse, dense, TOL[jnp.float32])


def test_loop_schedule_split_k_one_block_per_split():
  """Kernel A with one scored block per split-K program (S / block_size partials merged), a
  group of 16 query rows (padded to 32 for the qbar row) and a length past S equals the
  reference."""
  b, s, kh, g, d, bs = 3, 256, 2, 16, 32, 16
  q, k, v = make_inputs(b, s, kh, g, d, jnp.float32, seed=4)
  # A length past S reads the S tokens (as the grid schedule), never beyond the cache.
  lengths, heads = jnp.asarray([1, 201, 300], jnp.int32), jnp.asarray([1, 0], jnp.int32)
  out, scores = _kernel_a(q, k, v, lengths, heads, block_size=bs, kernel_block=bs, schedule="loop")
  ref_out, ref_scores = retrieval_decode_reference(q, k, v, lengths, heads, block_size=bs)
  assert_close(out, ref_out, TOL[jnp.float32])
  np.testing.assert_array_equal(np.isneginf(np.asarray(scores)), np.isneginf(ref_scores))
  finite = np.isfinite(np.asarray(ref_scores))
  assert_close(np.asarray(scores)[finite], np.asarray(ref_scores)[finite], TOL[jnp.float32])


def test_combine_splits_is_softmax_over_the_union():
  """Merging per-part normalised outputs with their (max, sum) equals one softmax over all
  parts; empty parts (l = 0) carry no weight; all-empty rows give zeros."""
  rng = np.random.RandomState(5)
  logits = rng.randn(3, 8) * 3.0  # 3 parts of 8 keys, one query row
  values = rng.randn(3, 8, 4)
  m = logits.max(-1)
  l = np.exp(logits - m[:, None]).sum(-1)
  o = np.einsum("pk,pkd->pd", np.exp(logits - m[:, None]), values) / l[:, None]
  # Part 1 empty: zero output, zero sum, the kernel's initial max.
  o[1], l[1], m[1] = 0.0, 0.0, -0.7 * float(np.finfo(np.float32).max)
  keep = np.array([0, 2])
  w = np.exp(logits[keep].reshape(-1) - logits[keep].max())
  expected = (w / w.sum()) @ values[keep].reshape(-1, 4)
  merged = combine_splits(
    jnp.asarray(o[:, None], jnp.float32),
    jnp.asarray(m[:, None, None], jnp.float32),
    jnp.asarray(l[:, None, None], jnp.float32),
    jnp.float32,
  )
  assert_close(merged[0], expected, TOL[jnp.float32])
  zero = combine_splits(
    jnp.zeros((2, 1, 4)), jnp.full((2, 1, 1), -1e30), jnp.zeros((2, 1, 1)), jnp.float32
  )
  np.testing.assert_array_equal(np.asarray(zero), 0.0)


def test_compact_block_ids():
  ids = jnp.asarray([[[-1, 3, -1, 0, 9, -1]], [[-1, 2, -1, 8, -1, -1]]], jnp.int32)
  lengths = jnp.asarray([5 * 16, 1000], jnp.int32)  # row 0: blocks 0..4 usable (9 is not)
  compact, counts = compact_block_ids(ids, lengths, block_size=16, num_blocks=8)
  np.testing.assert_array_equal(np.asarray(counts), [2, 1])  # row 1: block 8 is past S = 128
  np.testing.assert_array_equal(np.asarray(compact)[0, 0, :2], [3, 0])  # order kept
  np.testing.assert_array_equal(np.asarray(compact)[1, 0, :1], [2])


def test_tpu_interpreter_nan_memory_and_bounds():
  """The TPU interpreter with NaN-filled scratch and out-of-bounds reads raising: statistics are
  initialised at each row's first step, skipped tiles and padded ids fetch in-bounds blocks."""
  from jax.experimental.pallas import tpu as pltpu

  params = pltpu.InterpretParams(uninitialized_memory="nan", out_of_bounds_reads="raise")
  b, s, kh, g, d, bs = 2, 256, 2, 2, 128, 64
  q, k, v = make_inputs(b, s, kh, g, d, jnp.float32, seed=3)
  lengths, heads = jnp.asarray([70, 256], jnp.int32), jnp.asarray([1, 0], jnp.int32)
  out, scores = retrieval_decode_pallas(
    q, k, v, lengths, heads, block_size=bs, kernel_block=128, interpret=params
  )
  ref_out, ref_scores = retrieval_decode_reference(q, k, v, lengths, heads, block_size=bs)
  assert_close(out, ref_out, TOL[jnp.float32])
  np.testing.assert_array_equal(np.isneginf(np.asarray(scores)), np.isneginf(ref_scores))
  ids = jnp.asarray([[[-1, 3, 0], [1, -1, -1]], [[2, 0, -1], [-1, -1, -1]]], jnp.int32)
  out = block_sparse_decode_pallas(q, k, v, lengths, heads, ids, block_size=bs, interpret=params)
  ref = block_sparse_decode_reference(q, k, v, lengths, heads, ids, block_size=bs)
  assert_close(out, ref, TOL[jnp.float32])


def test_encode_block_ids():
  ids = jnp.asarray([[[-1, 3, -1, 0, 9, -1]], [[-1, -1, -1, -1, -1, -1]]], jnp.int32)
  lengths = jnp.asarray([5 * 16, 128], jnp.int32)  # row 0: blocks 0..4 usable (9 is not)
  enc = np.asarray(encode_block_ids(ids, lengths, block_size=16)).reshape(2, 6)
  # Unusable entries store -(fetch + 1): the nearest earlier usable id, else the first one.
  np.testing.assert_array_equal(enc[0], [-4, 3, -4, 0, -1, -1])
  np.testing.assert_array_equal(enc[1], [-1] * 6)


def test_registered():
  assert registry.SPARSE_DECODE_KERNELS.get("pallas") is KERNELS
  assert KERNELS.retrieval_decode is retrieval_decode_pallas
  assert KERNELS.block_sparse_decode is block_sparse_decode_pallas


@pytest.mark.parametrize(
  "s,block_size,kernel_block,expected",
  [(1024, 64, None, 512), (128, 16, None, 128), (768, 64, None, 384), (1024, 64, 128, 128)],
)
def test_kernel_block_choice(s, block_size, kernel_block, expected):
  assert blocks_lib.choose_kernel_block(s, block_size, kernel_block) == expected


def _bad_call(kind):
  q, k, v = make_inputs(1, 128, 4, 2, 16, jnp.float32)
  lengths, heads = jnp.asarray([5], jnp.int32), jnp.asarray([0], jnp.int32)
  ids = jnp.zeros((1, 1, 2), jnp.int32)
  calls = {
    "q": lambda: retrieval_decode_pallas(q[0], k, v, lengths, heads),
    "block": lambda: retrieval_decode_pallas(q, k, v, lengths, heads, block_size=48),
    "kernel_block": lambda: retrieval_decode_pallas(
      q, k, v, lengths, heads, block_size=16, kernel_block=24
    ),
    "lengths": lambda: block_sparse_decode_pallas(q, k, v, lengths[:0], heads, ids),
    "block_idx": lambda: block_sparse_decode_pallas(q, k, v, lengths, heads, ids[0]),
    "block_idx_dtype": lambda: block_sparse_decode_pallas(
      q, k, v, lengths, heads, ids.astype(jnp.float32)
    ),
  }
  return calls[kind]


@pytest.mark.parametrize(
  "kind,match",
  [
    ("q", r"^q must be \[B, K, G, D\]"),
    ("block", r"^block_size=48 must be a positive int dividing"),
    ("kernel_block", r"^kernel_block=24 must be a positive multiple of block_size=16"),
    ("lengths", r"^lengths must be \[B\]"),
    ("block_idx", r"^block_idx must be \[B, R, n_sel\]"),
    ("block_idx_dtype", r"^block_idx must be integer"),
  ],
)
def test_bad_arguments_raise_naming_them(kind, match):
  with pytest.raises(ValueError, match=match):
    _bad_call(kind)()


@pytest.mark.parametrize(
  "backend,schedule,d,block_size,match",
  [
    ("gpu", "grid", 128, 64, r"^schedule='grid' is the TPU schedule"),
    ("tpu", "loop", 128, 64, r"^schedule='loop' is a GPU schedule; on TPU use schedule='grid'"),
    ("tpu", None, 16, 64, r"^on TPU the sparse-decode kernels need D % 128 == 0"),
    ("tpu", None, 128, 4, r"^on TPU the sparse-decode kernels need D % 128 == 0"),
    ("gpu", None, 24, 64, r"need head dim D to be a power of two >= 16, got 24"),
    ("gpu", None, 128, 8, r"need block_size to be a power of two >= 16, got 8"),
    ("cpu", "ring", 128, 64, r"^schedule must be None or one of \('grid', 'loop', 'mosaic'\)"),
  ],
)
def test_compiled_call_on_a_backend_that_cannot_run_it_raises(
  monkeypatch, backend, schedule, d, block_size, match
):
  q, k, v = make_inputs(1, 128, 2, 2, d, jnp.float32)
  lengths, heads = jnp.asarray([5], jnp.int32), jnp.asarray([0], jnp.int32)
  monkeypatch.setattr(jax, "default_backend", lambda: backend)
  kw = dict(block_size=block_size, interpret=False, schedule=schedule)
  with pytest.raises(ValueError, match=match):
    retrieval_decode_pallas(q, k, v, lengths, heads, **kw)
  with pytest.raises(ValueError, match=match):
    block_sparse_decode_pallas(q, k, v, lengths, heads, jnp.zeros((1, 1, 1), jnp.int32), **kw)


def test_schedule_defaults_and_split_sizes():
  assert blocks_lib.default_schedule("gpu") == "loop"
  assert blocks_lib.default_schedule("tpu") == blocks_lib.default_schedule("cpu") == "grid"
  assert [blocks_lib.padded_rows(g) for g in (1, 8, 15, 16, 31, 40)] == [16, 16, 16, 32, 32, 64]
  assert blocks_lib.choose_split_tokens(131072, 64) == 1024
  assert blocks_lib.choose_split_tokens(768, 64) == 768
  assert blocks_lib.choose_split_tokens(1536, 64) == 768  # largest multiple dividing S
  assert blocks_lib.choose_split_tokens(8192, 64, 512) == 512
  assert blocks_lib.choose_split_blocks(64) == 4
  assert blocks_lib.choose_split_blocks(3) == 3
  assert blocks_lib.choose_split_blocks(64, 8) == 8
  with pytest.raises(ValueError, match=r"^blocks_per_split must be a positive int, got 0"):
    blocks_lib.choose_split_blocks(8, 0)


# ------------------------------------------------------------------------- lowering

B, S, K, G, D, BLOCK, R, N_SEL = 2, 1024, 4, 4, 128, 64, 2, 8


def _abstract_args(dtype):
  sd = jax.ShapeDtypeStruct
  cache = sd((B, S, K, D), dtype)
  return (sd((B, K, G, D), dtype), cache, cache, sd((B,), jnp.int32), sd((R,), jnp.int32))


def _retrieval(*args, schedule=None):
  return retrieval_decode_pallas(*args, block_size=BLOCK, interpret=False, schedule=schedule)


def _sparse(*args, schedule=None):
  return block_sparse_decode_pallas(*args, block_size=BLOCK, interpret=False, schedule=schedule)


def _lowered(fn, args, platform):
  return jax.jit(fn).trace(*args).lower(lowering_platforms=(platform,)).as_text()


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_lowers_for_tpu(dtype):
  args = _abstract_args(dtype)
  text = _lowered(_retrieval, args, "tpu")
  assert len(re.findall(r"custom_call @tpu_custom_call", text)) == 1
  assert "lychee_retrieval_decode" in text
  ids = jax.ShapeDtypeStruct((B, R, N_SEL), jnp.int32)
  text = _lowered(_sparse, (*args, ids), "tpu")
  assert len(re.findall(r"custom_call @tpu_custom_call", text)) == 1
  assert "lychee_block_sparse_decode" in text


def _abstract_gpu_mesh():
  sharding = jax.sharding
  device = sharding.AbstractDevice(device_kind="NVIDIA H100", num_cores=132, platform="gpu")
  mesh = sharding.AbstractMesh((1,), ("x",), (sharding.AxisType.Explicit,), abstract_device=device)
  return sharding.use_abstract_mesh(mesh)


@pytest.mark.filterwarnings("ignore:The Pallas Triton backend is deprecated:DeprecationWarning")
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_loop_schedule_lowers_for_cuda(dtype):
  # Lowering for CUDA without a GPU needs an abstract GPU device to name the target.
  if not hasattr(jax.sharding, "AbstractDevice"):
    pytest.skip("this JAX cannot name an abstract GPU target (no jax.sharding.AbstractDevice)")
  args = _abstract_args(dtype)
  ids = jax.ShapeDtypeStruct((B, R, N_SEL), jnp.int32)
  for fn, fn_args, name in (
    (_retrieval, args, "lychee_retrieval_decode_gpu"),
    (_sparse, (*args, ids), "lychee_block_sparse_decode_gpu"),
  ):
    with _abstract_gpu_mesh():
      text = _lowered(functools.partial(fn, schedule="loop"), fn_args, "cuda")
    assert len(re.findall(r"custom_call @__gpu\$xla\.gpu\.triton", text)) == 1, name
    assert name in text
