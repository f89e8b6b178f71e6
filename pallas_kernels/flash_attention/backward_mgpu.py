"""The flash-attention backward as Mosaic GPU kernels (Hopper wgmma), the "mosaic" schedule.

The split of `backward.py` (FlashAttention-2, arXiv:2307.08691, Algorithm 2): a dQ kernel per
64 query rows and a dK/dV kernel per 64 keys, both recomputing the probabilities from the
forward logsumexp, `p = exp(s - lse)`, `dv = p^T dO`, `dp = dO v^T`, `ds = p (dp - delta)`,
`dq = scale ds k`, `dk = scale ds^T q`, `delta = rowsum(dO * O)`. As in the forward
(`kernel_mgpu.py`) each program streams only its visible blocks through a TMA pipeline with a
per-program step count, multiplies by wgmma and masks edge blocks in a `lax.cond`:

  * dQ: grid `(B, N, Tp / 64)`; the query and dO tiles and the rows' lse / delta stay in
    shared memory and registers, the K/V tiles of key blocks `common.key_block_range` stream;
  * dK/dV: grid `(B, K, Tp / 64)`, key-major (`[64 keys, 64 queries]` score tiles, as the
    loop schedule), the K/V tiles stay, and the (query head, query block) pairs stream: all
    `G = N / K` query heads of the key head, each over `common.query_block_range`, so GQA
    needs no `[B, N, T, D]` partials; q / dO are viewed `[N * Tp, D]` (one flat step index
    per pair) and each step reads its rows' lse / delta (`[N * Tp]` float32) from global
    memory into registers.

DESIGN CHOICE / limits: as the forward (Hopper, bfloat16 / float16, one warpgroup, no warp
specialisation); dK/dV keep two `[64, D]` float32 accumulators in registers, so head dims
above 128 use the Triton "loop" backward instead (`MAX_HEAD_DIM`); written and checked on CPU
only (JAX >= 0.12's GPU interpreter, CUDA lowering on every JAX here).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from pallas_kernels import gpu_backend
from pallas_kernels.flash_attention import blocks as blocks_lib
from pallas_kernels.flash_attention import common
from pallas_kernels.flash_attention.kernel_mgpu import same_segment, segment_ids, visible

f32 = jnp.float32
LOG2E = math.log2(math.e)
ROWS = 64  # rows per program and per streamed tile (one warpgroup's wgmma M)
MAX_HEAD_DIM = 128  # dK and dV accumulators in registers: 2 x [64, D] float32


def _launch(body, out_types, scratch, grid, names, c: common.Config, name: str):
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  return plgpu.kernel(
    body,
    out_type=out_types,
    grid=grid,
    grid_names=names,
    scratch_types=scratch,
    interpret=gpu_backend.mosaic_interpret(c.interpret),
    **gpu_backend.mosaic_kernel_name(name),
  )


def _mask_edge(x, edge, tile_mask, c: common.Config):
  """`where(tile_mask(), x, 0)` on edge tiles only (`lax.cond`: interior tiles skip it); with
  segment ids every tile is an edge tile."""
  masked = lambda y: jnp.where(tile_mask(), y, 0.0)  # noqa: E731
  if c.has_segments:
    return masked(x)
  return lax.cond(edge, masked, lambda y: y, x)


def _dq(q, k, v, do, lse, delta, segs, c: common.Config):
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  b, n, tp, d = q.shape
  bq, bk = c.block_q, c.block_k
  dtype = q.dtype
  wgmma = plgpu.Layout.WGMMA
  transforms = gpu_backend.mosaic_tile_transforms(dtype, d)
  scale2 = c.scale * LOG2E

  def body(*refs):
    q_gmem, k_gmem, v_gmem, do_gmem, lse_gmem, delta_gmem, *refs = refs
    qs_gmem = ks_gmem = None
    if c.has_segments:
      qs_gmem, ks_gmem, *refs = refs
    dq_gmem, q_smem, do_smem, barrier = refs
    bi, h, i = (lax.axis_index(a) for a in ("b", "h", "i"))
    kvh = lax.div(h, jnp.int32(c.group))
    lo, hi, plain_lo, plain_hi = common.key_block_range(i, c)
    rows = pl.ds(i * bq, bq)
    plgpu.copy_gmem_to_smem(q_gmem.at[bi, h, rows], q_smem, barrier.at[0])
    plgpu.copy_gmem_to_smem(do_gmem.at[bi, h, rows], do_smem, barrier.at[1])
    lse2 = gpu_backend.mosaic_load(lse_gmem, (bi, h, rows), wgmma.reduce(1), optimized=False)
    lse2 = lse2 * LOG2E
    dlt = gpu_backend.mosaic_load(delta_gmem, (bi, h, rows), wgmma.reduce(1), optimized=False)
    q_seg = segment_ids(qs_gmem, bi, i * bq, bq, 1) if c.has_segments else None
    plgpu.barrier_wait(barrier.at[0])
    plgpu.barrier_wait(barrier.at[1])
    shape = (bq, bk)

    def step(idx, k_smem, v_smem, acc):
      (s,) = getattr(idx, "indices", idx)
      kb = lo + s

      def scores(acc_ref):
        plgpu.wgmma(acc_ref, q_smem, gpu_backend.mosaic_transpose(k_smem))
        return acc_ref[...]

      def dprobs(acc_ref):
        plgpu.wgmma(acc_ref, do_smem, gpu_backend.mosaic_transpose(v_smem))
        return acc_ref[...]

      logits = pl.run_scoped(scores, plgpu.ACC(shape, f32)) * scale2
      p = jnp.exp2(logits - lax.broadcast_in_dim(lse2, shape, [0]))

      def tile_mask():
        seg = None
        if c.has_segments:
          seg = same_segment(q_seg, segment_ids(ks_gmem, bi, kb * bk, bk, 0), shape)
        return visible(i * bq, kb * bk, shape, c, seg=seg)

      p = _mask_edge(p, (kb < plain_lo) | (kb >= plain_hi), tile_mask, c)
      dp = pl.run_scoped(dprobs, plgpu.ACC(shape, f32))
      ds = p * (dp - lax.broadcast_in_dim(dlt, shape, [0]))

      def dq_update(acc_ref):
        plgpu.wgmma(acc_ref, ds.astype(dtype), k_smem)

      return pl.run_state(dq_update)(plgpu.ACC.init(acc))

    spec = plgpu.BlockSpec((bk, d), lambda s: (lo + s, 0), transforms=transforms)
    acc = plgpu.emit_pipeline(
      step,
      grid=(hi - lo + 1,),
      in_specs=[spec, spec],
      max_concurrent_steps=c.num_stages,
      init_carry=plgpu.layout_cast(jnp.zeros((bq, d), f32), wgmma),
    )(k_gmem.at[bi, kvh], v_gmem.at[bi, kvh])
    q_smem[...] = (acc * c.scale).astype(dtype)  # the dQ tile replaces the query tile
    plgpu.commit_smem()
    plgpu.copy_smem_to_gmem(q_smem, dq_gmem.at[bi, h, rows])
    plgpu.wait_smem_to_gmem(0)

  call = _launch(
    body,
    jax.ShapeDtypeStruct(q.shape, dtype),
    [
      plgpu.SMEM((bq, d), dtype, transforms=transforms),
      plgpu.SMEM((bq, d), dtype, transforms=transforms),
      plgpu.Barrier(num_arrivals=1, num_barriers=2),
    ],
    (b, n, tp // bq),
    ("b", "h", "i"),
    c,
    "flash_attention_dq_mosaic",
  )
  return call(q, k, v, do, lse, delta, *segs)


def _dkv(q, k, v, do, lse, delta, segs, c: common.Config):
  """dK (scaled) and dV, key-major; `c.block_k` is 64 here (one warpgroup of keys)."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  b, n, tp, d = q.shape
  kh, g = c.num_kv_heads, c.group
  bq, bk = c.block_q, c.block_k
  nq = c.num_q_blocks
  dtype = q.dtype
  wgmma = plgpu.Layout.WGMMA
  transforms = gpu_backend.mosaic_tile_transforms(dtype, d)
  scale2 = c.scale * LOG2E
  shape = (bk, bq)  # keys x queries

  def body(*refs):
    q_gmem, k_gmem, v_gmem, do_gmem, lse_gmem, delta_gmem, *refs = refs
    qs_gmem = ks_gmem = None
    if c.has_segments:
      qs_gmem, ks_gmem, *refs = refs
    dk_gmem, dv_gmem, k_smem, v_smem, barrier = refs
    bi, kvh, kb = (lax.axis_index(a) for a in ("b", "k", "j"))
    lo, hi, plain_lo, plain_hi = common.query_block_range(kb, c)
    per = hi - lo + 1  # visible query blocks of each query head
    keys = pl.ds(kb * bk, bk)
    plgpu.copy_gmem_to_smem(k_gmem.at[bi, kvh, keys], k_smem, barrier.at[0])
    plgpu.copy_gmem_to_smem(v_gmem.at[bi, kvh, keys], v_smem, barrier.at[1])
    k_seg = segment_ids(ks_gmem, bi, kb * bk, bk, 1) if c.has_segments else None
    plgpu.barrier_wait(barrier.at[0])
    plgpu.barrier_wait(barrier.at[1])

    def pair(s):
      """(query head within the group, query block) of flat step s."""
      safe = jnp.maximum(per, 1)
      return lax.div(s, safe), lo + lax.rem(s, safe)

    def q_row_block(s):  # block index into the [N * Tp / 64] query tiles
      hg, qb = pair(s)
      return (kvh * g + hg) * nq + qb

    def row_stats(ref, s):  # the streamed query rows' lse or delta, along the tile's columns
      idx = (bi, pl.ds(q_row_block(s) * bq, bq))
      return gpu_backend.mosaic_load(ref, idx, wgmma.reduce(0), optimized=False)

    def step(idx, q_smem, do_smem, carry):
      (s,) = getattr(idx, "indices", idx)
      dk, dv = carry
      _, qb = pair(s)

      def scores(acc_ref):
        plgpu.wgmma(acc_ref, k_smem, gpu_backend.mosaic_transpose(q_smem))
        return acc_ref[...]

      logits = pl.run_scoped(scores, plgpu.ACC(shape, f32)) * scale2
      lse2 = row_stats(lse_gmem, s) * LOG2E
      p_t = jnp.exp2(logits - lax.broadcast_in_dim(lse2, shape, [1]))

      def tile_mask():
        seg = None
        if c.has_segments:
          seg = same_segment(k_seg, segment_ids(qs_gmem, bi, qb * bq, bq, 0), shape)
        return visible(qb * bq, kb * bk, shape, c, key_major=True, seg=seg)

      p_t = _mask_edge(p_t, (qb < plain_lo) | (qb >= plain_hi), tile_mask, c)

      def dv_and_dp(refs):
        dv_ref, dp_ref = refs
        plgpu.wgmma(dv_ref, p_t.astype(dtype), do_smem)
        plgpu.wgmma(dp_ref, v_smem, gpu_backend.mosaic_transpose(do_smem))

      zeros = plgpu.layout_cast(jnp.zeros(shape, f32), wgmma)
      dv, dp_t = pl.run_state(dv_and_dp)((plgpu.ACC.init(dv), plgpu.ACC.init(zeros)))
      dlt = row_stats(delta_gmem, s)
      ds_t = p_t * (dp_t - lax.broadcast_in_dim(dlt, shape, [1]))

      def dk_update(acc_ref):
        plgpu.wgmma(acc_ref, ds_t.astype(dtype), q_smem)

      dk = pl.run_state(dk_update)(plgpu.ACC.init(dk))
      return dk, dv

    tile = plgpu.BlockSpec((bq, d), lambda s: (q_row_block(s), 0), transforms=transforms)
    zeros = plgpu.layout_cast(jnp.zeros((bk, d), f32), wgmma)
    dk, dv = plgpu.emit_pipeline(
      step,
      grid=(g * per,),
      in_specs=[tile, tile],
      max_concurrent_steps=c.num_stages,
      init_carry=(zeros, zeros),
    )(q_gmem.at[bi], do_gmem.at[bi])
    k_smem[...] = (dk * c.scale).astype(dtype)  # dK and dV replace the K and V tiles
    v_smem[...] = dv.astype(dtype)
    plgpu.commit_smem()
    plgpu.copy_smem_to_gmem(k_smem, dk_gmem.at[bi, kvh, keys])
    plgpu.copy_smem_to_gmem(v_smem, dv_gmem.at[bi, kvh, keys])
    plgpu.wait_smem_to_gmem(0)

  call = _launch(
    body,
    (jax.ShapeDtypeStruct(k.shape, dtype), jax.ShapeDtypeStruct(v.shape, dtype)),
    [
      plgpu.SMEM((bk, d), dtype, transforms=transforms),
      plgpu.SMEM((bk, d), dtype, transforms=transforms),
      plgpu.Barrier(num_arrivals=1, num_barriers=2),
    ],
    (b, kh, tp // bk),
    ("b", "k", "j"),
    c,
    "flash_attention_dkv_mosaic",
  )
  flat = lambda x: x.reshape(b, n * tp, *x.shape[3:])  # noqa: E731  # [B, N * Tp, ...]
  return call(flat(q), k, v, flat(do), flat(lse), flat(delta), *segs)


def backward(q, k, v, segs, o, lse, do, c: common.Config):
  """(dq, dk, dv) in the kernel layout (q `[B, N, Tp, D]`, k/v `[B, K, Tp, D]`), from the
  forward's output and logsumexp `[B, N, Tp]`; `segs` as the forward's (loop layout)."""
  b, _, tp, _ = q.shape
  delta = jnp.sum(o.astype(f32) * do.astype(f32), axis=-1)
  seg_args = ()
  if c.has_segments:  # ids [B, Tp, 1] / [B, 1, Tp] -> [B, Tp]
    seg_args = (segs[0].reshape(b, tp), segs[1].reshape(b, tp))
  # dQ keeps two tiles resident (query and dO): its key tile may have to be smaller.
  dq_block_k = blocks_lib.mosaic_block_k(
    c.block_k, c.head_dim, jnp.dtype(q.dtype).itemsize, fixed_rows=2 * ROWS
  )
  dq = _dq(q, k, v, do, lse, delta, seg_args, dataclasses.replace(c, block_k=dq_block_k))
  dk, dv = _dkv(q, k, v, do, lse, delta, seg_args, dataclasses.replace(c, block_k=ROWS))
  return dq, dk, dv
