"""The flash-attention forward as a Mosaic GPU kernel (Hopper wgmma), the "mosaic" schedule.

FlashAttention (arXiv:2205.14135) / FlashAttention-2 (arXiv:2307.08691) on Hopper's
asynchronous tensor cores and TMA, the hardware FlashAttention-3 (arXiv:2407.08608) targets.

Same arguments, masks and results as the Triton "loop" schedule (`kernel.py`): grid
`(B, N, Tp / 64)`, one program per 64 query rows of one head (one warpgroup's wgmma M), the
online softmax over the visible key blocks `[lo, hi]` of `common.key_block_range`, and the
per-row logsumexp saved for the backward pass. What differs is how a program moves and
multiplies tiles:

  * the query tile `[64, D]` is copied once into shared memory by TMA (and reused for the
    output tile at the end);
  * the `[block_k, D]` K and V tiles of key blocks `lo .. hi` stream through a TMA pipeline
    (`plgpu.emit_pipeline` with a per-program step count `hi - lo + 1`, so skipped blocks of a
    causal or sliding-window mask are neither fetched nor computed; GQA maps the query head to
    its key head in the pipeline's source ref, K/V are never repeated);
  * per step: `S = q K^T` by wgmma (`[64, block_k]` float32, K read transposed from shared
    memory); edge blocks (causal diagonal, window edge, padding keys, every block when segment
    ids are given) apply the elementwise mask in a `lax.cond` branch, interior blocks skip it;
    the online softmax runs in base 2 with the scale folded into `log2(e)` (one multiply per
    logit, `exp2`); `acc += P V` by wgmma with the probabilities in the compute dtype as its
    register operand;
  * a row whose running max is still -inf (nothing visible yet) contributes nothing (no NaN);
    a row that saw nothing (only padding rows can) outputs 0 with logsumexp `MASK_VALUE`, as
    the other schedules.

DESIGN CHOICE / limits:
  * compiled: Hopper (sm_90 wgmma), bfloat16 / float16 q, k, v, head dim padded to 64, 128 or
    256 (`blocks.padded_head_dim`), `block_q = 64`, `block_k` 64, 128 or 256 (checked by
    `blocks.fit_block_sizes` with a ValueError naming the argument); float32 inputs keep the
    Triton "loop" schedule (`blocks.default_schedule_for`);
  * one warpgroup per program, no warp specialisation or ping-pong of two warpgroups (the
    FlashAttention-3 schedule of arXiv:2407.08608): a plain pipelined form to start from;
  * key tiles shrink where two pipeline stages of K and V would not fit in shared memory
    (`blocks.mosaic_block_k`: D = 256 takes 64-row tiles);
  * the backward pass is `backward_mgpu.py` (Mosaic GPU dQ and dK/dV kernels) up to D = 128,
    the Triton "loop" kernels (`backward.py`) on the same blocks above;
  * opt-in (`schedule="mosaic"`) while this JAX has the Triton backend, whose kernel was
    measured on an H100; the GPU default without it (`blocks.gpu_schedule`);
  * unmeasured: written and checked on CPU only (JAX >= 0.12's GPU interpreter against the
    reference; every JAX here lowers it for CUDA); `benchmarks/kernel_check.py` checks and
    times it against the loop schedule and XLA when a GPU is lent.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from pallas_kernels import gpu_backend
from pallas_kernels.flash_attention import common

f32 = jnp.float32
LOG2E = math.log2(math.e)
LN2 = math.log(2.0)


def visible(q_first, k_first, shape, c: common.Config, *, key_major: bool = False, seg=None):
  """Boolean visibility of one tile in the wgmma register layout (`common.block_mask`'s
  rules): rows are queries and columns keys, or the reverse when `key_major` (the dK/dV
  pass); `seg` is the tile's segment equality (same shape) or None."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  wgmma = plgpu.Layout.WGMMA
  q_axis, k_axis = (1, 0) if key_major else (0, 1)
  q_pos = q_first + plgpu.broadcasted_iota(jnp.int32, shape, q_axis, layout=wgmma)
  k_pos = k_first + plgpu.broadcasted_iota(jnp.int32, shape, k_axis, layout=wgmma)
  mask = jnp.ones(shape, jnp.bool_) if seg is None else seg
  if c.causal:
    mask = mask & (k_pos <= q_pos)
  if c.window is not None:
    mask = mask & (q_pos - k_pos < c.window)
  if c.padded and not c.causal:
    mask = mask & (k_pos < c.seq_len)
  return mask


def segment_ids(ref, b, start, size: int, axis: int):
  """`ref[b, start:start + size]` (int32 segment ids) in registers, laid out to broadcast
  along `axis` of a wgmma tile (axis 1: a column of row ids; axis 0: a row of column ids)."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  layout = plgpu.Layout.WGMMA.reduce(axis)
  return gpu_backend.mosaic_load(ref, (b, pl.ds(start, size)), layout, optimized=False)


def same_segment(row_ids, col_ids, shape):
  """`row_ids[:, None] == col_ids[None, :]` over a wgmma tile of `shape`."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  wgmma = plgpu.Layout.WGMMA
  rows = plgpu.layout_cast(lax.broadcast_in_dim(row_ids, shape, [0]), wgmma)
  cols = plgpu.layout_cast(lax.broadcast_in_dim(col_ids, shape, [1]), wgmma)
  return rows == cols


def forward(q, k, v, segs, c: common.Config):
  """q `[B, N, Tp, D]`, k/v `[B, K, Tp, D]` (kernel layout) -> (o like q, lse `[B, N, Tp]`)."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  b, n, tp, d = q.shape
  bq, bk = c.block_q, c.block_k
  dtype = q.dtype
  scale2 = c.scale * LOG2E  # logits in base 2
  wgmma = plgpu.Layout.WGMMA
  transforms = gpu_backend.mosaic_tile_transforms(dtype, d)

  def body(*refs):
    if c.has_segments:
      q_gmem, k_gmem, v_gmem, qs_gmem, ks_gmem, o_gmem, lse_gmem, *scratch = refs
    else:
      (q_gmem, k_gmem, v_gmem, o_gmem, lse_gmem, *scratch), qs_gmem, ks_gmem = refs, None, None
    q_smem, lse_smem, barrier = scratch
    bi, h, i = (lax.axis_index(a) for a in ("b", "h", "i"))
    kvh = lax.div(h, jnp.int32(c.group))
    lo, hi, plain_lo, plain_hi = common.key_block_range(i, c)
    rows = pl.ds(i * bq, bq)
    plgpu.copy_gmem_to_smem(q_gmem.at[bi, h, rows], q_smem, barrier.at[0])
    q_seg = segment_ids(qs_gmem, bi, i * bq, bq, 1) if c.has_segments else None
    plgpu.barrier_wait(barrier.at[0])

    def step(idx, k_smem, v_smem, carry):
      (s,) = getattr(idx, "indices", idx)
      kb = lo + s
      acc, m_i, l_i = carry

      def qk(acc_ref):
        plgpu.wgmma(acc_ref, q_smem, gpu_backend.mosaic_transpose(k_smem))
        return acc_ref[...]

      logits = pl.run_scoped(qk, plgpu.ACC((bq, bk), f32)) * scale2
      edge = (kb < plain_lo) | (kb >= plain_hi)

      def masked(x):
        seg = None
        if c.has_segments:
          seg = same_segment(q_seg, segment_ids(ks_gmem, bi, kb * bk, bk, 0), (bq, bk))
        return jnp.where(visible(i * bq, kb * bk, (bq, bk), c, seg=seg), x, -jnp.inf)

      if c.has_segments:
        logits = masked(logits)
      else:
        logits = lax.cond(edge, masked, lambda x: x, logits)
      m_new = jnp.maximum(m_i, logits.max(axis=1))
      m_safe = jnp.where(m_new == -jnp.inf, 0.0, m_new)  # nothing seen yet: exp2(-inf) = 0
      alpha = jnp.exp2(m_i - m_safe)
      p = jnp.exp2(logits - lax.broadcast_in_dim(m_safe, logits.shape, [0]))
      l_i = l_i * alpha + p.sum(axis=1)
      acc = acc * lax.broadcast_in_dim(alpha, acc.shape, [0])

      def pv(acc_ref):
        plgpu.wgmma(acc_ref, p.astype(dtype), v_smem)

      acc = pl.run_state(pv)(plgpu.ACC.init(acc))
      return acc, m_new, l_i

    spec = plgpu.BlockSpec((bk, d), lambda s: (lo + s, 0), transforms=transforms)
    init = (
      plgpu.layout_cast(jnp.zeros((bq, d), f32), wgmma),
      plgpu.layout_cast(jnp.full((bq,), -jnp.inf, f32), wgmma.reduce(1)),
      plgpu.layout_cast(jnp.zeros((bq,), f32), wgmma.reduce(1)),
    )
    acc, m_i, l_i = plgpu.emit_pipeline(
      step,
      grid=(hi - lo + 1,),
      in_specs=[spec, spec],
      max_concurrent_steps=c.num_stages,
      init_carry=init,
    )(k_gmem.at[bi, kvh], v_gmem.at[bi, kvh])
    seen = l_i > 0.0
    l_safe = jnp.where(seen, l_i, 1.0)
    q_smem[...] = (acc / lax.broadcast_in_dim(l_safe, acc.shape, [0])).astype(dtype)
    lse_smem[...] = jnp.where(seen, (m_i + jnp.log2(l_safe)) * LN2, common.MASK_VALUE)
    plgpu.commit_smem()
    plgpu.copy_smem_to_gmem(q_smem, o_gmem.at[bi, h, rows])
    plgpu.copy_smem_to_gmem(lse_smem, lse_gmem.at[bi, h, rows])
    plgpu.wait_smem_to_gmem(0)

  call = plgpu.kernel(
    body,
    out_type=(jax.ShapeDtypeStruct(q.shape, dtype), jax.ShapeDtypeStruct((b, n, tp), f32)),
    grid=(b, n, tp // bq),
    grid_names=("b", "h", "i"),
    scratch_types=[
      plgpu.SMEM((bq, d), dtype, transforms=transforms),  # the query tile, then the output tile
      plgpu.SMEM((bq,), f32),  # the logsumexp
      plgpu.Barrier(num_arrivals=1, num_barriers=1),
    ],
    interpret=gpu_backend.mosaic_interpret(c.interpret),
    **gpu_backend.mosaic_kernel_name("flash_attention_fwd_mosaic"),
  )
  seg_args = ()
  if c.has_segments:  # ids [B, Tp, 1] / [B, 1, Tp] in the loop layout -> [B, Tp]
    seg_args = (segs[0].reshape(b, tp), segs[1].reshape(b, tp))
  return call(q, k, v, *seg_args)
