"""GPTQ: column-by-column RTN with optimal error compensation in the Hessian metric.

"GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers" (Frantar
et al., arXiv:2210.17323), section 3.2 of `shared/methods/inference.md`. With the prepared
Hessian (dead columns, damping; `reasoning_jax.quant.metric.prepare_hessian`) and
`U = chol(H^-1, upper)`, for each block `[i1, i2)` of `block_size` columns:

  for j in i1..i2-1:
    at a group start: (s, z) <- RTN min-max params of the current W[:, j:j+g]
    q_j = quant(W[:, j]);  E[:, j] = (W[:, j] - q_j) / U[j, j]
    W[:, j:i2] -= E[:, j] (x) U[j, j:i2]          (within-block update)
  W[:, i2:] -= E[:, i1:i2] @ U[i1:i2, i2:]        (lazy batch update)

All rows are processed in parallel; the column walk is a `lax.fori_loop` inside a `fori_loop`
over blocks (fixed shapes: the trailing update multiplies by the block's rows of `U` masked to
the later columns), so the whole core jits once per shape. Group parameters come from the
*current* weights, i.e. including the within-block updates of earlier columns (spec 3.2; the
unblocked algorithm of the paper); the original reference code reads them from the block-stale
copy when `g < block_size`, a small difference we do not reproduce. When a group extends past
the block (`g > block_size`), the part beyond it gets the pending block update first, so the
result equals the unblocked algorithm in exact arithmetic for every `block_size`.

Options: `act_order` (columns by `diag(H)` descending); `static_groups` (params from the
original weights, codes stored in the original order without `perm`); without static groups an
act-ordered weight keeps the permuted order and records `QuantizedWeight.perm`. With `H = I`
the result equals RTN bit for bit (U is diagonal, so nothing propagates).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from reasoning_jax.ops.quant.format import from_codes
from reasoning_jax.quant.metric import prepare_hessian
from reasoning_jax.quant.options import QuantConfig
from reasoning_jax.quant.rtn import rtn_dequantize, rtn_params, rtn_quantize


def _pad_to(weight, inv_chol, width):
  """Zero columns for `W`; identity (no coupling) for `U`."""
  d_out, d_in = weight.shape
  extra = width - d_in
  w = jnp.pad(weight, ((0, 0), (0, extra)))
  u = jnp.pad(inv_chol, ((0, extra), (0, extra)))
  idx = jnp.arange(d_in, width)
  return w, u.at[idx, idx].set(1.0)


@functools.partial(
  jax.jit, static_argnames=("bits", "group_size", "block_size", "sym", "round_dtype")
)
def gptq_core(
  weight: jax.Array,
  inv_chol: jax.Array,
  static_scale: jax.Array | None = None,
  static_zero: jax.Array | None = None,
  static_group: jax.Array | None = None,
  *,
  bits: int,
  group_size: int,
  block_size: int,
  sym: bool = False,
  round_dtype=None,
):
  """GPTQ on a prepared `W [d_out, d_in]` with `U [d_in, d_in]` (processing order).

  Static groups: `static_scale`, `static_zero` `[G, d_out]` and `static_group` int `[d_in]`
  (the group of each processed column) replace the running group parameters.
  Returns `(codes int32 [d_out, d_in], q float32 [d_out, d_in], scales [G, d_out],
  zeros [G, d_out], err [d_out, d_in])` with `W_prepared - q = err @ U` (GPTQ's identity).
  Dynamic scales/zeros are in processing order; static ones are returned as given.
  """
  d_out, d_in = weight.shape
  g, bs = group_size, block_size
  n_blocks = -(-d_in // bs)
  width = n_blocks * bs
  n_groups = -(-width // g)
  w, u = _pad_to(weight.astype(jnp.float32), inv_chol.astype(jnp.float32), width + g)
  use_static = static_scale is not None
  if use_static:
    static_group = jnp.pad(static_group, (0, width + g - d_in))
  cols = jnp.arange(width + g)

  def block_step(b, carry):
    w, codes, q, err, scales, zeros, scale, zero = carry
    i1 = b * bs
    wb = jax.lax.dynamic_slice(w, (0, i1), (d_out, bs))
    ub = jax.lax.dynamic_slice(u, (i1, i1), (bs, bs))
    u_next = jax.lax.dynamic_slice(u, (i1, i1 + bs), (bs, g))  # rows of this block, next g cols
    w_next = jax.lax.dynamic_slice(w, (0, i1 + bs), (d_out, g))

    def column_step(j, c2):
      wb, eb, qb, cb, scale, zero, scales, zeros = c2
      col = i1 + j
      if use_static:
        grp = static_group[col]
        scale, zero = static_scale[grp], static_zero[grp]
      else:

        def new_params(args):
          scale, zero, scales, zeros = args
          pending = w_next - jnp.matmul(eb, u_next, precision="highest")
          window = jax.lax.dynamic_slice(jnp.concatenate([wb, pending], 1), (0, j), (d_out, g))
          scale, zero = rtn_params(window, bits, sym=sym, round_dtype=round_dtype)
          grp = col // g
          return scale, zero, scales.at[grp].set(scale), zeros.at[grp].set(zero)

        scale, zero, scales, zeros = jax.lax.cond(
          col % g == 0, new_params, lambda a: a, (scale, zero, scales, zeros)
        )
      wj = wb[:, j]
      code = rtn_quantize(wj, scale, zero, bits)
      qj = rtn_dequantize(code, scale, zero)
      e = (wj - qj) / ub[j, j]
      wb = wb - e[:, None] * ub[j][None, :]
      eb = eb.at[:, j].set(e)
      qb = qb.at[:, j].set(qj)
      cb = cb.at[:, j].set(code)
      return wb, eb, qb, cb, scale, zero, scales, zeros

    zeros_b = jnp.zeros((d_out, bs), jnp.float32)
    init = (wb, zeros_b, zeros_b, jnp.zeros((d_out, bs), jnp.int32))
    out = jax.lax.fori_loop(0, bs, column_step, (*init, scale, zero, scales, zeros))
    _, eb, qb, cb, scale, zero, scales, zeros = out
    u_rows = jax.lax.dynamic_slice(u, (i1, 0), (bs, width + g))
    u_rows = jnp.where(cols[None, :] >= i1 + bs, u_rows, 0.0)
    w = w - jnp.matmul(eb, u_rows, precision="highest")
    codes = jax.lax.dynamic_update_slice(codes, cb, (0, i1))
    q = jax.lax.dynamic_update_slice(q, qb, (0, i1))
    err = jax.lax.dynamic_update_slice(err, eb, (0, i1))
    return w, codes, q, err, scales, zeros, scale, zero

  full = jnp.zeros((d_out, width), jnp.float32)
  params = jnp.ones((n_groups, d_out), jnp.float32)
  ones = jnp.ones((d_out,), jnp.float32)
  carry = (w, jnp.zeros((d_out, width), jnp.int32), full, full, params, params, ones, ones)
  _, codes, q, err, scales, zeros, _, _ = jax.lax.fori_loop(0, n_blocks, block_step, carry)
  if use_static:
    scales, zeros = static_scale, static_zero
  else:
    scales, zeros = scales[: d_in // g], zeros[: d_in // g]
  return codes[:, :d_in], q[:, :d_in], scales, zeros, err[:, :d_in]


def act_order_perm(hessian: jax.Array) -> jax.Array:
  """Columns by `diag(H)` descending (dead columns count as diag 1), stable."""
  diag = jnp.diagonal(hessian)
  diag = jnp.where(diag == 0, 1.0, diag)
  return jnp.argsort(-diag, stable=True).astype(jnp.int32)


def gptq(weight, hessian, config: QuantConfig, *, return_info: bool = False):
  """GPTQ of `W [d_out, d_in]` with `H [d_in, d_in]` as a `QuantizedWeight`; inputs trusted
  beyond the Hessian checks (`reasoning_jax.quant.quantize` validates the rest).

  `return_info=True` also returns a dict: `q` (dequantised, processing order), `err`,
  `inv_chol`, `perm` (or None), `damp` (the damping finally used).
  """
  weight = jnp.asarray(weight, jnp.float32)
  g = config.group_size
  perm = act_order_perm(jnp.asarray(hessian, jnp.float32)) if config.act_order else None
  prep = prepare_hessian(hessian, weight, config.damp_value, perm=perm)
  static = {}
  if config.static_groups:
    # Params from the original (dead-zeroed) weights in the original column order.
    original = prep.weight if perm is None else prep.weight[:, jnp.argsort(perm)]
    d_out, d_in = original.shape
    groups = original.reshape(d_out, d_in // g, g)
    scale, zero = rtn_params(groups, config.bits, sym=config.sym, round_dtype=config.round_dtype)
    order = jnp.arange(d_in) if perm is None else perm
    static = dict(static_scale=scale.T, static_zero=zero.T, static_group=order // g)
  codes, q, scales, zeros, err = gptq_core(
    prep.weight,
    prep.inv_chol,
    **static,
    bits=config.bits,
    group_size=g,
    block_size=config.block_value,
    sym=config.sym,
    round_dtype=config.round_dtype,
  )
  stored_perm = perm
  if config.static_groups and perm is not None:
    codes = codes[:, jnp.argsort(perm)]  # back to the original order: no perm stored
    stored_perm = None
  qw = from_codes(
    codes,
    scales,
    zeros,
    bits=config.bits,
    group_size=g,
    perm=stored_perm,
    method="gptq",
    storage_dtype=config.storage,
  )
  if not return_info:
    return qw
  info = dict(q=q, err=err, inv_chol=prep.inv_chol, perm=perm, damp=prep.damp)
  return qw, info
