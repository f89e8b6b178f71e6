"""Causal / sliding-window grouped-query flash attention in Pallas (forward + custom VJP).

FlashAttention (Dao et al., arXiv:2205.14135) with the FlashAttention-2 split of
the backward pass into a dK/dV and a dQ kernel (arXiv:2307.08691), grouped-query
heads (arXiv:2305.13245) mapped in the BlockSpec index maps (K/V are never
repeated), and sliding windows whose fully-masked key blocks are skipped.

Mask convention (the one of `reasoning_jax.ops.attention`, on positions
`arange(T)`): query i sees key j iff j <= i (causal), i - j < w (window w: exactly
w keys, the key w back is out) and, with segment ids, the ids are equal.

DESIGN CHOICES (defaults in `blocks.py`):
  * schedule: "grid" on TPU (sequential key-block grid axis, VMEM scratch),
    "loop" on GPU (in-kernel `fori_loop` over key blocks, Triton); both run in
    interpret mode on CPU and compute the same per-block math (`common.py`);
    "mosaic" on a Hopper GPU for bfloat16 / float16 (`kernel_mgpu.py`, `backward_mgpu.py`:
    Mosaic GPU kernels, wgmma + TMA pipelines; above head dim 128 the backward is the
    "loop" kernels), opt-in until measured on a GPU, the default when JAX has no Triton
    (`blocks.gpu_schedule`);
  * fp32 online-softmax statistics and accumulators; the forward saves the
    per-row logsumexp and the backward recomputes probabilities from it;
  * only edge blocks (causal diagonal, window edge, padding, or all blocks when
    segment ids are given) apply the elementwise mask;
  * T not divisible by the block: padded inside the wrapper; rows whose keys are
    all masked (only padding rows can be) output 0.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from reasoning_jax.ops.attention_reference import attention_reference, make_attention_mask
from pallas_kernels import gpu_backend
from pallas_kernels.flash_attention import backward as backward_lib
from pallas_kernels.flash_attention import backward_mgpu
from pallas_kernels.flash_attention import blocks as blocks_lib
from pallas_kernels.flash_attention import common
from pallas_kernels.flash_attention import kernel_mgpu

_SQ = getattr(pl, "squeezed", None)  # Squeezed block dim (None on older JAX).


# ------------------------------------------------------------------------- forward kernels


def _segment_refs(refs, has_segments: bool, num_inputs: int):
  """Splits `refs` into (inputs, seg_refs (pair or Nones), rest)."""
  ins, rest = refs[:num_inputs], refs[num_inputs:]
  if has_segments:
    return ins, rest[:2], rest[2:]
  return ins, (None, None), rest


def _fwd_grid_kernel(*refs, c: common.Config):
  (q_ref, k_ref, v_ref), (qs_ref, ks_ref), (o_ref, lse_ref, m_sc, l_sc, acc_sc) = _segment_refs(
    refs, c.has_segments, 3
  )
  i, j = pl.program_id(2), pl.program_id(3)
  lo, hi, plain_lo, plain_hi = common.key_block_range(i, c)
  kb = lo + j

  @pl.when(j == 0)
  def _init():
    m_sc[...] = jnp.full(m_sc.shape, common.MASK_VALUE, jnp.float32)
    l_sc[...] = jnp.zeros(l_sc.shape, jnp.float32)
    acc_sc[...] = jnp.zeros(acc_sc.shape, jnp.float32)

  def compute(masked: bool):
    mask = None
    if masked:
      mask = common.block_mask(
        i * c.block_q,
        kb * c.block_k,
        (c.block_q, c.block_k),
        c,
        q_seg=None if qs_ref is None else qs_ref[:, :1],
        k_seg=None if ks_ref is None else ks_ref[:1, :],
      )
    m, l, acc = common.forward_step(
      q_ref[...], k_ref[...], v_ref[...], m_sc[:, :1], l_sc[:, :1], acc_sc[...], mask, c.scale
    )
    m_sc[...] = jnp.broadcast_to(m, m_sc.shape)
    l_sc[...] = jnp.broadcast_to(l, l_sc.shape)
    acc_sc[...] = acc

  visible = kb <= hi
  plain = jnp.logical_and(plain_lo <= kb, kb < plain_hi)
  if not c.has_segments:  # With segment ids every block is an edge block.
    pl.when(jnp.logical_and(visible, plain))(lambda: compute(False))
  pl.when(jnp.logical_and(visible, jnp.logical_not(plain)))(lambda: compute(True))

  @pl.when(j == pl.num_programs(3) - 1)
  def _finalize():
    o, lse = common.forward_finalize(m_sc[:, :1], l_sc[:, :1], acc_sc[...])
    o_ref[...] = o.astype(o_ref.dtype)
    lse_ref[...] = jnp.broadcast_to(lse, lse_ref.shape)


def _fwd_loop_kernel(*refs, c: common.Config):
  (q_ref, k_ref, v_ref), (qs_ref, ks_ref), (o_ref, lse_ref) = _segment_refs(refs, c.has_segments, 3)
  bq, bk = c.block_q, c.block_k
  i = pl.program_id(2)
  lo, hi, plain_lo, plain_hi = common.key_block_range(i, c)
  q = q_ref[...]
  q_seg = None if qs_ref is None else qs_ref[...]

  def body(masked: bool):
    def step(kb, carry):
      start = pl.multiple_of(kb * bk, bk)
      k = k_ref[pl.ds(start, bk), :]
      v = v_ref[pl.ds(start, bk), :]
      mask = None
      if masked:
        mask = common.block_mask(
          i * bq,
          start,
          (bq, bk),
          c,
          q_seg=q_seg,
          k_seg=None if ks_ref is None else ks_ref[:, pl.ds(start, bk)],
        )
      return common.forward_step(q, k, v, *carry, mask, c.scale)

    return step

  carry = (
    jnp.full((bq, 1), common.MASK_VALUE, jnp.float32),
    jnp.zeros((bq, 1), jnp.float32),
    jnp.zeros((bq, c.head_dim), jnp.float32),
  )
  carry = lax.fori_loop(lo, plain_lo, body(True), carry)  # Window edge (or all, segments).
  if not c.has_segments:
    carry = lax.fori_loop(plain_lo, plain_hi, body(False), carry)  # Interior.
    carry = lax.fori_loop(plain_hi, hi + 1, body(True), carry)  # Causal diagonal, padding.
  o, lse = common.forward_finalize(*carry)
  o_ref[...] = o.astype(o_ref.dtype)
  lse_ref[...] = jnp.broadcast_to(lse, lse_ref.shape)


def _forward(q, k, v, segs, c: common.Config):
  """q [B, N, Tp, D], k/v [B, K, Tp, D] -> (o [B, N, Tp, D], lse [B, N, Tp])."""
  if c.schedule == "mosaic":
    return kernel_mgpu.forward(q, k, v, segs, c)
  b = q.shape[0]
  bq, bk, d, g = c.block_q, c.block_k, c.head_dim, c.group
  seg_args = segs[:2]  # (q ids [B, Tp, lanes], kv ids [B, sublanes, Tp]).
  pairs = common.visible_pairs(c)
  itemsize = q.dtype.itemsize
  cost = (
    4 * b * c.num_heads * pairs * d,
    b * c.num_heads * pairs,
    (2 * q.size + 2 * k.size) * itemsize + b * c.num_heads * c.padded_len * 4,
  )
  out_shape = (
    jax.ShapeDtypeStruct(q.shape, q.dtype),
    jax.ShapeDtypeStruct((b, c.num_heads, c.padded_len, c.lanes), jnp.float32),
  )
  if c.schedule == "grid":
    nkv = common.max_visits(common.key_block_range, c.num_q_blocks, c)

    def kv_block(i, j):
      lo, hi, _, _ = common.key_block_range(i, c)
      return jnp.maximum(jnp.minimum(lo + j, hi), 0)  # Repeats (no new DMA) past hi.

    in_specs = [
      pl.BlockSpec((_SQ, _SQ, bq, d), lambda b_, h, i, j: (b_, h, i, 0)),
      pl.BlockSpec((_SQ, _SQ, bk, d), lambda b_, h, i, j: (b_, lax.div(h, g), kv_block(i, j), 0)),
      pl.BlockSpec((_SQ, _SQ, bk, d), lambda b_, h, i, j: (b_, lax.div(h, g), kv_block(i, j), 0)),
    ]
    if c.has_segments:
      in_specs += [
        pl.BlockSpec((_SQ, bq, c.lanes), lambda b_, h, i, j: (b_, i, 0)),
        pl.BlockSpec((_SQ, c.sublanes, bk), lambda b_, h, i, j: (b_, 0, kv_block(i, j))),
      ]
    out_specs = (
      pl.BlockSpec((_SQ, _SQ, bq, d), lambda b_, h, i, j: (b_, h, i, 0)),
      pl.BlockSpec((_SQ, _SQ, bq, c.lanes), lambda b_, h, i, j: (b_, h, i, 0)),
    )
    call = common.pallas_call(
      common.bind(_fwd_grid_kernel, c),
      cost=cost,
      out_shape=out_shape,
      grid=(b, c.num_heads, c.num_q_blocks, nkv),
      in_specs=in_specs,
      out_specs=out_specs,
      scratch_shapes=[
        common.vmem_scratch((bq, c.lanes)),
        common.vmem_scratch((bq, c.lanes)),
        common.vmem_scratch((bq, d)),
      ],
      compiler_params=common.compiler_params(c, 3, 1),
      interpret=c.interpret,
      name="flash_attention_fwd",
    )
  else:
    tp = c.padded_len
    in_specs = [
      pl.BlockSpec((_SQ, _SQ, bq, d), lambda b_, h, i: (b_, h, i, 0)),
      pl.BlockSpec((_SQ, _SQ, tp, d), lambda b_, h, i: (b_, lax.div(h, g), 0, 0)),
      pl.BlockSpec((_SQ, _SQ, tp, d), lambda b_, h, i: (b_, lax.div(h, g), 0, 0)),
    ]
    if c.has_segments:
      in_specs += [
        pl.BlockSpec((_SQ, bq, c.lanes), lambda b_, h, i: (b_, i, 0)),
        pl.BlockSpec((_SQ, c.sublanes, tp), lambda b_, h, i: (b_, 0, 0)),
      ]
    out_specs = (
      pl.BlockSpec((_SQ, _SQ, bq, d), lambda b_, h, i: (b_, h, i, 0)),
      pl.BlockSpec((_SQ, _SQ, bq, c.lanes), lambda b_, h, i: (b_, h, i, 0)),
    )
    call = common.pallas_call(
      common.bind(_fwd_loop_kernel, c),
      cost=cost,
      out_shape=out_shape,
      grid=(b, c.num_heads, c.num_q_blocks),
      in_specs=in_specs,
      out_specs=out_specs,
      compiler_params=common.compiler_params(c, 3, 0),
      interpret=c.interpret,
      name="flash_attention_fwd",
    )
  o, lse = call(q, k, v, *seg_args)
  return o, lse[..., 0]


# ------------------------------------------------------------------------------ custom VJP


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _flash_core(q, k, v, segs, c: common.Config):
  return _forward(q, k, v, segs, c)[0]


def _flash_core_fwd(q, k, v, segs, c):
  o, lse = _forward(q, k, v, segs, c)
  return o, (q, k, v, segs, o, lse)


def _flash_core_bwd(c, residuals, do):
  q, k, v, segs, o, lse = residuals
  if c.schedule == "mosaic":
    if c.head_dim <= backward_mgpu.MAX_HEAD_DIM:
      return (*backward_mgpu.backward(q, k, v, segs, o, lse, do, c), None)
    # Wider heads: the loop schedule's backward (same blocks and layouts).
    c = dataclasses.replace(c, schedule="loop", num_stages=blocks_lib.TRITON_PARAMS.num_stages)
  dq, dk, dv = backward_lib.backward(q, k, v, segs, o, lse, do, c)
  return dq, dk, dv, None  # Integer segment ids have no cotangent.


_flash_core.defvjp(_flash_core_fwd, _flash_core_bwd)


# -------------------------------------------------------------------------------- wrapper


def _check_inputs(q, k, v, q_segment_ids, kv_segment_ids, causal, sliding_window, scale, schedule):
  """Boundary validation: every message names the argument and the expected value."""
  for name, x in (("q", q), ("k", k), ("v", v)):
    if getattr(x, "ndim", None) != 4:
      raise ValueError(
        f"{name} must be a 4-D array ([B, T, N, D] for q, [B, S, K, D] for k and v), "
        f"got shape {getattr(x, 'shape', None)}"
      )
  if k.shape != v.shape:
    raise ValueError(
      f"k and v must both be [B, S, K, D] with equal shapes, got {k.shape} and {v.shape}"
    )
  b, t, n, d = q.shape
  if k.shape[0] != b or k.shape[3] != d:
    raise ValueError(f"k must be [B={b}, S, K, D={d}] to match q {q.shape}, got {k.shape}")
  if k.shape[1] != t:
    raise ValueError(
      f"k and v must be [B, S={t}, K, D] (self-attention, S == T), got S={k.shape[1]}; "
      "use reasoning_jax.ops.attention for cross attention or decoding against a cache"
    )
  if n % k.shape[2]:
    raise ValueError(
      f"q has N={n} heads, which must be a multiple of the K={k.shape[2]} heads of k and v "
      "(grouped-query attention)"
    )
  if not (q.dtype == k.dtype == v.dtype):
    raise ValueError(f"q, k and v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
  if not jnp.issubdtype(q.dtype, jnp.floating):
    raise ValueError(f"q, k and v must be floating point, got {q.dtype}")
  if not isinstance(causal, bool):
    raise ValueError(f"causal must be a bool, got {causal!r}")
  if sliding_window is not None and (
    not isinstance(sliding_window, int) or isinstance(sliding_window, bool) or sliding_window <= 0
  ):
    raise ValueError(f"sliding_window must be a positive int or None, got {sliding_window!r}")
  if scale is not None and (not isinstance(scale, numbers.Real) or isinstance(scale, bool)):
    raise ValueError(f"scale must be a Python float or None, got {scale!r}")
  if (q_segment_ids is None) != (kv_segment_ids is None):
    raise ValueError("q_segment_ids and kv_segment_ids must be given together")
  for name, s in (("q_segment_ids", q_segment_ids), ("kv_segment_ids", kv_segment_ids)):
    if s is None:
      continue
    if tuple(getattr(s, "shape", ())) != (b, t):
      raise ValueError(f"{name} must be [B, T] = {(b, t)}, got {getattr(s, 'shape', None)}")
    if not jnp.issubdtype(s.dtype, jnp.integer):
      raise ValueError(f"{name} must be integers, got {s.dtype}")
  if schedule is not None and schedule not in blocks_lib.SCHEDULES:
    raise ValueError(f"schedule must be None or one of {blocks_lib.SCHEDULES}, got {schedule!r}")


def _resolve_schedule(schedule, backend: str, head_dim: int, dtype, interpret) -> str:
  """`schedule`, or the backend's default (on a GPU: `blocks.gpu_schedule`); ValueError
  naming `schedule` when "mosaic" cannot take the call."""
  if schedule is None:
    if backend == "gpu" and not interpret:
      return blocks_lib.gpu_schedule(head_dim, dtype)
    return blocks_lib.default_schedule(backend)
  if schedule == "mosaic":
    reason = gpu_backend.mosaic_gpu_missing() or blocks_lib.mosaic_unsupported(head_dim, dtype)
    if reason is None and not interpret:
      if backend == "tpu":
        reason = "it is a GPU schedule; on TPU use schedule='grid' (the default there)"
      elif backend == "gpu":
        reason = gpu_backend.wgmma_unavailable()
    if reason is not None:
      raise ValueError(f"schedule='mosaic': {reason} (use schedule='loop' or implementation='xla')")
  return schedule


def flash_attention(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  *,
  q_segment_ids: jax.Array | None = None,
  kv_segment_ids: jax.Array | None = None,
  causal: bool = True,
  sliding_window: int | None = None,
  scale: float | None = None,
  block_q: int | None = None,
  block_k: int | None = None,
  interpret: Any = None,
  schedule: str | None = None,
) -> jax.Array:
  """Flash attention over `[B, T, N, D]` queries and `[B, T, K, D]` keys/values.

  Self-attention layout: positions are `arange(T)` for queries and keys alike
  (the training path); differentiable in q, k and v.

  Args:
    q: queries `[B, T, N, D]`.
    k: keys `[B, T, K, D]`, `N % K == 0`; query head h reads key head `h // (N // K)`.
    v: values `[B, T, K, D]`.
    q_segment_ids, kv_segment_ids: `[B, T]` ints (packed sequences), both or neither.
    causal: query i only sees keys j <= i.
    sliding_window: w > 0: query i only sees keys j with i - j < w (w keys with
      `causal`); None for no window.
    scale: logit multiplier, default `D ** -0.5`.
    block_q, block_k: rows per query / key block; None takes the per-backend
      default of `blocks.py`. Clamped to the sequence for short inputs.
    interpret: None interprets on CPU and compiles on TPU/GPU; True/False force
      it; a `pltpu.InterpretParams` selects the TPU interpreter.
    schedule: "grid" (TPU), "mosaic" (Hopper GPU, Mosaic GPU kernels; bfloat16 / float16)
      or "loop" (GPU, Triton); None picks per backend (on a GPU `blocks.gpu_schedule`:
      Triton while this JAX has it, else Mosaic GPU where it can take the call).

  Returns:
    `[B, T, N, D]` in the dtype of q.

  Raises:
    ValueError: on inconsistent shapes, dtypes, window or block sizes.
  """
  _check_inputs(q, k, v, q_segment_ids, kv_segment_ids, causal, sliding_window, scale, schedule)
  b, t, n, d = q.shape
  kh = k.shape[2]
  backend = jax.default_backend()
  if interpret is None:
    interpret = backend not in ("tpu", "gpu")
  schedule = _resolve_schedule(schedule, backend, d, q.dtype, interpret)
  if schedule == "mosaic":
    defaults = blocks_lib.MOSAIC_BLOCK_SIZES
  else:
    defaults = blocks_lib.default_block_sizes(backend)
  compiled = not interpret
  dp = blocks_lib.padded_head_dim(d, schedule=schedule, compiled=compiled)
  itemsize = jnp.dtype(q.dtype).itemsize
  if block_k is None:
    block_k = defaults.block_k
    if schedule == "mosaic":  # the largest default tile whose pipeline fits in shared memory
      block_k = blocks_lib.mosaic_block_k(block_k, dp, itemsize)
  bq, bk, tp = blocks_lib.fit_block_sizes(
    t,
    defaults.block_q if block_q is None else block_q,
    block_k,
    schedule=schedule,
    compiled=compiled,
    head_dim=dp,
    itemsize=itemsize,
  )
  lanes, sublanes = blocks_lib.stat_layout(schedule)
  c = common.Config(
    causal=causal,
    window=sliding_window,
    scale=float(d**-0.5 if scale is None else scale),
    seq_len=t,
    padded_len=tp,
    block_q=bq,
    block_k=bk,
    num_heads=n,
    num_kv_heads=kh,
    head_dim=dp,
    has_segments=q_segment_ids is not None,
    schedule=schedule,
    interpret=interpret,
    lanes=lanes,
    sublanes=sublanes,
    num_warps=blocks_lib.TRITON_PARAMS.num_warps,
    num_stages=(
      blocks_lib.MOSAIC_PIPELINE_STAGES
      if schedule == "mosaic"
      else blocks_lib.TRITON_PARAMS.num_stages
    ),
  )

  def to_kernel_layout(x):  # [B, T, H, D] -> [B, H, Tp, Dp]
    x = jnp.pad(x, ((0, 0), (0, tp - t), (0, 0), (0, dp - d)))
    return jnp.transpose(x, (0, 2, 1, 3))

  segs = ()
  if q_segment_ids is not None:
    # Padding rows get id -1 on both sides: they see themselves, never a real row
    # (causality or the length mask already guarantees that).
    qs, ks = (
      jnp.pad(s.astype(jnp.int32), ((0, 0), (0, tp - t)), constant_values=-1)
      for s in (q_segment_ids, kv_segment_ids)
    )
    col = lambda s: jnp.broadcast_to(s[:, :, None], (b, tp, lanes))  # noqa: E731
    row = lambda s: jnp.broadcast_to(s[:, None, :], (b, sublanes, tp))  # noqa: E731
    segs = (col(qs), row(ks), row(qs), col(ks))
  o = _flash_core(to_kernel_layout(q), to_kernel_layout(k), to_kernel_layout(v), segs, c)
  return jnp.transpose(o, (0, 2, 1, 3))[:, :t, :, :d]


def flash_attention_reference(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  *,
  q_segment_ids: jax.Array | None = None,
  kv_segment_ids: jax.Array | None = None,
  causal: bool = True,
  sliding_window: int | None = None,
  scale: float | None = None,
  block_q: int | None = None,
  block_k: int | None = None,
  interpret: Any = None,
  schedule: str | None = None,
) -> jax.Array:
  """Dense fp32-softmax reference with the signature of `flash_attention`.

  Builds the mask with `reasoning_jax.ops.attention_reference.make_attention_mask` on
  positions `arange(T)` and calls `attention_reference` (the "xla" backend).
  The kernel-only arguments (block sizes, interpret, schedule) are ignored.
  """
  del block_q, block_k, interpret
  _check_inputs(q, k, v, q_segment_ids, kv_segment_ids, causal, sliding_window, scale, schedule)

  b, t = q.shape[:2]
  positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
  mask = make_attention_mask(
    positions,
    positions,
    causal=causal,
    sliding_window=sliding_window,
    q_segment_ids=q_segment_ids,
    kv_segment_ids=kv_segment_ids,
  )
  return attention_reference(q, k, v, mask, scale=q.shape[-1] ** -0.5 if scale is None else scale)
