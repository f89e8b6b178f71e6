"""OVQ attention, step-wise form for decoding with a constant-size state.

Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922).
`ovq_step` takes one token: its (unit) key and value enter the chunk buffer, the
output is the joint softmax over the active dictionary slots and the buffered
keys (the token's own included), and when the buffer holds L tokens it is
absorbed into the dictionary (write after read) and emptied. This is the decode
step of the generation cache. `ovq_recurrent` scans it over a sequence with the
signature of `ovq_naive` / `ovq_chunk`; on packed rows (`segment_ids`) it empties the
state before every valid token whose id differs from the previous token's.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from reasoning_jax.ops.ovq import common, write
from reasoning_jax.ops.ovq.options import OVQOptions, make_options


def _step(state: common.OVQState, q_t, k_t, v_t, valid, beta_h, *, options: OVQOptions, precision):
  """Core step on fp32 `[B, H, *]` inputs (q_t, k_t unit); returns (o_t fp32, state)."""
  l = state.chunk_size
  pos = state.buf_len  # [B]
  slot = (jnp.arange(l)[None, :] == pos[:, None]) & valid[:, None]  # [B, L]
  buf_k = jnp.where(slot[:, None, :, None], k_t[:, :, None, :], state.buf_k)
  buf_v = jnp.where(slot[:, None, :, None], v_t[:, :, None, :], state.buf_v)
  key_mask = (jnp.arange(l)[None, :] <= pos[:, None])[:, None, :]  # [B, 1, L]
  read_k, key_sq = common.OVQ_READOUTS.get(options.readout)(
    buf_k, state.dk, state.counts, precision
  )
  o_t = common.readout(
    q_t[:, :, None, :],
    read_k,
    buf_v,
    key_mask,
    state.dk,
    state.dv,
    state.counts,
    beta_h,
    renormalize=options.renormalize,
    precision=precision,
    key_sq=key_sq,
  )
  o_t = jnp.where(valid[:, None, None], o_t[:, :, 0], 0.0)

  new_len = pos + valid.astype(jnp.int32)
  full = new_len == l
  absorb = functools.partial(write.absorb, options=options, precision=precision)
  dict_k, dict_v, counts = jax.lax.cond(
    jnp.any(full),
    lambda: absorb(state.dk, state.dv, state.counts, buf_k, buf_v, state.tokens_seen, full),
    lambda: (state.dk, state.dv, state.counts),
  )
  empty = full[:, None, None, None]
  state = common.OVQState(
    dk=dict_k,
    dv=dict_v,
    counts=counts,
    buf_k=jnp.where(empty, 0.0, buf_k),
    buf_v=jnp.where(empty, 0.0, buf_v),
    buf_len=jnp.where(full, 0, new_len).astype(jnp.int32),
    tokens_seen=(state.tokens_seen + jnp.where(full, l, 0)).astype(jnp.int32),
  )
  return o_t, state


def ovq_step(
  state: common.OVQState,
  q_t: jax.Array,
  k_t: jax.Array,
  v_t: jax.Array,
  *,
  beta,
  valid: jax.Array | None = None,
  **flags,
) -> tuple[jax.Array, common.OVQState]:
  """One decode step of OVQ attention.

  Online Vector Quantized Attention (Alonso, Figliolia, Millidge;
  arXiv:2602.03922). N and L are those of `state` (see `init_state`).

  Args:
    state: `OVQState` from `init_state` or a previous call.
    q_t: query of the new token `[B, H, D]` (L2-normalised here).
    k_t: key `[B, H, D]`, q_t's dtype (L2-normalised here).
    v_t: value `[B, H, Dv]`, q_t's dtype.
    beta: inverse temperature > 0, scalar or `[H]`.
    valid: `[B]` bool or None (all True): rows with False are padding, leave
      their state unchanged and output 0.
    **flags: the DESIGN CHOICE flags (schedule, renormalize, seeding, seed, update,
      update_lr, readout, linear_tokens, dirichlet_alpha), defaults `options.DEFAULT_FLAGS`,
      validated by `options.make_options` (see `reasoning_jax.ops.ovq.ovq_attention`).

  Returns:
    `(o_t [B, H, Dv] in q_t.dtype, state)`.
  """
  if getattr(q_t, "ndim", None) != 3:
    raise ValueError(f"q_t must be [B, H, D], got shape {getattr(q_t, 'shape', None)}")
  if not isinstance(state, common.OVQState):
    raise ValueError(f"state must be an OVQState (see init_state), got {type(state).__name__}")
  add_t = lambda x: x[:, None] if getattr(x, "ndim", 0) >= 1 else x
  # Validate through the sequence-level checks with T = 1.
  common.check_ovq_inputs(
    add_t(q_t),
    add_t(k_t),
    add_t(v_t),
    beta,
    state,
    None,
    chunk_size=state.chunk_size,
    num_slots=state.num_slots,
  )
  options = make_options(state.num_slots, **flags)
  b = q_t.shape[0]
  if valid is None:
    valid = jnp.ones((b,), bool)
  elif getattr(valid, "shape", None) != (b,) or valid.dtype != jnp.bool_:
    raise ValueError(
      f"valid must be a [B] = ({b},) bool array, got {getattr(valid, 'shape', None)}"
    )
  o_t, state = _step(
    state,
    common.l2_normalize(q_t),
    common.l2_normalize(k_t),
    v_t.astype(jnp.float32),
    valid,
    common.beta_per_head(beta, q_t.shape[1]),
    options=options,
    precision=common.precision_for(q_t.dtype),
  )
  return o_t.astype(q_t.dtype), state


def ovq_recurrent(
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
  """OVQ attention by scanning the decode step over time.

  Online Vector Quantized Attention (Alonso, Figliolia, Millidge;
  arXiv:2602.03922). Same signature and result as `ovq_naive` / `ovq_chunk`.

  Args:
    q: queries `[B, T, H, D]`; k: keys `[B, T, H, D]`; v: values `[B, T, H, Dv]`.
    beta: inverse temperature > 0, scalar or `[H]`.
    initial_state: `OVQState` or None (empty).
    lengths: `[B]` ints or None (right padding).
    chunk_size: L (DESIGN CHOICE, default 64).
    num_slots: N_max (DESIGN CHOICE, default 1024).
    segment_ids: `[B, T]` ints or None: packed sequences; the whole state restarts at
      each valid token whose id differs from the previous one's. Not with `initial_state`.
    **flags: the DESIGN CHOICE flags (see `ovq_step`).

  Returns:
    `(o [B, T, H, Dv] in q.dtype, final_state)` (with segments: the last segment's).
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
  b, t, h, d = q.shape
  empty = common.init_state(b, h, num_slots, chunk_size, d, v.shape[-1])
  state = empty if initial_state is None else initial_state
  n_valid = jnp.full((b,), t, jnp.int32) if lengths is None else lengths.astype(jnp.int32)
  beta_h = common.beta_per_head(beta, h)
  step = functools.partial(
    _step,
    beta_h=beta_h,
    options=options,
    precision=common.precision_for(q.dtype),
  )

  if segment_ids is None:
    new_segment = jnp.zeros((t, b), bool)
  else:  # [T, B]: a valid token whose id differs from the previous token's
    change = jnp.concatenate(
      [jnp.zeros((b, 1), bool), segment_ids[:, 1:] != segment_ids[:, :-1]], axis=1
    )
    new_segment = jnp.moveaxis(change, 1, 0)

  def body(s, inputs):
    q_t, k_t, v_t, i, fresh = inputs
    valid = i < n_valid
    fresh = fresh & valid
    s = jax.tree.map(
      lambda e, x: jnp.where(fresh.reshape((b,) + (1,) * (x.ndim - 1)), e, x), empty, s
    )
    o_t, s = step(s, q_t, k_t, v_t, valid)
    return s, o_t

  time_major = lambda x: jnp.moveaxis(x, 1, 0)
  final, o = jax.lax.scan(
    body,
    state,
    (
      time_major(common.l2_normalize(q)),
      time_major(common.l2_normalize(k)),
      time_major(v.astype(jnp.float32)),
      jnp.arange(t),
      new_segment,
    ),
  )
  return jnp.moveaxis(o, 0, 1).astype(q.dtype), final
