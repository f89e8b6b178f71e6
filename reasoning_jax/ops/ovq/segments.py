"""OVQ attention on packed rows: every segment restarts the whole state.

Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922).
A packed row holds several sequences, told apart by `segment_ids [B, T]`. The state
(dictionary, counts, chunk buffer and the growth schedule's `tokens_seen`) restarts
at every valid position whose id differs from the previous token's, so each segment
gives exactly what it gives run alone (the restart rule): its chunks are counted
from its own first token (chunk boundaries at segment positions 0, L, 2L, ...), and
the schedule's tau counts the tokens absorbed within the segment. A padding token
(at or past `lengths[b]`) never starts a segment.

Two layouts implement the rule:
  * the naive form (`packed_stream`) moves every segment to its own run of whole
    chunks of a segment-aligned stream (`ceil(len / L)` chunks per segment, T chunks
    at most, a static bound) and resets the state at chunks that start a segment:
    literally "each segment alone";
  * the chunked form (`ovq_chunk_scan_packed`) keeps the row's own chunks (ceil(T / L)
    scan steps, no re-layout). In row chunk c (positions [cL, cL + L)) only the
    segment holding cL can have absorbed anything; its current segment chunk started at
    `a = cL - ((cL - start) mod L)` and ends at `e = a + L - 1`, inside chunk c. So a
    step reads twice: once against the carried dictionary (queries of that segment up
    to e) and once against the dictionary after absorbing [a, e] (its queries after
    e); queries of segments starting inside chunk c read no dictionary. Exact keys
    come from a window of 2L rows (chunk c - 1 and chunk c), query t seeing keys in
    `[a(t), t]`, its own segment chunk. The carry is reset where the segment at cL
    did not already cover the previous chunk's first position. The cost is two
    readouts per chunk against one without segments.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from reasoning_jax.ops.ovq import common, write


def segment_starts(segment_ids, end, length: int) -> jax.Array:
  """Row position where each position's segment starts, `[B, length]` int32.

  A segment starts at position 0 and at every valid position (`< end [B]`) whose id
  differs from the previous position's. Positions at and past `end` (padding, and past
  T when `length > T`) belong to the last valid segment.
  """
  b, t = segment_ids.shape
  ids = jnp.pad(segment_ids, ((0, 0), (0, max(length - t, 0))))[:, :length]
  pos = jnp.arange(length)
  change = jnp.concatenate([jnp.ones((b, 1), bool), ids[:, 1:] != ids[:, :-1]], axis=1)
  boundary = (change & (pos[None, :] < end[:, None])) | (pos[None, :] == 0)
  return jax.lax.cummax(jnp.where(boundary, pos[None, :], 0), axis=1).astype(jnp.int32)


def last_start(starts, end) -> jax.Array:
  """Start `[B]` of the segment holding the last valid token (0 for an empty row)."""
  idx = jnp.clip(end - 1, 0, starts.shape[1] - 1)
  return jnp.take_along_axis(starts, idx[:, None], axis=1)[:, 0]


def valid_count(lengths, b: int, t: int) -> jax.Array:
  """Valid tokens per row `[B]` int32 (T without lengths)."""
  if lengths is None:
    return jnp.full((b,), t, jnp.int32)
  return jnp.clip(lengths.astype(jnp.int32), 0, t)


# ----------------------------------------------------------------- naive: aligned stream


def packed_stream(q, k, v, segment_ids, lengths, chunk_size: int):
  """The segment-aligned stream of the naive form (no initial state).

  Token t of segment s (at segment position p) goes to stream row
  `L * (chunks of the earlier segments + p // L) + p mod L`; T chunks bound the
  stream statically (every segment may have length 1).

  Returns a dict with fp32 streams `q, k, v` `[B, H, T L, *]` (q and k unit norm),
  `row_valid [B, T L]`, `reset [B, T]` (chunk c starts a segment), `row [B, T]` (each
  token's stream row; `T L` for padding tokens), `end [B]` (valid stream rows up to the
  last token's) and `buf_len [B]` (the last segment's tokens past its last whole chunk).
  """
  b, t = segment_ids.shape
  l = chunk_size
  p = t * l
  end = valid_count(lengths, b, t)
  starts = segment_starts(segment_ids, end, t)
  pos = jnp.arange(t)[None, :]
  valid = pos < end[:, None]
  seg_pos = pos - starts
  chunk = jnp.cumsum(valid & (seg_pos % l == 0), axis=1) - 1
  row = jnp.where(valid, chunk * l + seg_pos % l, p)
  bi = jnp.arange(b)[:, None]

  def scatter(x):  # [B, T, H, D] -> [B, H, P, D]
    out = jnp.zeros((b, p) + x.shape[2:], jnp.float32).at[bi, row].set(x, mode="drop")
    return jnp.moveaxis(out, 1, 2)

  first = jnp.zeros((b, p), bool).at[bi, row].set(seg_pos == 0, mode="drop")
  return dict(
    q=scatter(common.l2_normalize(q)),
    k=scatter(common.l2_normalize(k)),
    v=scatter(v.astype(jnp.float32)),
    row_valid=jnp.zeros((b, p), bool).at[bi, row].set(True, mode="drop"),
    reset=first[:, ::l],
    row=row,
    end=jnp.max(jnp.where(valid, row + 1, 0), axis=1).astype(jnp.int32),
    buf_len=((end - last_start(starts, end)) % l).astype(jnp.int32),
  )


def from_packed_stream(o, row) -> jax.Array:
  """`[B, H, P, Dv]` stream outputs -> `[B, T, H, Dv]` tokens (0 for padding tokens)."""
  p = o.shape[2]
  out = jnp.take_along_axis(o, jnp.clip(row, 0, p - 1)[:, None, :, None], axis=2)
  return jnp.moveaxis(jnp.where((row < p)[:, None, :, None], out, 0.0), 1, 2)


# ---------------------------------------------------------------- chunked: row layout


def ovq_chunk_scan_packed(
  q,
  k,
  v,
  *,
  beta,
  segment_ids,
  lengths,
  chunk_size: int,
  num_slots: int,
  options,
  readout,
  assign=None,
) -> tuple[jax.Array, common.OVQState]:
  """The chunked form on packed rows (see the module docstring; inputs trusted).

  Args:
    q, k: `[B, T, H, D]`; v: `[B, T, H, Dv]`.
    beta: scalar or `[H]`.
    segment_ids: `[B, T]` ints.
    lengths: `[B]` ints or None (right padding).
    chunk_size, num_slots: as in `ovq_chunk`.
    options: the flags (`reasoning_jax.ops.ovq.options.OVQOptions`).
    readout: the chunk readout `(q, keys, values, key_mask, dict_mask, dict_k, dict_v,
      counts, beta_h) -> [B, H, L, Dv]` (XLA or the Pallas kernel). With the "vq" readout
      each read quantises the window's keys against the dictionary it reads.
    assign: the write's assignment (None: `common.nearest_candidate`).

  Returns:
    `(o [B, T, H, Dv] in q.dtype, final_state)`; the final state is the last segment's.
  """
  b, t, h, d = q.shape
  dv = v.shape[-1]
  l = chunk_size
  n_chunks = -(-t // l)
  p = n_chunks * l
  precision = common.precision_for(q.dtype)
  end = valid_count(lengths, b, t)
  starts = segment_starts(segment_ids, end, p)  # [B, P]
  pos = jnp.arange(p)[None, :]
  seg_chunk = pos - (pos - starts) % l  # a(t): where t's segment chunk starts
  beta_h = common.beta_per_head(beta, h)
  streams = [
    common.to_stream(x, None, None, p)
    for x in (common.l2_normalize(q), common.l2_normalize(k), v.astype(jnp.float32))
  ]
  empty = common.init_state(b, h, num_slots, l, d, dv)
  absorb = functools.partial(write.absorb, options=options, precision=precision, assign=assign)
  read = common.chunk_reader(readout, options.readout, beta_h, precision)

  def to_chunks(x):  # [B, H, P, D] -> [C, B, H, L, D]
    return jnp.moveaxis(x.reshape(b, h, n_chunks, l, x.shape[-1]), 2, 0)

  def previous(x):  # chunk c - 1 at index c (zeros before the first)
    return jnp.concatenate([jnp.zeros_like(x[:1]), x[:-1]], axis=0)

  def ints(x):  # [B, P] -> [C, B, L]
    return jnp.moveaxis(x.reshape(b, n_chunks, l), 1, 0)

  def body(carry, inputs):
    dict_k, dict_v, counts, seen = carry
    q_c, k_c, v_c, k_p, v_p, start_c, a_c, c = inputs
    c0 = c * l
    # Keep the carry only if the segment at c0 already held chunk c - 1's first position.
    keep = start_c[:, 0] <= c0 - l  # [B]
    keep4 = keep[:, None, None, None]
    dict_k = jnp.where(keep4, dict_k, 0.0)
    dict_v = jnp.where(keep4, dict_v, 0.0)
    counts = jnp.where(keep[:, None, None], counts, 0.0)
    seen = jnp.where(keep, seen, 0)

    q_pos = c0 + jnp.arange(l)  # [L]
    k_pos = c0 - l + jnp.arange(2 * l)  # [2L]: chunk c - 1, then chunk c
    keys = jnp.concatenate([k_p, k_c], axis=2)
    values = jnp.concatenate([v_p, v_c], axis=2)
    key_mask = (
      (k_pos[None, None, :] >= a_c[:, :, None])
      & (k_pos[None, None, :] <= q_pos[None, :, None])
      & (k_pos[None, None, :] < end[:, None, None])
    )  # [B, L, 2L]: own segment chunk, causal, valid
    first = start_c == start_c[:, :1]  # [B, L]: the segment at c0
    last = a_c[:, 0] + l - 1  # [B]: where its segment chunk ends (inside chunk c)
    before = first & (q_pos[None, :] <= last[:, None])
    after = first & (q_pos[None, :] > last[:, None])
    o_before = read(q_c, keys, values, key_mask, before, dict_k, dict_v, counts)

    # Absorb [a, a + L - 1] of the segment at c0 if it is whole (same segment, valid).
    rows = (a_c[:, :1] - (c0 - l)) + jnp.arange(l)[None, :]  # [B, L] window rows
    take = lambda x: jnp.take_along_axis(x, rows[:, None, :, None], axis=2)
    last_start_id = jnp.take_along_axis(start_c, (last - c0)[:, None], axis=1)[:, 0]
    full = (last_start_id == start_c[:, 0]) & (last < end)
    dict_k, dict_v, counts = absorb(dict_k, dict_v, counts, take(keys), take(values), seen, full)
    seen = seen + jnp.where(full, l, 0).astype(jnp.int32)
    o_after = read(q_c, keys, values, key_mask, after, dict_k, dict_v, counts)

    o_c = jnp.where(after[:, None, :, None], o_after, o_before)
    o_c = jnp.where((q_pos[None, :] < end[:, None])[:, None, :, None], o_c, 0.0)
    return (dict_k, dict_v, counts, seen), o_c

  q_ch, k_ch, v_ch = (to_chunks(x) for x in streams)
  xs = (q_ch, k_ch, v_ch, previous(k_ch), previous(v_ch), ints(starts), ints(seg_chunk))
  init = (empty.dk, empty.dv, empty.counts, empty.tokens_seen)
  (dict_k, dict_v, counts, seen), o = jax.lax.scan(
    jax.checkpoint(body), init, xs + (jnp.arange(n_chunks),)
  )
  o = jnp.moveaxis(o, 0, 2).reshape(b, h, p, -1)

  # The last segment's state: empty if it started inside the last chunk (nothing absorbed).
  start_last = last_start(starts, end)
  keep = start_last <= (n_chunks - 1) * l
  buf_len = ((end - start_last) % l).astype(jnp.int32)
  buf_k, buf_v, buf_len = common.final_buffer(streams[1], streams[2], end, l, buf_len)
  final = common.OVQState(
    dk=jnp.where(keep[:, None, None, None], dict_k, 0.0),
    dv=jnp.where(keep[:, None, None, None], dict_v, 0.0),
    counts=jnp.where(keep[:, None, None], counts, 0.0),
    buf_k=buf_k,
    buf_v=buf_v,
    buf_len=buf_len,
    tokens_seen=jnp.where(keep, seen, 0).astype(jnp.int32),
  )
  return common.from_stream(o, None, t).astype(q.dtype), final
