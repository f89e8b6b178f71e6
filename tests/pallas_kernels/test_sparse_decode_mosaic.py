"""LycheeDecode's decode kernels (arXiv:2602.04541) in their Mosaic GPU schedule, on CPU.

`pallas_kernels/sparse_decode/kernel_mgpu.py` in JAX's GPU interpreter (JAX >= 0.12; on 0.10
these skip and only the lowering runs) against the references and the numpy checks of
test_sparse_decode_kernels.py: kernel A's output and block scores, kernel B's output under the
block mask, bfloat16 and float16, D 64 / 128, block 16 / 64 / 128, lengths 1 / mid-block / S,
head subsets, ids with -1 padding, unordered, beyond the length and a row with nothing
visible, one to several selected blocks per split-K program. Also: no races under the
interpreter's race detector, CUDA lowering on every JAX
here, which schedule None picks on a GPU (Mosaic GPU where it can take the call, Triton
otherwise) and the argument errors. Compilation and speed need a GPU
(`benchmarks/kernel_check.py --kernels sparse`, `benchmarks/sparse_decode.py --section gpu`).
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels import gpu_backend
from pallas_kernels.sparse_decode import (
  block_sparse_decode_pallas,
  block_sparse_decode_reference,
  retrieval_decode_pallas,
  retrieval_decode_reference,
)
from pallas_kernels.sparse_decode import blocks as blocks_lib
from pallas_kernels.sparse_decode import kernel as kernel_lib
from tests.pallas_kernels.test_sparse_decode_kernels import (
  TOL,
  assert_close,
  make_inputs,
  numpy_block_mask,
  numpy_masked_attention,
  numpy_scores,
)

needs_interpreter = pytest.mark.skipif(
  gpu_backend.mosaic_interpret_missing() is not None,
  reason=str(gpu_backend.mosaic_interpret_missing()),
)
_kernel_a = jax.jit(
  functools.partial(retrieval_decode_pallas, schedule="mosaic", interpret=True),
  static_argnames=("block_size", "kernel_block"),
)
_kernel_b = jax.jit(
  functools.partial(block_sparse_decode_pallas, schedule="mosaic", interpret=True),
  static_argnames=("block_size", "blocks_per_split"),
)
TOL16 = TOL[jnp.bfloat16]


@needs_interpreter
@pytest.mark.parametrize(
  "b,s,kh,g,d,bs,kb,lengths,heads,dtype",
  [
    (3, 512, 4, 2, 128, 64, 128, [512, 1, 300], [3, 0, 2], jnp.bfloat16),  # 4 parts
    (2, 256, 2, 4, 64, 16, None, [200, 9], [1], jnp.float16),  # one part of 16 blocks
  ],
)
def test_retrieval_kernel_matches_reference(b, s, kh, g, d, bs, kb, lengths, heads, dtype):
  q, k, v = make_inputs(b, s, kh, g, d, dtype)
  lengths, heads = jnp.asarray(lengths, jnp.int32), jnp.asarray(heads, jnp.int32)
  out, scores = _kernel_a(q, k, v, lengths, heads, block_size=bs, kernel_block=kb)
  ref_out, ref_scores = retrieval_decode_reference(q, k, v, lengths, heads, block_size=bs)
  assert out.shape == (b, len(heads), g, d) and out.dtype == dtype
  assert scores.shape == (b, len(heads), s // bs) and scores.dtype == jnp.float32
  assert_close(out, ref_out, TOL16)
  expected = numpy_scores(q, k, lengths, np.asarray(heads), bs)
  np.testing.assert_array_equal(np.isneginf(np.asarray(scores)), np.isneginf(expected))
  finite = np.isfinite(expected)
  assert_close(np.asarray(scores)[finite], np.asarray(ref_scores)[finite], TOL16)


@needs_interpreter
@pytest.mark.parametrize(
  "b,s,kh,g,d,bs,lengths,heads,block_idx,dtype,per_split",
  [
    (
      2,
      512,
      4,
      4,
      128,
      64,
      [500, 300],
      [0, 2, 3],
      [
        [[3, 0, -1, 7, 5], [1, 2, 3, 4, 6], [7, -1, -1, 0, 2]],
        [[7, 6, 5, -1, -1], [0, 4, 1, 2, 3], [-1, 1, 3, 0, 2]],
      ],  # row [1, 0]: nothing visible
      jnp.bfloat16,
      2,
    ),
    (1, 512, 2, 2, 64, 128, [384], [1, 0], [[[3, 0, 1], [2, -1, 1]]], jnp.float16, None),
    (1, 128, 2, 1, 64, 16, [100], [1], [[[6, 0, 2, 7]]], jnp.bfloat16, 1),  # block 6 partly
  ],
)
def test_block_sparse_kernel_matches_reference(
  b, s, kh, g, d, bs, lengths, heads, block_idx, dtype, per_split
):
  q, k, v = make_inputs(b, s, kh, g, d, dtype, seed=1)
  lengths, heads = jnp.asarray(lengths, jnp.int32), jnp.asarray(heads, jnp.int32)
  block_idx = jnp.asarray(block_idx, jnp.int32)
  out = _kernel_b(q, k, v, lengths, heads, block_idx, block_size=bs, blocks_per_split=per_split)
  assert out.shape == (b, len(heads), g, d) and out.dtype == dtype
  ref = block_sparse_decode_reference(q, k, v, lengths, heads, block_idx, block_size=bs)
  assert_close(out, ref, TOL16)
  mask = numpy_block_mask(block_idx, lengths, s, bs)
  assert_close(out, numpy_masked_attention(q, k, v, mask, np.asarray(heads)), TOL16)
  empty = ~mask.any(-1)
  assert np.all(np.asarray(out, np.float32)[empty] == 0)


B, S, K, G, D, BLOCK, R, N_SEL = 2, 1024, 4, 4, 128, 64, 2, 8


def _args(dtype):
  sd = jax.ShapeDtypeStruct
  cache = sd((B, S, K, D), dtype)
  return (sd((B, K, G, D), dtype), cache, cache, sd((B,), jnp.int32), sd((R,), jnp.int32))


def _lowered(fn, args):
  return jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_mosaic_schedule_lowers_for_cuda(dtype):
  kw = dict(block_size=BLOCK, interpret=False, schedule="mosaic")
  ids = jax.ShapeDtypeStruct((B, R, N_SEL), jnp.int32)
  for fn, args, name in (
    (functools.partial(retrieval_decode_pallas, **kw), _args(dtype), "retrieval"),
    (functools.partial(block_sparse_decode_pallas, **kw), (*_args(dtype), ids), "block_sparse"),
  ):
    text = _lowered(fn, args)
    assert len(re.findall(r"custom_call @mosaic_gpu", text)) == 1, name
    assert f"lychee_{name}_decode_mosaic" in text and "triton" not in text


def _resolve(monkeypatch, dtype, *, d=D, g=G, block=BLOCK, capability=None, schedule=None):
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  monkeypatch.setattr(gpu_backend, "gpu_compute_capability", lambda: capability)
  q, k, v = make_inputs(1, 256, 2, g, d, dtype)
  return kernel_lib._resolve_schedule(schedule, q, k, v, block, False)


def test_a_gpu_defaults_to_mosaic_where_it_can_take_the_call(monkeypatch):
  assert _resolve(monkeypatch, jnp.bfloat16) == "mosaic"
  assert _resolve(monkeypatch, jnp.float16, capability=9.0) == "mosaic"
  assert _resolve(monkeypatch, jnp.bfloat16, capability=8.0) == "loop"  # no wgmma before sm_90
  assert _resolve(monkeypatch, jnp.bfloat16, capability=10.0) == "loop"  # nor on Blackwell
  assert _resolve(monkeypatch, jnp.float32) == "loop"
  assert _resolve(monkeypatch, jnp.bfloat16, d=32) == "loop"
  assert _resolve(monkeypatch, jnp.bfloat16, block=512) == "loop"


@pytest.mark.parametrize(
  "dtype,d,g,match",
  [
    (jnp.float32, 128, 4, r"compute in bfloat16 or float16 \(wgmma\), got float32"),
    (jnp.bfloat16, 96, 4, r"head dim D a multiple of 64 up to 256, got 96"),
    (jnp.bfloat16, 128, 64, r"at most 63 query heads per KV head, got G=64"),
  ],
)
def test_explicit_mosaic_says_why_it_cannot(monkeypatch, dtype, d, g, match):
  with pytest.raises(ValueError, match=r"^schedule='mosaic': .*" + match):
    _resolve(monkeypatch, dtype, d=d, g=g, schedule="mosaic")


def test_mosaic_schedule_argument_errors(monkeypatch):
  q, k, v = make_inputs(1, 256, 2, 2, 64, jnp.bfloat16)
  lengths, heads = jnp.asarray([5], jnp.int32), jnp.asarray([0], jnp.int32)
  with pytest.raises(ValueError, match=r"needs q, k and v in one dtype"):
    retrieval_decode_pallas(
      q.astype(jnp.float16), k, v, lengths, heads, interpret=False, schedule="mosaic"
    )
  monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
  with pytest.raises(ValueError, match=r"^schedule='mosaic' is a GPU schedule"):
    retrieval_decode_pallas(q, k, v, lengths, heads, interpret=False, schedule="mosaic")
  assert blocks_lib.mosaic_unsupported(128, 64, 8, jnp.bfloat16) is None


@needs_interpreter
def test_no_races_in_the_pipelines():
  """Kernels A and B under JAX's GPU interpreter race detector (TMA pipelines whose index maps
  read block ids, split-K parts), against the references."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  interpret = plgpu.InterpretGPUParams(detect_races=True)
  q, k, v = make_inputs(1, 256, 2, 2, 64, jnp.bfloat16)
  lengths, heads = jnp.asarray([200], jnp.int32), jnp.asarray([1, 0], jnp.int32)
  ids = jnp.asarray([[[0, 2, -1], [3, 1, 0]]], jnp.int32)
  kw = dict(block_size=64, schedule="mosaic", interpret=interpret)
  out, _ = retrieval_decode_pallas(q, k, v, lengths, heads, **kw)  # raises on a race
  assert_close(out, retrieval_decode_reference(q, k, v, lengths, heads, block_size=64)[0], TOL16)
  out = block_sparse_decode_pallas(q, k, v, lengths, heads, ids, **kw)
  ref = block_sparse_decode_reference(q, k, v, lengths, heads, ids, block_size=64)
  assert_close(out, ref, TOL16)
