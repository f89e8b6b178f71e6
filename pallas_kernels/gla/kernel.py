"""Pallas kernel for the chunked forward of gated linear attention.

Gated Linear Attention Transformers with Hardware-Efficient Training
(Yang et al., arXiv:2312.06635), Sec. 4. Same math, conventions and signature as
`reasoning_jax.ops.gla.gla_chunk` (see `reasoning_jax.ops.gla.naive`), whose
fp32 scan spec is exported here as `gla_reference`.

Two stages (the chunk-parallel split of flash-linear-attention's `chunk_gla`):
  1. XLA, cheap and sequential only in the chunk index: the in-chunk cumulative
     log-gate `G`, each chunk's own state contribution (one batched matmul) and the
     chunk recurrence `S_n = diag(e^{Gamma_n}) S_{n-1} + dS_n` (`lax.scan` over
     N = T / C elementwise updates), giving the state entering every chunk,
     `[B*H, N, Dk, Dv]` fp32 (`reasoning_jax.ops.gla.chunk.scan_chunk_states`);
  2. the Pallas kernel, the hot `O(T C D)` part, with a fully parallel grid over
     (batch * head, chunk): each program reads one chunk's `[C, D]` tiles of q, k,
     v, G and its entering state, and writes that chunk's output
       o_i = (q_i e^{G_i})^T S_enter + sum_{j<=i} [(q_i e^{G_i - G_j}) . k_j] v_j.
     The intra-chunk sum uses the secondary chunking of `gla_chunk`: for each
     query sub-chunk of R rows (R = 16 when C allows), keys in earlier sub-chunks
     go through two matmuls factorised at the sub-chunk's first row r
     (`(q_i e^{G_i - G_r}) . (k_j e^{G_r - G_j})`, both exponents <= 0 for
     j < r <= i, masked before exp); keys inside the sub-chunk use explicit
     pairwise differences `G_i - G_j` masked to `j <= i` before exp, one query row
     at a time on `[R, Dk]` tiles. Nothing overflows for any decay strength.

The first version of this kernel (one program per (batch, head) walking its chunks
sequentially with a C-row loop of elementwise work) measured 30-40x slower than
the XLA chunk form on an H100 (stop 7); this layout exposes B*H*N programs,
turns the intra-chunk work into matmuls and needs only one chunk's tiles in fast
memory, so sequence length is no longer bounded by VMEM / shared memory.

DESIGN CHOICE / limits:
  * the entering states are materialised, `N * Dk * Dv` fp32 per (batch, head)
    (T = 16k, C = 64, Dk = Dv = 128: 256 chunks x 64 KiB = 16 MiB); fla makes the
    same trade;
  * the backward pass is `jax.custom_vjp` recomputing with the XLA chunk form's
    VJP (`gla_chunk`), so gradients are exact; a fused Pallas backward is future
    work;
  * compiled (non-interpret) runs need `chunk_size % 8 == 0` (16 for 16-bit
    inputs); the Triton GPU backend additionally needs power-of-two C, Dk, Dv
    of at least 16;
  * on GPU the kernel goes through Pallas' Triton backend, which JAX 0.11+
    deprecates; a Mosaic GPU (`plgpu.kernel`) port is future work;
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

_NT = (((1,), (1,)), ((), ()))  # contract the last dims: a @ b.T
_NN = (((1,), (0,)), ((), ()))  # a @ b


def kernel_sub_chunk_size(chunk_size: int) -> int:
  """Rows per query sub-chunk R: 16 or 8 when they divide C (aligned tiles), else the
  secondary chunk of the XLA form (interpret mode allows any C)."""
  for r in (16, 8):
    if chunk_size % r == 0:
      return r
  return gla_chunk_lib.sub_chunk_size(chunk_size)


def _row(x, row_ids, i):
  """Row i of a 2-D tile as `[1, D]`, without a dynamic single-row load (packed dtypes)."""
  return jnp.sum(jnp.where(row_ids == i, x, 0.0), axis=0, keepdims=True)


def _gla_chunk_kernel(q_ref, k_ref, v_ref, g_ref, s_ref, o_ref, *, scale, sub_chunk, precision):
  """One (batch * head, chunk): q, k, g refs `[C, Dk]`, v and o `[C, Dv]`, s `[Dk, Dv]`."""
  c, dk = q_ref.shape
  dv = v_ref.shape[-1]
  r = sub_chunk
  f32 = jnp.float32
  dot = functools.partial(jax.lax.dot_general, precision=precision, preferred_element_type=f32)
  state = s_ref[...]  # [Dk, Dv] fp32, the state entering this chunk
  if c > r:  # Whole-chunk tiles, read only when there are earlier sub-chunks to attend to.
    k_all = k_ref[...].astype(f32)
    v_all = v_ref[...].astype(f32)
    g_all = g_ref[...]  # fp32, cumulative within the chunk
    key_pos = jax.lax.broadcasted_iota(jnp.int32, (c, dk), 0)
  row_k = jax.lax.broadcasted_iota(jnp.int32, (r, dk), 0)
  row_v = jax.lax.broadcasted_iota(jnp.int32, (r, dv), 0)
  for blk in range(c // r):  # static: query sub-chunks
    rows = pl.ds(blk * r, r)
    q = q_ref[rows, :].astype(f32) * scale  # [R, Dk]
    g = g_ref[rows, :]
    k = k_ref[rows, :].astype(f32)
    v = v_ref[rows, :].astype(f32)
    out = dot(q * jnp.exp(g), state, _NN)  # inter-chunk, [R, Dv]
    if blk:  # keys of earlier sub-chunks: two matmuls factorised at the sub-chunk's row 0
      g_first = _row(g, row_k, 0)
      q_dec = q * jnp.exp(g - g_first)
      k_dec = k_all * jnp.exp(jnp.where(key_pos < blk * r, g_first - g_all, -jnp.inf))
      out += dot(dot(q_dec, k_dec, _NT), v_all, _NN)

    def diag_row(i, o_diag, q=q, g=g, k=k, v=v):
      q_i, g_i = _row(q, row_k, i), _row(g, row_k, i)
      decay = jnp.exp(jnp.where(row_k <= i, g_i - g, -jnp.inf))  # masked before exp
      a_i = jnp.sum(q_i * k * decay, axis=1, keepdims=True)  # [R, 1]
      return jnp.where(row_v == i, jnp.sum(a_i * v, axis=0, keepdims=True), o_diag)

    out += jax.lax.fori_loop(0, r, diag_row, jnp.zeros((r, dv), f32))
    o_ref[rows, :] = out.astype(o_ref.dtype)


def _check_compiled_sizes(dtype, chunk_size: int) -> None:
  multiple = 16 if jnp.dtype(dtype).itemsize == 2 else 8
  if chunk_size % multiple:
    raise ValueError(
      f"chunk_size must be a multiple of {multiple} for a compiled Pallas GLA kernel with "
      f"{jnp.dtype(dtype).name} inputs, got {chunk_size}"
    )


def _forward(q, k, v, g, h0, scale, chunk_size, interpret):
  """Pads, runs stage 1 in XLA and the chunk kernel, unpads."""
  b, t, h, dk = q.shape
  dv = v.shape[-1]
  c = chunk_size
  n = -(-t // c)
  precision = jax.lax.Precision.HIGHEST if q.dtype == jnp.float32 else None

  def to_chunks(x, dtype):  # [B, T, H, D] -> [B, H, N, C, D], zero-padded in time
    x = jnp.pad(x.astype(dtype), ((0, 0), (0, n * c - t), (0, 0), (0, 0)))
    return x.reshape(b, n, c, h, x.shape[-1]).transpose(0, 3, 1, 2, 4)

  f32 = jnp.float32
  G = jnp.cumsum(to_chunks(g, f32), axis=-2)  # [B, H, N, C, Dk]
  entering, final = gla_chunk_lib.entering_states(
    to_chunks(k, f32), to_chunks(v, f32), G, h0, precision
  )

  flat = lambda x: x.reshape(b * h, n * c, x.shape[-1])  # -> [B*H, T_pad, D]
  qp, kp, vp = (flat(to_chunks(x, x.dtype)) for x in (q, k, v))
  arrays = (qp, kp, vp, flat(G), entering.reshape(b * h, n, dk, dv))

  tile = lambda d: pl.BlockSpec((pl.squeezed, c, d), lambda i, j: (i, j, 0))
  state = pl.BlockSpec((pl.squeezed, pl.squeezed, dk, dv), lambda i, j: (i, j, 0, 0))
  r = kernel_sub_chunk_size(c)
  itemsize = jnp.dtype(q.dtype).itemsize
  tokens = b * h * n * c
  cost = pl.CostEstimate(
    flops=tokens * (2 * dk * dv + 2 * (c - r) // 2 * (dk + dv) + 2 * r * (dk + dv)),
    transcendentals=tokens * (2 * dk + (c // r) * dk + r * dk),
    bytes_accessed=tokens * ((2 * dk + 2 * dv) * itemsize + 4 * dk) + 4 * b * h * n * dk * dv,
  )
  kernel = functools.partial(_gla_chunk_kernel, scale=scale, sub_chunk=r, precision=precision)

  def call(compiler_params, *arrays):
    return pl.pallas_call(
      kernel,
      out_shape=jax.ShapeDtypeStruct((b * h, n * c, dv), q.dtype),
      grid=(b * h, n),
      in_specs=[tile(dk), tile(dk), tile(dv), tile(dk), state],
      out_specs=tile(dv),
      compiler_params=compiler_params,
      cost_estimate=cost,
      interpret=interpret,
      name="gla_chunk_fwd",
    )(*arrays)

  if interpret:
    o = call(None, *arrays)
  else:
    # Backend-specific compiler parameters, chosen per lowering platform so that
    # ahead-of-time lowering for another platform takes the same path as a run there.
    from jax.experimental.pallas import tpu as pltpu  # pylint: disable=g-import-not-at-top
    from jax.experimental.pallas import triton as pltriton  # pylint: disable=g-import-not-at-top

    tpu_params = pltpu.CompilerParams(dimension_semantics=("parallel", "parallel"))
    gpu = functools.partial(call, pltriton.CompilerParams(num_warps=4, num_stages=2))
    o = jax.lax.platform_dependent(
      *arrays, tpu=functools.partial(call, tpu_params), cuda=gpu, rocm=gpu
    )
  o = o.reshape(b, h, n * c, dv).transpose(0, 2, 1, 3)[:, :t]
  return o, final


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
      q, k, v, g, initial_state=h0, scale=scale, chunk_size=chunk_size
    ),
    q,
    k,
    v,
    g,
    h0,
  )
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
