"""OVQ attention, chunked form: a `lax.scan` over chunks, vectorised inside a chunk.

Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922),
spec section 3.2/3.3 of /shared/methods/memory_attention.md. Per chunk of L
stream rows (see `reasoning_jax.ops.ovq.common` for the stream layout):
  1. read: one `[L, N + L]` joint softmax per head against the dictionary of the
     previous chunks and the chunk's own causal keys (a pluggable readout; the
     Pallas kernel of `pallas_kernels.ovq` replaces the XLA one);
  2. write, only for a complete chunk (`write.absorb`): seeding in a `fori_loop`
     of L steps, assignment by `||k||^2 - 2 k.c + ||c||^2` and argmin (pluggable as
     well: the Pallas assignment kernel replaces `common.nearest_candidate`), and the
     update from dense one-hot matmuls `A^T K`, `A^T V` (no scatter-add).
The scan body is wrapped in `jax.checkpoint`, so the backward pass stores only
the per-chunk dictionaries (O(T/L * N * D)) and recomputes the rest. Packed rows
(`segment_ids`) take `segments.ovq_chunk_scan_packed`, the same scan with two reads
per chunk so that every segment restarts the state (see `reasoning_jax.ops.ovq.segments`).

Matmul precision: HIGHEST for float32 inputs, the backend default otherwise;
the state and the softmax are fp32 throughout.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

from reasoning_jax.ops.ovq import common, segments, write
from reasoning_jax.ops.ovq.options import OVQOptions, make_options

# readout(q, keys, values, key_mask, dict_mask, dict_k, dict_v, counts, beta_h[, key_sq=])
#   -> o [B, H, Lq, Dv] fp32: q `[B, H, Lq, D]` and keys `[B, H, Lk, D]` unit, key_mask
#   `[B, Lq, Lk]` bool, dict_mask `[B, Lq]` bool or None (every query reads the dictionary).
#   `key_sq` (`[B, H, Lk]`, keys of any norm) is passed only by the "vq" readout, which the
#   Pallas readout does not support.
ChunkReadout = Callable[..., jax.Array]


def causal_key_mask(key_valid) -> jax.Array:
  """`[B, L] -> [B, L, L]`: query i reads key j iff `j <= i` and key j is valid."""
  l = key_valid.shape[1]
  return jnp.tril(jnp.ones((l, l), bool))[None] & key_valid[:, None, :]


def xla_chunk_readout(
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
  renormalize: bool,
  precision,
  key_sq=None,
) -> jax.Array:
  """The XLA chunk readout: `common.readout` with a key mask and a per-query dictionary mask.

  Args:
    q: unit queries `[B, H, Lq, D]` fp32.
    keys: unit keys `[B, H, Lk, D]`; values `[B, H, Lk, Dv]` fp32.
    key_mask: `[B, Lq, Lk]` bool (`causal_key_mask(key_valid)` for one unpacked chunk).
    dict_mask: `[B, Lq]` bool or None (all True).
    dict_k, dict_v, counts: the dictionary `[B, H, N, D]`, `[B, H, N, Dv]`, `[B, H, N]`.
    beta_h: `[H]` fp32.
    key_sq: `[B, H, Lk]` or None (unit keys); see `common.readout`.
  """
  return common.readout(
    q,
    keys,
    values,
    key_mask,
    dict_k,
    dict_v,
    counts,
    beta_h,
    renormalize=renormalize,
    precision=precision,
    dict_mask=dict_mask,
    key_sq=key_sq,
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
  options: OVQOptions,
  segment_ids: jax.Array | None = None,
  readout: ChunkReadout | None = None,
  assign: Callable[..., jax.Array] | None = None,
) -> tuple[jax.Array, common.OVQState]:
  """`ovq_chunk` with a pluggable per-chunk readout and assignment (inputs trusted: validate
  first).

  `readout` None uses `xla_chunk_readout` and `assign` None `common.nearest_candidate`;
  `pallas_kernels.ovq` passes its kernels. With `segment_ids` (and no initial state) the
  packed scan `segments.ovq_chunk_scan_packed` runs with the same plugins.
  """
  precision = common.precision_for(q.dtype)
  if readout is None:
    readout = functools.partial(
      xla_chunk_readout, renormalize=options.renormalize, precision=precision
    )
  if segment_ids is not None:
    return segments.ovq_chunk_scan_packed(
      q,
      k,
      v,
      beta=beta,
      segment_ids=segment_ids,
      lengths=lengths,
      chunk_size=chunk_size,
      num_slots=num_slots,
      options=options,
      readout=readout,
      assign=assign,
    )
  s = common.prepare(q, k, v, beta, initial_state, lengths, chunk_size, num_slots)
  state, l, end, offset, beta_h = s["state"], chunk_size, s["end"], s["offset"], s["beta_h"]
  b, h, p, _ = s["q"].shape
  n_chunks = s["num_chunks"]
  start = jnp.zeros_like(end) if offset is None else offset

  def to_chunks(x):  # [B, H, P, D] -> [C, B, H, L, D]
    return jnp.moveaxis(x.reshape(b, h, n_chunks, l, x.shape[-1]), 2, 0)

  read = common.chunk_reader(readout, options.readout, beta_h, precision)

  def body(carry, inputs):
    dict_k, dict_v, counts, seen = carry
    q_c, k_c, v_c, c = inputs
    pos = c * l + jnp.arange(l)
    key_valid = pos[None, :] < end[:, None]  # [B, L]
    o_c = read(q_c, k_c, v_c, causal_key_mask(key_valid), None, dict_k, dict_v, counts)
    query_valid = key_valid & (pos[None, :] >= start[:, None])
    o_c = jnp.where(query_valid[:, None, :, None], o_c, 0.0)
    full = end >= (c + 1) * l  # only a complete chunk is absorbed
    dict_k, dict_v, counts = write.absorb(
      dict_k,
      dict_v,
      counts,
      k_c,
      v_c,
      seen,
      full,
      options=options,
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
  segment_ids: jax.Array | None = None,
  **flags,
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
    segment_ids: `[B, T]` ints or None: packed sequences; the state restarts where the id
      changes (see `reasoning_jax.ops.ovq.segments`). Not with `initial_state`.
    **flags: the DESIGN CHOICE flags (schedule, renormalize, seeding, seed, update,
      update_lr, readout, linear_tokens, dirichlet_alpha), defaults `options.DEFAULT_FLAGS`,
      validated by `options.make_options` (see `reasoning_jax.ops.ovq.ovq_attention`).

  Returns:
    `(o [B, T, H, Dv] in q.dtype, final_state)` (with segments: the last segment's state).
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
  return ovq_chunk_scan(
    q,
    k,
    v,
    beta=beta,
    initial_state=initial_state,
    lengths=lengths,
    chunk_size=chunk_size,
    num_slots=num_slots,
    options=make_options(num_slots, **flags),
    segment_ids=segment_ids,
  )
