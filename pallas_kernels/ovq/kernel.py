"""Pallas kernels for the OVQ chunk step: the readout (hot loop 1) and the assignment (hot
loop 2) of the chunked form.

Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922),
spec sections 3.2-3.3 of /shared/methods/memory_attention.md. For one chunk and
one (batch, head), the L queries read a single softmax over

  * the dictionary: N slots with logits `beta q.dk_i + bias_i`, where
    `bias_i = log n_i - (beta/2)(||dk_i||^2 + 1)` (`-inf` for inactive slots and
    for the padding up to a whole number of blocks), and
  * the chunk's exact keys, causal: `beta q.k_j - beta` for `j <= i` (`-inf` for
    keys past the end of a padded sequence),

with a flash-style online softmax (fp32 running max, normaliser and accumulator)
over dictionary blocks of `block_n` slots, then the intra-chunk causal block.

Kernel layout (portable Pallas subset: BlockSpec, grid, fori_loop):
  * grid `(B*H,)`, one program per (batch, head); its blocks are the whole chunk
    (`[L, D]`) and the whole padded dictionary, stored as `[N_pad/bn, bn, D]` so
    the loop over dictionary blocks only indexes the leading (untiled) axis
    (every block's last two dims equal the array's: TPU's (8, 128) rule holds);
  * beta is folded in by XLA (q is passed as `beta q`), as are the per-slot and
    per-key biases, so the kernel has no scalar inputs.
The assignment kernel (`ovq_chunk_assign_pallas`, spec hot loop 2) finds each chunk
key's nearest candidate centre with the same blocking: a running (min distance, first
index) over dictionary blocks, never writing the `[L, N]` distances. The rest of the
chunked form (farthest-first seeding, running-mean update as one-hot matmuls) stays
in XLA (`reasoning_jax.ops.ovq.chunk`); `ovq_chunk_pallas` is that scan with both
kernels plugged in, and `ovq_reference` is the XLA chunk form.

DESIGN CHOICE / limits:
  * backward: `jax.custom_vjp` recomputing the XLA readout's VJP, so gradients
    are exact; a fused backward is future work;
  * the whole dictionary of one head sits in fast memory: `2 N_pad (D + Dv) * 4`
    bytes double-buffered (1 MiB per buffer set for N = 1024, D = Dv = 128);
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
import numpy as np
from jax.experimental import pallas as pl

from reasoning_jax.ops.ovq import chunk as chunk_lib
from reasoning_jax.ops.ovq import common

_HIGHEST = jax.lax.Precision.HIGHEST
_NT = (((1,), (1,)), ((), ()))  # contract the last dims: a @ b.T
_NN = (((1,), (0,)), ((), ()))
# Initial running max: large, finite (no inf - inf when a whole block is masked).
_MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)


def _readout_kernel(q_ref, dk_ref, dv_ref, db_ref, k_ref, v_ref, kb_ref, o_ref, *, num_blocks: int):
  """One (batch, head). q/k `[L, D]`, v `[L, Dv]`, kb `[1, L]`; dk `[nb, bn, D]`,
  dv `[nb, bn, Dv]`, db `[nb, 1, bn]`; o `[L, Dv]`."""
  f32 = jnp.float32
  q = q_ref[...].astype(f32)  # beta * q
  l = q.shape[0]

  def online(carry, s, values):
    m, total, acc = carry
    m_new = jnp.maximum(m, jnp.max(s, axis=1, keepdims=True))
    alpha = jnp.exp(m - m_new)
    p = jnp.exp(s - m_new)
    total = alpha * total + jnp.sum(p, axis=1, keepdims=True)
    acc = alpha * acc + jax.lax.dot_general(
      p, values, _NN, precision=_HIGHEST, preferred_element_type=f32
    )
    return m_new, total, acc

  def dictionary_block(j, carry):
    s = (
      jax.lax.dot_general(
        q, dk_ref[j].astype(f32), _NT, precision=_HIGHEST, preferred_element_type=f32
      )
      + db_ref[j]
    )  # [L, bn]
    return online(carry, s, dv_ref[j].astype(f32))

  carry = (
    jnp.full((l, 1), _MASK_VALUE, f32),
    jnp.zeros((l, 1), f32),
    jnp.zeros((l, o_ref.shape[-1]), f32),
  )
  carry = jax.lax.fori_loop(0, num_blocks, dictionary_block, carry)
  s = (
    jax.lax.dot_general(
      q, k_ref[...].astype(f32), _NT, precision=_HIGHEST, preferred_element_type=f32
    )
    + kb_ref[...]
  )  # [L, L]
  row = jax.lax.broadcasted_iota(jnp.int32, (l, l), 0)
  col = jax.lax.broadcasted_iota(jnp.int32, (l, l), 1)
  _, total, acc = online(carry, jnp.where(col <= row, s, -jnp.inf), v_ref[...].astype(f32))
  o_ref[...] = (acc / jnp.where(total > 0, total, 1.0)).astype(o_ref.dtype)


def _run_per_platform(call, arrays, interpret):
  """`call(compiler_params, power_of_two, *arrays)` in interpret mode, or with the compiler
  parameters of the platform it is lowered for (chosen per lowering platform, so ahead-of-time
  lowering for another platform takes the same path as a run there; GPU dictionaries are
  padded to a power of two for Triton)."""
  if interpret:
    return call(None, False, *arrays)
  from jax.experimental.pallas import tpu as pltpu  # pylint: disable=g-import-not-at-top
  from jax.experimental.pallas import triton as pltriton  # pylint: disable=g-import-not-at-top

  tpu = functools.partial(call, pltpu.CompilerParams(dimension_semantics=("parallel",)), False)
  gpu = functools.partial(call, pltriton.CompilerParams(num_warps=4, num_stages=1), True)
  return jax.lax.platform_dependent(*arrays, tpu=tpu, cuda=gpu, rocm=gpu)


def _round_up(x: int, m: int) -> int:
  return -(-x // m) * m


def dictionary_blocking(num_slots: int, block_n: int, power_of_two: bool) -> tuple[int, int]:
  """(bn, N_pad): block rows and padded slots; bn <= block_n, a multiple of 128 (or of
  N_pad's power of two on GPU), N_pad a multiple of bn."""
  n = _round_up(num_slots, 128)
  if power_of_two:
    n = 1 << (n - 1).bit_length()
  bn = min(block_n, n)
  return bn, _round_up(n, bn)


def _forward(
  q, keys, values, key_valid, dict_k, dict_v, counts, beta_h, renormalize, block_n, interpret
):
  """Biases in XLA, then the kernel over (batch * heads); returns `[B, H, L, Dv]` fp32."""
  b, h, l, d = q.shape
  n, dv = dict_k.shape[2], dict_v.shape[-1]
  f32 = jnp.float32
  bias = common.dictionary_bias(dict_k, counts, beta_h, renormalize)  # [B, H, N]
  q_scaled = (q * beta_h[:, None, None]).reshape(b * h, l, d)
  key_bias = jnp.where(key_valid[:, None, :], -beta_h[:, None], -jnp.inf).reshape(b * h, 1, l)
  flat = lambda x: x.reshape(b * h, *x.shape[2:]).astype(f32)

  def call(compiler_params, power_of_two, q_scaled, keys, values, key_bias, dict_k, dict_v, bias):
    bn, n_pad = dictionary_blocking(n, block_n, power_of_two)
    nb = n_pad // bn
    pad = lambda x, value=0.0: jnp.pad(
      x, ((0, 0), (0, n_pad - n)) + ((0, 0),) * (x.ndim - 2), constant_values=value
    )
    dk_blocks = pad(dict_k).reshape(b * h, nb, bn, d)
    dv_blocks = pad(dict_v).reshape(b * h, nb, bn, dv)
    bias_blocks = pad(bias, -jnp.inf).reshape(b * h, nb, 1, bn)
    whole = lambda *shape: pl.BlockSpec((pl.squeezed, *shape), lambda i: (i,) + (0,) * len(shape))
    cost = pl.CostEstimate(
      flops=2 * b * h * l * (n_pad + l) * (d + dv),
      transcendentals=b * h * l * (n_pad + l),
      bytes_accessed=4 * b * h * ((n_pad + 2 * l) * (d + dv) + n_pad + l),
    )
    return pl.pallas_call(
      functools.partial(_readout_kernel, num_blocks=nb),
      out_shape=jax.ShapeDtypeStruct((b * h, l, dv), f32),
      grid=(b * h,),
      in_specs=[
        whole(l, d),
        whole(nb, bn, d),
        whole(nb, bn, dv),
        whole(nb, 1, bn),
        whole(l, d),
        whole(l, dv),
        whole(1, l),
      ],
      out_specs=whole(l, dv),
      compiler_params=compiler_params,
      cost_estimate=cost,
      interpret=interpret,
      name="ovq_chunk_readout",
    )(q_scaled, dk_blocks, dv_blocks, bias_blocks, keys, values, key_bias)

  arrays = (
    q_scaled,
    flat(keys),
    flat(values),
    key_bias,
    flat(dict_k),
    flat(dict_v),
    bias.reshape(b * h, n),
  )
  return _run_per_platform(call, arrays, interpret).reshape(b, h, l, dv)


@functools.partial(jax.custom_vjp, nondiff_argnums=(8, 9, 10))
def _readout(
  q, keys, values, key_valid, dict_k, dict_v, counts, beta_h, renormalize, block_n, interpret
):
  return _forward(
    q, keys, values, key_valid, dict_k, dict_v, counts, beta_h, renormalize, block_n, interpret
  )


def _readout_fwd(
  q, keys, values, key_valid, dict_k, dict_v, counts, beta_h, renormalize, block_n, interpret
):
  out = _forward(
    q, keys, values, key_valid, dict_k, dict_v, counts, beta_h, renormalize, block_n, interpret
  )
  return out, (q, keys, values, key_valid, dict_k, dict_v, counts, beta_h)


def _readout_bwd(renormalize, block_n, interpret, residuals, cotangent):
  del block_n, interpret  # The backward is the XLA readout's VJP (recomputed).
  q, keys, values, key_valid, dict_k, dict_v, counts, beta_h = residuals

  def reference(q, keys, values, dict_k, dict_v, counts, beta_h):
    return chunk_lib.xla_chunk_readout(
      q,
      keys,
      values,
      key_valid,
      dict_k,
      dict_v,
      counts,
      beta_h,
      renormalize=renormalize,
      precision=_HIGHEST,
    )

  _, vjp = jax.vjp(reference, q, keys, values, dict_k, dict_v, counts, beta_h)
  dq, dkeys, dvalues, ddk, ddv, dcounts, dbeta = vjp(cotangent)
  return dq, dkeys, dvalues, None, ddk, ddv, dcounts, dbeta


_readout.defvjp(_readout_fwd, _readout_bwd)


def ovq_chunk_readout_pallas(
  q,
  keys,
  values,
  key_valid,
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

  Args:
    q: unit queries `[B, H, L, D]` fp32.
    keys: the chunk's unit keys `[B, H, L, D]` fp32; values `[B, H, L, Dv]` fp32.
    key_valid: `[B, L]` bool (False: a padding key, never read).
    dict_k, dict_v, counts: the dictionary `[B, H, N, D]`, `[B, H, N, Dv]`, `[B, H, N]` fp32.
    beta_h: `[H]` fp32 inverse temperatures.
    renormalize: the stored keys are unit vectors (`||dk||^2` taken as 1).
    block_n: dictionary slots per block of the online softmax (clamped to N
      rounded up to 128; default 256).
    interpret: None interprets unless the default backend is TPU or GPU; True/False
      force it; a `pltpu.InterpretParams` selects the TPU interpreter.

  Returns:
    `[B, H, L, Dv]` fp32; query i reads the slots and keys `j <= i`.
  """
  if interpret is None:
    interpret = jax.default_backend() not in ("tpu", "gpu")
  return _readout(
    q, keys, values, key_valid, dict_k, dict_v, counts, beta_h, renormalize, block_n, interpret
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
    dot = jax.lax.dot_general(
      x, c_ref[j].astype(f32), _NT, precision=_HIGHEST, preferred_element_type=f32
    )  # [L, bn]
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
  one-hot matmuls of `common.absorb`.

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
    c_blocks = jnp.pad(c, ((0, 0), (0, n_pad - n), (0, 0))).reshape(b * h, nb, bn, d)
    csq_blocks = jnp.pad(csq, ((0, 0), (0, n_pad - n)), constant_values=jnp.inf).reshape(
      b * h, nb, 1, bn
    )
    whole = lambda *shape: pl.BlockSpec((pl.squeezed, *shape), lambda i: (i,) + (0,) * len(shape))
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

  return _run_per_platform(call, arrays, interpret).reshape(b, h, l)


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
  schedule: str = "saturating",
  renormalize: bool = False,
  block_n: int = 256,
  interpret: Any = None,
) -> tuple[jax.Array, common.OVQState]:
  """OVQ attention, chunked form, with the Pallas readout and assignment kernels.

  Online Vector Quantized Attention (Alonso, Figliolia, Millidge;
  arXiv:2602.03922). Same arguments and result as
  `reasoning_jax.ops.ovq.ovq_chunk` (see there for the DESIGN CHOICE flags),
  plus the kernels' `block_n` (dictionary block, default 256) and `interpret`.
  The farthest-first seeding, the one-hot update and the backward stay in XLA.

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
    schedule=schedule,
    renormalize=renormalize,
  )
  common.check_positive_int(block_n, "block_n")
  readout = functools.partial(
    ovq_chunk_readout_pallas, renormalize=renormalize, block_n=block_n, interpret=interpret
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
    schedule=schedule,
    renormalize=renormalize,
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
  schedule: str = "saturating",
  renormalize: bool = False,
  block_n: int = 256,
  interpret: Any = None,
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
    schedule=schedule,
    renormalize=renormalize,
  )
