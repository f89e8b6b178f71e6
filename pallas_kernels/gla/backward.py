"""Fused Pallas backward of chunked gated linear attention (dq, dk, dv, dg, d_initial_state).

Gated Linear Attention Transformers with Hardware-Efficient Training
(Yang et al., arXiv:2312.06635), Sec. 4 (chunkwise form), differentiated by hand;
the split follows flash-linear-attention's `chunk_gla` backward (state gradients
over chunks first, then per-chunk gradients in parallel). Per (batch, head) and
chunk, with q already scaled, `G` the in-chunk cumulative log-gate, `Gamma = G_C`,
`S` the state entering the chunk and `dS` the gradient of the state leaving it:

    o_i   = (q_i e^{G_i})^T S + sum_{j<=i} A_ij v_j,  A_ij = (q_i e^{G_i - G_j}) . k_j
    S_out = diag(e^Gamma) S + sum_j (k_j e^{Gamma - G_j}) v_j^T

    dq_i  = e^{G_i} (S do_i) + sum_{j<=i} (do_i . v_j) k_j e^{G_i - G_j}
    dk_j  = e^{Gamma - G_j} (dS v_j) + sum_{i>=j} (do_i . v_j) q_i e^{G_i - G_j}
    dv_j  = (k_j e^{Gamma - G_j})^T dS + sum_{i>=j} A_ij do_i
    dg_t  = sum_{i>=t in the chunk} (q_i dq_i - k_i dk_i) + dGamma,
    dGamma = e^Gamma rowsum(S * dS) + sum_j k_j (e^{Gamma - G_j} (dS v_j))
    dS_in = diag(e^Gamma) dS + sum_i (q_i e^{G_i}) do_i^T   (the state gradient one chunk back)

What runs where:
  * XLA (stage 1, sequential only in the chunk index, as in the forward): the
    in-chunk cumulative gate G (a cumsum), the entering states, recomputed
    (`reasoning_jax.ops.gla.chunk`: one batched matmul and a `lax.scan` of
    elementwise updates), and each chunk's term
    `sum_i (q_i e^{G_i}) do_i^T` (one batched matmul) and the reverse `lax.scan`
    `dS_in = diag(e^Gamma) dS + ...` over chunks give `dS` for every chunk and
    `d_initial_state` (the gradient entering chunk 0);
  * the Pallas kernel (stage 2, one program per (batch * head, chunk), fully
    parallel): everything per position, fused in one pass over the chunk's tiles
    of q, k, v, G, do and its `S`, `dS`: dq, dk, dv and dg, i.e. the inter-chunk
    terms, the state-to-key terms, all intra-chunk pair sums and the in-chunk
    reverse cumulative sum of dg. Between the stages only G and the per-chunk
    `[Dk, Dv]` states and state gradients are materialised (as in the forward).
The intra-chunk sums use the forward's secondary chunking with exponents <= 0 only:
dq walks query sub-chunks (keys in earlier sub-chunks factorised at the sub-chunk's
first row), dk and dv walk key sub-chunks (queries in later sub-chunks factorised
at the key sub-chunk's last row), and both do the diagonal sub-chunk one row at a
time with explicit pairwise differences masked before exp. Each output row is
written once (no accumulation across programs or read-modify-write of an output),
every matmul is NN or NT, and dg's reverse cumsum is an upper-triangular `[R, R]`
matmul at HIGHEST precision plus a running suffix sum.

Packed sequences: the same masks as the forward (`reasoning_jax.ops.gla.chunk`);
the state terms are masked by the chunk's first / last sequence, the pair terms by
the sub-chunk's reference row. The gate at a sequence start is zeroed before the
custom VJP (`gla_chunk_pallas`), so its gradient is exactly zero.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels.gla import common
from reasoning_jax.ops.gla import chunk as gla_chunk_lib

_masked_exp, _same, _both = gla_chunk_lib.masked_exp, gla_chunk_lib.same, gla_chunk_lib.both


def _gla_chunk_bwd_kernel(
  q_ref, k_ref, v_ref, g_ref, do_ref, s_ref, ds_ref, *refs, scale, sub_chunk, precision
):
  """One (batch * head, chunk). Inputs: q, k, G (and the optional segment index) `[C, Dk]`,
  v, do `[C, Dv]`, the entering state s and the leaving state's gradient ds `[Dk, Dv]`.
  Outputs: dq, dk, dg `[C, Dk]`, dv `[C, Dv]`. `refs` is `([seg_ref,] dq, dk, dv, dg)`."""
  seg_ref, (dq_ref, dk_ref, dv_ref, dg_ref) = (
    (None, refs) if len(refs) == 4 else (refs[0], refs[1:])
  )
  c, dk = q_ref.shape
  dv = v_ref.shape[-1]
  r = sub_chunk
  nb = c // r
  f32 = jnp.float32
  dot = functools.partial(jax.lax.dot_general, precision=precision, preferred_element_type=f32)
  # Sums (not products of inputs) as matmuls: always fp32-exact.
  sum_dot = functools.partial(dot, precision=jax.lax.Precision.HIGHEST)
  state, d_state = s_ref[...], ds_ref[...]  # [Dk, Dv] fp32
  row_k = jax.lax.broadcasted_iota(jnp.int32, (r, dk), 0)
  row_v = jax.lax.broadcasted_iota(jnp.int32, (r, dv), 0)
  if nb > 1:  # Whole-chunk tiles for the off-diagonal sub-blocks.
    q_all = q_ref[...].astype(f32) * scale
    k_all = k_ref[...].astype(f32)
    v_all = v_ref[...].astype(f32)
    do_all = do_ref[...].astype(f32)
    g_all = g_ref[...]
    seg_all = None if seg_ref is None else seg_ref[...]
    pos = jax.lax.broadcasted_iota(jnp.int32, (c, dk), 0)

  def load(blk):
    rows = pl.ds(blk * r, r)
    seg = None if seg_ref is None else seg_ref[rows, :]
    q = q_ref[rows, :].astype(f32) * scale
    k, v, do = (x[rows, :].astype(f32) for x in (k_ref, v_ref, do_ref))
    return rows, q, k, v, do, g_ref[rows, :], seg

  # The chunk's last row: Gamma and the sequence the leaving state belongs to.
  last = pl.ds((nb - 1) * r, r)
  g_last = common.row(g_ref[last, :], row_k, r - 1)  # [1, Dk]
  seg_last = None if seg_ref is None else common.row(seg_ref[last, :], row_k, r - 1)
  # dGamma through the carried state, e^Gamma * rowsum(S * dS), as [R, Dk] equal rows.
  carried = _masked_exp(g_last, _same(seg_last, 0.0))
  d_gamma = carried * sum_dot(jnp.ones((r, dv), f32), state * d_state, common.NT)

  # dq, one query sub-chunk at a time; keeps q * dq (scaled q and unscaled dq) for dg.
  q_dq = []
  for blk in range(nb):
    rows, q, k, v, do, g, seg = load(blk)
    dq = _masked_exp(g, _same(seg, 0.0)) * dot(do, state, common.NT)  # entering state
    if blk:  # keys of earlier sub-chunks, factorised at this sub-chunk's first row
      g_first = common.row(g, row_k, 0)
      seg_first = None if seg is None else common.row(seg, row_k, 0)
      q_fac = _masked_exp(g - g_first, _same(seg, seg_first))
      keys = _both(pos < blk * r, _same(seg_all, seg_first))
      k_dec = k_all * _masked_exp(g_first - g_all, keys)
      dq += q_fac * dot(dot(do, v_all, common.NT), k_dec, common.NN)

    def diag_q(i, acc, g=g, k=k, v=v, do=do, seg=seg):
      g_i, do_i = common.row(g, row_k, i), common.row(do, row_v, i)
      keys = _both(row_k <= i, None if seg is None else seg == common.row(seg, row_k, i))
      decay = _masked_exp(g_i - g, keys)  # [R keys, Dk]
      d_a = jnp.sum(do_i * v, axis=1, keepdims=True)  # [R, 1]: do_i . v_j
      return jnp.where(row_k == i, jnp.sum(d_a * k * decay, axis=0, keepdims=True), acc)

    dq += jax.lax.fori_loop(0, r, diag_q, jnp.zeros((r, dk), f32))
    dq_ref[rows, :] = (dq * scale).astype(dq_ref.dtype)
    q_dq.append(q * dq)

  # dk, dv, one key sub-chunk at a time; dg's per-row terms and dGamma from the keys.
  x_rows = []
  for blk in range(nb):
    rows, q, k, v, do, g, seg = load(blk)
    k_end = _masked_exp(g_last - g, _same(seg, seg_last))  # keys of the last sequence
    dk_ = k_end * dot(v, d_state, common.NT)  # leaving state
    dv_ = dot(k * k_end, d_state, common.NN)
    d_gamma += jnp.sum(k * dk_, axis=0, keepdims=True)
    if blk < nb - 1:  # queries of later sub-chunks, factorised at this sub-chunk's last row
      g_e = common.row(g, row_k, r - 1)
      seg_e = None if seg is None else common.row(seg, row_k, r - 1)
      k_fac = _masked_exp(g_e - g, _same(seg, seg_e))
      queries = _both(pos >= (blk + 1) * r, _same(seg_all, seg_e))
      q_dec = q_all * _masked_exp(g_all - g_e, queries)  # [C, Dk]
      dk_ += k_fac * dot(dot(v, do_all, common.NT), q_dec, common.NN)
      dv_ += dot(dot(k * k_fac, q_dec, common.NT), do_all, common.NN)

    def diag_k(j, acc, q=q, g=g, k=k, v=v, do=do, seg=seg):
      g_j, k_j, v_j = common.row(g, row_k, j), common.row(k, row_k, j), common.row(v, row_v, j)
      queries = _both(row_k >= j, None if seg is None else seg == common.row(seg, row_k, j))
      decay = _masked_exp(g - g_j, queries)  # [R queries, Dk]
      a = jnp.sum(q * k_j * decay, axis=1, keepdims=True)  # [R, 1]: A_ij
      d_a = jnp.sum(do * v_j, axis=1, keepdims=True)  # [R, 1]: do_i . v_j
      acc_k, acc_v = acc
      acc_k = jnp.where(row_k == j, jnp.sum(d_a * q * decay, axis=0, keepdims=True), acc_k)
      acc_v = jnp.where(row_v == j, jnp.sum(a * do, axis=0, keepdims=True), acc_v)
      return acc_k, acc_v

    diag_dk, diag_dv = jax.lax.fori_loop(
      0, r, diag_k, (jnp.zeros((r, dk), f32), jnp.zeros((r, dv), f32))
    )
    dk_ += diag_dk
    dv_ += diag_dv
    dk_ref[rows, :] = dk_.astype(dk_ref.dtype)
    dv_ref[rows, :] = dv_.astype(dv_ref.dtype)
    x_rows.append(q_dq[blk] - k * dk_)

  # dg_t = sum_{i >= t} x_i + dGamma: an upper-triangular matmul inside each sub-chunk plus
  # the sum of the later sub-chunks.
  col = jax.lax.broadcasted_iota(jnp.int32, (r, r), 1)
  upper = (col >= jax.lax.broadcasted_iota(jnp.int32, (r, r), 0)).astype(f32)
  later = jnp.zeros((1, dk), f32)
  for blk in reversed(range(nb)):
    x = x_rows[blk]
    dg_ref[pl.ds(blk * r, r), :] = sum_dot(upper, x, common.NN) + later + d_gamma
    later += jnp.sum(x, axis=0, keepdims=True)


def _state_gradients(q, k, v, g, h0, seg, d_o, d_final, lay, scale, precision):
  """Stage 1 in XLA.

  Returns:
    `(G, entering, d_leaving, d_initial_state)`: the in-chunk cumulative log-gate
    `[B, H, N, C, Dk]`, the state entering every chunk (recomputed) and the gradient of
    the state leaving every chunk, `[B, H, N, Dk, Dv]`, and the gradient entering chunk 0.
  """
  f32 = jnp.float32
  G = jnp.cumsum(lay.chunks(g, f32), axis=-2)
  seg5 = None if seg is None else seg[:, None, :, :, None]
  d_chunk, decay = gla_chunk_lib.chunk_state_updates(
    lay.chunks(k, f32), lay.chunks(v, f32), G, precision, seg5
  )
  _, entering = gla_chunk_lib.scan_chunk_states(h0, d_chunk, decay)
  # dS_in = diag(e^Gamma) dS_out + sum_i (q_i e^{G_i}) do_i^T, backwards over chunks.
  q_state = lay.chunks(q, f32) * scale * _masked_exp(G, _same(seg5, 0))
  from_outputs = jnp.einsum(
    "...ck,...cv->...kv", q_state, lay.chunks(d_o, f32), precision=precision
  )

  def step(d_s, inputs):
    d_own, dec = inputs
    return dec[..., :, None] * d_s + d_own, d_s

  d_h0, d_leaving = jax.lax.scan(
    step,
    d_final.astype(f32),
    (jnp.moveaxis(from_outputs, 2, 0), jnp.moveaxis(decay, 2, 0)),
    reverse=True,
  )
  return G, entering, jnp.moveaxis(d_leaving, 0, 2), d_h0


def backward(q, k, v, g, h0, seg, d_o, d_final, scale, chunk_size, interpret, schedule=None):
  """Gradients `(dq, dk, dv, dg, d_initial_state)` of `kernel._forward` (see module docstring).

  Args:
    q, k: `[B, T, H, Dk]`; v: `[B, T, H, Dv]` (one dtype).
    g: fp32 `[B, T, H, Dk]` log-gate (zero at sequence starts).
    h0: fp32 `[B, H, Dk, Dv]` initial state.
    seg: in-chunk sequence index `[B, N, C]` int, or None.
    d_o: `[B, T, H, Dv]` cotangent of the output; d_final: fp32 `[B, H, Dk, Dv]`.
    scale: Python float multiplying q; chunk_size: C; interpret: as in `gla_chunk_pallas`.
    schedule: "mosaic" runs stage 2 as `backward_mgpu.py`'s Mosaic GPU kernel; else the
      `pallas_call` here.

  Returns:
    dq, dk, dv in their inputs' dtypes, dg fp32 `[B, T, H, Dk]`, d_initial_state fp32.
  """
  lay = common.Layout.of(q, v, chunk_size)
  b, h, n, c, dk, dv = lay.b, lay.h, lay.n, lay.c, lay.dk, lay.dv
  precision = common.matmul_precision(q.dtype)
  f32 = jnp.float32
  G, entering, d_leaving, d_h0 = _state_gradients(
    q, k, v, g, h0, seg, d_o, d_final, lay, scale, precision
  )

  if schedule == "mosaic":
    return _mosaic_stage2(q, k, v, d_o, seg, G, entering, d_leaving, d_h0, lay, scale, interpret)
  arrays = [lay.flat(lay.chunks(x)) for x in (q, k, v)]
  arrays += [lay.flat(G), lay.flat(lay.chunks(d_o))]
  arrays += [lay.flat_states(entering), lay.flat_states(d_leaving)]
  in_specs = [lay.tile(dk), lay.tile(dk), lay.tile(dv), lay.tile(dk), lay.tile(dv)]
  in_specs += [lay.state(), lay.state()]
  if seg is not None:
    arrays.append(lay.segment_tiles(seg))
    in_specs.append(lay.segment_tile())
  r = common.kernel_sub_chunk_size(c)
  itemsize = jnp.dtype(q.dtype).itemsize
  tokens = b * h * n * c
  pair_keys = (c - r) // 2 + r  # average keys per query attended as matmul or row work
  cost = pl.CostEstimate(
    flops=tokens * (8 * dk * dv + 2 * r * dk + 10 * pair_keys * (dk + dv)),
    transcendentals=tokens * (4 * dk + 2 * (c // r) * dk + 2 * r * dk),
    bytes_accessed=tokens * ((4 * dk + 4 * dv) * itemsize + 12 * dk) + 8 * b * h * n * dk * dv,
  )
  out_shape = (
    jax.ShapeDtypeStruct((b * h, n * c, dk), q.dtype),
    jax.ShapeDtypeStruct((b * h, n * c, dk), k.dtype),
    jax.ShapeDtypeStruct((b * h, n * c, dv), v.dtype),
    jax.ShapeDtypeStruct((b * h, n * c, dk), f32),
  )
  dq, dk_, dv_, dg = common.chunk_call(
    functools.partial(_gla_chunk_bwd_kernel, scale=scale, sub_chunk=r, precision=precision),
    lay,
    arrays=arrays,
    in_specs=in_specs,
    out_shape=out_shape,
    out_specs=(lay.tile(dk), lay.tile(dk), lay.tile(dv), lay.tile(dk)),
    cost=cost,
    name="gla_chunk_bwd",
    interpret=interpret,
  )
  return lay.unflat(dq), lay.unflat(dk_), lay.unflat(dv_), lay.unflat(dg), d_h0


def _mosaic_stage2(q, k, v, d_o, seg, G, entering, d_leaving, d_h0, lay, scale, interpret):
  """Stage 2 by the Mosaic GPU kernel, then dg in XLA: the in-chunk reverse cumulative sum of
  `x = q dq - k dk` plus dGamma (the carried state's `e^Gamma rowsum(S dS)`, kept only when
  the chunk's last row is in its first sequence, and the keys' share from the kernel)."""
  from pallas_kernels.gla import backward_mgpu  # pylint: disable=g-import-not-at-top

  b, h, n, c, dk = lay.b, lay.h, lay.n, lay.c, lay.dk
  arrays = [lay.flat(lay.chunks(x)) for x in (q, k, v, d_o)]
  dq, dk_, dv_, x, gamma_keys = backward_mgpu.chunk_gradients(
    *arrays,
    lay.flat(G),
    lay.flat_states(entering),
    lay.flat_states(d_leaving),
    None if seg is None else lay.segment_tiles(seg),
    heads=h,
    scale=scale,
    interpret=interpret,
  )
  x = x.reshape(b, h, n, c, dk)
  suffix = jnp.flip(jnp.cumsum(jnp.flip(x, -2), axis=-2), -2)
  carries = None if seg is None else (seg[:, :, -1] == 0)[:, None, :, None]  # [B, 1, N, 1]
  carried = _masked_exp(G[..., -1, :], carries) * jnp.sum(entering * d_leaving, axis=-1)
  d_gamma = carried + gamma_keys.reshape(b, h, n, dk)
  dg = lay.unflat(lay.flat(suffix + d_gamma[..., None, :]))
  return lay.unflat(dq), lay.unflat(dk_), lay.unflat(dv_), dg, d_h0
