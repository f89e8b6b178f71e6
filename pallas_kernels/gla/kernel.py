"""Pallas kernels for chunked gated linear attention: the forward here, the backward in
`backward.py`.

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

Packed sequences (`segment_ids`) use the masks of `gla_chunk` (see
`reasoning_jax.ops.gla.chunk`): the chunk recurrence in stage 1 drops keys of
earlier sequences and cuts the carry, and the kernel masks the entering-state term
and every query/key factor by the in-chunk sequence index before exp (`common.py`).

The first version of this kernel (one program per (batch, head) walking its chunks
sequentially with a C-row loop of elementwise work) measured 30-40x slower than
the XLA chunk form on an H100 (stop 7); this layout exposes B*H*N programs,
turns the intra-chunk work into matmuls and needs only one chunk's tiles in fast
memory, so sequence length is no longer bounded by VMEM / shared memory.

DESIGN CHOICE / limits:
  * the entering states are materialised, `N * Dk * Dv` fp32 per (batch, head)
    (T = 16k, C = 64, Dk = Dv = 128: 256 chunks x 64 KiB = 16 MiB); fla makes the
    same trade;
  * the backward pass is a `jax.custom_vjp` whose per-position gradients
    (dq, dk, dv, dg) come from the Pallas backward kernel of `backward.py`, with the
    entering states recomputed and the state gradients scanned in XLA (see there);
  * compiled (non-interpret) runs need `chunk_size % 8 == 0` (16 for 16-bit
    inputs); the Triton GPU backend additionally needs power-of-two C, Dk, Dv
    of at least 16;
  * on GPU the kernel goes through Pallas' Triton backend, which JAX 0.11+
    deprecates; `schedule="mosaic"` runs stage 2 of the forward and of the backward as
    Mosaic GPU (`plgpu.kernel`) kernels instead (`kernel_mgpu.py`, `backward_mgpu.py`:
    Hopper, 16-bit inputs, C = 64), opt-in while this JAX has the Triton backend and the
    GPU default without it (`resolve_schedule`);
  * `scale` must be a Python number (it is baked into the kernel).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels import gpu_backend
from pallas_kernels.gla import backward as backward_lib
from pallas_kernels.gla import common
from pallas_kernels.gla import kernel_mgpu
from reasoning_jax.ops.gla import chunk as gla_chunk_lib
from reasoning_jax.ops.gla import naive

_masked_exp, _same, _both = gla_chunk_lib.masked_exp, gla_chunk_lib.same, gla_chunk_lib.both


def _gla_chunk_kernel(q_ref, k_ref, v_ref, g_ref, s_ref, *refs, scale, sub_chunk, precision):
  """One (batch * head, chunk): q, k, g (and the optional segment index) refs `[C, Dk]`, v and
  o `[C, Dv]`, s `[Dk, Dv]`; `refs` is `(seg_ref, o_ref)` or `(o_ref,)`."""
  seg_ref, o_ref = refs if len(refs) == 2 else (None, *refs)
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
    seg_all = None if seg_ref is None else seg_ref[...]
    key_pos = jax.lax.broadcasted_iota(jnp.int32, (c, dk), 0)
  row_k = jax.lax.broadcasted_iota(jnp.int32, (r, dk), 0)
  row_v = jax.lax.broadcasted_iota(jnp.int32, (r, dv), 0)
  for blk in range(c // r):  # static: query sub-chunks
    rows = pl.ds(blk * r, r)
    q = q_ref[rows, :].astype(f32) * scale  # [R, Dk]
    g = g_ref[rows, :]
    k = k_ref[rows, :].astype(f32)
    v = v_ref[rows, :].astype(f32)
    seg = None if seg_ref is None else seg_ref[rows, :]  # [R, Dk], equal across Dk
    out = dot(q * _masked_exp(g, _same(seg, 0.0)), state, common.NN)  # inter-chunk, [R, Dv]
    if blk:  # keys of earlier sub-chunks: two matmuls factorised at the sub-chunk's row 0
      g_first = common.row(g, row_k, 0)
      seg_first = None if seg is None else common.row(seg, row_k, 0)
      q_dec = q * _masked_exp(g - g_first, _same(seg, seg_first))
      keys = _both(key_pos < blk * r, _same(seg_all, seg_first))
      k_dec = k_all * _masked_exp(g_first - g_all, keys)
      out += dot(dot(q_dec, k_dec, common.NT), v_all, common.NN)

    def diag_row(i, o_diag, q=q, g=g, k=k, v=v, seg=seg):
      q_i, g_i = common.row(q, row_k, i), common.row(g, row_k, i)
      keys = _both(row_k <= i, None if seg is None else seg == common.row(seg, row_k, i))
      decay = _masked_exp(g_i - g, keys)  # masked before exp
      a_i = jnp.sum(q_i * k * decay, axis=1, keepdims=True)  # [R, 1]
      return jnp.where(row_v == i, jnp.sum(a_i * v, axis=0, keepdims=True), o_diag)

    out += jax.lax.fori_loop(0, r, diag_row, jnp.zeros((r, dv), f32))
    o_ref[rows, :] = out.astype(o_ref.dtype)


SCHEDULES = ("pallas_call", "mosaic")


def resolve_schedule(
  schedule, *, backend: str, interpret, dtype, chunk_size: int, dk: int, dv: int
) -> str:
  """`schedule`, or the default: "pallas_call" (Mosaic TPU on TPU, Triton on GPU) except on a
  GPU whose JAX has no Triton backend, where the Mosaic GPU kernels ("mosaic") take the calls
  it can. DESIGN CHOICE: "mosaic" stays opt-in while Triton is there (it is unmeasured; the
  Triton kernel was timed on an H100). ValueError naming `schedule` when it is unknown or
  "mosaic" cannot take the call."""
  if schedule is not None and schedule not in SCHEDULES:
    raise ValueError(f"schedule must be None or one of {SCHEDULES}, got {schedule!r}")
  reason = gpu_backend.mosaic_gpu_missing() or kernel_mgpu.unsupported(dtype, chunk_size, dk, dv)
  if reason is None and interpret:
    reason = gpu_backend.mosaic_interpret_missing()  # The GPU interpreter runs it on a CPU.
  elif reason is None:
    if backend == "tpu":
      reason = 'it is a GPU schedule; on TPU use schedule="pallas_call" (the default there)'
    elif backend == "gpu":
      reason = gpu_backend.wgmma_unavailable()
  if schedule is None:
    gpu_without_triton = backend == "gpu" and not interpret and gpu_backend.triton_missing()
    return "mosaic" if gpu_without_triton and reason is None else "pallas_call"
  if schedule == "mosaic" and reason is not None:
    raise ValueError(
      f'schedule="mosaic": {reason} (use schedule="pallas_call" or implementation="xla")'
    )
  return schedule


def _forward(q, k, v, g, h0, seg, scale, chunk_size, interpret, schedule="pallas_call"):
  """Pads, runs stage 1 in XLA and the chunk kernel, unpads. `g`: fp32 `[B, T, H, Dk]` (zero
  at sequence starts); `seg`: in-chunk sequence index `[B, N, C]` or None."""
  lay = common.Layout.of(q, v, chunk_size)
  b, h, n, c, dk, dv = lay.b, lay.h, lay.n, lay.c, lay.dk, lay.dv
  precision = common.matmul_precision(q.dtype)
  f32 = jnp.float32
  G = jnp.cumsum(lay.chunks(g, f32), axis=-2)  # [B, H, N, C, Dk]
  seg5 = None if seg is None else seg[:, None, :, :, None]
  entering, final = gla_chunk_lib.entering_states(
    lay.chunks(k, f32), lay.chunks(v, f32), G, h0, precision, seg5
  )

  arrays = [lay.flat(lay.chunks(x)) for x in (q, k, v)]
  arrays += [lay.flat(G), lay.flat_states(entering)]
  if schedule == "mosaic":
    seg_tiles = None if seg is None else lay.segment_tiles(seg)
    o = kernel_mgpu.chunk_outputs(*arrays, seg_tiles, heads=h, scale=scale, interpret=interpret)
    return lay.unflat(o), final
  in_specs = [lay.tile(dk), lay.tile(dk), lay.tile(dv), lay.tile(dk), lay.state()]
  if seg is not None:
    arrays.append(lay.segment_tiles(seg))
    in_specs.append(lay.segment_tile())
  r = common.kernel_sub_chunk_size(c)
  itemsize = jnp.dtype(q.dtype).itemsize
  tokens = b * h * n * c
  cost = pl.CostEstimate(
    flops=tokens * (2 * dk * dv + 2 * (c - r) // 2 * (dk + dv) + 2 * r * (dk + dv)),
    transcendentals=tokens * (2 * dk + (c // r) * dk + r * dk),
    bytes_accessed=tokens * ((2 * dk + 2 * dv) * itemsize + 4 * dk) + 4 * b * h * n * dk * dv,
  )
  o = common.chunk_call(
    functools.partial(_gla_chunk_kernel, scale=scale, sub_chunk=r, precision=precision),
    lay,
    arrays=arrays,
    in_specs=in_specs,
    out_shape=jax.ShapeDtypeStruct((b * h, n * c, dv), q.dtype),
    out_specs=lay.tile(dv),
    cost=cost,
    name="gla_chunk_fwd",
    interpret=interpret,
  )
  return lay.unflat(o), final


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8, 9))
def _gla_pallas(q, k, v, g, h0, seg, scale, chunk_size, interpret, schedule):
  return _forward(q, k, v, g, h0, seg, scale, chunk_size, interpret, schedule)


def _gla_pallas_fwd(q, k, v, g, h0, seg, scale, chunk_size, interpret, schedule):
  out = _forward(q, k, v, g, h0, seg, scale, chunk_size, interpret, schedule)
  return out, (q, k, v, g, h0, seg)


def _gla_pallas_bwd(scale, chunk_size, interpret, schedule, residuals, cotangents):
  q, k, v, g, h0, seg = residuals
  d_o, d_final = cotangents
  grads = backward_lib.backward(
    q, k, v, g, h0, seg, d_o, d_final, scale, chunk_size, interpret, schedule
  )
  return (*grads, None)  # The integer segment index has no cotangent.


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
  segment_ids: jax.Array | None = None,
  interpret: Any = None,
  schedule: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Chunked gated linear attention with a Pallas forward and a Pallas (fused) backward.

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
    segment_ids: `[B, T]` ints or None; the state restarts from zero where the id changes
      (`initial_state` reaches each row's first sequence only; see `reasoning_jax.ops.gla`).
    interpret: None interprets unless the default backend is TPU or GPU; True/False
      force it; a `pltpu.InterpretParams` selects the TPU interpreter (a
      `plgpu.InterpretGPUParams` the GPU one, for `schedule="mosaic"`).
    schedule: the kernels' form: "pallas_call" (Mosaic TPU on TPU, Triton on GPU) or
      "mosaic" (Mosaic GPU kernels, `kernel_mgpu.py` and `backward_mgpu.py`: Hopper,
      bfloat16 / float16, chunk_size 64, Dk and Dv 64 or 128); None: `resolve_schedule`.

  Returns:
    `(o [B, T, H, Dv] in q.dtype, final_state [B, H, Dk, Dv] float32)`.
  """
  naive.check_gla_inputs(q, k, v, g, initial_state, segment_ids)
  gla_chunk_lib.check_chunk_size(chunk_size)
  backend = jax.default_backend()
  if interpret is None:
    interpret = backend not in ("tpu", "gpu")
  schedule = resolve_schedule(
    schedule,
    backend=backend,
    interpret=interpret,
    dtype=q.dtype,
    chunk_size=chunk_size,
    dk=q.shape[-1],
    dv=v.shape[-1],
  )
  if not interpret:
    common.check_compiled_sizes(q.dtype, chunk_size)
  scale = float(naive.default_scale(q, scale))  # static: a traced scale raises here
  g = gla_chunk_lib.clear_gate_at_starts(naive.gate_as_vector(g, q), segment_ids)
  seg = gla_chunk_lib.chunk_segment_index(segment_ids, chunk_size)
  h0 = naive.zero_state(q, v) if initial_state is None else initial_state
  return _gla_pallas(q, k, v, g, h0, seg, scale, chunk_size, interpret, schedule)


def gla_reference(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  g: jax.Array | None = None,
  *,
  initial_state: jax.Array | None = None,
  scale: float | None = None,
  chunk_size: int = 64,
  segment_ids: jax.Array | None = None,
  interpret: Any = None,
  schedule: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Reference for `gla_chunk_pallas` with its signature: the fp32 scan `gla_naive`.

  Gated Linear Attention Transformers with Hardware-Efficient Training
  (Yang et al., arXiv:2312.06635). The kernel-only arguments (chunk_size,
  interpret, schedule) are ignored.
  """
  del chunk_size, interpret, schedule
  return naive.gla_naive(
    q, k, v, g, initial_state=initial_state, scale=scale, segment_ids=segment_ids
  )
