"""OVQ attention, chunked form: a `lax.scan` over chunks, vectorised inside a chunk.

Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922),
spec section 3.2/3.3 of /shared/methods/memory_attention.md. Per chunk of L
stream rows (see `reasoning_jax.ops.ovq.common` for the stream layout):
  1. read: one `[L, N + L]` joint softmax per head against the dictionary of the
     previous chunks and the chunk's own causal keys (a pluggable readout; the
     Pallas kernel of `pallas_kernels.ovq` replaces the XLA one);
  2. write, only for a complete chunk: farthest-first seeding in a `fori_loop`
     of L steps, assignment by `||k||^2 - 2 k.c + ||c||^2` and argmin (pluggable as
     well: the Pallas assignment kernel replaces `common.nearest_candidate`), and the
     running-mean update as dense one-hot matmuls `A^T K`, `A^T V` (no
     scatter-add).
The scan body is wrapped in `jax.checkpoint`, so the backward pass stores only
the per-chunk dictionaries (O(T/L * N * D)) and recomputes the rest.

Matmul precision: HIGHEST for float32 inputs, the backend default otherwise;
the state and the softmax are fp32 throughout.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

from reasoning_jax.ops.ovq import common

# readout(q, keys, values, key_valid, dict_k, dict_v, counts, beta_h) -> o [B, H, L, Dv] fp32:
# q/keys `[B, H, L, D]` unit, key_valid `[B, L]`, causal inside the chunk implied.
ChunkReadout = Callable[..., jax.Array]


def xla_chunk_readout(
  q, keys, values, key_valid, dict_k, dict_v, counts, beta_h, *, renormalize: bool, precision
) -> jax.Array:
  """The XLA chunk readout: `common.readout` with mask `j <= i` and key validity."""
  l = q.shape[2]
  mask = jnp.tril(jnp.ones((l, l), bool))[None] & key_valid[:, None, :]
  return common.readout(
    q,
    keys,
    values,
    mask,
    dict_k,
    dict_v,
    counts,
    beta_h,
    renormalize=renormalize,
    precision=precision,
  )


def ovq_chunk_scan(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  *,
  beta,
  initial_state: common.OVQState | None,
  lengths: jax.Array | None,
  chunk_size: int,
  num_slots: int,
  schedule: str,
  renormalize: bool,
  readout: ChunkReadout | None = None,
  assign: Callable[..., jax.Array] | None = None,
) -> tuple[jax.Array, common.OVQState]:
  """`ovq_chunk` with a pluggable per-chunk readout and assignment (inputs trusted: validate
  first).

  `readout` None uses `xla_chunk_readout` and `assign` None `common.nearest_candidate`;
  `pallas_kernels.ovq` passes its kernels.
  """
  s = common.prepare(q, k, v, beta, initial_state, lengths, chunk_size, num_slots)
  precision = common.precision_for(q.dtype)
  if readout is None:
    readout = functools.partial(xla_chunk_readout, renormalize=renormalize, precision=precision)
  state, l, end, offset, beta_h = s["state"], chunk_size, s["end"], s["offset"], s["beta_h"]
  b, h, p, _ = s["q"].shape
  n_chunks = s["num_chunks"]
  start = jnp.zeros_like(end) if offset is None else offset

  def to_chunks(x):  # [B, H, P, D] -> [C, B, H, L, D]
    return jnp.moveaxis(x.reshape(b, h, n_chunks, l, x.shape[-1]), 2, 0)

  def body(carry, inputs):
    dict_k, dict_v, counts, seen = carry
    q_c, k_c, v_c, c = inputs
    pos = c * l + jnp.arange(l)
    key_valid = pos[None, :] < end[:, None]  # [B, L]
    o_c = readout(q_c, k_c, v_c, key_valid, dict_k, dict_v, counts, beta_h)
    query_valid = key_valid & (pos[None, :] >= start[:, None])
    o_c = jnp.where(query_valid[:, None, :, None], o_c, 0.0)
    full = end >= (c + 1) * l  # only a complete chunk is absorbed
    dict_k, dict_v, counts = common.absorb(
      dict_k,
      dict_v,
      counts,
      k_c,
      v_c,
      seen,
      full,
      schedule=schedule,
      renormalize=renormalize,
      precision=precision,
      assign=assign,
    )
    seen = seen + jnp.where(full, l, 0).astype(jnp.int32)
    return (dict_k, dict_v, counts, seen), o_c

  init = (state.dk, state.dv, state.counts, state.tokens_seen)
  xs = (to_chunks(s["q"]), to_chunks(s["k"]), to_chunks(s["v"]), jnp.arange(n_chunks))
  (dict_k, dict_v, counts, seen), o = jax.lax.scan(jax.checkpoint(body), init, xs)
  o = jnp.moveaxis(o, 0, 2).reshape(b, h, p, -1)
  buf_k, buf_v, buf_len = common.final_buffer(s["k"], s["v"], end, l)
  final = common.OVQState(
    dk=dict_k, dv=dict_v, counts=counts, buf_k=buf_k, buf_v=buf_v, buf_len=buf_len, tokens_seen=seen
  )
  return common.from_stream(o, offset, s["t"]).astype(q.dtype), final


def ovq_chunk(
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
) -> tuple[jax.Array, common.OVQState]:
  """OVQ attention in chunked form (the training path in XLA).

  Online Vector Quantized Attention (Alonso, Figliolia, Millidge;
  arXiv:2602.03922). Same math and signature as `ovq_naive`; see the module
  docstring for the layout of the computation.

  Args:
    q: queries `[B, T, H, D]` (L2-normalised here).
    k: keys `[B, T, H, D]` (L2-normalised here).
    v: values `[B, T, H, Dv]`.
    beta: inverse temperature > 0, scalar or `[H]`.
    initial_state: `OVQState` or None (empty).
    lengths: `[B]` ints or None (right padding; padded tokens are neither read
      nor absorbed and output 0).
    chunk_size: L (DESIGN CHOICE, default 64; T need not divide).
    num_slots: N_max (DESIGN CHOICE, default 1024).
    schedule: growth schedule (DESIGN CHOICE, default "saturating").
    renormalize: re-normalise updated key slots (DESIGN CHOICE, default False).

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
  return ovq_chunk_scan(
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
