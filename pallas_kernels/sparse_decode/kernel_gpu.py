"""LycheeDecode's two decode attentions, GPU ("loop", Triton) schedule with split-K.

"LycheeDecode: Accelerating Long-Context LLM Inference via Hybrid-Head Sparse Decoding"
(Lin et al., arXiv:2602.04541); `shared/methods/inference.md` sections 8.2 and 8.5. Same
arguments and results as the TPU grid schedule in `kernel.py` and the references in
`reasoning_jax.ops.sparse_decode.reference`; `kernel.py`'s public functions dispatch here for
`schedule="loop"` (the default when JAX's backend is GPU).

Why a second schedule: the TPU kernels read the processed heads and kernel B's block ids in
their BlockSpec index maps through scalar prefetch, which Pallas lowers for TPU only. Here no
index map reads data. Each program gets the whole row of the cache viewed as `[S, K * D]`
(Triton takes pointers, nothing is copied) and reads the head id, the length and the block ids
from small int refs inside the kernel, then loads `[block_size, D]` K/V tiles at
`(start, head * D)` with `pl.ds` in a `lax.fori_loop` whose trip count is data-dependent: tiles
past `lengths[b]` and unused selection slots are never loaded.

Layout and split-K (flash-decoding): grid `(B, R, n_splits)`, all parallel. A decode step has
few rows (B x R programs), far fewer than a GPU's SMs, so the sequence (kernel A) or the list of
selected blocks (kernel B) is cut into `n_splits` parts; each program runs the online softmax
over its part and writes its normalised partial output with its row max `m` and sum `l`; the
wrapper combines the parts in float32 (`combine_splits`). An empty part has `l = 0` and weight 0.

  * Queries: Triton's `tl.dot` needs at least 16 rows, so the G query rows of a head are padded
    to `padded_rows(G)` (a power of two >= max(16, G + 1)) in the wrapper (a `[B, R, Gp, D]`
    gather of the new token's queries, negligible next to the cache). Kernel A puts
    `qbar = mean_G(q)` (float32 mean cast to q's dtype, as the reference) in the last padded
    row, so one `[Gp, D] x [D, block_size]` dot gives the softmax rows and the selection row;
    the pad rows' outputs are dropped.
  * Kernel A's scores: one per block (the loop's tile is `block_size` tokens), stored as a
    scalar at its block index; blocks past the length are set to -inf by the wrapper (the
    kernel never visits them).
  * Kernel B's ids: the wrapper compacts each row's usable ids (>= 0 and starting before
    `lengths[b]`) to the front with their count (`compact_block_ids`), so the loop runs
    exactly over them; the order of a row's ids does not change the result beyond rounding.

DESIGN CHOICE / limits:
  * compiled on GPU, D and block_size must be powers of two >= 16 (Triton tiles), checked with
    a ValueError naming the argument (`blocks.check_schedule`); interpret mode takes any sizes;
  * tokens per split (kernel A, `kernel_block`) and selected blocks per split (kernel B,
    `blocks_per_split`) default to `blocks.GPU_SPLIT_TOKENS` / `GPU_SPLIT_BLOCKS`: untuned
    starting points, to be measured on a GPU with `benchmarks/sparse_decode.py --section gpu`;
  * float32 inputs use `Precision.HIGHEST` dots (no TF32), as the TPU schedule;
  * bf16: probabilities are rounded to the value dtype for the `p @ V` dot (the reference
    keeps them float32), within the bf16 tolerance.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels import gpu_backend
from pallas_kernels.sparse_decode import blocks as blocks_lib
from pallas_kernels.sparse_decode import common

f32 = common.f32
_SQ = common.SQUEEZED


def _compiler_params(interpret):
  if interpret:
    return None
  p = blocks_lib.TRITON_PARAMS
  return gpu_backend.triton_compiler_params(
    num_warps=p.num_warps,
    num_stages=p.num_stages,
    kernel="the Pallas sparse-decode kernels' GPU schedule",
    instead='SparseDecodeConfig(implementation="xla") (the default)',
  )


def _write_partial(carry, o_ref, m_ref, l_ref):
  m, l, acc = carry
  o_ref[...] = common.normalised(l, acc)
  m_ref[...] = m
  l_ref[...] = l


def combine_splits(o, m, l, out_dtype):
  """Merges split-K partials: o `[..., n, Gp, D]` (normalised), m/l `[..., n, Gp, 1]` -> `[..., Gp, D]`.

  `out = sum_j w_j o_j / sum_j w_j` with `w_j = l_j exp(m_j - max_j m_j)`; zeros when every
  part is empty (all `l_j = 0`).
  """
  peak = jnp.max(m, axis=-3, keepdims=True)
  w = l * jnp.exp(m - peak)  # [..., n, Gp, 1]
  total = jnp.sum(w, axis=-3)
  out = jnp.sum(w * o, axis=-3) / jnp.where(total > 0, total, 1.0)
  return out.astype(out_dtype)


def _query_rows(q, heads, *, with_qbar: bool):
  """`[B, K, G, D]` -> `[B, R, Gp, D]`: the processed heads' rows, zero-padded (qbar last)."""
  qh = jnp.take(q, heads, axis=1)
  bsz, r, g, d = qh.shape
  gp = blocks_lib.padded_rows(g)
  parts = [qh, jnp.zeros((bsz, r, gp - g - int(with_qbar), d), q.dtype)]
  if with_qbar:
    parts.append(jnp.mean(qh.astype(f32), axis=2, keepdims=True).astype(q.dtype))
  return jnp.concatenate(parts, axis=2)


def _partial_specs(gp: int, d: int):
  return [
    pl.BlockSpec((_SQ, _SQ, _SQ, gp, d), lambda b_, r_, j_: (b_, r_, j_, 0, 0)),
    pl.BlockSpec((_SQ, _SQ, _SQ, gp, 1), lambda b_, r_, j_: (b_, r_, j_, 0, 0)),
    pl.BlockSpec((_SQ, _SQ, _SQ, gp, 1), lambda b_, r_, j_: (b_, r_, j_, 0, 0)),
  ]


def _partial_shapes(bsz: int, r: int, n: int, gp: int, d: int):
  return [
    jax.ShapeDtypeStruct((bsz, r, n, gp, d), f32),
    jax.ShapeDtypeStruct((bsz, r, n, gp, 1), f32),
    jax.ShapeDtypeStruct((bsz, r, n, gp, 1), f32),
  ]


def _small_int_spec(n: int):
  """A whole small int vector in every program (lengths, heads)."""
  return pl.BlockSpec((n,), lambda b_, r_, j_: (0,))


def _cache_spec(s: int, width: int):
  """The whole `[S, K * D]` row of batch b (a pointer for Triton: nothing is copied)."""
  return pl.BlockSpec((_SQ, s, width), lambda b_, r_, j_: (b_, 0, 0))


# ------------------------------------------------------------------------- kernel A


def _retrieval_loop_kernel(
  lengths_ref,
  heads_ref,
  q_ref,
  k_ref,
  v_ref,
  o_ref,
  m_ref,
  l_ref,
  scores_ref,
  *,
  scale,
  block_size,
  blocks_per_split,
  num_blocks,
  head_dim,
  precision,
):
  """Program (b, r, j): blocks `[j * n, (j + 1) * n)` of row b (n = blocks_per_split); lengths
  beyond S read S tokens (as the grid schedule)."""
  b, r, j = pl.program_id(0), pl.program_id(1), pl.program_id(2)
  length = lengths_ref[b]
  col = pl.multiple_of(heads_ref[r] * head_dim, head_dim)
  q = q_ref[...]  # [Gp, D], qbar in the last row
  gp = q.shape[0]
  first = j * blocks_per_split
  n_visible = jnp.minimum(jax.lax.div(length + block_size - 1, block_size), num_blocks)
  last = jnp.minimum(first + blocks_per_split, n_visible)
  qbar_row = jax.lax.broadcasted_iota(jnp.int32, (gp, block_size), 0) == gp - 1

  def step(blk, carry):
    start = pl.multiple_of(blk * block_size, block_size)
    k = k_ref[pl.ds(start, block_size), pl.ds(col, head_dim)]
    v = v_ref[pl.ds(start, block_size), pl.ds(col, head_dim)]
    visible = start + jax.lax.broadcasted_iota(jnp.int32, (1, block_size), 1) < length
    carry, raw = common.online_softmax_tile(
      q, k, v, visible, carry, scale=scale, precision=precision
    )
    sel = jnp.where(visible & qbar_row, raw, -jnp.inf)
    scores_ref[blk - first] = jnp.max(jnp.max(sel, axis=1), axis=0)
    return carry

  carry = jax.lax.fori_loop(first, last, step, common.initial_stats(gp, head_dim))
  _write_partial(carry, o_ref, m_ref, l_ref)


def retrieval_decode_loop(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  lengths: jax.Array,
  heads: jax.Array,
  *,
  block_size: int,
  scale: float,
  kernel_block: int | None,
  interpret: Any,
) -> tuple[jax.Array, jax.Array]:
  """Kernel A, loop schedule (arguments checked and resolved by `kernel.retrieval_decode_pallas`).

  `kernel_block` is the tokens per split (a multiple of block_size dividing S; default
  `blocks.choose_split_tokens`). Returns `(out [B, R, G, D] in q's dtype, scores
  [B, R, S / block_size] float32)`.
  """
  bsz, s, kh, d = k.shape
  g, r = q.shape[2], heads.shape[0]
  split = blocks_lib.choose_split_tokens(s, block_size, kernel_block)
  n_splits, per = s // split, split // block_size
  n_scores = s // block_size
  qp = _query_rows(q, heads, with_qbar=True)
  gp = qp.shape[2]
  kernel = functools.partial(
    _retrieval_loop_kernel,
    scale=scale,
    block_size=block_size,
    blocks_per_split=per,
    num_blocks=n_scores,
    head_dim=d,
    precision=common.precision(q.dtype),
  )
  itemsize = k.dtype.itemsize
  cost = pl.CostEstimate(
    flops=4 * bsz * r * s * gp * d,
    transcendentals=bsz * r * s * gp,
    bytes_accessed=2 * bsz * r * s * d * itemsize + bsz * r * gp * d * (q.dtype.itemsize + 4),
  )
  o, m, l, scores = pl.pallas_call(
    kernel,
    out_shape=[
      *_partial_shapes(bsz, r, n_splits, gp, d),
      jax.ShapeDtypeStruct((bsz, r, n_splits, per), f32),
    ],
    grid=(bsz, r, n_splits),
    in_specs=[
      _small_int_spec(bsz),
      _small_int_spec(r),
      pl.BlockSpec((_SQ, _SQ, gp, d), lambda b_, r_, j_: (b_, r_, 0, 0)),
      _cache_spec(s, kh * d),
      _cache_spec(s, kh * d),
    ],
    out_specs=[
      *_partial_specs(gp, d),
      pl.BlockSpec((_SQ, _SQ, _SQ, per), lambda b_, r_, j_: (b_, r_, j_, 0)),
    ],
    compiler_params=_compiler_params(interpret),
    cost_estimate=cost,
    interpret=interpret,
    name="lychee_retrieval_decode_gpu",
  )(lengths, heads, qp, k.reshape(bsz, s, kh * d), v.reshape(bsz, s, kh * d))
  out = combine_splits(o, m, l, q.dtype)[:, :, :g]
  starts = jnp.arange(n_scores, dtype=jnp.int32) * block_size
  visited = starts[None, None, :] < lengths[:, None, None]
  scores = jnp.where(visited, scores.reshape(bsz, r, n_scores), -jnp.inf)
  return out, scores


# ------------------------------------------------------------------------- kernel B


def compact_block_ids(block_idx, lengths, *, block_size: int, num_blocks: int):
  """`[B, R, n]` ids -> (`[B, R, n]` usable ids first, rest 0; `[B * R]` counts).

  A usable id is in `[0, num_blocks)` and starts before `lengths[b]`; the order among usable
  ids is kept. (Ids past the cache would make the kernel read out of bounds.)
  """
  ids = block_idx.astype(jnp.int32)
  usable = (ids >= 0) & (ids < num_blocks)
  usable &= ids * block_size < lengths.astype(jnp.int32)[:, None, None]
  order = jnp.argsort(~usable, axis=2, stable=True)
  compact = jnp.take_along_axis(jnp.where(usable, ids, 0), order, axis=2)
  counts = jnp.sum(usable, axis=2, dtype=jnp.int32)
  return compact, counts.reshape(-1)


def _block_sparse_loop_kernel(
  lengths_ref,
  heads_ref,
  counts_ref,
  ids_ref,
  q_ref,
  k_ref,
  v_ref,
  o_ref,
  m_ref,
  l_ref,
  *,
  scale,
  block_size,
  blocks_per_split,
  head_dim,
  precision,
):
  """Program (b, r, j): selected entries `[j * n, (j + 1) * n)` of the compacted list."""
  b, r, j = pl.program_id(0), pl.program_id(1), pl.program_id(2)
  length = lengths_ref[b]
  col = pl.multiple_of(heads_ref[r] * head_dim, head_dim)
  count = counts_ref[b * pl.num_programs(1) + r]
  q = q_ref[...]
  first = j * blocks_per_split
  last = jnp.minimum(first + blocks_per_split, count)

  def step(i, carry):
    start = pl.multiple_of(ids_ref[i] * block_size, block_size)
    k = k_ref[pl.ds(start, block_size), pl.ds(col, head_dim)]
    v = v_ref[pl.ds(start, block_size), pl.ds(col, head_dim)]
    visible = start + jax.lax.broadcasted_iota(jnp.int32, (1, block_size), 1) < length
    carry, _ = common.online_softmax_tile(q, k, v, visible, carry, scale=scale, precision=precision)
    return carry

  carry = jax.lax.fori_loop(first, last, step, common.initial_stats(q.shape[0], head_dim))
  _write_partial(carry, o_ref, m_ref, l_ref)


def block_sparse_decode_loop(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  lengths: jax.Array,
  heads: jax.Array,
  block_idx: jax.Array,
  *,
  block_size: int,
  scale: float,
  blocks_per_split: int | None,
  interpret: Any,
) -> jax.Array:
  """Kernel B, loop schedule (arguments checked and resolved by
  `kernel.block_sparse_decode_pallas`). Returns `[B, R, G, D]` in q's dtype."""
  bsz, s, kh, d = k.shape
  g, r = q.shape[2], heads.shape[0]
  n_sel = block_idx.shape[2]
  per = blocks_lib.choose_split_blocks(n_sel, blocks_per_split)
  n_splits = -(-n_sel // per)
  ids, counts = compact_block_ids(
    block_idx, lengths, block_size=block_size, num_blocks=s // block_size
  )
  qp = _query_rows(q, heads, with_qbar=False)
  gp = qp.shape[2]
  kernel = functools.partial(
    _block_sparse_loop_kernel,
    scale=scale,
    block_size=block_size,
    blocks_per_split=per,
    head_dim=d,
    precision=common.precision(q.dtype),
  )
  tokens = bsz * r * n_sel * block_size
  cost = pl.CostEstimate(
    flops=4 * tokens * gp * d,
    transcendentals=tokens * gp,
    bytes_accessed=2 * tokens * d * k.dtype.itemsize + bsz * r * gp * d * (q.dtype.itemsize + 4),
  )
  o, m, l = pl.pallas_call(
    kernel,
    out_shape=_partial_shapes(bsz, r, n_splits, gp, d),
    grid=(bsz, r, n_splits),
    in_specs=[
      _small_int_spec(bsz),
      _small_int_spec(r),
      _small_int_spec(bsz * r),
      pl.BlockSpec((_SQ, _SQ, n_sel), lambda b_, r_, j_: (b_, r_, 0)),
      pl.BlockSpec((_SQ, _SQ, gp, d), lambda b_, r_, j_: (b_, r_, 0, 0)),
      _cache_spec(s, kh * d),
      _cache_spec(s, kh * d),
    ],
    out_specs=_partial_specs(gp, d),
    compiler_params=_compiler_params(interpret),
    cost_estimate=cost,
    interpret=interpret,
    name="lychee_block_sparse_decode_gpu",
  )(lengths, heads, counts, ids, qp, k.reshape(bsz, s, kh * d), v.reshape(bsz, s, kh * d))
  return combine_splits(o, m, l, q.dtype)[:, :, :g]
