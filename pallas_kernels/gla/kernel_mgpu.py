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


def masked_exp(x, keep):
  """`exp(x)` where `keep`, 0 elsewhere (masked before exp); `keep=None` keeps everything."""
  return jnp.exp(x if keep is None else jnp.where(keep, x, -jnp.inf))


def both(mask, other):
  """`mask & other`, or `mask` when `other` is None (no segments)."""
  return mask if other is None else mask & other


class Chunk:
  """What a program of either kernel reads of its chunk besides the TMA tiles, inside the
  kernel body: the float32 gate tile, single rows as `[Dk]` vectors broadcast over a tile's
  rows, and the packed-sequence masks."""

  def __init__(self, g_gmem, seg_gmem, *, dk: int, heads: int):
    from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

    self.wgmma = plgpu.Layout.WGMMA
    self.dk = dk
    self.i, self.n = lax.axis_index("bh"), lax.axis_index("n")
    self.rows = pl.ds(self.n * CHUNK, CHUNK)
    self.batch = lax.div(self.i, jnp.int32(heads))
    self.seg_gmem, self._g_gmem = seg_gmem, g_gmem
    self.g = self.tile_of(g_gmem)  # [C, Dk] float32, cumulative within the chunk
    self.seg = None if seg_gmem is None else self.tile_of(seg_gmem, self.batch)
    self.row = plgpu.broadcasted_iota(jnp.int32, (CHUNK, dk), 0, layout=self.wgmma)

  def tile_of(self, ref, b=None):
    """`ref[b, rows]`, the chunk's `[C, Dk]` float32 tile of a gate-shaped array."""
    idx = (self.i if b is None else b, self.rows)
    return gpu_backend.mosaic_load(ref, idx, self.wgmma, optimized=False)

  def row_of(self, ref, pos, b=None):
    """`ref[b, n * C + pos, :]` as a float32 `[C, Dk]` tile of equal rows (an unvectorised
    global load; b defaults to this program's row of the flat batch * head axis)."""
    idx = (self.i if b is None else b, self.n * CHUNK + pos, pl.ds(0, self.dk))
    x = gpu_backend.mosaic_load(ref, idx, self.wgmma.reduce(0), optimized=False).astype(f32)
    return lax.broadcast_in_dim(x, (CHUNK, self.dk), [1])

  def gate_at(self, pos):
    return self.row_of(self._g_gmem, pos)

  def same_sequence_as(self, pos):
    """Rows in the packed sequence of row `pos` (None without segments)."""
    if self.seg is None:
      return None
    return self.seg == self.row_of(self.seg_gmem, pos, self.batch)

  def first_sequence(self):
    """Rows in the chunk's first sequence, the one the entering state belongs to (None
    without segments)."""
    return None if self.seg is None else self.seg == 0.0


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
  tk = gpu_backend.mosaic_tile_transforms(dtype, dk)
  tv = gpu_backend.mosaic_tile_transforms(dtype, dv)

  def body(q_gmem, k_gmem, v_gmem, g_gmem, s_gmem, *refs):
    seg_gmem = refs[0] if seg is not None else None
    o_gmem, q_smem, k_smem, v_smem, s_smem, kd_smem, o_smem, barrier = refs[seg is not None :]
    ch = Chunk(g_gmem, seg_gmem, dk=dk, heads=heads)
    i, n, rows, g, row = ch.i, ch.n, ch.rows, ch.g, ch.row
    plgpu.copy_gmem_to_smem(q_gmem.at[i, rows], q_smem, barrier.at[0])
    plgpu.copy_gmem_to_smem(k_gmem.at[i, rows], k_smem, barrier.at[1])
    plgpu.copy_gmem_to_smem(v_gmem.at[i, rows], v_smem, barrier.at[2])
    plgpu.copy_gmem_to_smem(s_gmem.at[i, n], s_smem, barrier.at[3])
    plgpu.barrier_wait(barrier.at[0])
    q = gpu_backend.mosaic_load(q_smem, (), wgmma).astype(f32) * scale
    plgpu.barrier_wait(barrier.at[3])
    # Only the chunk's first sequence sees the entering state.
    q_inter = (q * masked_exp(g, ch.first_sequence())).astype(dtype)

    def inter(acc_ref):
      plgpu.wgmma(acc_ref, q_inter, s_smem)

    out = pl.run_state(inter)(plgpu.ACC.init(plgpu.layout_cast(jnp.zeros((c, dv), f32), wgmma)))

    # In-chunk scores, keys of earlier sub-chunks: one wgmma per query sub-chunk.
    plgpu.barrier_wait(barrier.at[1])
    scores = plgpu.layout_cast(jnp.zeros((c, c), f32), wgmma)
    for blk in range(1, c // r):
      first = blk * r
      g_first, seq = ch.gate_at(first), ch.same_sequence_as(first)
      rows_in = (row >= first) & (row < first + r)
      q_dec = (q * masked_exp(g - g_first, both(rows_in, seq))).astype(dtype)
      k = gpu_backend.mosaic_load(k_smem, (), wgmma).astype(f32)
      kd_smem[...] = (k * masked_exp(g_first - g, both(row < first, seq))).astype(dtype)
      plgpu.commit_smem()

      def earlier(acc_ref, q_dec=q_dec):
        plgpu.wgmma(acc_ref, q_dec, gpu_backend.mosaic_transpose(kd_smem))

      scores = pl.run_state(earlier)(plgpu.ACC.init(scores))

    # Keys inside each query's own sub-chunk: explicit differences, one key column at a time.
    col = plgpu.broadcasted_iota(jnp.int32, (c, c), 1, layout=wgmma)

    def diagonal(j, scores):
      keep = both((row >= j) & (lax.div(row, r) == lax.div(j, r)), ch.same_sequence_as(j))
      decay = masked_exp(g - ch.gate_at(j), keep)
      column = jnp.sum(q * ch.row_of(k_gmem, j) * decay, axis=1)  # [C]
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
