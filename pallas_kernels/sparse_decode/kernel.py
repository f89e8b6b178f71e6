"""LycheeDecode's two decode attentions as Pallas kernels: the public entry points, TPU schedule.

"LycheeDecode: Accelerating Long-Context LLM Inference via Hybrid-Head Sparse Decoding"
(Lin et al., arXiv:2602.04541); `shared/methods/inference.md` sections 8.2 and 8.5. Both
kernels equal their references in `reasoning_jax.ops.sparse_decode.reference` (same arguments,
plus `interpret=`): one new token per row attends a contiguous cache `[B, S, K, D]` (slot ==
position, `lengths[b]` visible slots), queries grouped by KV head `q [B, K, G, D]`, and only the
KV heads listed in `heads [R]` are processed.

Three schedules (`blocks.py`): "grid" (TPU, this file, below), "loop" (GPU, Triton, split-K;
`kernel_gpu.py`) and "mosaic" (GPU, Mosaic GPU wgmma, the same split-K layout;
`kernel_mgpu.py`). `schedule=None` picks the default backend's (GPU: mosaic where it can take
the call, else loop; TPU and CPU interpret: grid); all run in interpret mode and equal the
references.

Layout shared by both grid kernels. The cache is viewed as `[B, S, K * D]` (a free reshape), so the
K/V BlockSpec `(squeezed, tokens, D)` with index map `(b, token_block, heads[r])` reads exactly
one head's `[tokens, D]` tile; `heads` (and the lengths, and kernel B's block ids) are
scalar-prefetch arguments (`PrefetchScalarGridSpec`) so the index maps can read them. The query
tile is `q[b, heads[r]]` `[G, D]` (a BlockSpec on q, no gather in XLA). Softmax statistics
(`m`, `l`, one lane-broadcast `[G, 128]` row each) and the `[G, D]` accumulator live in float32
VMEM scratch; the output `[G, D]` is written at the last step of the sequential axis, zeros
when nothing was visible.

  * Kernel A, `retrieval_decode_pallas` (retrieval heads): grid `(B, R, S / kernel_block)`,
    the token axis "arbitrary". Each step does the online-softmax update of the G query rows
    over its `[kernel_block, D]` K/V tile and, for the selection, the raw logits of
    `qbar = mean_G(q)` (float32 mean cast to q's dtype, as the reference) against the same K
    tile, max-pooled per `block_size` tokens (static lane slices) and placed into the row's
    score vector `[1, S / block_size]`, an output block resident across the token axis
    (initialised to -inf at step 0, one masked select per scored block: no dynamic lane
    offsets). Tiles wholly at or beyond `lengths[b]` are skipped (`pl.when`) and their index map
    repeats the last visible tile, so the pipeline issues no DMA for them.
  * Kernel B, `block_sparse_decode_pallas` (sparse heads): grid `(B, R, n_sel)`, the selection
    axis "arbitrary"; step i reads the `[block_size, D]` K/V tile of block `block_idx[b, r, i]`.
    The wrapper encodes the ids into one int32 vector `[B * R * n_sel]`: a usable id (>= 0 and
    starting before `lengths[b]`) stays as is, an unusable one (-1 padding, or a block wholly
    beyond the length) becomes `-(f + 1)` where `f` is the nearest earlier usable id of the row
    (else the first usable one, else 0). The index map fetches `f` for it, so padded steps
    repeat the previous tile and cost no DMA, and the kernel skips them (`pl.when(enc >= 0)`).

DESIGN CHOICE / limits:
  * the qbar row is computed in-kernel with its own `[1, D] x [D, kernel_block]` dot rather
    than appended to the query tile as a (G+1)-th row (same bytes; avoids a concatenate in
    the kernel and keeps the softmax rows separate from the score row);
  * TPU (Mosaic) tiling: the K/V tile's last dim is D inside a `K * D` row, so D must be a
    multiple of 128, and `block_size` (kernel B's tile rows, kernel A's pooling width) a
    multiple of 8 (16 for bf16 caches is better packed). Checked (ValueError) only when the
    default backend is TPU and the kernel is compiled; interpret mode takes any D and block;
  * kernel B: the ids of one row must be distinct (as the reference requires); a repeated id
    would be counted twice;
  * head ids outside `[0, K)` are clipped (the reference's `take` would fill NaN); lengths are
    assumed in `[1, S]` (lengths > S behave as S);
  * scores rows `[1, S / block_size]` are one VMEM block per (b, head): fine up to S ~ 1M
    (64 KiB at block 64); each step costs `kernel_block / block_size` selects over that row;
  * bf16: the probabilities are rounded to the value dtype for the `p @ V` dot (the reference
    keeps them float32), within the bf16 tolerance;
  * q, k and v are expected to share a dtype on TPU (the dots take q's and the cache's tiles as
    they are; interpret mode promotes like the reference);
  * the grid schedule does not lower for GPU: scalar prefetch is TPU-only in Pallas (JAX 0.10.2
    and 0.12, for the Triton and the Mosaic GPU `pallas_call`), hence the GPU schedules: the
    loop one reads heads and ids from refs inside the kernel, the mosaic one (`plgpu.kernel`)
    from global memory in its pipeline's index map.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from pallas_kernels.sparse_decode import blocks as blocks_lib
from pallas_kernels.sparse_decode import common
from pallas_kernels import gpu_backend
from pallas_kernels.sparse_decode import kernel_gpu
from pallas_kernels.sparse_decode import kernel_mgpu
from reasoning_jax.ops.sparse_decode.reference import check_decode_args

f32 = common.f32
NT = common.NT
LANES = blocks_lib.LANES
MASK_VALUE = common.MASK_VALUE
_SQ = common.SQUEEZED
_precision = common.precision


def _resolve_interpret(interpret):
  return jax.default_backend() == "cpu" if interpret is None else interpret


def _mosaic_fits(q, k, v, block_size: int) -> bool:
  """Whether None on a GPU means "mosaic": Mosaic GPU present, the GPU (if any is attached)
  a Hopper (wgmma; `gpu_backend.wgmma_unavailable`), one 16-bit dtype and sizes the Mosaic GPU
  kernels take."""
  return (
    gpu_backend.mosaic_gpu_missing() is None
    and gpu_backend.wgmma_unavailable() is None
    and q.dtype == k.dtype == v.dtype
    and blocks_lib.mosaic_unsupported(k.shape[-1], block_size, q.shape[2], q.dtype) is None
  )


def _resolve_schedule(schedule, q, k, v, block_size: int, interpret) -> str:
  if schedule == "mosaic" and not interpret and not q.dtype == k.dtype == v.dtype:
    raise ValueError(
      f"schedule='mosaic' needs q, k and v in one dtype, got {q.dtype}, {k.dtype}, {v.dtype}"
    )
  return blocks_lib.check_schedule(
    schedule,
    backend=jax.default_backend(),
    head_dim=k.shape[-1],
    block_size=block_size,
    interpret=bool(interpret),
    group=q.shape[2],
    dtype=q.dtype,
    gpu_default="mosaic" if _mosaic_fits(q, k, v, block_size) else "loop",
  )


def _init_stats(m_sc, l_sc, acc_sc):
  m_sc[...] = jnp.full(m_sc.shape, MASK_VALUE, f32)
  l_sc[...] = jnp.zeros(l_sc.shape, f32)
  acc_sc[...] = jnp.zeros(acc_sc.shape, f32)


def _softmax_step(q, k, v, visible, m_sc, l_sc, acc_sc, *, scale, precision):
  """One online-softmax update of the `[G, D]` rows over a `[T, D]` K/V tile; `visible [1, T]`;
  the statistics live lane-broadcast in VMEM scratch."""
  stats = (m_sc[:, :1], l_sc[:, :1], acc_sc[...])
  (m_new, l_new, acc), _ = common.online_softmax_tile(
    q, k, v, visible, stats, scale=scale, precision=precision
  )
  acc_sc[...] = acc
  m_sc[...] = jnp.broadcast_to(m_new, m_sc.shape)
  l_sc[...] = jnp.broadcast_to(l_new, l_sc.shape)


def _finalize(o_ref, l_sc, acc_sc):
  o_ref[...] = common.normalised(l_sc[:, :1], acc_sc[...]).astype(o_ref.dtype)


# ------------------------------------------------------------------------- kernel A


def _retrieval_kernel(
  lengths_ref,
  heads_ref,
  q_ref,
  k_ref,
  v_ref,
  o_ref,
  scores_ref,
  m_sc,
  l_sc,
  acc_sc,
  *,
  scale,
  block_size,
  kernel_block,
  precision,
):
  """Step (b, r, s): q `[G, D]`, K/V `[kernel_block, D]`, out `[G, D]`, scores `[1, S / bs]`."""
  del heads_ref
  b, s = pl.program_id(0), pl.program_id(2)
  length = lengths_ref[b]
  start = s * kernel_block

  @pl.when(s == 0)
  def _init():
    _init_stats(m_sc, l_sc, acc_sc)
    scores_ref[...] = jnp.full(scores_ref.shape, -jnp.inf, f32)

  @pl.when(start < length)
  def _compute():
    q, k = q_ref[...], k_ref[...]
    visible = start + jax.lax.broadcasted_iota(jnp.int32, (1, kernel_block), 1) < length
    _softmax_step(q, k, v_ref[...], visible, m_sc, l_sc, acc_sc, scale=scale, precision=precision)
    qbar = jnp.mean(q.astype(f32), axis=0, keepdims=True).astype(q.dtype)  # [1, D]
    sel = jax.lax.dot_general(qbar, k, NT, precision=precision, preferred_element_type=f32)
    sel = jnp.where(visible, sel, -jnp.inf)  # [1, kernel_block]
    row = scores_ref[...]
    col = jax.lax.broadcasted_iota(jnp.int32, row.shape, 1)
    per_tile = kernel_block // block_size
    for j in range(per_tile):  # static: the scored blocks of this tile
      peak = jnp.max(sel[:, j * block_size : (j + 1) * block_size], axis=1, keepdims=True)
      row = jnp.where(col == s * per_tile + j, peak, row)
    scores_ref[...] = row

  @pl.when(s == pl.num_programs(2) - 1)
  def _fin():
    _finalize(o_ref, l_sc, acc_sc)


def retrieval_decode_pallas(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  lengths: jax.Array,
  heads: jax.Array,
  *,
  block_size: int = 64,
  scale: float | None = None,
  kernel_block: int | None = None,
  interpret: Any = None,
  schedule: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Kernel A: dense decode attention of the listed heads fused with max-pooled block scores.

  LycheeDecode (Lin et al., arXiv:2602.04541), the retrieval heads' kernel. Equals
  `retrieval_decode_reference`.

  Args:
    q: `[B, K, G, D]` the new token's queries, grouped by KV head.
    k, v: `[B, S, K, D]` the cache (the new token already written).
    lengths: `[B]` int visible slots per row, in `[1, S]`.
    heads: `[R]` int KV heads to process (clipped to `[0, K)`).
    block_size: tokens per scored block (divides S).
    scale: softmax scale (default `D ** -0.5`).
    kernel_block: tokens per grid step (grid schedule) or per split-K program (loop schedule),
      a multiple of `block_size` dividing S (default `blocks.choose_kernel_block`: up to
      `max(block_size, 512)`; loop: `blocks.choose_split_tokens`, up to 1024).
    interpret: None interprets when the default backend is CPU; True/False force it; a
      `pltpu.InterpretParams` selects the TPU interpreter (grid schedule).
    schedule: "grid" (TPU), "loop" (GPU, Triton) or "mosaic" (GPU, Mosaic GPU; in interpret
      mode JAX's GPU interpreter, JAX >= 0.12); None picks the default backend's.

  Returns:
    `(out [B, R, G, D] in q's dtype, scores [B, R, S / block_size] float32)`; a score is the
    max over the block's visible tokens of `qbar . k_t` (raw logits), -inf with none visible.

  Raises:
    ValueError naming the argument for shapes the kernel cannot take.
  """
  check_decode_args(q, k, v, lengths, heads, block_size=block_size)
  bsz, s, kh, d = k.shape
  g, r = q.shape[2], heads.shape[0]
  interpret = _resolve_interpret(interpret)
  schedule = _resolve_schedule(schedule, q, k, v, block_size, interpret)
  scale = d**-0.5 if scale is None else float(scale)
  lengths = lengths.astype(jnp.int32)
  heads = jnp.clip(heads.astype(jnp.int32), 0, kh - 1)
  if schedule in ("loop", "mosaic"):  # The GPU schedules (split-K): same arguments.
    gpu = dict(loop=kernel_gpu.retrieval_decode_loop, mosaic=kernel_mgpu.retrieval_decode_mosaic)
    return gpu[schedule](
      q,
      k,
      v,
      lengths,
      heads,
      block_size=block_size,
      scale=scale,
      kernel_block=kernel_block,
      interpret=interpret,
    )
  kb = blocks_lib.choose_kernel_block(s, block_size, kernel_block)
  n_scores = s // block_size

  def kv_map(b_, r_, s_, lengths_ref, heads_ref):
    # Tiles beyond the length repeat the last visible one (no DMA; the kernel skips them).
    last = jax.lax.div(jnp.maximum(lengths_ref[b_] - 1, 0), kb)
    return b_, jnp.minimum(s_, last), heads_ref[r_]

  kernel = functools.partial(
    _retrieval_kernel,
    scale=scale,
    block_size=block_size,
    kernel_block=kb,
    precision=_precision(q.dtype),
  )
  grid_spec = pltpu.PrefetchScalarGridSpec(
    num_scalar_prefetch=2,
    grid=(bsz, r, s // kb),
    in_specs=[
      pl.BlockSpec((_SQ, _SQ, g, d), lambda b_, r_, s_, ln, hd: (b_, hd[r_], 0, 0)),
      pl.BlockSpec((_SQ, kb, d), kv_map),
      pl.BlockSpec((_SQ, kb, d), kv_map),
    ],
    out_specs=[
      pl.BlockSpec((_SQ, _SQ, g, d), lambda b_, r_, s_, ln, hd: (b_, r_, 0, 0)),
      pl.BlockSpec((_SQ, _SQ, 1, n_scores), lambda b_, r_, s_, ln, hd: (b_, r_, 0, 0)),
    ],
    scratch_shapes=[
      pltpu.VMEM((g, LANES), f32),
      pltpu.VMEM((g, LANES), f32),
      pltpu.VMEM((g, d), f32),
    ],
  )
  itemsize = k.dtype.itemsize
  cost = pl.CostEstimate(
    flops=bsz * r * s * d * (4 * g + 2),
    transcendentals=bsz * r * s * g,
    bytes_accessed=2 * bsz * r * s * d * itemsize
    + 2 * bsz * r * g * d * q.dtype.itemsize
    + 4 * bsz * r * n_scores,
  )
  params = (
    None
    if interpret
    else pltpu.CompilerParams(dimension_semantics=("parallel", "parallel", "arbitrary"))
  )
  out, scores = pl.pallas_call(
    kernel,
    out_shape=[
      jax.ShapeDtypeStruct((bsz, r, g, d), q.dtype),
      jax.ShapeDtypeStruct((bsz, r, 1, n_scores), f32),
    ],
    grid_spec=grid_spec,
    compiler_params=params,
    cost_estimate=cost,
    interpret=interpret,
    name="lychee_retrieval_decode",
  )(lengths, heads, q, k.reshape(bsz, s, kh * d), v.reshape(bsz, s, kh * d))
  return out, scores.reshape(bsz, r, n_scores)


# ------------------------------------------------------------------------- kernel B


def encode_block_ids(block_idx, lengths, *, block_size: int):
  """`[B, R, n_sel]` ids -> `[B * R * n_sel]` int32: usable ids kept, others `-(fetch + 1)`.

  A usable id is >= 0 and starts before `lengths[b]`. An unusable entry stores the block to
  fetch in its place (the nearest earlier usable id of the row, else the row's first usable
  id, else 0) so the pipeline re-uses a tile it already holds.
  """
  n = block_idx.shape[-1]
  ids = block_idx.astype(jnp.int32)
  usable = (ids >= 0) & (ids * block_size < lengths.astype(jnp.int32)[:, None, None])
  pos = jnp.where(usable, jnp.arange(n, dtype=jnp.int32), -1)
  last = jax.lax.cummax(pos, axis=2)
  earlier = jnp.take_along_axis(ids, jnp.maximum(last, 0), axis=2)
  first = jnp.take_along_axis(ids, jnp.argmax(usable, axis=2)[..., None], axis=2)
  first = jnp.where(jnp.any(usable, axis=2, keepdims=True), first, 0)
  fetch = jnp.where(last >= 0, earlier, first)
  return jnp.where(usable, ids, -fetch - 1).reshape(-1)


def _block_sparse_kernel(
  lengths_ref,
  heads_ref,
  enc_ref,
  q_ref,
  k_ref,
  v_ref,
  o_ref,
  m_sc,
  l_sc,
  acc_sc,
  *,
  scale,
  block_size,
  precision,
):
  """Step (b, r, i): q `[G, D]`, K/V `[block_size, D]` of the selected block, out `[G, D]`."""
  del heads_ref
  b, r, i = pl.program_id(0), pl.program_id(1), pl.program_id(2)
  n_heads, n_sel = pl.num_programs(1), pl.num_programs(2)
  block = enc_ref[(b * n_heads + r) * n_sel + i]

  @pl.when(i == 0)
  def _init():
    _init_stats(m_sc, l_sc, acc_sc)

  @pl.when(block >= 0)
  def _compute():
    pos = block * block_size + jax.lax.broadcasted_iota(jnp.int32, (1, block_size), 1)
    visible = pos < lengths_ref[b]
    _softmax_step(
      q_ref[...],
      k_ref[...],
      v_ref[...],
      visible,
      m_sc,
      l_sc,
      acc_sc,
      scale=scale,
      precision=precision,
    )

  @pl.when(i == n_sel - 1)
  def _fin():
    _finalize(o_ref, l_sc, acc_sc)


def block_sparse_decode_pallas(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  lengths: jax.Array,
  heads: jax.Array,
  block_idx: jax.Array,
  *,
  block_size: int = 64,
  scale: float | None = None,
  interpret: Any = None,
  schedule: str | None = None,
  blocks_per_split: int | None = None,
) -> jax.Array:
  """Kernel B: decode attention of the listed heads restricted to their selected blocks.

  LycheeDecode (Lin et al., arXiv:2602.04541), the sparse heads' kernel. Equals
  `block_sparse_decode_reference`; reads `n_sel * block_size` tokens per head.

  Args:
    q, k, v, lengths, heads, block_size, scale, interpret, schedule: as in
      `retrieval_decode_pallas`.
    block_idx: `[B, R, n_sel]` int distinct block ids per row (-1 = no block, any order).
    blocks_per_split: loop and mosaic schedules: selected blocks per split-K program
      (default `blocks.choose_split_blocks`, 4).

  Returns:
    `[B, R, G, D]` in q's dtype; zeros for a row with no visible selected token.

  Raises:
    ValueError naming the argument for shapes the kernel cannot take.
  """
  check_decode_args(q, k, v, lengths, heads, block_size=block_size)
  bsz, s, kh, d = k.shape
  g, r = q.shape[2], heads.shape[0]
  if block_idx.ndim != 3 or tuple(block_idx.shape[:2]) != (bsz, r) or block_idx.shape[2] < 1:
    raise ValueError(
      f"block_idx must be [B, R, n_sel] = [{bsz}, {r}, n_sel >= 1], got {tuple(block_idx.shape)}"
    )
  if not jnp.issubdtype(block_idx.dtype, jnp.integer):
    raise ValueError(f"block_idx must be integer block ids, got {block_idx.dtype}")
  interpret = _resolve_interpret(interpret)
  schedule = _resolve_schedule(schedule, q, k, v, block_size, interpret)
  scale = d**-0.5 if scale is None else float(scale)
  n_sel = block_idx.shape[2]
  lengths = lengths.astype(jnp.int32)
  heads = jnp.clip(heads.astype(jnp.int32), 0, kh - 1)
  if schedule in ("loop", "mosaic"):  # The GPU schedules (split-K): same arguments.
    gpu = dict(
      loop=kernel_gpu.block_sparse_decode_loop, mosaic=kernel_mgpu.block_sparse_decode_mosaic
    )
    return gpu[schedule](
      q,
      k,
      v,
      lengths,
      heads,
      block_idx,
      block_size=block_size,
      scale=scale,
      blocks_per_split=blocks_per_split,
      interpret=interpret,
    )
  enc = encode_block_ids(block_idx, lengths, block_size=block_size)

  def kv_map(b_, r_, i_, lengths_ref, heads_ref, enc_ref):
    e = enc_ref[(b_ * r + r_) * n_sel + i_]
    return b_, jnp.where(e >= 0, e, -e - 1), heads_ref[r_]

  kernel = functools.partial(
    _block_sparse_kernel, scale=scale, block_size=block_size, precision=_precision(q.dtype)
  )
  grid_spec = pltpu.PrefetchScalarGridSpec(
    num_scalar_prefetch=3,
    grid=(bsz, r, n_sel),
    in_specs=[
      pl.BlockSpec((_SQ, _SQ, g, d), lambda b_, r_, i_, ln, hd, en: (b_, hd[r_], 0, 0)),
      pl.BlockSpec((_SQ, block_size, d), kv_map),
      pl.BlockSpec((_SQ, block_size, d), kv_map),
    ],
    out_specs=pl.BlockSpec((_SQ, _SQ, g, d), lambda b_, r_, i_, ln, hd, en: (b_, r_, 0, 0)),
    scratch_shapes=[
      pltpu.VMEM((g, LANES), f32),
      pltpu.VMEM((g, LANES), f32),
      pltpu.VMEM((g, d), f32),
    ],
  )
  tokens = bsz * r * n_sel * block_size
  cost = pl.CostEstimate(
    flops=4 * tokens * g * d,
    transcendentals=tokens * g,
    bytes_accessed=2 * tokens * d * k.dtype.itemsize + 2 * bsz * r * g * d * q.dtype.itemsize,
  )
  params = (
    None
    if interpret
    else pltpu.CompilerParams(dimension_semantics=("parallel", "parallel", "arbitrary"))
  )
  return pl.pallas_call(
    kernel,
    out_shape=jax.ShapeDtypeStruct((bsz, r, g, d), q.dtype),
    grid_spec=grid_spec,
    compiler_params=params,
    cost_estimate=cost,
    interpret=interpret,
    name="lychee_block_sparse_decode",
  )(lengths, heads, enc, q, k.reshape(bsz, s, kh * d), v.reshape(bsz, s, kh * d))
