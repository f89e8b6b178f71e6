"""Fused Pallas backward of the OVQ chunk readout.

Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922),
readout of spec section 3.2 (/shared/methods/memory_attention.md). The forward kernel
(`kernel.py`) computes, per (batch, head), one softmax over the dictionary slots and the
chunk's visible exact keys,

  s_i = q'.x_i + bias_i,   o = sum_i softmax(s)_i y_i,

with q' = beta q (beta folded in by XLA), x/y the dictionary keys/values (bias
`log n - (beta/2)(||dk||^2 + 1)` plus 0 / -inf for a query that does not read the
dictionary) and the exact keys/values (bias `-beta` plus the 0 / -inf key mask). It also
writes the row logsumexp `lse`. This kernel recomputes the probabilities from `lse` and
returns every cotangent of that core in one pass over the same blocks
(FlashAttention-2, arXiv:2307.08691, Algorithm 2, with the whole query chunk in one
program, so no accumulation crosses programs):

  p = exp(s - lse),  dy = p^T dO,  dp = dO y^T,  ds = p (dp - delta),
  dq' = ds x,  dx = ds^T q',  dbias = column sums of ds,  with delta = rowsum(dO * o).

Fused (in the kernel): the recomputed logits and probabilities, dq' (accumulated over
the dictionary blocks and the key block), the dictionary's d(keys), d(values) and
d(bias) per block, and the exact keys' d(keys), d(values) and d(bias). Left to XLA (the
autodiff of the wrapper in `kernel.py`): delta, the chain rule from dq' to q and beta,
and from the biases to beta, the dictionary keys (the `||dk||^2` term) and the counts
(`1/n` through `log n`; counts never carry gradient inside OVQ, their cotangent is
returned for completeness). The masks get no cotangent. The write of the chunk
(seeding, assignment, running-mean update) is differentiated by XLA as before.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels.ovq import blocks


def _backward_kernel(
  q_ref,
  dk_ref,
  dv_ref,
  db_ref,
  k_ref,
  v_ref,
  kb_ref,
  mask_ref,
  qdb_ref,
  lse_ref,
  do_ref,
  delta_ref,
  dq_ref,
  dkeys_ref,
  dvalues_ref,
  dkb_ref,
  ddk_ref,
  ddv_ref,
  ddb_ref,
  *,
  num_blocks: int,
):
  """One (batch, head). Inputs as the forward's (q' `[L, D]`, dictionary blocks
  `[nb, bn, *]`, keys `[Lk, D]`, values `[Lk, Dv]`, kb `[1, Lk]`, mask `[L, Lk]`, qdb
  `[L, 1]`) plus lse `[L, 1]`, dO `[L, Dv]`, delta `[L, 1]`; outputs the cotangents of
  q', keys, values, kb and of the dictionary blocks (keys, values, bias)."""
  f32 = jnp.float32
  q = q_ref[...].astype(f32)
  lse, do, delta, qdb = lse_ref[...], do_ref[...].astype(f32), delta_ref[...], qdb_ref[...]

  def grads(s, y):
    """(ds, dy) of one block with logits s `[L, n]` and values y `[n, Dv]`."""
    p = jnp.exp(s - lse)
    dy = blocks.dot(p.T, do)
    ds = p * (blocks.dot(do, y, blocks.NT) - delta)
    return ds, dy

  def dictionary_block(j, dq):
    x, y = dk_ref[j].astype(f32), dv_ref[j].astype(f32)
    s = blocks.dot(q, x, blocks.NT) + db_ref[j] + qdb  # [L, bn]
    ds, dy = grads(s, y)
    ddv_ref[j] = dy
    ddk_ref[j] = blocks.dot(ds.T, q)
    ddb_ref[j] = jnp.sum(ds, axis=0, keepdims=True)
    return dq + blocks.dot(ds, x)

  dq = jax.lax.fori_loop(0, num_blocks, dictionary_block, jnp.zeros(q.shape, f32))
  x, y = k_ref[...].astype(f32), v_ref[...].astype(f32)
  s = blocks.dot(q, x, blocks.NT) + kb_ref[...] + mask_ref[...]  # [L, Lk]
  ds, dy = grads(s, y)
  dvalues_ref[...] = dy
  dkeys_ref[...] = blocks.dot(ds.T, q)
  dkb_ref[...] = jnp.sum(ds, axis=0, keepdims=True)
  dq_ref[...] = dq + blocks.dot(ds, x)


def readout_backward(
  q_scaled,
  keys,
  values,
  key_bias,
  mask_bias,
  dict_query_bias,
  dict_k,
  dict_v,
  dict_bias,
  lse,
  out,
  cotangent,
  *,
  heads: int,
  block_n: int,
  interpret,
):
  """Cotangents of the readout core (see the module docstring) from the fused kernel.

  Args:
    q_scaled: `beta q`, `[BH, L, D]` fp32.
    keys, values: `[BH, Lk, D]`, `[BH, Lk, Dv]` fp32.
    key_bias: `[BH, 1, Lk]` (`-beta`).
    mask_bias: `[B, L, Lk]`, 0 where query i reads key j, -inf elsewhere.
    dict_query_bias: `[B, L, 1]`, 0 where a query reads the dictionary, -inf elsewhere.
    dict_k, dict_v: `[BH, N, D]`, `[BH, N, Dv]` fp32; dict_bias `[BH, N]`.
    lse: the forward's row logsumexp `[BH, L, 1]` (0 for a row that reads nothing).
    out: the forward's output `[BH, L, Dv]`; cotangent: dO `[BH, L, Dv]`.
    heads: H (programs i and i + 1 of one batch row share mask_bias and dict_query_bias).
    block_n, interpret: as in the forward.

  Returns:
    `(dq_scaled, dkeys, dvalues, dkey_bias, ddict_k, ddict_v, ddict_bias)`, shaped like
    the corresponding inputs, fp32.
  """
  bh, l, d = q_scaled.shape
  lk, dv = keys.shape[1], values.shape[-1]
  n = dict_k.shape[1]
  f32 = jnp.float32
  cotangent = cotangent.astype(f32)
  delta = jnp.sum(cotangent * out, axis=-1, keepdims=True)  # [BH, L, 1]
  arrays = (q_scaled, dict_k, dict_v, dict_bias, keys, values, key_bias, mask_bias)
  arrays += (dict_query_bias, lse, cotangent, delta)

  def call(compiler_params, power_of_two, q, dict_k, dict_v, dict_bias, *rest):
    bn, n_pad = blocks.dictionary_blocking(n, block_n, power_of_two)
    nb = n_pad // bn
    dk_blocks = blocks.pad_slots(dict_k, n_pad).reshape(bh, nb, bn, d)
    dv_blocks = blocks.pad_slots(dict_v, n_pad).reshape(bh, nb, bn, dv)
    db_blocks = blocks.pad_slots(dict_bias, n_pad, -jnp.inf).reshape(bh, nb, 1, bn)
    whole, per_row = blocks.whole, functools.partial(blocks.per_row, heads)
    cost = pl.CostEstimate(
      flops=4 * bh * l * (n_pad + lk) * (2 * d + dv),
      transcendentals=bh * l * (n_pad + lk),
      bytes_accessed=4 * bh * (2 * (n_pad + lk) * (d + dv) + 2 * l * (d + dv) + n_pad + lk),
    )
    shapes = [(l, d), (lk, d), (lk, dv), (1, lk), (nb, bn, d), (nb, bn, dv), (nb, 1, bn)]
    grads = pl.pallas_call(
      functools.partial(_backward_kernel, num_blocks=nb),
      out_shape=[jax.ShapeDtypeStruct((bh, *shape), f32) for shape in shapes],
      grid=(bh,),
      in_specs=[
        whole(l, d),
        whole(nb, bn, d),
        whole(nb, bn, dv),
        whole(nb, 1, bn),
        whole(lk, d),
        whole(lk, dv),
        whole(1, lk),
        per_row(l, lk),
        per_row(l, 1),
        whole(l, 1),
        whole(l, dv),
        whole(l, 1),
      ],
      out_specs=[whole(*shape) for shape in shapes],
      compiler_params=compiler_params,
      cost_estimate=cost,
      interpret=interpret,
      name="ovq_chunk_readout_bwd",
    )(q, dk_blocks, dv_blocks, db_blocks, *rest)
    dq, dkeys, dvalues, dkb, ddk, ddv, ddb = grads
    ddk = ddk.reshape(bh, n_pad, d)[:, :n]
    ddv = ddv.reshape(bh, n_pad, dv)[:, :n]
    ddb = ddb.reshape(bh, n_pad)[:, :n]
    return dq, dkeys, dvalues, dkb, ddk, ddv, ddb

  return blocks.run_per_platform(call, arrays, interpret)
