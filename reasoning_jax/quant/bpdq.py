"""BPDQ: bit-plane decomposition on a per-row-group variable grid, fit in the Hessian metric.

"BPDQ: Bit-Plane Decomposition Quantization on a Variable Grid for Large Language Models" (Chen
et al., arXiv:2602.04163), sections 4.2 and 4.3 of `shared/methods/inference.md`; it runs inside
the GPTQ pipeline of "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
Transformers" (Frantar et al., arXiv:2210.17323). Each row-group of `g` columns is
`w_hat = c0 + sum_i c_i b_i` with k bit-planes `b_i in {0, 1}` and its own coefficients.

With the prepared Hessian (dead columns, damping 0.05) and `U = chol(H^-1, upper)`:
  * GAR (`gar=True`): columns by `diag(H)` descending inside each group, groups by their max
    `diag(H)` descending; undone on Q, B and C at the end, so no index metadata is stored.
  * Blocks of `max(128, g)` columns; after each block the usual GPTQ lazy trailing update.
  * Per group `[g0, g1)` of a block (`bpdq_group`): target `Y` = the current (error-updated)
    group, `Wp` = group + rest of block, `U_loc = U[g0:g1, g0:g1]`. Init: 8-bit RTN of `Y` per
    row, keep the k most-significant planes, `C = FIT(Y, P)`. Then `n_iters` times, each
    restarting from the same `Wp`: a GPTQ-style B-step on the grid of `C` (nearest level,
    error `(y - q) / U[t, t]` propagated along `U_rows`), the C-step `C' = FIT(Y, B)`, the delta
    correction `E += (Q_old - Qn) U_loc^-1` applied to the errors *and* the tail, score
    `||E||_F^2`; the lowest-scoring iterate is kept (not the last).
  * FIT: per row, ridge least squares `min ||U_loc^-T (y - [B, 1] c)||^2 + alpha ||c||^2`
    (alpha = 1e-4, in the whitened space; lstsq when singular). `||U_loc^-T r||^2 = r^T S_g r`
    with `S_g` the Schur complement of the later columns (`metric.schur_complement`), so FIT
    and the score both measure the layer objective once later columns compensate.
  * DESIGN CHOICE (`round_to_storage`, spec 4.3 item 6): every fitted `C` is rounded to the
    storage dtype (bf16) before it builds a grid or `Qn`, so the propagated error is that of the
    stored weight. Upstream propagates f32 `Q` and stores bf16 `C`.

Shapes: W `[d_out, d_in]`; inside a group the rows `R = d_out` run in parallel; coefficients
are `[R, k + 1]` ordered (plane 0 .. plane k-1, bias) here and stored as
`[d_in / g, k + 1, d_out]` with the bias first (`reasoning_jax.ops.quant.format`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from reasoning_jax.ops.quant.format import from_bitplanes
from reasoning_jax.quant.metric import dead_columns, prepare_hessian
from reasoning_jax.quant.options import QuantConfig
from reasoning_jax.quant.rtn import rtn_params, rtn_quantize


def _round(c, round_dtype):
  return c if round_dtype is None else c.astype(round_dtype).astype(jnp.float32)


def fit_coefficients(y, planes, u_loc, alpha: float, round_dtype=None) -> jax.Array:
  """FIT: `y [R, g]`, 0/1 `planes [R, g, k]`, upper `u_loc [g, g]` -> `C [R, k + 1]`.

  Whitens `X_r = [P_r, 1]` and `y_r` by `U_loc^-T` (one batched triangular solve), then solves
  the ridge normal equations per row; rows whose solve is not finite (singular, `alpha = 0`)
  fall back to the pseudo-inverse (least squares). With `alpha == 0` the pseudo-inverse is used
  throughout. `round_dtype`: round `C` to the storage dtype (spec 4.3 item 6).
  """
  r, g, k = planes.shape
  design = jnp.concatenate([planes.astype(jnp.float32), jnp.ones((r, g, 1), jnp.float32)], -1)
  rhs = jnp.concatenate([design, y.astype(jnp.float32)[..., None]], -1)  # [R, g, k + 2]
  rhs = rhs.transpose(1, 0, 2).reshape(g, r * (k + 2))
  white = jax.scipy.linalg.solve_triangular(u_loc.T, rhs, lower=True)
  white = white.reshape(g, r, k + 2).transpose(1, 0, 2)
  xt, yt = white[..., : k + 1], white[..., k + 1]
  gram = jnp.einsum("rgi,rgj->rij", xt, xt, precision="highest")
  gram = gram + alpha * jnp.eye(k + 1, dtype=jnp.float32)
  proj = jnp.einsum("rgi,rg->ri", xt, yt, precision="highest")
  lstsq = jnp.einsum("rij,rj->ri", jnp.linalg.pinv(gram, hermitian=True), proj)
  if alpha == 0:
    c = lstsq
  else:
    c = jnp.linalg.solve(gram, proj[..., None])[..., 0]
    ok = jnp.all(jnp.isfinite(c), axis=-1, keepdims=True)
    c = jnp.where(ok, c, lstsq)
  return _round(c, round_dtype)


def all_patterns(k: int) -> jax.Array:
  """`Ball [2^k, k]`: row m holds the bits of m (plane 0 = least significant)."""
  m = jnp.arange(2**k)[:, None]
  return ((m >> jnp.arange(k)[None, :]) & 1).astype(jnp.float32)


def grid_values(coeffs: jax.Array, bits: jax.Array) -> jax.Array:
  """`[B, 1] . C`: `coeffs [R, k + 1]`, 0/1 `bits [R, ..., k]` -> values `[R, ...]`."""
  k = coeffs.shape[-1] - 1
  c = coeffs.reshape(coeffs.shape[0], *([1] * (bits.ndim - 2)), k + 1)
  return jnp.sum(bits * c[..., :k], axis=-1) + c[..., k]


def msb_planes(y: jax.Array, k: int, init_bits: int = 8) -> jax.Array:
  """Init: `init_bits`-bit asymmetric RTN of each row of `y [R, g]`, keep the k most-significant
  planes -> 0/1 float `[R, g, k]` (plane i = bit `init_bits - k + i`)."""
  scale, zero = rtn_params(y, init_bits)
  codes = rtn_quantize(y, scale[:, None], zero[:, None], init_bits)
  shifts = init_bits - k + jnp.arange(k)
  return ((codes[..., None] >> shifts) & 1).astype(jnp.float32)


def bpdq_group(
  wp,
  u_rows,
  offset=0,
  *,
  k: int,
  group_size: int,
  n_iters: int,
  alpha: float,
  init_bits: int = 8,
  round_dtype=None,
):
  """One group of BPDQ: `wp [R, T]` the block state, the group at columns `[offset, offset+g)`
  (later columns = the tail); `u_rows [g, T]` the group's rows of the block's `U` (upper, so
  zero left of the diagonal). Returns a dict of the best iterate:
  `wt [R, T]` (group = Qn, tail compensated), `q [R, g]`, `err [R, g]` (`Y - q = err U_loc`),
  `bits [R, g, k]`, `coeffs [R, k + 1]`, `score` (`||err||_F^2`), and `scores [n_iters]` (the
  score of each iteration).
  """
  r, width = wp.shape
  g = group_size
  y = jax.lax.dynamic_slice(wp, (0, offset), (r, g))
  u_loc = jax.lax.dynamic_slice(u_rows, (0, offset), (g, g))
  d = jnp.diagonal(u_loc)
  tail_mask = jnp.arange(width)[None, :] >= offset + g
  u_tail = jnp.where(tail_mask, u_rows, 0.0)
  patterns = all_patterns(k)
  fit = functools.partial(fit_coefficients, u_loc=u_loc, alpha=alpha, round_dtype=round_dtype)
  coeffs = fit(y, msb_planes(y, k, init_bits))

  def b_step(coeffs):
    levels = grid_values(coeffs, jnp.broadcast_to(patterns, (r, 2**k, k)))  # [R, 2^k]

    def column(t, carry):
      wt, q, err, bits = carry
      yt = jax.lax.dynamic_index_in_dim(wt, offset + t, axis=1, keepdims=False)
      m = jnp.argmin(jnp.square(yt[:, None] - levels), axis=1)
      qt = jnp.take_along_axis(levels, m[:, None], axis=1)[:, 0]
      e = (yt - qt) / d[t]
      wt = wt - e[:, None] * u_rows[t][None, :]
      return wt, q.at[:, t].set(qt), err.at[:, t].set(e), bits.at[:, t].set(patterns[m])

    zeros = jnp.zeros((r, g), jnp.float32)
    init = (wp, zeros, zeros, jnp.zeros((r, g, k), jnp.float32))
    return jax.lax.fori_loop(0, g, column, init)

  def iteration(i, carry):
    coeffs, best, scores = carry
    wt, q_old, err, bits = b_step(coeffs)
    new = fit(y, bits)
    qn = grid_values(new, bits)
    # Delta correction: Y - Qn = (err + dE) U_loc, i.e. dE U_loc = Q_old - Qn.
    delta_e = jax.scipy.linalg.solve_triangular(u_loc.T, (q_old - qn).T, lower=True).T
    err = err + delta_e
    wt = wt - jnp.matmul(delta_e, u_tail, precision="highest")
    wt = jax.lax.dynamic_update_slice(wt, qn, (0, offset))
    score = jnp.sum(jnp.square(err))
    cand = dict(wt=wt, q=qn, err=err, bits=bits, coeffs=new, score=score)
    better = score < best["score"]
    best = jax.tree.map(lambda a, b: jnp.where(better, a, b), cand, best)
    return new, best, scores.at[i].set(score)

  zeros = jnp.zeros((r, g), jnp.float32)
  best = dict(
    wt=wp,
    q=zeros,
    err=zeros,
    bits=jnp.zeros((r, g, k), jnp.float32),
    coeffs=coeffs,
    score=jnp.asarray(jnp.inf, jnp.float32),
  )
  scores = jnp.zeros((n_iters,), jnp.float32)
  _, best, scores = jax.lax.fori_loop(0, n_iters, iteration, (coeffs, best, scores))
  return dict(best, scores=scores)


@functools.partial(
  jax.jit,
  static_argnames=("k", "group_size", "block_size", "n_iters", "alpha", "init_bits", "round_dtype"),
)
def bpdq_core(
  weight,
  inv_chol,
  *,
  k: int,
  group_size: int,
  block_size: int,
  n_iters: int,
  alpha: float,
  init_bits: int = 8,
  round_dtype=None,
):
  """BPDQ on a prepared `W [d_out, d_in]` with `U [d_in, d_in]` (processing order).

  Returns `q [d_out, d_in]`, `bits` int8 0/1 `[d_out, d_in, k]`, `coeffs [G, d_out, k + 1]`,
  `err [d_out, d_in]` (`W - q = err U`), `scores [G, n_iters]`.
  """
  d_out, d_in = weight.shape
  g, bs = group_size, block_size
  n_blocks = -(-d_in // bs)
  width = n_blocks * bs
  per_block = bs // g
  extra = width - d_in
  w = jnp.pad(weight.astype(jnp.float32), ((0, 0), (0, extra)))
  u = jnp.pad(inv_chol.astype(jnp.float32), ((0, extra), (0, extra)))
  u = u.at[jnp.arange(d_in, width), jnp.arange(d_in, width)].set(1.0)
  cols = jnp.arange(width)
  group = functools.partial(
    bpdq_group,
    k=k,
    group_size=g,
    n_iters=n_iters,
    alpha=alpha,
    init_bits=init_bits,
    round_dtype=round_dtype,
  )

  def block_step(b, carry):
    w, q, bits, coeffs, err, scores = carry
    i1 = b * bs
    ub = jax.lax.dynamic_slice(u, (i1, i1), (bs, bs))

    def group_step(j, c2):
      wb, q, bits, coeffs, err, scores = c2
      g0 = j * g
      out = group(wb, jax.lax.dynamic_slice(ub, (g0, 0), (g, bs)), g0)
      col, grp = i1 + g0, b * per_block + j
      q = jax.lax.dynamic_update_slice(q, out["q"], (0, col))
      bits = jax.lax.dynamic_update_slice(bits, out["bits"].astype(jnp.int8), (0, col, 0))
      err = jax.lax.dynamic_update_slice(err, out["err"], (0, col))
      coeffs = coeffs.at[grp].set(out["coeffs"])
      scores = scores.at[grp].set(out["scores"])
      return out["wt"], q, bits, coeffs, err, scores

    wb = jax.lax.dynamic_slice(w, (0, i1), (d_out, bs))
    out = jax.lax.fori_loop(0, per_block, group_step, (wb, q, bits, coeffs, err, scores))
    _, q, bits, coeffs, err, scores = out
    eb = jax.lax.dynamic_slice(err, (0, i1), (d_out, bs))
    u_rows = jnp.where(
      cols[None, :] >= i1 + bs, jax.lax.dynamic_slice(u, (i1, 0), (bs, width)), 0.0
    )
    w = w - jnp.matmul(eb, u_rows, precision="highest")
    return w, q, bits, coeffs, err, scores

  n_groups = width // g
  carry = (
    w,
    jnp.zeros((d_out, width), jnp.float32),
    jnp.zeros((d_out, width, k), jnp.int8),  # 0/1 planes, kept small for large weights
    jnp.zeros((n_groups, d_out, k + 1), jnp.float32),
    jnp.zeros((d_out, width), jnp.float32),
    jnp.zeros((n_groups, n_iters), jnp.float32),
  )
  _, q, bits, coeffs, err, scores = jax.lax.fori_loop(0, n_blocks, block_step, carry)
  real = d_in // g
  return dict(
    q=q[:, :d_in],
    bits=bits[:, :d_in],
    coeffs=coeffs[:real],
    err=err[:, :d_in],
    scores=scores[:real],
  )


def gar_order(hessian: jax.Array, group_size: int):
  """Group-aware reordering: `(perm [d_in], group_order [d_in / g])`. Inside each group the
  columns by `diag(H)` descending, the groups by their max `diag(H)` descending (stable; dead
  columns count as diag 1). Processed column p is original column `perm[p]`; processed group p
  is original group `group_order[p]`."""
  diag = jnp.diagonal(hessian)
  diag = jnp.where(dead_columns(hessian), 1.0, diag).reshape(-1, group_size)
  n_groups = diag.shape[0]
  within = jnp.argsort(-diag, axis=1, stable=True) + group_size * jnp.arange(n_groups)[:, None]
  group_order = jnp.argsort(-jnp.max(diag, axis=1), stable=True)
  return within[group_order].reshape(-1).astype(jnp.int32), group_order.astype(jnp.int32)


def bpdq(weight, hessian, config: QuantConfig, *, return_info: bool = False):
  """BPDQ of `W [d_out, d_in]` with `H [d_in, d_in]` as a `QuantizedWeight` (`kind="bitplane"`,
  in the original column order); inputs trusted beyond the Hessian checks
  (`reasoning_jax.quant.quantize` validates the rest).

  `return_info=True` also returns a dict: `q` (the propagated dequantised weight, original
  order), `scores [G, n_iters]` (processing order), `perm`, `group_order` (None without GAR),
  `err` and `inv_chol` (processing order), `damp` (the damping finally used).
  """
  weight = jnp.asarray(weight, jnp.float32)
  g, k = config.group_size, config.bits
  perm = group_order = None
  if config.gar:
    perm, group_order = gar_order(jnp.asarray(hessian, jnp.float32), g)
  prep = prepare_hessian(hessian, weight, config.damp_value, perm=perm)
  out = bpdq_core(
    prep.weight,
    prep.inv_chol,
    k=k,
    group_size=g,
    block_size=config.block_value,
    n_iters=config.n_iters,
    alpha=float(config.alpha),
    init_bits=config.init_bits,
    round_dtype=config.round_dtype,
  )
  q, bits, coeffs = out["q"], out["bits"], out["coeffs"]
  if perm is not None:
    inverse = jnp.argsort(perm)
    q, bits = q[:, inverse], bits[:, inverse]
    coeffs = coeffs[jnp.argsort(group_order)]
  planes = bits.transpose(2, 0, 1).astype(jnp.int32)  # [k, d_out, d_in]
  stored = jnp.concatenate([coeffs[..., k:], coeffs[..., :k]], axis=-1)  # bias first
  qw = from_bitplanes(
    planes, stored.transpose(0, 2, 1), group_size=g, method="bpdq", storage_dtype=config.storage
  )
  if not return_info:
    return qw
  info = dict(
    q=q,
    scores=out["scores"],
    perm=perm,
    group_order=group_order,
    err=out["err"],
    inv_chol=prep.inv_chol,
    damp=prep.damp,
  )
  return qw, info
