"""OVQ attention: the readable fp32 reference (a Python loop over chunks).

Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922),
spec section 3.2 of /shared/methods/memory_attention.md, written as literally as
possible: logits from explicit squared distances `-(beta/2)||q - x||^2 + log n`,
farthest-first seeding and assignment from explicit distances, and the running
mean update with a scatter-add per sequence (`jax.vmap` over batch and heads).
`ovq_chunk` (dense, scanned) and `ovq_recurrent` (decode steps) must agree with it.
See `reasoning_jax.ops.ovq.common` for the state and the conventions. Packed rows
(`segment_ids`) are laid out as literally "each segment alone": every segment gets its
own whole chunks of a segment-aligned stream, and the state is emptied at each chunk
that starts a segment (`reasoning_jax.ops.ovq.segments.packed_stream`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from reasoning_jax.ops.ovq import common, segments, write
from reasoning_jax.ops.ovq.options import make_options


def _sq_dist(x, c):
  """`||x_j - c_i||^2` `[Lx, Nc]`, computed from the differences."""
  return jnp.sum((x[:, None, :] - c[None, :, :]) ** 2, axis=-1)


def _absorb_one(dict_k, dict_v, counts, keys, values, tokens_seen, full, head, *, options):
  """One sequence and head: absorb the chunk `keys [L, D]`, `values [L, Dv]` if `full`."""
  n_slots, l = counts.shape[0], keys.shape[0]
  active = counts > 0
  # 1. Growth: open m slots so that the active count reaches the schedule's target.
  m = write.growth(counts, tokens_seen, l, options)
  # 2. Seeding: m picks by the rule's score (picks and assignments carry no gradient).
  sk = jax.lax.stop_gradient(keys)
  score = write.OVQ_SEEDINGS.get(options.seeding)
  noise = write.seeding_noise(sk, tokens_seen, head, options.seed)  # [L picks, L keys]
  centres = jax.lax.stop_gradient(dict_k)
  is_centre = active
  nearest = jnp.min(jnp.where(active[None, :], _sq_dist(sk, centres), jnp.inf), axis=-1)
  free_slots = jnp.argsort(active, stable=True)  # free slots first, in index order

  def pick(r, carry):
    centres, is_centre, nearest, picked, base_k, base_v = carry
    j = jnp.argmax(score(nearest, picked, noise[r]))  # first argmax
    on = r < m
    slot = free_slots[r]
    centres = centres.at[slot].set(jnp.where(on, sk[j], centres[slot]))
    base_k = base_k.at[slot].set(jnp.where(on, keys[j], base_k[slot]))  # a new slot's seed
    base_v = base_v.at[slot].set(jnp.where(on, values[j], base_v[slot]))
    is_centre = is_centre.at[slot].set(is_centre[slot] | on)
    picked = picked.at[j].set(picked[j] | on)
    nearest = jnp.where(on, jnp.minimum(nearest, jnp.sum((sk - sk[j]) ** 2, axis=-1)), nearest)
    return centres, is_centre, nearest, picked, base_k, base_v

  init = (centres, is_centre, nearest, jnp.zeros((l,), bool), dict_k, dict_v)
  centres, is_centre, _, _, base_k, base_v = jax.lax.fori_loop(0, l, pick, init)
  # 3. Hard assignment to the nearest centre (argmin: ties go to the lowest index).
  a = jnp.argmin(jnp.where(is_centre[None, :], _sq_dist(sk, centres), jnp.inf), axis=-1)
  # 4. The update rule from the sums of what this chunk assigned to each slot.
  hits = jnp.zeros((n_slots,), jnp.float32).at[a].add(1.0)
  touched = (hits > 0) & full
  update = functools.partial(write.OVQ_UPDATES.get(options.update), lr=options.update_lr)
  new_k = update(counts, base_k, jnp.zeros_like(dict_k).at[a].add(keys), hits)
  new_v = update(counts, base_v, jnp.zeros_like(dict_v).at[a].add(values), hits)
  if options.renormalize:
    new_k = common.l2_normalize(new_k)
  return (
    jnp.where(touched[:, None], new_k, dict_k),
    jnp.where(touched[:, None], new_v, dict_v),
    jnp.where(full, counts + hits, counts),
  )


def _chunk_keys(keys, dict_k, counts, readout: str):
  """The keys the current chunk's exact part reads, `[B, H, L, D]`: as they are ("exact"), or
  each replaced by its nearest active slot by explicit distances ("vq"; straight-through
  gradient; the keys stay exact while no slot is active)."""
  if readout == "exact":
    return keys
  sg = jax.lax.stop_gradient
  dist = jnp.sum((sg(keys)[:, :, :, None, :] - sg(dict_k)[:, :, None, :, :]) ** 2, axis=-1)
  active = counts > 0
  a = jnp.argmin(jnp.where(active[:, :, None, :], dist, jnp.inf), axis=-1)  # [B, H, L]
  code = jnp.take_along_axis(sg(dict_k), a[..., None], axis=2)
  return jnp.where(jnp.any(active, -1)[..., None, None], keys + sg(code - keys), keys)


def _readout(q, keys, values, key_mask, dict_k, dict_v, counts, beta_h, options):
  """The spec's joint softmax with explicit distances; q `[B, H, L, D]`, mask `[B, L, L]`."""
  beta = beta_h[None, :, None, None]
  keys = _chunk_keys(keys, dict_k, counts, options.readout)
  dk = common.l2_normalize(dict_k) if options.renormalize else dict_k  # (already unit if so)
  dist_d = jnp.sum((q[:, :, :, None, :] - dk[:, :, None, :, :]) ** 2, axis=-1)
  logits_d = -0.5 * beta * dist_d + common.log_counts(counts)[:, :, None, :]
  dist_c = jnp.sum((q[:, :, :, None, :] - keys[:, :, None, :, :]) ** 2, axis=-1)
  logits_c = jnp.where(key_mask[:, None], -0.5 * beta * dist_c, -jnp.inf)
  logits = jnp.concatenate([logits_d, logits_c], axis=-1)
  top = jnp.max(logits, axis=-1, keepdims=True)
  top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
  weights = jnp.exp(logits - top)
  total = jnp.sum(weights, axis=-1, keepdims=True)
  weights = weights / jnp.where(total > 0, total, 1.0)  # rows that see nothing give 0
  hp = jax.lax.Precision.HIGHEST
  return jnp.einsum(
    "bhij,bhjv->bhiv", weights, jnp.concatenate([dict_v, values], axis=2), precision=hp
  )


def ovq_naive(
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
  """OVQ attention as a plain loop over chunks (the fp32 spec).

  Online Vector Quantized Attention (Alonso, Figliolia, Millidge;
  arXiv:2602.03922). Same signature and result as `ovq_chunk` and
  `ovq_recurrent`.

  Args:
    q: queries `[B, T, H, D]` (L2-normalised here).
    k: keys `[B, T, H, D]` (L2-normalised here).
    v: values `[B, T, H, Dv]`.
    beta: inverse temperature > 0, a scalar or `[H]` (DESIGN CHOICE of the layer:
      `exp(b)` with b a per-head parameter initialised at `log sqrt(D)`).
    initial_state: `OVQState` to continue from (possibly with a partly filled
      buffer), or None (empty).
    lengths: `[B]` ints or None. Right padding: tokens at positions
      `>= lengths[b]` are neither read nor absorbed, and their outputs are 0.
    chunk_size: L, tokens per chunk (DESIGN CHOICE, default 64).
    num_slots: N_max dictionary slots per head (DESIGN CHOICE, default 1024).
    segment_ids: `[B, T]` ints or None: packed sequences. The whole state restarts at
      every valid position whose id differs from the previous token's; chunks and the
      growth schedule count tokens within the segment. Not with `initial_state`.
    **flags: the DESIGN CHOICE flags (schedule, renormalize, seeding, seed, update,
      update_lr, readout, linear_tokens, dirichlet_alpha), defaults `options.DEFAULT_FLAGS`,
      validated by `options.make_options` (see `reasoning_jax.ops.ovq.ovq_attention`).

  Returns:
    `(o [B, T, H, Dv] in q.dtype, final_state)`; with segments the final state is the
    last segment's.
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
  l = chunk_size
  if segment_ids is None:
    s = common.prepare(q, k, v, beta, initial_state, lengths, chunk_size, num_slots)
    state, end, offset = s["state"], s["end"], s["offset"]
    pos = jnp.arange(s["q"].shape[2])[None, :]
    row_valid = pos < end[:, None]
    query_valid = row_valid & (pos >= (0 if offset is None else offset[:, None]))
    reset = jnp.zeros((q.shape[0], s["num_chunks"]), bool)
  else:
    s = segments.packed_stream(q, k, v, segment_ids, lengths, chunk_size)
    state = common.init_state(q.shape[0], q.shape[2], num_slots, l, q.shape[3], v.shape[-1])
    row_valid = query_valid = s["row_valid"]
    reset, end = s["reset"], s["end"]
  h = q.shape[2]
  beta_h = common.beta_per_head(beta, h)
  dict_k, dict_v, counts, seen = state.dk, state.dv, state.counts, state.tokens_seen
  absorb = jax.vmap(
    jax.vmap(
      functools.partial(_absorb_one, options=options),
      in_axes=(0, 0, 0, 0, 0, None, None, 0),
    ),  # heads (the head index feeds the seeding noise)
    in_axes=(0, 0, 0, 0, 0, 0, 0, None),
  )  # batch rows
  heads = jnp.arange(h)
  causal = jnp.tril(jnp.ones((l, l), bool))
  outputs = []
  for c in range(reset.shape[1]):
    rows = slice(c * l, (c + 1) * l)
    q_c, k_c, v_c = s["q"][:, :, rows], s["k"][:, :, rows], s["v"][:, :, rows]
    # A chunk that starts a packed segment starts from the empty state.
    fresh = reset[:, c]
    dict_k = jnp.where(fresh[:, None, None, None], 0.0, dict_k)
    dict_v = jnp.where(fresh[:, None, None, None], 0.0, dict_v)
    counts = jnp.where(fresh[:, None, None], 0.0, counts)
    seen = jnp.where(fresh, 0, seen)
    key_valid = row_valid[:, rows]  # [B, L]
    o_c = _readout(
      q_c,
      k_c,
      v_c,
      causal[None] & key_valid[:, None, :],
      dict_k,
      dict_v,
      counts,
      beta_h,
      options,
    )
    outputs.append(jnp.where(query_valid[:, None, rows, None], o_c, 0.0))
    full = jnp.all(key_valid, axis=1)  # only a complete chunk is absorbed
    dict_k, dict_v, counts = absorb(dict_k, dict_v, counts, k_c, v_c, seen, full, heads)
    seen = seen + jnp.where(full, l, 0).astype(jnp.int32)
  o = jnp.concatenate(outputs, axis=2)
  if segment_ids is None:
    o = common.from_stream(o, offset, s["t"])
  else:
    o = segments.from_packed_stream(o, s["row"])
  buf_k, buf_v, buf_len = common.final_buffer(s["k"], s["v"], end, l)
  final = common.OVQState(
    dk=dict_k, dv=dict_v, counts=counts, buf_k=buf_k, buf_v=buf_v, buf_len=buf_len, tokens_seen=seen
  )
  return o.astype(q.dtype), final
