"""The GLA chunk forward as a Mosaic GPU kernel (Hopper wgmma), the "mosaic" schedule.

Gated Linear Attention Transformers with Hardware-Efficient Training
(Yang et al., arXiv:2312.06635), Sec. 4. Stage 1 (the in-chunk cumulative gates `G` and the
state entering every chunk, in XLA) is `kernel.py`'s; this file replaces stage 2, the
`pallas_call` whose GPU lowering is Pallas' Triton backend (deprecated since JAX 0.11), with a
`plgpu.kernel` over the same `(batch * head, chunk)` grid. One program per chunk of C = 64 rows
(one warpgroup's wgmma M) computes

    o_i = (q_i e^{G_i})^T S_enter + sum_{j <= i} [(q_i e^{G_i - G_j}) . k_j] v_j

as `kernel.py` does, numerically safe for any decay strength, with the matmuls on tensor cores:

  * q, k, v and the entering state (cast to the input dtype, as flash-linear-attention's
    `chunk_gla` feeds its states to the output matmul) are copied into shared memory by TMA;
  * inter-chunk term: `(q e^G) S` by wgmma, `q e^G` in registers (G <= 0 within a chunk);
  * in-chunk scores `A [C, C]`: for each query sub-chunk of R = 16 rows after the first, the
    keys of earlier sub-chunks through one wgmma factorised at the sub-chunk's first row r,
    `(q_i e^{G_i - G_r}) . (k_j e^{G_r - G_j})` (both exponents <= 0, masked before exp; the
    query factor is zero outside the sub-chunk, the key factor is written to shared memory);
    keys inside a query's own sub-chunk take explicit pairwise differences `G_i - G_j`, one key
    column at a time over the whole tile, masked to `j <= i` in the same sub-chunk before exp;
  * `o += A V` by wgmma with `A` in the input dtype as its register operand.

DESIGN CHOICE / limits:
  * compiled: Hopper (sm_90 wgmma), bfloat16 / float16 inputs, `chunk_size = 64`,
    Dk and Dv in {64, 128} (shared memory and registers); other calls take the `pallas_call`
    schedule (`unsupported` says why, and an explicit `schedule="mosaic"` raises with it);
  * packed sequences (`segment_ids`) use `kernel.py`'s masks on the in-chunk sequence index
    (float32 tiles shaped like the gate tiles, read with the gates): the entering state reaches
    the chunk's first sequence only, and every query/key factor is masked to its sequence
    before exp;
  * the backward pass of this schedule is `backward_mgpu.py` (the same layout and masks), so
    a bfloat16 / float16 GLA trains on a Hopper GPU without the Triton backend;
  * the diagonal sub-chunks read each key row and gate row with an unvectorised global load
    and spend `C * C * Dk` exponentials per chunk (four times `kernel.py`'s, which works on
    16-row tiles; a warpgroup's wgmma tile is 64 rows);
  * unmeasured: written and checked on CPU only (JAX >= 0.12's GPU interpreter against the
    reference; every JAX here lowers it for CUDA); opt-in (`schedule="mosaic"`) while this JAX
    has the Triton backend, the GPU default without it where it can take the call.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from pallas_kernels import gpu_backend

f32 = jnp.float32
CHUNK = 64  # rows per program: one warpgroup's wgmma M
SUB = 16  # rows per query sub-chunk of the factorised in-chunk scores
HEAD_DIMS = (64, 128)
DTYPES = ("bfloat16", "float16")


def unsupported(dtype, chunk_size: int, dk: int, dv: int) -> str | None:
  """Why the Mosaic GPU kernels (forward and backward) cannot take this call, or None."""
  if jnp.dtype(dtype).name not in DTYPES:
    return (
      f"the Mosaic GPU GLA kernel computes in {' or '.join(DTYPES)} (wgmma), got "
      f"{jnp.dtype(dtype).name}"
    )
  if chunk_size != CHUNK:
    return f"the Mosaic GPU GLA kernel takes chunk_size={CHUNK} (one warpgroup), got {chunk_size}"
  if dk not in HEAD_DIMS or dv not in HEAD_DIMS:
    return f"the Mosaic GPU GLA kernel takes Dk and Dv in {HEAD_DIMS}, got Dk={dk}, Dv={dv}"
  return None


def _masked_exp(x, keep):
  return jnp.exp(jnp.where(keep, x, -jnp.inf))


def chunk_outputs(q, k, v, g, states, seg=None, *, heads: int, scale: float, interpret):
  """Stage 2 in the kernels' layout: q, k `[BH, N*C, Dk]`, v `[BH, N*C, Dv]` (input dtype),
  g `[BH, N*C, Dk]` float32 (cumulative within each chunk), states `[BH, N, Dk, Dv]` (any
  float dtype; cast to the input dtype), seg None or the in-chunk sequence index as float32
  `[B, N*C, Dk]` (`common.Layout.segment_tiles`; row b*H + h reads batch row b) -> o
  `[BH, N*C, Dv]` in the input dtype."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  bh, tp, dk = q.shape
  dv = v.shape[-1]
  dtype = q.dtype
  c, r = CHUNK, SUB
  wgmma = plgpu.Layout.WGMMA
  row_layout = wgmma.reduce(0)  # a [D] vector broadcast along a tile's rows
  tk = gpu_backend.mosaic_tile_transforms(dtype, dk)
  tv = gpu_backend.mosaic_tile_transforms(dtype, dv)

  def body(q_gmem, k_gmem, v_gmem, g_gmem, s_gmem, *refs):
    seg_gmem = refs[0] if seg is not None else None
    o_gmem, q_smem, k_smem, v_smem, s_smem, kd_smem, o_smem, barrier = refs[seg is not None :]
    i, n = lax.axis_index("bh"), lax.axis_index("n")
    rows = pl.ds(n * c, c)
    plgpu.copy_gmem_to_smem(q_gmem.at[i, rows], q_smem, barrier.at[0])
    plgpu.copy_gmem_to_smem(k_gmem.at[i, rows], k_smem, barrier.at[1])
    plgpu.copy_gmem_to_smem(v_gmem.at[i, rows], v_smem, barrier.at[2])
    plgpu.copy_gmem_to_smem(s_gmem.at[i, n], s_smem, barrier.at[3])
    g = gpu_backend.mosaic_load(g_gmem, (i, rows), wgmma, optimized=False)  # [C, Dk] f32

    def gmem_row(ref, pos, b=i):  # ref[b, n * C + pos, :] as a [Dk] float32 row vector
      idx = (b, n * c + pos, pl.ds(0, dk))
      return gpu_backend.mosaic_load(ref, idx, row_layout, optimized=False).astype(f32)

    batch = lax.div(i, jnp.int32(heads))
    sg = None  # the in-chunk sequence index [C, Dk], or None
    if seg_gmem is not None:
      sg = gpu_backend.mosaic_load(seg_gmem, (batch, rows), wgmma, optimized=False)

    def same(x):  # rows of the tile in the sequence of row vector x (None: no segments)
      return None if sg is None else sg == over_rows(x)

    def both(mask, other):
      return mask if other is None else mask & other

    def over_rows(x):  # [Dk] row vector -> [C, Dk] tile
      return lax.broadcast_in_dim(x, (c, dk), [1])

    row = plgpu.broadcasted_iota(jnp.int32, (c, dk), 0, layout=wgmma)
    plgpu.barrier_wait(barrier.at[0])
    q = gpu_backend.mosaic_load(q_smem, (), wgmma).astype(f32) * scale
    plgpu.barrier_wait(barrier.at[3])
    # Only the chunk's first sequence (in-chunk index 0) sees the entering state.
    q_inter = (q * (jnp.exp(g) if sg is None else _masked_exp(g, sg == 0.0))).astype(dtype)

    def inter(acc_ref):
      plgpu.wgmma(acc_ref, q_inter, s_smem)

    out = pl.run_state(inter)(plgpu.ACC.init(plgpu.layout_cast(jnp.zeros((c, dv), f32), wgmma)))

    # In-chunk scores, keys of earlier sub-chunks: one wgmma per query sub-chunk.
    plgpu.barrier_wait(barrier.at[1])
    scores = plgpu.layout_cast(jnp.zeros((c, c), f32), wgmma)
    for blk in range(1, c // r):
      first = blk * r
      g_first = over_rows(gmem_row(g_gmem, first))
      seq = None if sg is None else same(gmem_row(seg_gmem, first, batch))
      rows_in = (row >= first) & (row < first + r)
      q_dec = (q * _masked_exp(g - g_first, both(rows_in, seq))).astype(dtype)
      k = gpu_backend.mosaic_load(k_smem, (), wgmma).astype(f32)
      kd_smem[...] = (k * _masked_exp(g_first - g, both(row < first, seq))).astype(dtype)
      plgpu.commit_smem()

      def earlier(acc_ref, q_dec=q_dec):
        plgpu.wgmma(acc_ref, q_dec, gpu_backend.mosaic_transpose(kd_smem))

      scores = pl.run_state(earlier)(plgpu.ACC.init(scores))

    # Keys inside each query's own sub-chunk: explicit differences, one key column at a time.
    col = plgpu.broadcasted_iota(jnp.int32, (c, c), 1, layout=wgmma)

    def diagonal(j, scores):
      keep = (row >= j) & (lax.div(row, r) == lax.div(j, r))
      if sg is not None:
        keep = keep & same(gmem_row(seg_gmem, j, batch))
      decay = _masked_exp(g - over_rows(gmem_row(g_gmem, j)), keep)
      column = jnp.sum(q * over_rows(gmem_row(k_gmem, j)) * decay, axis=1)  # [C]
      return scores + jnp.where(col == j, lax.broadcast_in_dim(column, (c, c), [0]), 0.0)

    scores = lax.fori_loop(0, c, diagonal, scores)
    plgpu.barrier_wait(barrier.at[2])
    p = scores.astype(dtype)

    def intra(acc_ref):
      plgpu.wgmma(acc_ref, p, v_smem)

    out = pl.run_state(intra)(plgpu.ACC.init(out))
    o_smem[...] = out.astype(dtype)
    plgpu.commit_smem()
    plgpu.copy_smem_to_gmem(o_smem, o_gmem.at[i, rows])
    plgpu.wait_smem_to_gmem(0)

  call = plgpu.kernel(
    body,
    out_type=jax.ShapeDtypeStruct((bh, tp, dv), dtype),
    grid=(bh, tp // c),
    grid_names=("bh", "n"),
    scratch_types=[
      plgpu.SMEM((c, dk), dtype, transforms=tk),  # q
      plgpu.SMEM((c, dk), dtype, transforms=tk),  # k
      plgpu.SMEM((c, dv), dtype, transforms=tv),  # v
      plgpu.SMEM((dk, dv), dtype, transforms=tv),  # the entering state
      plgpu.SMEM((c, dk), dtype, transforms=tk),  # decayed keys of one sub-chunk's wgmma
      plgpu.SMEM((c, dv), dtype, transforms=tv),  # the output tile
      plgpu.Barrier(num_arrivals=1, num_barriers=4),
    ],
    interpret=gpu_backend.mosaic_interpret(interpret),
    **gpu_backend.mosaic_kernel_name("gla_chunk_fwd_mosaic"),
  )
  seg_args = () if seg is None else (seg,)
  return call(q, k, v, g, states.astype(dtype), *seg_args)
