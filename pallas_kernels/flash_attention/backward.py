"""Backward kernels of the flash attention: dK/dV (per key block) and dQ (per query block).

Both recompute the probabilities from the forward logsumexp:
  p = exp(s - lse),  dv = p^T dO,  dp = dO v^T,  ds = p * (dp - delta),
  dq = scale * ds k,  dk = scale * ds^T q,  with delta = rowsum(dO * O)
(FlashAttention-2, arXiv:2307.08691, Algorithm 2, split in two kernels so that
no accumulation crosses programs). The dK/dV kernel works key-major (scores
transposed, `[bk, bq]`), so the row statistics are read in "row" layout and every
matmul is NN or NT. With grouped-query attention one dK/dV program sums the
contributions of all N/K query heads of its key head: no [B, N, T, D] partials.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from pallas_kernels.flash_attention import common

_SQ = getattr(pl, "squeezed", None)


def _split(refs, has_segments: bool, num_inputs: int):
  ins, rest = refs[:num_inputs], refs[num_inputs:]
  if has_segments:
    return ins, rest[:2], rest[2:]
  return ins, (None, None), rest


# ---------------------------------------------------------------------------------- dQ


def _dq_grid_kernel(*refs, c: common.Config):
  (q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref), (qs_ref, ks_ref), (dq_ref, acc_sc) = _split(
    refs, c.has_segments, 6
  )
  i, j = pl.program_id(2), pl.program_id(3)
  lo, hi, plain_lo, plain_hi = common.key_block_range(i, c)
  kb = lo + j

  @pl.when(j == 0)
  def _init():
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
    acc_sc[...] = common.dq_step(
      q_ref[...],
      k_ref[...],
      v_ref[...],
      do_ref[...],
      lse_ref[:, :1],
      delta_ref[:, :1],
      acc_sc[...],
      mask,
      c.scale,
    )

  visible = kb <= hi
  plain = jnp.logical_and(plain_lo <= kb, kb < plain_hi)
  if not c.has_segments:
    pl.when(jnp.logical_and(visible, plain))(lambda: compute(False))
  pl.when(jnp.logical_and(visible, jnp.logical_not(plain)))(lambda: compute(True))

  @pl.when(j == pl.num_programs(3) - 1)
  def _finalize():
    dq_ref[...] = (acc_sc[...] * c.scale).astype(dq_ref.dtype)


def _dq_loop_kernel(*refs, c: common.Config):
  (q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref), (qs_ref, ks_ref), (dq_ref,) = _split(
    refs, c.has_segments, 6
  )
  bq, bk = c.block_q, c.block_k
  i = pl.program_id(2)
  lo, hi, plain_lo, plain_hi = common.key_block_range(i, c)
  q, do = q_ref[...], do_ref[...]
  lse, delta = lse_ref[...], delta_ref[...]
  q_seg = None if qs_ref is None else qs_ref[...]

  def body(masked: bool):
    def step(kb, acc):
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
      return common.dq_step(q, k, v, do, lse, delta, acc, mask, c.scale)

    return step

  acc = jnp.zeros((bq, c.head_dim), jnp.float32)
  acc = lax.fori_loop(lo, plain_lo, body(True), acc)
  if not c.has_segments:
    acc = lax.fori_loop(plain_lo, plain_hi, body(False), acc)
    acc = lax.fori_loop(plain_hi, hi + 1, body(True), acc)
  dq_ref[...] = (acc * c.scale).astype(dq_ref.dtype)


def _dq(q, k, v, do, lse_col, delta_col, seg_args, c: common.Config, cost):
  b = q.shape[0]
  bq, bk, d, g = c.block_q, c.block_k, c.head_dim, c.group
  out_shape = jax.ShapeDtypeStruct(q.shape, q.dtype)
  if c.schedule == "grid":
    nkv = common.max_visits(common.key_block_range, c.num_q_blocks, c)

    def kv_block(i, j):
      lo, hi, _, _ = common.key_block_range(i, c)
      return jnp.maximum(jnp.minimum(lo + j, hi), 0)

    q_spec = pl.BlockSpec((_SQ, _SQ, bq, d), lambda b_, h, i, j: (b_, h, i, 0))
    kv_spec = pl.BlockSpec(
      (_SQ, _SQ, bk, d), lambda b_, h, i, j: (b_, lax.div(h, g), kv_block(i, j), 0)
    )
    stat_spec = pl.BlockSpec((_SQ, _SQ, bq, c.lanes), lambda b_, h, i, j: (b_, h, i, 0))
    in_specs = [q_spec, kv_spec, kv_spec, q_spec, stat_spec, stat_spec]
    if c.has_segments:
      in_specs += [
        pl.BlockSpec((_SQ, bq, c.lanes), lambda b_, h, i, j: (b_, i, 0)),
        pl.BlockSpec((_SQ, c.sublanes, bk), lambda b_, h, i, j: (b_, 0, kv_block(i, j))),
      ]
    call = common.pallas_call(
      common.bind(_dq_grid_kernel, c),
      cost=cost,
      out_shape=out_shape,
      grid=(b, c.num_heads, c.num_q_blocks, nkv),
      in_specs=in_specs,
      out_specs=q_spec,
      scratch_shapes=[common.vmem_scratch((bq, d))],
      compiler_params=common.compiler_params(c, 3, 1),
      interpret=c.interpret,
      name="flash_attention_dq",
    )
  else:
    tp = c.padded_len
    q_spec = pl.BlockSpec((_SQ, _SQ, bq, d), lambda b_, h, i: (b_, h, i, 0))
    kv_spec = pl.BlockSpec((_SQ, _SQ, tp, d), lambda b_, h, i: (b_, lax.div(h, g), 0, 0))
    stat_spec = pl.BlockSpec((_SQ, _SQ, bq, c.lanes), lambda b_, h, i: (b_, h, i, 0))
    in_specs = [q_spec, kv_spec, kv_spec, q_spec, stat_spec, stat_spec]
    if c.has_segments:
      in_specs += [
        pl.BlockSpec((_SQ, bq, c.lanes), lambda b_, h, i: (b_, i, 0)),
        pl.BlockSpec((_SQ, c.sublanes, tp), lambda b_, h, i: (b_, 0, 0)),
      ]
    call = common.pallas_call(
      common.bind(_dq_loop_kernel, c),
      cost=cost,
      out_shape=out_shape,
      grid=(b, c.num_heads, c.num_q_blocks),
      in_specs=in_specs,
      out_specs=q_spec,
      compiler_params=common.compiler_params(c, 3, 0),
      interpret=c.interpret,
      name="flash_attention_dq",
    )
  return call(q, k, v, do, lse_col, delta_col, *seg_args)


# ------------------------------------------------------------------------------- dK / dV


def _dkv_grid_kernel(*refs, c: common.Config, num_visits: int):
  (
    (q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref),
    (qs_ref, ks_ref),
    (dk_ref, dv_ref, dk_sc, dv_sc),
  ) = _split(refs, c.has_segments, 6)
  kb, r = pl.program_id(2), pl.program_id(3)
  lo, hi, plain_lo, plain_hi = common.query_block_range(kb, c)
  qb = lo + lax.rem(r, num_visits)

  @pl.when(r == 0)
  def _init():
    dk_sc[...] = jnp.zeros(dk_sc.shape, jnp.float32)
    dv_sc[...] = jnp.zeros(dv_sc.shape, jnp.float32)

  def compute(masked: bool):
    mask = None
    if masked:
      mask = common.block_mask(
        qb * c.block_q,
        kb * c.block_k,
        (c.block_k, c.block_q),
        c,
        key_major=True,
        q_seg=None if qs_ref is None else qs_ref[:1, :],
        k_seg=None if ks_ref is None else ks_ref[:, :1],
      )
    dk, dv = common.dkv_step(
      q_ref[...],
      k_ref[...],
      v_ref[...],
      do_ref[...],
      lse_ref[:1, :],
      delta_ref[:1, :],
      dk_sc[...],
      dv_sc[...],
      mask,
      c.scale,
    )
    dk_sc[...] = dk
    dv_sc[...] = dv

  visible = qb <= hi
  plain = jnp.logical_and(plain_lo <= qb, qb < plain_hi)
  if not c.has_segments:
    pl.when(jnp.logical_and(visible, plain))(lambda: compute(False))
  pl.when(jnp.logical_and(visible, jnp.logical_not(plain)))(lambda: compute(True))

  @pl.when(r == pl.num_programs(3) - 1)
  def _finalize():
    dk_ref[...] = (dk_sc[...] * c.scale).astype(dk_ref.dtype)
    dv_ref[...] = dv_sc[...].astype(dv_ref.dtype)


def _dkv_loop_kernel(*refs, c: common.Config):
  (q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref), (qs_ref, ks_ref), (dk_ref, dv_ref) = _split(
    refs, c.has_segments, 6
  )
  bq, bk = c.block_q, c.block_k
  kb = pl.program_id(2)
  lo, hi, plain_lo, plain_hi = common.query_block_range(kb, c)
  k, v = k_ref[...], v_ref[...]
  k_seg = None if ks_ref is None else ks_ref[...]

  def head(hh, carry):  # One query head of this key head's group.
    def body(masked: bool):
      def step(qb, carry):
        start = pl.multiple_of(qb * bq, bq)
        q = q_ref[hh, pl.ds(start, bq), :]
        do = do_ref[hh, pl.ds(start, bq), :]
        lse = lse_ref[hh, :, pl.ds(start, bq)]
        delta = delta_ref[hh, :, pl.ds(start, bq)]
        mask = None
        if masked:
          mask = common.block_mask(
            start,
            kb * bk,
            (bk, bq),
            c,
            key_major=True,
            q_seg=None if qs_ref is None else qs_ref[:, pl.ds(start, bq)],
            k_seg=k_seg,
          )
        return common.dkv_step(q, k, v, do, lse, delta, *carry, mask, c.scale)

      return step

    carry = lax.fori_loop(lo, plain_lo, body(True), carry)
    if not c.has_segments:
      carry = lax.fori_loop(plain_lo, plain_hi, body(False), carry)
      carry = lax.fori_loop(plain_hi, hi + 1, body(True), carry)
    return carry

  zeros = jnp.zeros((bk, c.head_dim), jnp.float32)
  dk, dv = lax.fori_loop(0, c.group, head, (zeros, zeros))
  dk_ref[...] = (dk * c.scale).astype(dk_ref.dtype)
  dv_ref[...] = dv.astype(dv_ref.dtype)


def _dkv(q, k, v, do, lse_row, delta_row, seg_args, c: common.Config, cost):
  b = q.shape[0]
  bq, bk, d, g = c.block_q, c.block_k, c.head_dim, c.group
  out_shape = (jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype))
  if c.schedule == "grid":
    nqv = common.max_visits(common.query_block_range, c.num_k_blocks, c)

    def head(kh, r):
      return kh * g + lax.div(r, nqv)

    def q_block(kb, r):
      lo, hi, _, _ = common.query_block_range(kb, c)
      return jnp.maximum(jnp.minimum(lo + lax.rem(r, nqv), hi), 0)

    q_spec = pl.BlockSpec(
      (_SQ, _SQ, bq, d), lambda b_, kh, kb, r: (b_, head(kh, r), q_block(kb, r), 0)
    )
    kv_spec = pl.BlockSpec((_SQ, _SQ, bk, d), lambda b_, kh, kb, r: (b_, kh, kb, 0))
    stat_spec = pl.BlockSpec(
      (_SQ, _SQ, c.sublanes, bq), lambda b_, kh, kb, r: (b_, head(kh, r), 0, q_block(kb, r))
    )
    in_specs = [q_spec, kv_spec, kv_spec, q_spec, stat_spec, stat_spec]
    if c.has_segments:
      in_specs += [
        pl.BlockSpec((_SQ, c.sublanes, bq), lambda b_, kh, kb, r: (b_, 0, q_block(kb, r))),
        pl.BlockSpec((_SQ, bk, c.lanes), lambda b_, kh, kb, r: (b_, kb, 0)),
      ]
    call = common.pallas_call(
      functools.partial(_dkv_grid_kernel, c=c, num_visits=nqv),
      cost=cost,
      out_shape=out_shape,
      grid=(b, c.num_kv_heads, c.num_k_blocks, g * nqv),
      in_specs=in_specs,
      out_specs=(kv_spec, kv_spec),
      scratch_shapes=[common.vmem_scratch((bk, d)), common.vmem_scratch((bk, d))],
      compiler_params=common.compiler_params(c, 3, 1),
      interpret=c.interpret,
      name="flash_attention_dkv",
    )
  else:
    tp = c.padded_len
    q_spec = pl.BlockSpec((_SQ, g, tp, d), lambda b_, kh, kb: (b_, kh, 0, 0))
    kv_spec = pl.BlockSpec((_SQ, _SQ, bk, d), lambda b_, kh, kb: (b_, kh, kb, 0))
    stat_spec = pl.BlockSpec((_SQ, g, c.sublanes, tp), lambda b_, kh, kb: (b_, kh, 0, 0))
    in_specs = [q_spec, kv_spec, kv_spec, q_spec, stat_spec, stat_spec]
    if c.has_segments:
      in_specs += [
        pl.BlockSpec((_SQ, c.sublanes, tp), lambda b_, kh, kb: (b_, 0, 0)),
        pl.BlockSpec((_SQ, bk, c.lanes), lambda b_, kh, kb: (b_, kb, 0)),
      ]
    call = common.pallas_call(
      common.bind(_dkv_loop_kernel, c),
      cost=cost,
      out_shape=out_shape,
      grid=(b, c.num_kv_heads, c.num_k_blocks),
      in_specs=in_specs,
      out_specs=(kv_spec, kv_spec),
      compiler_params=common.compiler_params(c, 3, 0),
      interpret=c.interpret,
      name="flash_attention_dkv",
    )
  return call(q, k, v, do, lse_row, delta_row, *seg_args)


def backward(q, k, v, segs, o, lse, do, c: common.Config):
  """(dq, dk, dv) in the kernel layout; lse `[B, N, Tp]` from the forward pass."""
  b, n, tp, d = q.shape
  delta = jnp.sum(o.astype(jnp.float32) * do.astype(jnp.float32), axis=-1)
  col = lambda x: jnp.broadcast_to(x[..., None], (b, n, tp, c.lanes))  # noqa: E731
  row = lambda x: jnp.broadcast_to(x[:, :, None, :], (b, n, c.sublanes, tp))  # noqa: E731
  pairs = common.visible_pairs(c)
  itemsize = q.dtype.itemsize
  io_bytes = (3 * q.size + 2 * k.size) * itemsize + 2 * b * n * tp * 4
  dq_cost = (6 * b * n * pairs * d, b * n * pairs, io_bytes + q.size * itemsize)
  dkv_cost = (8 * b * n * pairs * d, b * n * pairs, io_bytes + 2 * k.size * itemsize)
  dq = _dq(q, k, v, do, col(lse), col(delta), segs[:2], c, dq_cost)
  dk, dv = _dkv(q, k, v, do, row(lse), row(delta), segs[2:], c, dkv_cost)
  return dq, dk, dv
