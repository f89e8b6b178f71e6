"""Pallas kernel for the chunked forward of gated linear attention.

Gated Linear Attention Transformers with Hardware-Efficient Training
(Yang et al., arXiv:2312.06635). Same math, conventions and signature as
`reasoning_jax.ops.gla.gla_chunk` (see `reasoning_jax.ops.gla.naive`), whose
fp32 scan spec is exported here as `gla_reference`.

Kernel layout (portable Pallas subset: BlockSpec, grid, fori_loop):
  * inputs are transposed to `[B*H, T_pad, D]`; the grid has one program per
    (batch, head), whose blocks are the whole padded sequence of that head
    (full-dim blocks, so TPU's (8, 128) block rule holds for any D and T_pad);
  * the program walks the chunks sequentially in a `fori_loop` carrying the
    state in fp32 (kept transposed, `[Dv, Dk]`, so every gate broadcast is a row
    broadcast and the inter-chunk product is a q @ S^T matmul);
  * intra-chunk scores use the pairwise decay `e^{G_i - G_j}`, masked to
    `j <= i` before exp, one query row at a time (a `[C, Dk]` tile per row);
  * the in-chunk cumulative log-gate `G` is computed by XLA before the call.

DESIGN CHOICE / limits:
  * one head's whole padded sequence (q, k, v, G, o) sits in fast memory; on TPU
    that is about `T_pad * (2 Dk + 2 Dv) * itemsize + 4 T_pad Dk` bytes per buffer set,
    so very long sequences need the grid-over-chunks variant (state in VMEM
    scratch across an "arbitrary" chunk axis), which is future work;
  * the backward pass is `jax.custom_vjp` recomputing with the XLA chunk form's
    VJP (`gla_chunk`), so gradients are exact; a fused Pallas backward is future
    work;
  * compiled (non-interpret) runs need `chunk_size % 8 == 0` (16 for 16-bit
    inputs); the Triton GPU backend additionally needs power-of-two C, Dk, Dv
    of at least 16;
  * on GPU the kernel goes through Pallas' Triton backend (Mosaic GPU's
    `pallas_call` would stage each whole-sequence block in shared memory),
    which JAX 0.11+ deprecates; a Mosaic GPU (`plgpu.kernel`) port is future work;
  * `scale` must be a Python number (it is baked into the kernel).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from reasoning_jax.ops.gla import chunk as gla_chunk_lib
from reasoning_jax.ops.gla import naive

_HIGHEST = jax.lax.Precision.HIGHEST
_NT = (((1,), (1,)), ((), ()))  # contract the last dims: a @ b.T


def _gla_fwd_kernel(q_ref, k_ref, v_ref, g_ref, h0_ref, o_ref, ht_ref, *, scale, chunk_size,
                    num_chunks):
  """One (batch, head): refs are `[T_pad, D]` (h0/ht: `[Dv, Dk]`, the state transposed)."""
  c = chunk_size
  dk = q_ref.shape[-1]
  dv = v_ref.shape[-1]
  f32 = jnp.float32

  def chunk_body(n, state_t):
    start = pl.multiple_of(n * c, c)
    rows = pl.ds(start, c)
    q = q_ref[rows, :].astype(f32) * scale
    k = k_ref[rows, :].astype(f32)
    v = v_ref[rows, :].astype(f32)
    g_cum = g_ref[rows, :]  # [C, Dk] fp32, cumulative within the chunk
    row_k = jax.lax.broadcasted_iota(jnp.int32, (c, dk), 0)
    row_v = jax.lax.broadcasted_iota(jnp.int32, (c, dv), 0)

    def row_body(i, o_intra):
      # Row i of q and G, extracted without a dynamic single-row load (packed dtypes).
      q_i = jnp.sum(jnp.where(row_k == i, q, 0.0), axis=0, keepdims=True)  # [1, Dk]
      g_i = jnp.sum(jnp.where(row_k == i, g_cum, 0.0), axis=0, keepdims=True)
      decay = jnp.exp(jnp.where(row_k <= i, g_i - g_cum, -jnp.inf))  # masked before exp
      a_i = jnp.sum(q_i * k * decay, axis=1, keepdims=True)  # [C, 1] scores of query i
      o_i = jnp.sum(a_i * v, axis=0, keepdims=True)  # [1, Dv]
      return jnp.where(row_v == i, o_i, o_intra)

    o_intra = jax.lax.fori_loop(0, c, row_body, jnp.zeros((c, dv), f32))
    o_inter = jax.lax.dot_general(q * jnp.exp(g_cum), state_t, _NT, precision=_HIGHEST,
                                  preferred_element_type=f32)  # [C, Dv]
    o_ref[rows, :] = (o_intra + o_inter).astype(o_ref.dtype)

    gamma = jnp.sum(jnp.where(row_k == c - 1, g_cum, 0.0), axis=0, keepdims=True)  # [1, Dk]
    k_to_end = k * jnp.exp(gamma - g_cum)  # exponent <= 0
    update_t = jax.lax.dot_general(v, k_to_end, (((0,), (0,)), ((), ())), precision=_HIGHEST,
                                   preferred_element_type=f32)  # [Dv, Dk] = v^T k_to_end
    return state_t * jnp.exp(gamma) + update_t

  ht_ref[...] = jax.lax.fori_loop(0, num_chunks, chunk_body, h0_ref[...].astype(f32))


def _check_compiled_sizes(dtype, chunk_size: int) -> None:
  multiple = 16 if jnp.dtype(dtype).itemsize == 2 else 8
  if chunk_size % multiple:
    raise ValueError(
        f"chunk_size must be a multiple of {multiple} for a compiled Pallas GLA kernel with "
        f"{jnp.dtype(dtype).name} inputs, got {chunk_size}")


def _forward(q, k, v, g, h0, scale, chunk_size, interpret):
  """Pads, forms the in-chunk cumulative gate, runs the kernel, unpads."""
  b, t, h, dk = q.shape
  dv = v.shape[-1]
  c = chunk_size
  n = -(-t // c)
  pad = ((0, 0), (0, n * c - t), (0, 0), (0, 0))
  g_cum = jnp.pad(g, pad).reshape(b, n, c, h, dk).cumsum(axis=2).reshape(b, n * c, h, dk)

  def heads_major(x):  # [B, T_pad, H, D] -> [B*H, T_pad, D]
    return x.transpose(0, 2, 1, 3).reshape(b * h, n * c, x.shape[-1])

  qp, kp, vp = (heads_major(jnp.pad(x, pad)) for x in (q, k, v))
  g_cum = heads_major(g_cum)
  h0_t = h0.swapaxes(-1, -2).reshape(b * h, dv, dk)

  seq = lambda d: pl.BlockSpec((pl.squeezed, n * c, d), lambda i: (i, 0, 0))
  state = pl.BlockSpec((pl.squeezed, dv, dk), lambda i: (i, 0, 0))
  itemsize = jnp.dtype(q.dtype).itemsize
  tokens = b * h * n * c
  cost = pl.CostEstimate(
      flops=tokens * (6 * c * dk + 2 * c * dv + 4 * dk * dv),
      transcendentals=tokens * (c * dk + 2 * dk),
      bytes_accessed=tokens * ((2 * dk + 2 * dv) * itemsize + 4 * dk) + 8 * b * h * dk * dv)
  kernel = functools.partial(_gla_fwd_kernel, scale=scale, chunk_size=c, num_chunks=n)

  def call(compiler_params, *arrays):
    return pl.pallas_call(
        kernel,
        out_shape=(jax.ShapeDtypeStruct((b * h, n * c, dv), q.dtype),
                   jax.ShapeDtypeStruct((b * h, dv, dk), jnp.float32)),
        grid=(b * h,),
        in_specs=[seq(dk), seq(dk), seq(dv), seq(dk), state],
        out_specs=(seq(dv), state),
        compiler_params=compiler_params,
        cost_estimate=cost,
        interpret=interpret,
        name="gla_chunk_fwd",
    )(*arrays)

  arrays = (qp, kp, vp, g_cum, h0_t)
  if interpret:
    o, ht_t = call(None, *arrays)
  else:
    # Backend-specific compiler parameters, chosen per lowering platform so that
    # ahead-of-time lowering for another platform takes the same path as a run there.
    from jax.experimental.pallas import tpu as pltpu  # pylint: disable=g-import-not-at-top
    from jax.experimental.pallas import triton as pltriton  # pylint: disable=g-import-not-at-top
    # Double-buffered per-head blocks plus per-chunk temporaries, with headroom.
    vmem_bytes = 2 * n * c * ((2 * dk + 2 * dv) * itemsize + 4 * dk) + 64 * c * max(dk, dv) * 4
    tpu_params = pltpu.CompilerParams(
        dimension_semantics=("parallel",),
        vmem_limit_bytes=min(max(32 << 20, vmem_bytes * 3 // 2), 64 << 20))
    # Triton reads the blocks from global memory (no shared-memory staging of the whole
    # sequence, which Mosaic GPU's pallas_call would attempt).
    gpu = functools.partial(call, pltriton.CompilerParams(num_warps=4, num_stages=1))
    o, ht_t = jax.lax.platform_dependent(
        *arrays, tpu=functools.partial(call, tpu_params), cuda=gpu, rocm=gpu)
  o = o.reshape(b, h, n * c, dv).transpose(0, 2, 1, 3)[:, :t]
  return o, ht_t.reshape(b, h, dv, dk).swapaxes(-1, -2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _gla_pallas(q, k, v, g, h0, scale, chunk_size, interpret):
  return _forward(q, k, v, g, h0, scale, chunk_size, interpret)


def _gla_pallas_fwd(q, k, v, g, h0, scale, chunk_size, interpret):
  return _forward(q, k, v, g, h0, scale, chunk_size, interpret), (q, k, v, g, h0)


def _gla_pallas_bwd(scale, chunk_size, interpret, residuals, cotangents):
  del interpret  # The backward is the XLA chunk form's VJP (recomputed).
  q, k, v, g, h0 = residuals
  _, vjp = jax.vjp(
      lambda q, k, v, g, h0: gla_chunk_lib.gla_chunk(
          q, k, v, g, initial_state=h0, scale=scale, chunk_size=chunk_size),
      q, k, v, g, h0)
  return vjp(cotangents)


_gla_pallas.defvjp(_gla_pallas_fwd, _gla_pallas_bwd)


def gla_chunk_pallas(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    g: jax.Array | None = None,
    *,
    initial_state: jax.Array | None = None,
    scale: float | None = None,
    chunk_size: int = 64,
    interpret: Any = None,
) -> tuple[jax.Array, jax.Array]:
  """Chunked gated linear attention with a Pallas forward and an XLA-recomputed backward.

  Gated Linear Attention Transformers with Hardware-Efficient Training
  (Yang et al., arXiv:2312.06635). Matches `gla_reference` (= `gla_naive`).

  Args:
    q: queries `[B, T, H, Dk]`.
    k: keys `[B, T, H, Dk]`.
    v: values `[B, T, H, Dv]`.
    g: log-gates `[B, T, H, Dk]` or `[B, T, H]` (<= 0, unchecked) or None.
    initial_state: `[B, H, Dk, Dv]` float32 or None (zeros).
    scale: multiplies q; defaults to `Dk ** -0.5`.
    chunk_size: positions per chunk C; T need not divide (padded with g = 0, q = k = v = 0).
    interpret: None interprets unless the default backend is TPU or GPU; True/False
      force it; a `pltpu.InterpretParams` selects the TPU interpreter.

  Returns:
    `(o [B, T, H, Dv] in q.dtype, final_state [B, H, Dk, Dv] float32)`.
  """
  naive.check_gla_inputs(q, k, v, g, initial_state)
  gla_chunk_lib.check_chunk_size(chunk_size)
  if interpret is None:
    interpret = jax.default_backend() not in ("tpu", "gpu")
  if not interpret:
    _check_compiled_sizes(q.dtype, chunk_size)
  scale = float(naive.default_scale(q, scale))  # static: a traced scale raises here
  g = naive.gate_as_vector(g, q)
  h0 = naive.zero_state(q, v) if initial_state is None else initial_state
  return _gla_pallas(q, k, v, g, h0, scale, chunk_size, interpret)


def gla_reference(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    g: jax.Array | None = None,
    *,
    initial_state: jax.Array | None = None,
    scale: float | None = None,
    chunk_size: int = 64,
    interpret: Any = None,
) -> tuple[jax.Array, jax.Array]:
  """Reference for `gla_chunk_pallas` with its signature: the fp32 scan `gla_naive`.

  Gated Linear Attention Transformers with Hardware-Efficient Training
  (Yang et al., arXiv:2312.06635). The kernel-only arguments (chunk_size,
  interpret) are ignored.
  """
  del chunk_size, interpret
  return naive.gla_naive(q, k, v, g, initial_state=initial_state, scale=scale)
