"""The fused dequant-matmul as a Mosaic GPU kernel (Hopper wgmma), the successor of the Triton form.

"BPDQ: Bit-Plane Decomposition Quantization on a Variable Grid for Large Language Models"
(Chen et al., arXiv:2602.04163); `shared/methods/inference.md` section 4.4. Same inputs and
result as `kernel.loop_call` (int32 bit-planes `[d_in / 32, k, d_out]`, float32 coefficients
`[d_in / g, k + 1, d_out]`, the weight rebuilt in float32 and rounded to the compute dtype,
float32 accumulation), written for JAX's Mosaic GPU backend, which replaces the Pallas Triton
backend that JAX deprecated in 0.11.

The product is computed transposed, `y^T [d_out, M] = W [d_out, d_in] @ x^T [d_in, M]`, so
that the quantised operand is wgmma's left operand, which may live in registers: each program
owns 64 weight rows (one warpgroup's wgmma M) and `bm` rows of x (wgmma N, a multiple of 8, so
a decode call with M = 1 pads x to 8 rows, not to 64). Grid `(d_out / 64, M / bm)`; each
program runs a TMA pipeline over K in steps of 64 input columns (two int32 words), holding per
step in shared memory

  x `[bm, 64]` (128-byte swizzle, read by wgmma transposed), the planes `[2, k, 64]` int32 and
  the coefficients of the step's group(s) `[cg, k + 1, 64]` float32,

and per step rebuilds the `[64, 64]` weight tile in registers (wgmma layout): each plane's two
words of a row are broadcast along the row, `bit = (word >> (column mod 32)) & 1`, and
`W = C_0 + sum_i C_{i+1} bit_i` in float32, cast to the compute dtype and fed to one wgmma
(K = 64). The `[64, bm]` float32 accumulator is cast to the compute dtype, stored through shared
memory and copied to `y^T` by TMA; the wrapper transposes it back to `[M, d_out]`.

DESIGN CHOICE / limits (beyond `kernel.py`'s):
  * Hopper (sm_90) only: wgmma, which Blackwell replaced (`gpu_backend.wgmma_unavailable`);
    16-bit compute dtypes (bfloat16, float16): wgmma's register operand; float32 activations use the Triton form or XLA;
  * d_out and d_in multiples of 64, group size 32 or a multiple of 64 (a step's two words lie
    in one group, or in two groups of 32);
  * one warpgroup per program and no split-K: a 4096-wide layer is 64 programs per row tile,
    under half of an H100's 132 SMs at decode; `max_concurrent_steps` (default 4) deep TMA
    pipelining is the only latency hiding, and each step waits for its wgmma before the next
    step's unpack (no unpack / MMA overlap, no warp specialisation);
  * the transposed result costs one extra XLA pass over the output (`M x d_out`, small next
    to the weight at decode);
  * unmeasured: written and checked on CPU only (the GPU interpreter of JAX >= 0.12 runs it
    against the references; every JAX here lowers it for CUDA), `benchmarks/dequant_matmul.py
    --gpu-kernels mosaic,triton` times it when a GPU is lent.
"""

from __future__ import annotations

import functools
import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels import gpu_backend
from pallas_kernels.dequant_matmul import blocks as blocks_lib

WORD_BITS = blocks_lib.WORD_BITS
ROWS = blocks_lib.MOSAIC_ROWS  # weight rows per program: one warpgroup's wgmma M
STEP = blocks_lib.MOSAIC_STEP  # input columns per pipeline step: two int32 words
f32 = jnp.float32


def _weight_tile(p_smem, c_smem, *, bits, groups_per_step, dtype):
  """The `[64, 64]` weight tile of one step in registers (wgmma layout), from the planes
  `[2, k, 64]` and coefficients `[groups_per_step, k + 1, 64]` in shared memory."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  wgmma = plgpu.Layout.WGMMA
  col = plgpu.broadcasted_iota(jnp.int32, (ROWS, STEP), 1, layout=wgmma)
  first = col < WORD_BITS  # columns of the step's first word
  shift = jnp.where(first, col, col - WORD_BITS)
  group = (0, 0) if groups_per_step == 1 else (0, 1)

  def rows(ref, *idx):  # a [64] vector of ref[idx], broadcast along the tile's columns
    vec = gpu_backend.mosaic_load(ref, idx, wgmma.reduce(1))
    return jax.lax.broadcast_in_dim(vec, (ROWS, STEP), [0])

  def per_word(ref, word_idx):  # word_idx(u) indexes ref for the step's word u in {0, 1}
    return jnp.where(first, rows(ref, *word_idx(0)), rows(ref, *word_idx(1)))

  w = per_word(c_smem, lambda u: (group[u], 0))
  for i in range(bits):
    words = per_word(p_smem, lambda u: (u, i))
    bit = jax.lax.shift_right_logical(words, shift) & 1
    coef = per_word(c_smem, lambda u: (group[u], i + 1))
    w = w + coef * bit.astype(f32)
  return w.astype(dtype)


def mosaic_call(
  x, planes, coef, *, group_size, out_dtype, blk, interpret, max_concurrent_steps=4
) -> jax.Array:
  """`x [M, d_in]` (16-bit compute dtype), planes `[d_in / 32, k, d_out]` int32, coefficients
  `[d_in / g, k + 1, d_out]` float32 -> `[M, d_out]` in `out_dtype`, by the Mosaic GPU kernel.

  `blk.bm` rows of x per program (`blocks.choose_blocks(..., "mosaic")`); `interpret` runs the
  kernel in JAX's GPU interpreter (`gpu_backend.mosaic_interpret_params`)."""
  from jax.experimental.pallas import mosaic_gpu as plgpu  # pylint: disable=g-import-not-at-top

  m, d_in = x.shape
  _, k, d_out = planes.shape
  bm = blk.bm
  pad = -m % bm
  xp = x if pad == 0 else jnp.pad(x, ((0, pad), (0, 0)))
  mp = xp.shape[0]
  dtype = x.dtype
  groups_per_step = max(1, STEP // group_size)
  steps = d_in // STEP
  swizzle = plgpu.find_swizzle(STEP * jnp.dtype(dtype).itemsize * 8, "x")
  x_transforms = (
    plgpu.TilingTransform((8, swizzle // jnp.dtype(dtype).itemsize)),
    plgpu.SwizzleTransform(swizzle),
  )
  tile = functools.partial(_weight_tile, bits=k, groups_per_step=groups_per_step, dtype=dtype)

  def kernel(x_gmem, p_gmem, c_gmem, o_gmem, o_smem):
    w_rows = pl.ds(jax.lax.axis_index("n") * ROWS, ROWS)
    x_rows = pl.ds(jax.lax.axis_index("m") * bm, bm)

    def scope(acc_ref):
      def step(_, x_smem, p_smem, c_smem):
        plgpu.wgmma(acc_ref, tile(p_smem, c_smem), gpu_backend.mosaic_transpose(x_smem))
        plgpu.wgmma_wait(0)

      plgpu.emit_pipeline(
        step,
        grid=(steps,),
        in_specs=[
          plgpu.BlockSpec((bm, STEP), lambda s: (0, s), transforms=x_transforms),
          plgpu.BlockSpec((STEP // WORD_BITS, k, ROWS), lambda s: (s, 0, 0)),
          plgpu.BlockSpec(
            (groups_per_step, k + 1, ROWS),
            lambda s: (s * STEP // group_size // groups_per_step, 0, 0),
          ),
        ],
        max_concurrent_steps=max(1, min(max_concurrent_steps, steps)),
      )(x_gmem.at[x_rows], p_gmem.at[:, :, w_rows], c_gmem.at[:, :, w_rows])
      o_smem[...] = acc_ref[...].astype(o_smem.dtype)

    pl.run_scoped(scope, plgpu.ACC((ROWS, bm), f32))
    plgpu.commit_smem()
    plgpu.copy_smem_to_gmem(o_smem, o_gmem.at[w_rows, x_rows])
    plgpu.wait_smem_to_gmem(0)

  call = plgpu.kernel(
    kernel,
    out_type=jax.ShapeDtypeStruct((d_out, mp), out_dtype),
    grid=(d_out // ROWS, mp // bm),
    grid_names=("n", "m"),
    scratch_types=[plgpu.SMEM((ROWS, bm), out_dtype)],
    interpret=gpu_backend.mosaic_interpret(interpret),
    **gpu_backend.mosaic_kernel_name("dequant_matmul_mosaic"),
  )
  return call(xp, planes, coef).T[:m]
