"""The GLA chunk backward as a Mosaic GPU kernel (Hopper wgmma), the "mosaic" schedule.

Gated Linear Attention Transformers with Hardware-Efficient Training
(Yang et al., arXiv:2312.06635), Sec. 4, differentiated by hand as in `backward.py` (whose
docstring has the equations): stage 1 (G, the entering states and the leaving states'
gradients) is that file's XLA; this kernel replaces its `pallas_call` (Triton on GPU). One
program per chunk of C = 64 rows (one warpgroup's wgmma M), q, k, v, dO and the two `[Dk, Dv]`
states (cast to the input dtype) in shared memory by TMA:

  * dq: the entering-state term `e^G (dO S^T)` by wgmma; the pair terms from `dP = dO V^T`
    (one wgmma): for each query sub-chunk of R = 16 rows after the first, `dP`'s rows of that
    sub-chunk times the keys of earlier sub-chunks decayed to its first row (one wgmma, both
    exponents <= 0), and a query's own sub-chunk one key column at a time with explicit
    pairwise differences masked before exp;
  * dk, dv key-major: the leaving-state terms `e^{Gamma - G} (V dS^T)` and
    `(K e^{Gamma - G}) dS` by wgmma; `dP^T = V dO^T` and the key-major scores `A^T` built like
    the forward's scores (for each key sub-chunk but the last, its keys decayed to its last
    row against the later queries decayed from it, one wgmma each; a key's own sub-chunk one
    query column at a time); then `dk += dP^T`'s sub-chunk rows times the decayed queries
    and `dv += A^T dO` by wgmma;
  * dg: the kernel writes `x = q dq - k dk` and the keys' share of dGamma,
    `sum_j k_j dk_j` over the leaving-state term; the in-chunk reverse cumulative sum of x,
    the carried state's share `e^Gamma rowsum(S dS)` and their sum stay in XLA (float32
    throughout, as `backward.py`'s HIGHEST-precision matmul).

Packed sequences use `backward.py`'s masks on the in-chunk sequence index.

DESIGN CHOICE / limits: those of `kernel_mgpu.py` (Hopper, 16-bit inputs, C = 64, Dk and Dv
64 or 128, unvectorised row loads in the diagonal loops, `C * C * Dk` exponentials per loop);
shared memory 176 KiB at Dk = Dv = 128 (dq, dk and dv replace the q, k and v tiles). Unmeasured: checked in JAX 0.12's GPU
interpreter and lowered for CUDA on every JAX here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from pallas_kernels import gpu_backend
from pallas_kernels.gla.kernel_mgpu import CHUNK, SUB, Chunk, both, masked_exp

f32 = jnp.float32


def chunk_gradients(q, k, v, do, g, states, d_states, seg=None, *, heads, scale, interpret):
  """Stage 2 of the backward in the kernels' layout.

  Args:
    q, k: `[BH, N*C, Dk]`; v, do: `[BH, N*C, Dv]` (one 16-bit dtype).
    g: float32 `[BH, N*C, Dk]`, cumulative within each chunk.
    states, d_states: `[BH, N, Dk, Dv]`, the state entering each chunk and the gradient of
      the state leaving it (cast to the input dtype).
    seg: None or the in-chunk sequence index as float32 `[B, N*C, Dk]`.
    heads: H (row b*H + h reads batch row b of `seg`); scale: multiplies q.

  Returns:
    `(dq, dk, dv, x, gamma_keys)`: dq, dk `[BH, N*C, Dk]` and dv `[BH, N*C, Dv]` in the input
    dtype; x = q dq - k dk, float32 `[BH, N*C, Dk]`; gamma_keys float32 `[BH, N, Dk]`.
  """
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  bh, tp, dk = q.shape
  dv = v.shape[-1]
  dtype = q.dtype
  c, r = CHUNK, SUB
  wgmma = plgpu.Layout.WGMMA
  tk = gpu_backend.mosaic_tile_transforms(dtype, dk)
  tv = gpu_backend.mosaic_tile_transforms(dtype, dv)
  tx = gpu_backend.mosaic_tile_transforms(f32, dk)
  has_seg = seg is not None

  def body(*refs):
    q_gmem, k_gmem, v_gmem, do_gmem, g_gmem, s_gmem, ds_gmem, *refs = refs
    seg_gmem = refs.pop(0) if has_seg else None
    dq_gmem, dk_gmem, dv_gmem, x_gmem, gam_gmem, *scratch = refs
    q_smem, k_smem, v_smem, do_smem, s_smem, ds_smem, dec_smem, x_smem, gam_smem, barrier = scratch
    ch = Chunk(g_gmem, seg_gmem, dk=dk, heads=heads)
    i, n, rows, g, row = ch.i, ch.n, ch.rows, ch.g, ch.row
    plgpu.copy_gmem_to_smem(q_gmem.at[i, rows], q_smem, barrier.at[0])
    plgpu.copy_gmem_to_smem(k_gmem.at[i, rows], k_smem, barrier.at[1])
    plgpu.copy_gmem_to_smem(v_gmem.at[i, rows], v_smem, barrier.at[2])
    plgpu.copy_gmem_to_smem(do_gmem.at[i, rows], do_smem, barrier.at[3])
    plgpu.copy_gmem_to_smem(s_gmem.at[i, n], s_smem, barrier.at[4])
    plgpu.copy_gmem_to_smem(ds_gmem.at[i, n], ds_smem, barrier.at[5])

    def over_cols(x, width):  # [C] column vector -> [C, width] tile
      return lax.broadcast_in_dim(x, (c, width), [0])

    def matmul(lhs, rhs, shape):
      def run(acc_ref):
        plgpu.wgmma(acc_ref, lhs, rhs)
        return acc_ref[...]

      return pl.run_scoped(run, plgpu.ACC(shape, f32))

    row_c = plgpu.broadcasted_iota(jnp.int32, (c, c), 0, layout=wgmma)
    col_c = plgpu.broadcasted_iota(jnp.int32, (c, c), 1, layout=wgmma)
    for slot in range(6):
      plgpu.barrier_wait(barrier.at[slot])

    def column(x, j, width):  # column j of a [C, C] tile, as a [C, width] tile
      return over_cols(jnp.sum(jnp.where(col_c == j, x, 0.0), axis=1), width)

    # ---- dq (unscaled until written) ----
    to_entering = masked_exp(g, ch.first_sequence())
    dq = to_entering * matmul(do_smem, gpu_backend.mosaic_transpose(s_smem), (c, dk))
    d_p = matmul(do_smem, gpu_backend.mosaic_transpose(v_smem), (c, c))  # dO_i . v_j
    for blk in range(1, c // r):
      first = blk * r
      g_first, seq = ch.gate_at(first), ch.same_sequence_as(first)
      k = gpu_backend.mosaic_load(k_smem, (), wgmma).astype(f32)
      dec_smem[...] = (k * masked_exp(g_first - g, both(row < first, seq))).astype(dtype)
      plgpu.commit_smem()
      in_blk_c = (row_c >= first) & (row_c < first + r)
      part = matmul(jnp.where(in_blk_c, d_p, 0.0).astype(dtype), dec_smem, (c, dk))
      in_blk = (row >= first) & (row < first + r)
      dq = dq + masked_exp(g - g_first, both(in_blk, seq)) * part

    def dq_diagonal(j, dq):
      keep = both((row >= j) & (lax.div(row, r) == lax.div(j, r)), ch.same_sequence_as(j))
      decay = masked_exp(g - ch.gate_at(j), keep)
      return dq + column(d_p, j, dk) * ch.row_of(k_gmem, j) * decay

    dq = lax.fori_loop(0, c, dq_diagonal, dq)
    q = gpu_backend.mosaic_load(q_smem, (), wgmma).astype(f32) * scale
    x_smem[...] = q * dq
    q_smem[...] = (dq * scale).astype(dtype)  # dq replaces the query tile (q stays in registers)
    plgpu.commit_smem()
    plgpu.copy_smem_to_gmem(q_smem, dq_gmem.at[i, rows])

    # ---- dk, dv (key-major) ----
    k = gpu_backend.mosaic_load(k_smem, (), wgmma).astype(f32)
    k_end = masked_exp(ch.gate_at(c - 1) - g, ch.same_sequence_as(c - 1))
    dk_ = k_end * matmul(v_smem, gpu_backend.mosaic_transpose(ds_smem), (c, dk))
    gam_smem[...] = jnp.sum(k * dk_, axis=0)  # the keys' share of dGamma
    dv_ = matmul((k * k_end).astype(dtype), ds_smem, (c, dv))
    d_p_t = matmul(v_smem, gpu_backend.mosaic_transpose(do_smem), (c, c))  # [keys, queries]
    a_t = plgpu.layout_cast(jnp.zeros((c, c), f32), wgmma)
    for blk in range(c // r - 1):
      last = blk * r + r - 1
      g_e, seq = ch.gate_at(last), ch.same_sequence_as(last)
      in_blk = (row >= blk * r) & (row <= last)
      k_fac = masked_exp(g_e - g, both(in_blk, seq))
      dec_smem[...] = (q * masked_exp(g - g_e, both(row > last, seq))).astype(dtype)
      plgpu.commit_smem()

      k_dec = (k * k_fac).astype(dtype)

      def scores(acc_ref, k_dec=k_dec):
        plgpu.wgmma(acc_ref, k_dec, gpu_backend.mosaic_transpose(dec_smem))

      a_t = pl.run_state(scores)(plgpu.ACC.init(a_t))
      in_blk_c = (row_c >= blk * r) & (row_c <= last)
      part = matmul(jnp.where(in_blk_c, d_p_t, 0.0).astype(dtype), dec_smem, (c, dk))
      dk_ = dk_ + k_fac * part

    def kv_diagonal(i_q, carry):
      a_t, dk_ = carry
      keep = both((row <= i_q) & (lax.div(row, r) == lax.div(i_q, r)), ch.same_sequence_as(i_q))
      q_i = ch.row_of(q_gmem, i_q) * scale
      decay = masked_exp(ch.gate_at(i_q) - g, keep)  # [keys, Dk]
      a_col = jnp.sum(k * q_i * decay, axis=1)  # [keys]: A_{i_q, j}
      a_t = a_t + jnp.where(col_c == i_q, lax.broadcast_in_dim(a_col, (c, c), [0]), 0.0)
      return a_t, dk_ + column(d_p_t, i_q, dk) * q_i * decay

    a_t, dk_ = lax.fori_loop(0, c, kv_diagonal, (a_t, dk_))

    def values(acc_ref):
      plgpu.wgmma(acc_ref, a_t.astype(dtype), do_smem)

    dv_ = pl.run_state(values)(plgpu.ACC.init(dv_))
    x_smem[...] = x_smem[...] - k * dk_
    k_smem[...] = dk_.astype(dtype)  # dk and dv replace the key and value tiles
    v_smem[...] = dv_.astype(dtype)
    plgpu.commit_smem()
    plgpu.copy_smem_to_gmem(k_smem, dk_gmem.at[i, rows])
    plgpu.copy_smem_to_gmem(v_smem, dv_gmem.at[i, rows])
    plgpu.copy_smem_to_gmem(x_smem, x_gmem.at[i, rows])
    plgpu.copy_smem_to_gmem(gam_smem, gam_gmem.at[i, n])
    plgpu.wait_smem_to_gmem(0)

  out_type = (
    jax.ShapeDtypeStruct((bh, tp, dk), dtype),
    jax.ShapeDtypeStruct((bh, tp, dk), dtype),
    jax.ShapeDtypeStruct((bh, tp, dv), dtype),
    jax.ShapeDtypeStruct((bh, tp, dk), f32),
    jax.ShapeDtypeStruct((bh, tp // c, dk), f32),
  )
  call = plgpu.kernel(
    body,
    out_type=out_type,
    grid=(bh, tp // c),
    grid_names=("bh", "n"),
    scratch_types=[
      plgpu.SMEM((c, dk), dtype, transforms=tk),  # q
      plgpu.SMEM((c, dk), dtype, transforms=tk),  # k
      plgpu.SMEM((c, dv), dtype, transforms=tv),  # v
      plgpu.SMEM((c, dv), dtype, transforms=tv),  # dO
      plgpu.SMEM((dk, dv), dtype, transforms=tv),  # the entering state
      plgpu.SMEM((dk, dv), dtype, transforms=tv),  # the leaving state's gradient
      plgpu.SMEM((c, dk), dtype, transforms=tk),  # decayed keys / queries of one sub-chunk
      plgpu.SMEM((c, dk), f32, transforms=tx),  # x = q dq - k dk
      plgpu.SMEM((dk,), f32),  # the keys' share of dGamma
      plgpu.Barrier(num_arrivals=1, num_barriers=6),
    ],
    interpret=gpu_backend.mosaic_interpret(interpret),
    **gpu_backend.mosaic_kernel_name("gla_chunk_bwd_mosaic"),
  )
  seg_args = () if seg is None else (seg,)
  return call(q, k, v, do, g, states.astype(dtype), d_states.astype(dtype), *seg_args)
