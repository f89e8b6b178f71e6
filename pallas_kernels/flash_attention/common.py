"""Shared pieces of the flash-attention kernels: static config, block ranges, block math.

Index arithmetic (query block i of size bq, key block kb of size bk, real length
T, window w; see `reasoning_jax.ops.attention` for the mask convention: query r
sees key j iff j <= r (causal), r - j < w (window), same segment):

  * visible key blocks of query block i:
      lo = max(i*bq - w + 1, 0) // bk,   hi = min(((i+1)*bq - 1) // bk, (T-1) // bk);
  * of those, blocks needing no elementwise mask ("plain") form [plain_lo, plain_hi):
      window: kb*bk >= (i+1)*bq - w          ->  plain_lo = ceil(((i+1)*bq - w) / bk)
      causal: (kb+1)*bk - 1 <= i*bq          ->  plain_hi = (i*bq + 1) // bk
    the others in [lo, hi] are edge blocks (causal diagonal, window edge, padding,
    or any block when segment ids are given);
  * the backward dK/dV pass mirrors this for the query blocks of key block kb:
      lo = kb*bk // bq,  hi = min((kb*bk + bk - 1 + w - 1) // bq, (T-1) // bq),
      plain_lo = ceil((kb*bk + bk - 1) / bq),  plain_hi = (kb*bk + w) // bq.

Blocks outside [lo, hi] are never loaded or computed. Blocks made only of padding
(query blocks forward, key blocks backward) get an empty range, so the forward and
backward passes visit exactly the same (query block, key block) pairs.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

from pallas_kernels import gpu_backend

# A large finite negative number (same as reasoning_jax.ops.attention): no inf - inf.
MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)


@dataclasses.dataclass(frozen=True)
class Config:
  """Static description of one flash-attention call (hashable: a custom_vjp static arg)."""

  causal: bool
  window: int | None
  scale: float
  seq_len: int  # T, before padding.
  padded_len: int  # Tp, a multiple of block_q and block_k.
  block_q: int
  block_k: int
  num_heads: int  # N.
  num_kv_heads: int  # K.
  head_dim: int  # D as seen by the kernel (possibly padded).
  has_segments: bool
  schedule: str  # "grid" | "loop".
  interpret: Any  # False, True or a pltpu.InterpretParams.
  lanes: int  # Lane width of "column" statistics [.., Tp, lanes].
  sublanes: int  # Sublane height of "row" statistics [.., sublanes, Tp].
  num_warps: int = 4
  num_stages: int = 2

  @property
  def num_q_blocks(self) -> int:
    return self.padded_len // self.block_q

  @property
  def num_k_blocks(self) -> int:
    return self.padded_len // self.block_k

  @property
  def group(self) -> int:
    return self.num_heads // self.num_kv_heads

  @property
  def padded(self) -> bool:
    return self.padded_len != self.seq_len


class StaticOps:
  """numpy integer ops: evaluates the block ranges for every block at trace time."""

  maximum = staticmethod(np.maximum)
  minimum = staticmethod(np.minimum)
  where = staticmethod(np.where)
  div = staticmethod(np.floor_divide)


class TracedOps:
  """jnp/lax integer ops on program ids, inside kernels and index maps."""

  maximum = staticmethod(jnp.maximum)
  minimum = staticmethod(jnp.minimum)
  where = staticmethod(jnp.where)
  # Truncating division: every numerator below is non-negative, so it is floor
  # division, and it lowers to a plain integer divide on Mosaic and Triton.
  div = staticmethod(lax.div)


def _clip_plain(lo, hi, plain_lo, plain_hi, ops):
  """Clips the plain range into [lo, hi + 1] so that the three ranges partition [lo, hi]."""
  plain_lo = ops.minimum(ops.maximum(plain_lo, lo), hi + 1)
  plain_hi = ops.minimum(ops.maximum(plain_hi, plain_lo), hi + 1)
  return lo, hi, plain_lo, plain_hi


def key_block_range(i, c: Config, ops=TracedOps):
  """(lo, hi, plain_lo, plain_hi) over key blocks for query block `i` (see module doc)."""
  bq, bk, w = c.block_q, c.block_k, c.window
  q_first = i * bq
  q_last = q_first + bq - 1
  last_real = (c.seq_len - 1) // bk
  lo = ops.div(ops.maximum(q_first - w + 1, 0), bk) if w is not None else i * 0
  hi = ops.minimum(ops.div(q_last, bk), last_real) if c.causal else i * 0 + last_real
  # Query blocks made only of padding rows: nothing to compute (the rows are dropped).
  hi = ops.where(q_first < c.seq_len, hi, lo - 1)
  if c.has_segments:
    return _clip_plain(lo, hi, hi + 1, hi + 1, ops)
  if w is not None:
    plain_lo = ops.div(ops.maximum(q_last + 1 - w, 0) + bk - 1, bk)
  else:
    plain_lo = i * 0
  plain_hi = ops.div(q_first + 1, bk) if c.causal else i * 0 + c.num_k_blocks
  if c.padded and not c.causal:
    plain_hi = ops.minimum(plain_hi, c.seq_len // bk)  # Blocks holding padding keys.
  return _clip_plain(lo, hi, plain_lo, plain_hi, ops)


def query_block_range(kb, c: Config, ops=TracedOps):
  """(lo, hi, plain_lo, plain_hi) over query blocks for key block `kb` (dK/dV pass)."""
  bq, bk, w = c.block_q, c.block_k, c.window
  k_first = kb * bk
  k_last = k_first + bk - 1
  last_real = (c.seq_len - 1) // bq
  lo = ops.div(k_first, bq) if c.causal else kb * 0
  if w is not None:
    hi = ops.minimum(ops.div(k_last + w - 1, bq), last_real)
  else:
    hi = kb * 0 + last_real
  # Key blocks made only of padding keys: never visited forward, so not here either.
  hi = ops.where(k_first < c.seq_len, hi, lo - 1)
  if c.has_segments:
    return _clip_plain(lo, hi, hi + 1, hi + 1, ops)
  plain_lo = ops.div(k_last + bq - 1, bq) if c.causal else kb * 0
  plain_hi = ops.div(k_first + w, bq) if w is not None else kb * 0 + c.num_q_blocks
  if c.padded and not c.causal:
    plain_hi = ops.where(k_last < c.seq_len, plain_hi, 0)
  return _clip_plain(lo, hi, plain_lo, plain_hi, ops)


def max_visits(range_fn: Callable, num_blocks: int, c: Config) -> int:
  """Largest number of visible blocks over all outer blocks (the inner grid extent)."""
  lo, hi, _, _ = range_fn(np.arange(num_blocks), c, StaticOps)
  return max(1, int(np.max(hi - lo + 1)))


def block_mask(
  q_first,
  k_first,
  shape: tuple[int, int],
  c: Config,
  *,
  key_major: bool = False,
  q_seg=None,
  k_seg=None,
) -> jax.Array:
  """Boolean visibility of one block (True = attend).

  Args:
    q_first, k_first: first query / key position of the block.
    shape: (bq, bk), or (bk, bq) when `key_major`.
    c: config.
    key_major: rows are keys and columns queries (the dK/dV pass).
    q_seg, k_seg: segment ids broadcastable to `shape` ((bq, 1) / (1, bk), or
      (1, bq) / (bk, 1) when key_major), or None.
  """
  q_axis, k_axis = (1, 0) if key_major else (0, 1)
  q_pos = q_first + lax.broadcasted_iota(jnp.int32, shape, q_axis)
  k_pos = k_first + lax.broadcasted_iota(jnp.int32, shape, k_axis)
  mask = None

  def conj(a, b):
    return b if a is None else jnp.logical_and(a, b)

  if c.causal:
    mask = conj(mask, k_pos <= q_pos)
  if c.window is not None:
    mask = conj(mask, q_pos - k_pos < c.window)
  if c.padded and not c.causal:
    mask = conj(mask, k_pos < c.seq_len)
  if q_seg is not None:
    mask = conj(mask, q_seg == k_seg)
  if mask is None:
    mask = jnp.ones(shape, jnp.bool_)
  return mask


def _dot(a, b, contract_a: int, contract_b: int):
  # fp32 inputs get exact fp32 products (HIGHEST): with the default, Triton on an H100 used
  # TF32 and the compiled kernel was 2.4e-4..5.6e-4 (relative) off the fp32 reference
  # (benchmarks/kernel_check.py); bf16 inputs keep the fast default.
  precision = lax.Precision.HIGHEST if a.dtype == jnp.float32 else None
  return lax.dot_general(
    a,
    b,
    (((contract_a,), (contract_b,)), ((), ())),
    precision=precision,
    preferred_element_type=jnp.float32,
  )


def forward_step(q, k, v, m_prev, l_prev, acc_prev, mask, scale: float):
  """One online-softmax update; q [bq, D], k/v [bk, D], m/l [bq, 1], acc [bq, D] fp32."""
  s = _dot(q, k, 1, 1) * scale
  if mask is not None:
    s = jnp.where(mask, s, MASK_VALUE)
  m_new = jnp.maximum(m_prev, jnp.max(s, axis=1, keepdims=True))
  alpha = jnp.exp(m_prev - m_new)
  p = jnp.exp(s - m_new)
  if mask is not None:
    p = jnp.where(mask, p, 0.0)  # Rows with nothing visible yet keep l == 0.
  l_new = alpha * l_prev + jnp.sum(p, axis=1, keepdims=True)
  acc_new = alpha * acc_prev + _dot(p.astype(v.dtype), v, 1, 0)
  return m_new, l_new, acc_new


def forward_finalize(m, l, acc):
  """(output fp32 [bq, D], logsumexp [bq, 1]); fully masked rows give 0 and MASK_VALUE."""
  l_safe = jnp.where(l == 0.0, 1.0, l)
  return acc / l_safe, m + jnp.log(l_safe)


def dq_step(q, k, v, do, lse, delta, dq_prev, mask, scale: float):
  """dQ accumulation (unscaled); q/do [bq, D], k/v [bk, D], lse/delta [bq, 1]."""
  s = _dot(q, k, 1, 1) * scale
  p = jnp.exp(s - lse)
  if mask is not None:
    p = jnp.where(mask, p, 0.0)
  dp = _dot(do, v, 1, 1)
  ds = p * (dp - delta)
  return dq_prev + _dot(ds.astype(k.dtype), k, 1, 0)


def dkv_step(q, k, v, do, lse, delta, dk_prev, dv_prev, mask, scale: float):
  """dK (unscaled) / dV accumulation, key-major; lse/delta are rows [1, bq], mask [bk, bq]."""
  s_t = _dot(k, q, 1, 1) * scale
  p_t = jnp.exp(s_t - lse)
  if mask is not None:
    p_t = jnp.where(mask, p_t, 0.0)
  dv = dv_prev + _dot(p_t.astype(do.dtype), do, 1, 0)
  dp_t = _dot(v, do, 1, 1)
  ds_t = p_t * (dp_t - delta)
  dk = dk_prev + _dot(ds_t.astype(q.dtype), q, 1, 0)
  return dk, dv


def visible_pairs(c: Config) -> int:
  """Number of (query, key) pairs attended per (batch, head), for cost estimates."""
  r = np.arange(c.seq_len, dtype=np.int64)
  first = np.maximum(r - c.window + 1, 0) if c.window is not None else np.zeros_like(r)
  last = r if c.causal else np.full_like(r, c.seq_len - 1)
  return int(np.sum(last - first + 1))


def gpu_lowering_unavailable() -> str | None:
  """Why this JAX cannot lower the kernels for GPU, or None.

  The GPU form goes through the Pallas Triton backend, which JAX deprecated in 0.11 in
  favour of Mosaic GPU; once a JAX release drops it, `ops.attention` must fall back to XLA
  on GPUs instead of failing at trace time.
  """
  return gpu_backend.triton_missing()


def compiler_params(c: Config, num_parallel: int, num_sequential: int):
  if c.schedule == "grid":
    from jax.experimental.pallas import tpu as pltpu

    return pltpu.CompilerParams(
      dimension_semantics=("parallel",) * num_parallel + ("arbitrary",) * num_sequential
    )
  return gpu_backend.triton_compiler_params(
    num_warps=c.num_warps,
    num_stages=c.num_stages,
    kernel="the Pallas flash-attention kernel",
    instead='implementation=None (picks XLA there) or "xla"',
  )


def vmem_scratch(shape: tuple[int, ...]):
  from jax.experimental.pallas import tpu as pltpu

  return pltpu.VMEM(shape, jnp.float32)


def pallas_call(kernel: Callable, *, cost: tuple[int, int, int] | None, **kwargs):
  """`pl.pallas_call` with a `pl.CostEstimate` when this JAX version takes one."""
  if cost is not None and hasattr(pl, "CostEstimate"):
    flops, transcendentals, bytes_accessed = cost
    estimate = pl.CostEstimate(
      flops=int(flops), transcendentals=int(transcendentals), bytes_accessed=int(bytes_accessed)
    )
    try:
      return pl.pallas_call(kernel, cost_estimate=estimate, **kwargs)
    except TypeError:
      pass
  return pl.pallas_call(kernel, **kwargs)


def bind(kernel: Callable, c: Config) -> Callable:
  return functools.partial(kernel, c=c)
