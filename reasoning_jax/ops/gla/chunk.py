"""Gated linear attention, chunkwise-parallel form (the training path in XLA).

Gated Linear Attention Transformers with Hardware-Efficient Training
(Yang et al., arXiv:2312.06635), Sec. 4 (chunkwise form with secondary chunking).
The sequence is cut into chunks of C positions. With `G_i` the cumulative
log-gate inside a chunk (`G_i = sum_{s<=i} g_s`, a `[Dk]` vector, non-increasing
because g <= 0), `Gamma = G_C` and `S_prev` the state entering the chunk:

    o_i     = (q_i * e^{G_i})^T S_prev + sum_{j<=i} [(q_i * e^{G_i - G_j}) . k_j] v_j
    S_chunk = diag(e^{Gamma}) S_prev + sum_j (k_j * e^{Gamma - G_j}) v_j^T

Numerics: every exponent that is exponentiated is <= 0, so nothing overflows
for any decay strength (g = -30 per step is fine); e^{G_i} and e^{-G_j} are
never formed separately. The intra-chunk scores use the paper's secondary
chunking: the chunk is split into sub-chunks of R <= 16 positions;
  * inside a sub-chunk (the block diagonal) the scores use explicit pairwise
    differences `G_i - G_j`, masked to `j <= i` BEFORE `exp`;
  * for a key j in an earlier sub-chunk than query i, the factorisation
    `(q_i e^{G_i - G_r}) . (k_j e^{G_r - G_j})` with r the first position of
    i's sub-chunk has both exponents <= 0 (j < r <= i), and turns the
    off-diagonal blocks into batched matmuls. Key positions `j >= r` are
    masked before exp.
This keeps intermediates at `O(T (C/R + R) Dk)` per head instead of the
`O(T C Dk)` of a fully pairwise form. R is the largest divisor of C that is at
most 16 (so C = 64 uses R = 16; a prime C uses R = 1, i.e. fully factorised).

Chunk states are then combined by a sequential `lax.scan` over chunks of the
(elementwise) recurrence `S_n = diag(e^{Gamma_n}) S_{n-1} + dS_n`.

Packed sequences (`segment_ids`): the state restarts from zero where the id
changes (see `reasoning_jax.ops.gla.naive`). Each position gets the index of its
sequence counted from its chunk's start (`chunk_segment_index`: 0 for the sequence
that enters the chunk, +1 at every start inside it), and every term is masked by
position, never by a gate of -inf (G stays finite, so no inf - inf):
  * a query sees the entering state only if no sequence starts at or before it in
    the chunk (index 0);
  * a query i sees a key j <= i only if they have the same index; for the
    factorised sub-blocks the mask factorises too (the index is non-decreasing, so
    j < r <= i share a sequence iff both share r's), so it is applied to the query
    and key factors separately, before exp;
  * a chunk's own state contribution keeps only the keys of its last sequence, and
    the chunk decay is 0 if a sequence starts inside the chunk, which cuts the carry
    in the chunk recurrence.
The gate at a sequence start is unused (alpha = 0 there) and is replaced by 0 before
the cumulative sum, so its gradient is exactly zero rather than a rounding residue of
terms that cancel.

T not divisible by C is padded with g = 0 (alpha = 1) and q = k = v = 0: padded
steps leave the state unchanged (they continue the last sequence), and the padding
is sliced off, so outputs, final state and gradients are those of the unpadded
sequence.

Matmul precision: HIGHEST for float32 inputs (an fp32 reference, also on TPU),
the backend default for lower-precision inputs. The state is fp32 throughout.

Zero initial state: with `initial_state=None` the first chunk's inter-chunk term
is skipped (it is zero) and the chunk recurrence starts from the first chunk's
own state, so no matmul ever takes an all-zero state. Besides saving a matmul,
this avoids an XLA:CPU miscompilation (seen with jaxlib 0.10.2 and 0.12.0.1): a
`dot(x, zeros)` whose zeros are a compile-time constant can land in a YNN fusion
as a broadcast of the scalar constant, and that dot then reads garbage (a fixed,
per-executable, per-process random result). A caller that passes a zero state
built inside the same jit (e.g. a freshly initialised cache) can still hit it:
`reasoning_jax.generate` therefore passes the fresh cache in as an argument.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from reasoning_jax.ops.gla import naive

_MAX_SUB_CHUNK = 16


def sub_chunk_size(chunk_size: int) -> int:
  """Largest divisor of `chunk_size` that is at most 16 (the secondary chunk R)."""
  return max(r for r in range(1, min(chunk_size, _MAX_SUB_CHUNK) + 1) if chunk_size % r == 0)


def check_chunk_size(chunk_size: int) -> None:
  """Raises ValueError unless chunk_size is a positive (Python or NumPy) int."""
  if (
    isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or chunk_size <= 0
  ):
    raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")


def masked_exp(x: jax.Array, keep: jax.Array | None) -> jax.Array:
  """`exp(x)` where `keep`, 0 elsewhere, masked BEFORE exp (the gradient is 0, never NaN)."""
  return jnp.exp(x if keep is None else jnp.where(keep, x, -jnp.inf))


def same(a: jax.Array | None, b: jax.Array | None) -> jax.Array | None:
  """`a == b` for segment indices, None (no mask) without segments."""
  return None if a is None else a == b


def both(mask: jax.Array, other: jax.Array | None) -> jax.Array:
  """`mask & other`, or `mask` when `other` is None."""
  return mask if other is None else mask & other


def chunk_segment_index(segment_ids: jax.Array | None, chunk_size: int) -> jax.Array | None:
  """Per position, the index of its packed sequence counted from its chunk's start.

  Args:
    segment_ids: `[B, T]` ints or None.
    chunk_size: C.

  Returns:
    `[B, N, C]` int32 (N = ceil(T / C); padding continues the last sequence): 0 for
    the sequence entering the chunk, +1 at every sequence start inside it. None for None.
  """
  starts = naive.segment_starts(segment_ids)
  if starts is None:
    return None
  b, t = starts.shape
  n = -(-t // chunk_size)
  starts = jnp.pad(starts, ((0, 0), (0, n * chunk_size - t))).astype(jnp.int32)
  return jnp.cumsum(starts.reshape(b, n, chunk_size), axis=-1)


def clear_gate_at_starts(g: jax.Array, segment_ids: jax.Array | None) -> jax.Array:
  """The fp32 log-gate `[B, T, H, Dk]` with 0 at sequence starts, where it is unused."""
  starts = naive.segment_starts(segment_ids)
  return g if starts is None else jnp.where(starts[:, :, None, None], 0.0, g)


def _intra_chunk_output(q, k, v, G, precision, seg=None):
  """`o_i = sum_{j<=i, same sequence} [sum_d q_id k_jd e^{G_id - G_jd}] v_j` inside each chunk.

  Args:
    q, k, G: fp32 `[..., C, Dk]` (q already scaled; G the in-chunk cumulative log-gate).
    v: fp32 `[..., C, Dv]`.
    precision: matmul precision.
    seg: in-chunk sequence index `[..., C, 1]` (broadcast against the leading dims), or None.

  Returns:
    `[..., C, Dv]` fp32.
  """
  c, dk = q.shape[-2:]
  r = sub_chunk_size(c)
  nb = c // r
  lead = q.shape[:-2]
  qb = q.reshape(*lead, nb, r, dk)
  kb = k.reshape(*lead, nb, r, dk)
  vb = v.reshape(*lead, nb, r, v.shape[-1])
  gb = G.reshape(*lead, nb, r, dk)
  sb = None if seg is None else seg.reshape(*seg.shape[:-2], nb, r, 1)

  # Off-diagonal sub-blocks, factorised at r_I = first position of query sub-block I; the
  # sequence mask factorises as well (query and key both in r_I's sequence).
  g_ref = gb[..., :1, :]  # [..., nb, 1, Dk]
  s_ref = None if sb is None else sb[..., :1, :]  # [..., nb, 1, 1]
  q_dec = qb * masked_exp(gb - g_ref, same(sb, s_ref))  # exponent <= 0 (i >= r_I)
  key_pos = jnp.arange(c)
  block_start = jnp.arange(nb) * r
  before = (key_pos[None, :] < block_start[:, None])[:, :, None]  # [nb, C, 1]
  keys_kept = both(before, None if seg is None else seg[..., None, :, :] == s_ref)
  k_dec = k[..., None, :, :] * masked_exp(g_ref - G[..., None, :, :], keys_kept)  # [.., nb, C, Dk]
  a_off = jnp.einsum("...nid,...njd->...nij", q_dec, k_dec, precision=precision)
  o_off = jnp.einsum("...nij,...jv->...niv", a_off, v, precision=precision)

  # Diagonal sub-blocks, explicit pairwise differences masked before exp. Written as
  # three-operand / block einsums: XLA:CPU in jaxlib 0.10.2 segfaults in the backward of
  # the equivalent `sum(q * k * exp(diff), -1)` and of a block-diagonal `* eye` assembly
  # of the full [C, C] scores when H > 1 and there is more than one chunk (reproduced;
  # jaxlib 0.12 is fine). Same math.
  causal = jnp.tril(jnp.ones((r, r), bool))[:, :, None]
  pairs = both(causal, None if sb is None else sb[..., :, None, :] == sb[..., None, :, :])
  decay = masked_exp(gb[..., :, None, :] - gb[..., None, :, :], pairs)
  a_diag = jnp.einsum("...id,...jd,...ijd->...ij", qb, kb, decay, precision=precision)
  o_diag = jnp.einsum("...ij,...jv->...iv", a_diag, vb, precision=precision)
  return (o_off + o_diag).reshape(*lead, c, v.shape[-1])


def chunk_state_updates(kc, vc, G, precision, seg=None):
  """Each chunk's own state contribution and its decay, all chunks in parallel.

  Args:
    kc, G: fp32 `[..., N, C, Dk]` keys and in-chunk cumulative log-gates.
    vc: fp32 `[..., N, C, Dv]`.
    precision: matmul precision.
    seg: in-chunk sequence index `[..., N, C, 1]` (broadcast), or None.

  Returns:
    `(d_state [..., N, Dk, Dv] = sum_j (k_j e^{Gamma - G_j}) v_j^T, decay [..., N, Dk] =
    e^{Gamma})` with `Gamma = G_C` (every exponent <= 0). With segments only the keys of
    the chunk's last sequence contribute, and the decay is 0 if a sequence starts in the chunk.
  """
  gamma = G[..., -1:, :]
  s_last = None if seg is None else seg[..., -1:, :]
  k_to_end = kc * masked_exp(gamma - G, same(seg, s_last))  # exponent <= 0
  d_state = jnp.einsum("...ck,...cv->...kv", k_to_end, vc, precision=precision)
  carry = None if seg is None else s_last[..., 0, :] == 0  # no sequence starts in the chunk
  return d_state, masked_exp(gamma[..., 0, :], carry)


def scan_chunk_states(s0, d_state, chunk_decay):
  """The chunk recurrence `S_n = diag(decay_n) S_{n-1} + dS_n` from `s0`, sequential in n.

  Args:
    s0: fp32 `[B, H, Dk, Dv]`, the state before the first chunk given.
    d_state: `[B, H, N, Dk, Dv]`; chunk_decay: `[B, H, N, Dk]` (`chunk_state_updates`).

  Returns:
    `(final [B, H, Dk, Dv], entering [B, H, N, Dk, Dv])`: the state after the last chunk
    and the state before each chunk.
  """

  def step(s, inputs):
    d_s, decay = inputs
    return decay[..., :, None] * s + d_s, s

  final, entering = jax.lax.scan(
    step, s0, (jnp.moveaxis(d_state, 2, 0), jnp.moveaxis(chunk_decay, 2, 0))
  )
  return final, jnp.moveaxis(entering, 0, 2)


def entering_states(kc, vc, G, initial_state, precision, seg=None):
  """The fp32 state before every chunk `[B, H, N, Dk, Dv]` and the final state.

  Without an initial state the first chunk enters with zeros and the recurrence starts from
  that chunk's own contribution, so no matmul ever takes an all-zero state (see "Zero
  initial state" in the module docstring); callers that want to skip chunk 0's inter-chunk
  term use `entering[:, :, 1:]`. `seg`: in-chunk sequence index `[B, 1, N, C, 1]` or None.
  """
  d_state, decay = chunk_state_updates(kc, vc, G, precision, seg)
  if initial_state is not None:
    final, entering = scan_chunk_states(initial_state, d_state, decay)
    return entering, final
  first = d_state[:, :, 0]
  zeros = jnp.zeros_like(d_state[:, :, :1])
  if d_state.shape[2] == 1:
    return zeros, first
  final, rest = scan_chunk_states(first, d_state[:, :, 1:], decay[:, :, 1:])
  return jnp.concatenate([zeros, rest], axis=2), final


def gla_chunk(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  g: jax.Array | None = None,
  *,
  initial_state: jax.Array | None = None,
  scale: float | None = None,
  chunk_size: int = 64,
  segment_ids: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Gated linear attention in chunkwise-parallel form.

  Gated Linear Attention Transformers with Hardware-Efficient Training
  (Yang et al., arXiv:2312.06635). Same math and signature as `gla_naive` plus
  `chunk_size`; see the module docstring for the numerics.

  Args:
    q: queries `[B, T, H, Dk]`.
    k: keys `[B, T, H, Dk]`.
    v: values `[B, T, H, Dv]`.
    g: log-gates `[B, T, H, Dk]` or `[B, T, H]` (<= 0, unchecked) or None.
    initial_state: `[B, H, Dk, Dv]` float32 or None (zeros).
    scale: multiplies q; defaults to `Dk ** -0.5`.
    chunk_size: positions per chunk C (any positive int; T need not divide).
    segment_ids: `[B, T]` ints or None; the state restarts from zero where the id changes.

  Returns:
    `(o [B, T, H, Dv] in q.dtype, final_state [B, H, Dk, Dv] float32)`.
  """
  naive.check_gla_inputs(q, k, v, g, initial_state, segment_ids)
  check_chunk_size(chunk_size)
  scale = naive.default_scale(q, scale)
  precision = jax.lax.Precision.HIGHEST if q.dtype == jnp.float32 else None
  b, t, h, dk = q.shape
  dv = v.shape[-1]
  c = chunk_size
  n = -(-t // c)

  def to_chunks(x):  # [B, T, H, D] -> fp32 [B, H, N, C, D], zero-padded in time
    x = jnp.pad(x.astype(jnp.float32), ((0, 0), (0, n * c - t), (0, 0), (0, 0)))
    return x.reshape(b, n, c, h, x.shape[-1]).transpose(0, 3, 1, 2, 4)

  qc = to_chunks(q) * scale
  kc, vc = to_chunks(k), to_chunks(v)
  g = clear_gate_at_starts(naive.gate_as_vector(g, q), segment_ids)
  G = jnp.cumsum(to_chunks(g), axis=-2)  # [B, H, N, C, Dk]
  seg = chunk_segment_index(segment_ids, c)
  seg = None if seg is None else seg[:, None, :, :, None]  # [B, 1, N, C, 1]

  # Intra-chunk (all chunks in parallel).
  o_intra = _intra_chunk_output(qc, kc, vc, G, precision, seg)

  # Each chunk's own contribution to the state at its end, then the chunk recurrence.
  entering, final_state = entering_states(kc, vc, G, initial_state, precision, seg)
  first = 0 if initial_state is not None else 1  # Chunk 0 enters a zero state: skipped.
  sees_state = None if seg is None else seg[:, :, first:] == 0  # no start before it in the chunk
  o_inter = jnp.einsum(
    "...ck,...kv->...cv",
    qc[:, :, first:] * masked_exp(G[:, :, first:], sees_state),
    entering[:, :, first:],
    precision=precision,
  )
  o = jnp.concatenate([o_intra[:, :, :first], o_intra[:, :, first:] + o_inter], axis=2)

  o = o.transpose(0, 2, 3, 1, 4).reshape(b, n * c, h, dv)[:, :t]
  return o.astype(q.dtype), final_state
