"""LycheeDecode's two decode attentions as Mosaic GPU kernels (Hopper wgmma), the "mosaic" schedule.

"LycheeDecode: Accelerating Long-Context LLM Inference via Hybrid-Head Sparse Decoding"
(Lin et al., arXiv:2602.04541); `shared/methods/inference.md` sections 8.2 and 8.5. Same
arguments and results as the Triton "loop" schedule (`kernel_gpu.py`), whose split-K layout
they keep: grid `(B, R, n_splits)`, each program runs the online softmax of one head's query
rows over its part of the cache (kernel A) or of the selected blocks (kernel B) and writes its
normalised partial output with its row max and sum; `kernel_gpu.combine_splits` merges the
parts in float32. What differs is how a program moves and multiplies tiles:

  * the head's G query rows are zero-padded to 64 (one warpgroup's wgmma M; kernel A's
    `qbar = mean_G(q)` goes in the last row, as in the loop schedule) and copied once into
    shared memory by TMA;
  * the `[block_size, D]` K and V tiles stream through a TMA pipeline (`plgpu.emit_pipeline`,
    `max_concurrent_steps` deep) whose index map reads the block id of each step from global
    memory: the next selected block (kernel B, ids compacted by `compact_block_ids`) or the
    next block of the part, clamped to the last visible one (kernel A);
  * per step: `S = q K^T` by wgmma (`[64, block_size]` float32, K read transposed from shared
    memory), the mask (tokens before `lengths[b]`; steps past the part's usable blocks mask
    everything), the online-softmax update in registers (a row whose running max is still -inf
    contributes nothing, no NaN), and `acc += P V` by wgmma with the probabilities in the
    compute dtype as its register operand;
  * kernel A also keeps, per step, the max over the block's visible tokens of the raw logits of
    all 64 rows in shared memory `[blocks, 64]`; the wrapper reads the qbar row.

DESIGN CHOICE / limits:
  * compiled: Hopper (sm_90; wgmma, which Blackwell replaced), bfloat16 / float16 q, k, v (one dtype), D a multiple of
    64 up to 256, block_size a multiple of 16 up to 256, G at most 63 (checked by
    `blocks.check_schedule` with a ValueError naming the argument);
  * 64 query rows per wgmma although a decode step has G (e.g. 4-8) real ones: the extra
    compute is free while the kernel is bandwidth-bound (64 flops per cache byte at D = 128,
    against the ~300 an H100 sustains);
  * one warpgroup per program, no warp specialisation; a step past the part's usable blocks
    still loads a tile (the clamped / compacted id) that the mask discards;
  * unmeasured: written and checked on CPU only (JAX >= 0.12's GPU interpreter against the
    references; every JAX here lowers it for CUDA); `benchmarks/sparse_decode.py --section
    gpu` and `benchmarks/kernel_check.py` time and check it against the loop schedule when a
    GPU is lent.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels import gpu_backend
from pallas_kernels.sparse_decode import blocks as blocks_lib
from pallas_kernels.sparse_decode import common
from pallas_kernels.sparse_decode import kernel_gpu

ROWS = blocks_lib.MOSAIC_ROWS  # query rows per program: one warpgroup's wgmma M
f32 = jnp.float32


def _query_rows(q, heads, *, with_qbar: bool):
  """`[B, K, G, D]` -> `[B, R, 64, D]`: the processed heads' rows, zero-padded (qbar last)."""
  qh = jnp.take(q, heads, axis=1)
  bsz, r, g, d = qh.shape
  parts = [qh, jnp.zeros((bsz, r, ROWS - g - int(with_qbar), d), q.dtype)]
  if with_qbar:
    parts.append(jnp.mean(qh.astype(f32), axis=2, keepdims=True).astype(q.dtype))
  return jnp.concatenate(parts, axis=2)


def _softmax_step(q_smem, k_smem, v_smem, visible, carry, *, scale, block_size, dtype):
  """One K/V tile: `(acc [64, D], m [64], l [64])` updated; also returns the raw logits."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  acc, m_i, l_i = carry

  def qk(acc_ref):
    plgpu.wgmma(acc_ref, q_smem, gpu_backend.mosaic_transpose(k_smem))
    return acc_ref[...]

  raw = pl.run_scoped(qk, plgpu.ACC((ROWS, block_size), f32))
  logits = jnp.where(visible, raw * scale, -jnp.inf)
  m_new = jnp.maximum(m_i, logits.max(axis=1))
  m_safe = jnp.where(m_new == -jnp.inf, 0.0, m_new)  # no token seen yet: exp(-inf) = 0
  alpha = jnp.exp(m_i - m_safe)
  p = jnp.exp(logits - jax.lax.broadcast_in_dim(m_safe, logits.shape, [0]))
  l_i = l_i * alpha + p.sum(axis=1)
  acc = acc * jax.lax.broadcast_in_dim(alpha, acc.shape, [0])

  def pv(acc_ref):
    plgpu.wgmma(acc_ref, p.astype(dtype), v_smem)

  acc = pl.run_state(pv)(plgpu.ACC.init(acc))
  return (acc, m_new, l_i), raw


def _initial_carry(d: int):
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  wgmma = plgpu.Layout.WGMMA
  return (
    plgpu.layout_cast(jnp.zeros((ROWS, d), f32), wgmma),
    plgpu.layout_cast(jnp.full((ROWS,), -jnp.inf, f32), wgmma.reduce(1)),
    plgpu.layout_cast(jnp.zeros((ROWS,), f32), wgmma.reduce(1)),
  )


def _stream_kv(step, kv_index, k_row, v_row, *, per, block_size, d, dtype, max_concurrent_steps):
  """Runs `step(idx, k_smem, v_smem, carry)` over `per` K/V tiles `[block_size, D]` of one
  cache row viewed `[S, K * D]` (step i reads block `kv_index(i)`), TMA-pipelined; returns the
  final `(acc, m, l)` carry."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  spec = plgpu.BlockSpec(
    (block_size, d), kv_index, transforms=gpu_backend.mosaic_tile_transforms(dtype, d)
  )
  return plgpu.emit_pipeline(
    step,
    grid=(per,),
    in_specs=[spec, spec],
    max_concurrent_steps=max(1, min(max_concurrent_steps, per)),
    init_carry=_initial_carry(d),
  )(k_row, v_row)


def _write_partial(carry, o_smem, m_smem, l_smem, o_gmem, m_gmem, l_gmem, where):
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  acc, m_i, l_i = carry
  o_smem[...] = acc / jax.lax.broadcast_in_dim(jnp.where(l_i > 0, l_i, 1.0), acc.shape, [0])
  m_smem[...] = m_i
  l_smem[...] = l_i
  plgpu.commit_smem()
  plgpu.copy_smem_to_gmem(o_smem, o_gmem.at[where])
  plgpu.copy_smem_to_gmem(m_smem, m_gmem.at[where])
  plgpu.copy_smem_to_gmem(l_smem, l_gmem.at[where])


def _launch(body, out_types, scratch, grid, interpret, name):
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  return plgpu.kernel(
    body,
    out_type=out_types,
    grid=grid,
    grid_names=("b", "r", "j"),
    scratch_types=scratch,
    interpret=gpu_backend.mosaic_interpret(interpret),
    **gpu_backend.mosaic_kernel_name(name),
  )


def _partial_types(bsz, r, n_splits, d):
  return (
    jax.ShapeDtypeStruct((bsz, r, n_splits, ROWS, d), f32),
    jax.ShapeDtypeStruct((bsz, r, n_splits, ROWS), f32),
    jax.ShapeDtypeStruct((bsz, r, n_splits, ROWS), f32),
  )


def _scratch(dtype, d, *extra):
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  return [
    plgpu.SMEM(
      (ROWS, d), dtype, transforms=gpu_backend.mosaic_tile_transforms(dtype, d)
    ),  # the query rows
    plgpu.SMEM((ROWS, d), f32),  # the partial output
    plgpu.SMEM((ROWS,), f32),  # m
    plgpu.SMEM((ROWS,), f32),  # l
    *extra,
    plgpu.Barrier(num_arrivals=1, num_barriers=1),
  ]


def _combine(o, m, l, dtype, g):
  """The parts merged (`kernel_gpu.combine_splits`); a part that saw no token has m = -inf,
  made finite so that its weight `l exp(m - max m)` is 0, not NaN, when no part saw one."""
  m = jnp.where(m == -jnp.inf, common.MASK_VALUE, m)
  return kernel_gpu.combine_splits(o, m[..., None], l[..., None], dtype)[:, :, :g]


def retrieval_decode_mosaic(
  q,
  k,
  v,
  lengths,
  heads,
  *,
  block_size: int,
  scale: float,
  kernel_block,
  interpret: Any,
  max_concurrent_steps: int = 2,
) -> tuple[jax.Array, jax.Array]:
  """Kernel A, Mosaic GPU schedule (arguments checked and resolved by
  `kernel.retrieval_decode_pallas`); `kernel_block` tokens per program as in the loop schedule.
  Returns `(out [B, R, G, D] in q's dtype, scores [B, R, S / block_size] float32)`."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  bsz, s, kh, d = k.shape
  g, r = q.shape[2], heads.shape[0]
  split = blocks_lib.choose_split_tokens(s, block_size, kernel_block)
  n_splits, per = s // split, split // block_size
  n_blocks = s // block_size
  dtype = q.dtype

  def body(len_gmem, heads_gmem, q_gmem, k_gmem, v_gmem, o_gmem, m_gmem, l_gmem, sc_gmem, *scratch):
    q_smem, o_smem, m_smem, l_smem, sc_smem, barrier = scratch
    b, h, j = (jax.lax.axis_index(a) for a in ("b", "r", "j"))
    length, head = len_gmem[b], heads_gmem[h]
    n_visible = jnp.minimum(jax.lax.div(length + block_size - 1, block_size), n_blocks)
    first = j * per
    plgpu.copy_gmem_to_smem(q_gmem.at[b, h], q_smem, barrier.at[0])
    plgpu.barrier_wait(barrier.at[0])

    def kv_index(i):
      return (jnp.maximum(jnp.minimum(first + i, n_visible - 1), 0), head)

    def step(idx, k_smem, v_smem, carry):
      (i,) = getattr(idx, "indices", idx)
      blk = first + i
      col = plgpu.broadcasted_iota(jnp.int32, (ROWS, block_size), 1, layout=plgpu.Layout.WGMMA)
      visible = (blk < n_visible) & (blk * block_size + col < length)
      carry, raw = _softmax_step(
        q_smem, k_smem, v_smem, visible, carry, scale=scale, block_size=block_size, dtype=dtype
      )
      sc_smem[i] = jnp.where(visible, raw, -jnp.inf).max(axis=1)
      return carry

    carry = _stream_kv(
      step,
      kv_index,
      k_gmem.at[b],
      v_gmem.at[b],
      per=per,
      block_size=block_size,
      d=d,
      dtype=dtype,
      max_concurrent_steps=max_concurrent_steps,
    )
    _write_partial(carry, o_smem, m_smem, l_smem, o_gmem, m_gmem, l_gmem, (b, h, j))
    plgpu.copy_smem_to_gmem(sc_smem, sc_gmem.at[b, h, j])
    plgpu.wait_smem_to_gmem(0)

  call = _launch(
    body,
    (
      *_partial_types(bsz, r, n_splits, d),
      jax.ShapeDtypeStruct((bsz, r, n_splits, per, ROWS), f32),
    ),
    _scratch(dtype, d, plgpu.SMEM((per, ROWS), f32)),
    (bsz, r, n_splits),
    interpret,
    "lychee_retrieval_decode_mosaic",
  )
  o, m, l, scores = call(
    lengths,
    heads,
    _query_rows(q, heads, with_qbar=True),
    k.reshape(bsz, s, kh * d),
    v.reshape(bsz, s, kh * d),
  )
  scores = scores[..., ROWS - 1].reshape(bsz, r, n_blocks)  # the qbar row
  starts = jnp.arange(n_blocks, dtype=jnp.int32) * block_size
  scores = jnp.where(starts[None, None, :] < lengths[:, None, None], scores, -jnp.inf)
  return _combine(o, m, l, dtype, g), scores


def block_sparse_decode_mosaic(
  q,
  k,
  v,
  lengths,
  heads,
  block_idx,
  *,
  block_size: int,
  scale: float,
  blocks_per_split,
  interpret: Any,
  max_concurrent_steps: int = 2,
) -> jax.Array:
  """Kernel B, Mosaic GPU schedule (arguments checked and resolved by
  `kernel.block_sparse_decode_pallas`); `blocks_per_split` as in the loop schedule. Returns
  `[B, R, G, D]` in q's dtype."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  bsz, s, kh, d = k.shape
  g, r = q.shape[2], heads.shape[0]
  n_sel = block_idx.shape[2]
  per = blocks_lib.choose_split_blocks(n_sel, blocks_per_split)
  n_splits = -(-n_sel // per)
  ids, counts = kernel_gpu.compact_block_ids(
    block_idx, lengths, block_size=block_size, num_blocks=s // block_size
  )
  ids = jnp.pad(ids, ((0, 0), (0, 0), (0, n_splits * per - n_sel)))  # whole parts
  dtype = q.dtype

  def body(len_gmem, heads_gmem, cnt_gmem, ids_gmem, q_gmem, k_gmem, v_gmem, *refs):
    o_gmem, m_gmem, l_gmem, q_smem, o_smem, m_smem, l_smem, barrier = refs
    b, h, j = (jax.lax.axis_index(a) for a in ("b", "r", "j"))
    length, head = len_gmem[b], heads_gmem[h]
    count = cnt_gmem[b * r + h]
    first = j * per
    plgpu.copy_gmem_to_smem(q_gmem.at[b, h], q_smem, barrier.at[0])
    plgpu.barrier_wait(barrier.at[0])

    def kv_index(i):
      return (ids_gmem[b, h, first + i], head)

    def step(idx, k_smem, v_smem, carry):
      (i,) = getattr(idx, "indices", idx)
      start = ids_gmem[b, h, first + i] * block_size
      col = plgpu.broadcasted_iota(jnp.int32, (ROWS, block_size), 1, layout=plgpu.Layout.WGMMA)
      visible = (first + i < count) & (start + col < length)
      carry, _ = _softmax_step(
        q_smem, k_smem, v_smem, visible, carry, scale=scale, block_size=block_size, dtype=dtype
      )
      return carry

    carry = _stream_kv(
      step,
      kv_index,
      k_gmem.at[b],
      v_gmem.at[b],
      per=per,
      block_size=block_size,
      d=d,
      dtype=dtype,
      max_concurrent_steps=max_concurrent_steps,
    )
    _write_partial(carry, o_smem, m_smem, l_smem, o_gmem, m_gmem, l_gmem, (b, h, j))
    plgpu.wait_smem_to_gmem(0)

  call = _launch(
    body,
    _partial_types(bsz, r, n_splits, d),
    _scratch(dtype, d),
    (bsz, r, n_splits),
    interpret,
    "lychee_block_sparse_decode_mosaic",
  )
  o, m, l = call(
    lengths,
    heads,
    counts,
    ids,
    _query_rows(q, heads, with_qbar=False),
    k.reshape(bsz, s, kh * d),
    v.reshape(bsz, s, kh * d),
  )
  return _combine(o, m, l, dtype, g)
