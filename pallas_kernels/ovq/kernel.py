"""Pallas kernels for the OVQ chunk step: the readout (hot loop 1) with its fused backward,
and the assignment (hot loop 2) of the chunked form.

Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922),
spec sections 3.2-3.3 of /shared/methods/memory_attention.md. For one chunk and
one (batch, head), the L queries read a single softmax over

  * the dictionary: N slots with logits `beta q.dk_i + bias_i`, where
    `bias_i = log n_i - (beta/2)(||dk_i||^2 + 1)` (`-inf` for inactive slots, for
    the padding up to a whole number of blocks, and for a query whose dictionary
    mask is False), and
  * the visible exact keys: `beta q.k_j - beta` where the key mask `[L, Lk]` is True
    (causal within the chunk; on packed rows a 2L window restricted to the query's
    own segment chunk, see `reasoning_jax.ops.ovq.segments`),

with a flash-style online softmax (fp32 running max, normaliser and accumulator)
over dictionary blocks of `block_n` slots, then the key block. The kernel also
writes the row logsumexp, from which the backward kernel (`backward.py`) recomputes
the probabilities.

Kernel layout (portable Pallas subset: BlockSpec, grid, fori_loop):
  * grid `(B*H,)`, one program per (batch, head); its blocks are the whole chunk
    and the whole padded dictionary, stored as `[N_pad/bn, bn, D]` (`blocks.py`);
  * beta is folded in by XLA (q is passed as `beta q`), as are the per-slot and
    per-key biases and the masks (0 / -inf additive, shared by a row's heads), so
    the kernel has no scalar inputs. The XLA around the kernel core is
    differentiated by autodiff; the core has a `jax.custom_vjp` whose backward is
    the fused kernel of `backward.py` (what is fused is listed there).
The assignment kernel (`ovq_chunk_assign_pallas`, spec hot loop 2) finds each chunk
key's nearest candidate centre with the same blocking: a running (min distance, first
index) over dictionary blocks, never writing the `[L, N]` distances. The rest of the
chunked form (farthest-first seeding, running-mean update as one-hot matmuls, and
their gradients) stays in XLA (`reasoning_jax.ops.ovq.chunk`); `ovq_chunk_pallas` is
that scan with both kernels plugged in, and `ovq_reference` is the XLA chunk form.

DESIGN CHOICE / limits:
  * the whole dictionary of one head sits in fast memory: `2 N_pad (D + Dv) * 4`
    bytes double-buffered (1 MiB per buffer set for N = 1024, D = Dv = 128); the
    backward adds as much again for the dictionary cotangents;
  * inputs are fp32 (the chunked form normalises in fp32 and the state is fp32);
  * block_n is clamped to `N` rounded up to 128; on GPU (Triton) the padded
    dictionary is a power of two (Triton blocks must be) and L, D, Dv must be
    powers of two of at least 16.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels.ovq import backward, blocks
from pallas_kernels.ovq.blocks import dictionary_blocking
from reasoning_jax.ops.ovq import chunk as chunk_lib
from reasoning_jax.ops.ovq import common
from reasoning_jax.ops.ovq.options import make_options


def _readout_kernel(
  q_ref,
  dk_ref,
  dv_ref,
  db_ref,
  k_ref,
  v_ref,
  kb_ref,
  mask_ref,
  qdb_ref,
  o_ref,
  lse_ref,
  *,
  num_blocks: int,
):
  """One (batch, head). q `[L, D]`, k `[Lk, D]`, v `[Lk, Dv]`, kb `[1, Lk]`, mask `[L, Lk]`,
  qdb `[L, 1]`; dk `[nb, bn, D]`, dv `[nb, bn, Dv]`, db `[nb, 1, bn]`; o `[L, Dv]`, lse
  `[L, 1]` (the row logsumexp for the backward; 0 for a row that reads nothing)."""
  f32 = jnp.float32
  q = q_ref[...].astype(f32)  # beta * q
  qdb = qdb_ref[...]
  l = q.shape[0]

  def online(carry, s, values):
    m, total, acc = carry
    m_new = jnp.maximum(m, jnp.max(s, axis=1, keepdims=True))
    alpha = jnp.exp(m - m_new)
    p = jnp.exp(s - m_new)
    total = alpha * total + jnp.sum(p, axis=1, keepdims=True)
    return m_new, total, alpha * acc + blocks.dot(p, values)

  def dictionary_block(j, carry):
    s = blocks.dot(q, dk_ref[j].astype(f32), blocks.NT) + db_ref[j] + qdb  # [L, bn]
    return online(carry, s, dv_ref[j].astype(f32))

  carry = (
    jnp.full((l, 1), blocks.MASK_VALUE, f32),
    jnp.zeros((l, 1), f32),
    jnp.zeros((l, o_ref.shape[-1]), f32),
  )
  carry = jax.lax.fori_loop(0, num_blocks, dictionary_block, carry)
  s = blocks.dot(q, k_ref[...].astype(f32), blocks.NT) + kb_ref[...] + mask_ref[...]  # [L, Lk]
  m, total, acc = online(carry, s, v_ref[...].astype(f32))
  seen = total > 0
  o_ref[...] = (acc / jnp.where(seen, total, 1.0)).astype(o_ref.dtype)
  lse_ref[...] = jnp.where(seen, m + jnp.log(jnp.where(seen, total, 1.0)), 0.0)


def _core_forward(
  q_scaled,
  keys,
  values,
  key_bias,
  mask_bias,
  dict_query_bias,
  dict_k,
  dict_v,
  dict_bias,
  heads,
  block_n,
  interpret,
):
  """The kernel on flat `[BH, ...]` inputs; returns `(o [BH, L, Dv], lse [BH, L, 1])` fp32."""
  bh, l, d = q_scaled.shape
  lk, dv = keys.shape[1], values.shape[-1]
  n = dict_k.shape[1]
  f32 = jnp.float32

  def call(compiler_params, power_of_two, q, dict_k, dict_v, dict_bias, *rest):
    bn, n_pad = dictionary_blocking(n, block_n, power_of_two)
    nb = n_pad // bn
    dk_blocks = blocks.pad_slots(dict_k, n_pad).reshape(bh, nb, bn, d)
    dv_blocks = blocks.pad_slots(dict_v, n_pad).reshape(bh, nb, bn, dv)
    db_blocks = blocks.pad_slots(dict_bias, n_pad, -jnp.inf).reshape(bh, nb, 1, bn)
    whole, per_row = blocks.whole, functools.partial(blocks.per_row, heads)
    cost = pl.CostEstimate(
      flops=2 * bh * l * (n_pad + lk) * (d + dv),
      transcendentals=bh * l * (n_pad + lk),
      bytes_accessed=4 * bh * ((n_pad + lk) * (d + dv) + l * (d + dv) + n_pad + lk),
    )
    return pl.pallas_call(
      functools.partial(_readout_kernel, num_blocks=nb),
      out_shape=(
        jax.ShapeDtypeStruct((bh, l, dv), f32),
        jax.ShapeDtypeStruct((bh, l, 1), f32),
      ),
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
      ],
      out_specs=(whole(l, dv), whole(l, 1)),
      compiler_params=compiler_params,
      cost_estimate=cost,
      interpret=interpret,
      name="ovq_chunk_readout",
    )(q, dk_blocks, dv_blocks, db_blocks, *rest)

  arrays = (q_scaled, dict_k, dict_v, dict_bias, keys, values, key_bias, mask_bias)
  return blocks.run_per_platform(call, arrays + (dict_query_bias,), interpret)


@functools.partial(jax.custom_vjp, nondiff_argnums=(9, 10, 11))
def _core(
  q_scaled,
  keys,
  values,
  key_bias,
  mask_bias,
  dict_query_bias,
  dict_k,
  dict_v,
  dict_bias,
  heads,
  block_n,
  interpret,
):
  return _core_forward(
    q_scaled,
    keys,
    values,
    key_bias,
    mask_bias,
    dict_query_bias,
    dict_k,
    dict_v,
    dict_bias,
    heads,
    block_n,
    interpret,
  )[0]


def _core_fwd(*args):
  out, lse = _core_forward(*args)
  return out, args[:9] + (lse, out)


def _core_bwd(heads, block_n, interpret, residuals, cotangent):
  *inputs, lse, out = residuals
  dq, dkeys, dvalues, dkb, ddk, ddv, ddb = backward.readout_backward(
    *inputs, lse, out, cotangent, heads=heads, block_n=block_n, interpret=interpret
  )
  mask_bias, dict_query_bias = inputs[4], inputs[5]  # Constants: zero cotangents.
  no_grad = jnp.zeros_like
  return dq, dkeys, dvalues, dkb, no_grad(mask_bias), no_grad(dict_query_bias), ddk, ddv, ddb


_core.defvjp(_core_fwd, _core_bwd)


def _readout(
  q,
  keys,
  values,
  key_mask,
  dict_mask,
  dict_k,
  dict_v,
  counts,
  beta_h,
  renormalize,
  block_n,
  interpret,
):
  """Biases and beta in XLA (differentiated by autodiff) around the kernel core."""
  b, h, l, d = q.shape
  lk = keys.shape[2]
  f32 = jnp.float32
  flat = lambda x: x.reshape(b * h, *x.shape[2:]).astype(f32)
  bias = common.dictionary_bias(dict_k, counts, beta_h, renormalize)  # [B, H, N]
  q_scaled = q * beta_h[:, None, None]
  key_bias = jnp.broadcast_to(-beta_h[None, :, None, None], (b, h, 1, lk))
  mask_bias = jnp.where(key_mask, 0.0, -jnp.inf).astype(f32)  # [B, L, Lk]
  if dict_mask is None:
    dict_query_bias = jnp.zeros((b, l, 1), f32)
  else:
    dict_query_bias = jnp.where(dict_mask, 0.0, -jnp.inf).astype(f32)[..., None]
  out = _core(
    flat(q_scaled),
    flat(keys),
    flat(values),
    flat(key_bias),
    mask_bias,
    dict_query_bias,
    flat(dict_k),
    flat(dict_v),
    flat(bias),
    h,
    block_n,
    interpret,
  )
  return out.reshape(b, h, l, -1)


def ovq_chunk_readout_pallas(
  q,
  keys,
  values,
  key_mask,
  dict_mask,
  dict_k,
  dict_v,
  counts,
  beta_h,
  *,
  renormalize: bool = False,
  block_n: int = 256,
  interpret: Any = None,
) -> jax.Array:
  """The chunk readout of `reasoning_jax.ops.ovq.chunk.xla_chunk_readout`, as a kernel.

  Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922).
  Differentiable in q, keys, values, dict_k, dict_v, counts and beta_h; the backward is
  the fused kernel of `pallas_kernels.ovq.backward` (plus XLA autodiff of the biases).

  Args:
    q: unit queries `[B, H, L, D]` fp32.
    keys: unit keys `[B, H, Lk, D]` fp32; values `[B, H, Lk, Dv]` fp32 (the chunk's, or
      on packed rows the previous and the current chunk's).
    key_mask: `[B, L, Lk]` bool, True where query i reads key j
      (`chunk.causal_key_mask(key_valid)` for one unpacked chunk).
    dict_mask: `[B, L]` bool or None (every query reads the dictionary).
    dict_k, dict_v, counts: the dictionary `[B, H, N, D]`, `[B, H, N, Dv]`, `[B, H, N]` fp32.
    beta_h: `[H]` fp32 inverse temperatures.
    renormalize: the stored keys are unit vectors (`||dk||^2` taken as 1).
    block_n: dictionary slots per block of the online softmax (clamped to N
      rounded up to 128; default 256).
    interpret: None interprets unless the default backend is TPU or GPU; True/False
      force it; a `pltpu.InterpretParams` selects the TPU interpreter.

  Returns:
    `[B, H, L, Dv]` fp32; a query that reads nothing gives 0.
  """
  if interpret is None:
    interpret = jax.default_backend() not in ("tpu", "gpu")
  return _readout(
    q,
    keys,
    values,
    key_mask,
    dict_mask,
    dict_k,
    dict_v,
    counts,
    beta_h,
    renormalize,
    block_n,
    interpret,
  )


def _assign_kernel(x_ref, xsq_ref, c_ref, csq_ref, o_ref, *, num_blocks: int, block_n: int):
  """One (batch, head). x `[L, D]`, xsq `[L, 1]`; c `[nb, bn, D]`, csq `[nb, 1, bn]` (+inf
  for non-candidates and padding); o `[L, 1]` int32, the nearest candidate per key."""
  f32 = jnp.float32
  x = x_ref[...].astype(f32)
  xsq = xsq_ref[...]
  l = x.shape[0]

  def dictionary_block(j, carry):
    best, idx = carry
    dot = blocks.dot(x, c_ref[j].astype(f32), blocks.NT)  # [L, bn]
    dist = (xsq - 2.0 * dot) + csq_ref[j]  # the XLA path's `_sq_dist` order of operations
    block_min = jnp.min(dist, axis=1, keepdims=True)
    col = jax.lax.broadcasted_iota(jnp.int32, dist.shape, 1) + j * block_n
    block_idx = jnp.min(
      jnp.where(dist == block_min, col, jnp.iinfo(jnp.int32).max), axis=1, keepdims=True
    )  # first minimum: ties -> lowest index
    better = block_min < best  # strict: an equal later block keeps the lower index
    return jnp.where(better, block_min, best), jnp.where(better, block_idx, idx)

  init = (jnp.full((l, 1), jnp.inf, f32), jnp.zeros((l, 1), jnp.int32))
  _, idx = jax.lax.fori_loop(0, num_blocks, dictionary_block, init)
  o_ref[...] = idx


def ovq_chunk_assign_pallas(
  keys: jax.Array,
  centres: jax.Array,
  candidate: jax.Array,
  *,
  block_n: int = 256,
  interpret: Any = None,
) -> jax.Array:
  """The write's assignment (spec hot loop 2): each key's nearest candidate centre, as a kernel.

  Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922).
  Same result as `reasoning_jax.ops.ovq.common.nearest_candidate`: the distance
  `||k||^2 - 2 k.c + ||c||^2` (same order of operations, fp32, HIGHEST matmuls), argmin
  with ties to the lowest index, 0 for a key with no candidate. A running (min, index) pair
  walks the dictionary in blocks of `block_n` slots, one program per (batch, head), so the
  `[L, N]` distance matrix is never written to memory; the update itself stays the dense
  one-hot matmuls of `write.absorb`.

  Args:
    keys: `[B, H, L, D]` fp32 (unit keys of the chunk).
    centres: `[B, H, N, D]` fp32 (the dictionary with this chunk's seeds placed).
    candidate: `[B, H, N]` bool, the slots a key may join.
    block_n: dictionary slots per block (clamped to N rounded up to 128; default 256).
    interpret: None interprets unless the default backend is TPU or GPU; True/False
      force it; a `pltpu.InterpretParams` selects the TPU interpreter.

  Returns:
    `[B, H, L]` int32. Indices carry no gradient (inputs are treated as constants).
  """
  if interpret is None:
    interpret = jax.default_backend() not in ("tpu", "gpu")
  common.check_positive_int(block_n, "block_n")
  b, h, l, d = keys.shape
  n = centres.shape[2]
  if centres.shape != (b, h, n, d) or candidate.shape != (b, h, n):
    raise ValueError(
      f"centres must be [B, H, N, D] and candidate [B, H, N] matching keys "
      f"{keys.shape}, got {centres.shape} and {candidate.shape}"
    )
  f32 = jnp.float32
  keys = jax.lax.stop_gradient(keys).astype(f32)
  centres = jax.lax.stop_gradient(centres).astype(f32)
  xsq = jnp.sum(keys * keys, -1).reshape(b * h, l, 1)
  csq = jnp.where(candidate, jnp.sum(centres * centres, -1), jnp.inf).reshape(b * h, n)
  arrays = (keys.reshape(b * h, l, d), xsq, centres.reshape(b * h, n, d), csq)

  def call(compiler_params, power_of_two, x, xsq, c, csq):
    bn, n_pad = dictionary_blocking(n, block_n, power_of_two)
    nb = n_pad // bn
    c_blocks = blocks.pad_slots(c, n_pad).reshape(b * h, nb, bn, d)
    csq_blocks = blocks.pad_slots(csq, n_pad, jnp.inf).reshape(b * h, nb, 1, bn)
    whole = blocks.whole
    cost = pl.CostEstimate(
      flops=2 * b * h * l * n_pad * d + 4 * b * h * l * n_pad,
      transcendentals=0,
      bytes_accessed=4 * b * h * (n_pad * (d + 1) + l * (d + 2)),
    )
    return pl.pallas_call(
      functools.partial(_assign_kernel, num_blocks=nb, block_n=bn),
      out_shape=jax.ShapeDtypeStruct((b * h, l, 1), jnp.int32),
      grid=(b * h,),
      in_specs=[whole(l, d), whole(l, 1), whole(nb, bn, d), whole(nb, 1, bn)],
      out_specs=whole(l, 1),
      compiler_params=compiler_params,
      cost_estimate=cost,
      interpret=interpret,
      name="ovq_chunk_assign",
    )(x, xsq, c_blocks, csq_blocks)

  return blocks.run_per_platform(call, arrays, interpret).reshape(b, h, l)


def ovq_chunk_pallas(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  *,
  beta,
  initial_state: common.OVQState | None = None,
  lengths: jax.Array | None = None,
  chunk_size: int = 64,
  num_slots: int = 1024,
  segment_ids: jax.Array | None = None,
  block_n: int = 256,
  interpret: Any = None,
  **flags,
) -> tuple[jax.Array, common.OVQState]:
  """OVQ attention, chunked form, with the Pallas readout and assignment kernels.

  Online Vector Quantized Attention (Alonso, Figliolia, Millidge;
  arXiv:2602.03922). Same arguments and result as
  `reasoning_jax.ops.ovq.ovq_chunk` (see there for the DESIGN CHOICE `**flags`),
  plus the kernels' `block_n` (dictionary block, default 256) and `interpret`.
  The readout's backward is the fused kernel of `pallas_kernels.ovq.backward`; the
  growth, seeding, the one-hot update and their backward stay in XLA, so every schedule,
  seeding and update rule runs here. The readout kernel reads unit exact keys only:
  `readout="vq"` raises ValueError (use the XLA implementation). Packed rows
  (`segment_ids`) run the packed scan with the same kernels.

  Returns:
    `(o [B, T, H, Dv] in q.dtype, final_state)`.
  """
  common.check_ovq_inputs(
    q,
    k,
    v,
    beta,
    initial_state,
    lengths,
    chunk_size=chunk_size,
    num_slots=num_slots,
    segment_ids=segment_ids,
  )
  options = make_options(num_slots, **flags)
  if options.readout != "exact":
    raise ValueError(
      f"readout={options.readout!r} is not supported by the Pallas OVQ chunk readout "
      "(implementation='pallas' reads the chunk's exact unit keys only); use "
      "implementation='xla' for it"
    )
  common.check_positive_int(block_n, "block_n")
  readout = functools.partial(
    ovq_chunk_readout_pallas, renormalize=options.renormalize, block_n=block_n, interpret=interpret
  )
  assign = functools.partial(ovq_chunk_assign_pallas, block_n=block_n, interpret=interpret)
  return chunk_lib.ovq_chunk_scan(
    q,
    k,
    v,
    beta=beta,
    initial_state=initial_state,
    lengths=lengths,
    chunk_size=chunk_size,
    num_slots=num_slots,
    options=options,
    segment_ids=segment_ids,
    readout=readout,
    assign=assign,
  )


def ovq_reference(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  *,
  beta,
  initial_state: common.OVQState | None = None,
  lengths: jax.Array | None = None,
  chunk_size: int = 64,
  num_slots: int = 1024,
  segment_ids: jax.Array | None = None,
  block_n: int = 256,
  interpret: Any = None,
  **flags,
) -> tuple[jax.Array, common.OVQState]:
  """Reference for `ovq_chunk_pallas` with its signature: the XLA chunk form `ovq_chunk`.

  Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922).
  The kernel-only arguments (block_n, interpret) are ignored.
  """
  del block_n, interpret
  return chunk_lib.ovq_chunk(
    q,
    k,
    v,
    beta=beta,
    initial_state=initial_state,
    lengths=lengths,
    chunk_size=chunk_size,
    num_slots=num_slots,
    segment_ids=segment_ids,
    **flags,
  )
