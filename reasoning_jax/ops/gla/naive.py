"""Gated linear attention: the readable fp32 spec, plus the conventions the triad shares.

Gated Linear Attention Transformers with Hardware-Efficient Training
(Yang et al., arXiv:2312.06635). Per batch element and head, with a state
`S_t` of shape `[Dk, Dv]` and a log-space gate `g_t = log(alpha_t) <= 0`:

    S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T
    o_t = S_t^T (scale * q_t)

Conventions shared by `gla_naive`, `gla_chunk` and `gla_recurrent` (same
signature; each returns `(o, final_state)`):
  * q, k: `[B, T, H, Dk]`; v: `[B, T, H, Dv]`; q, k, v share one dtype.
  * g: `[B, T, H, Dk]` (vector gate, GLA), `[B, T, H]` (one gate per head and
    step, RetNet/Mamba2-style, broadcast over Dk) or None (vanilla linear
    attention, alpha = 1). Its dtype is q's or float32; it is used in fp32.
    DESIGN CHOICE: `g <= 0` (alpha in (0, 1]) is the caller's contract and is
    not checked, because a value-dependent check cannot run under `jax.jit`.
    Positive gates make the state grow and the chunked form may overflow.
  * initial_state: `[B, H, Dk, Dv]` float32 or None (zeros).
  * segment_ids: `[B, T]` ints or None (packed sequences). The state is reset to
    zero at every position whose id differs from the previous position's, so each
    packed sequence is computed exactly as if it ran alone; a run of equal ids is
    one sequence (ids need not be increasing or unique per row). DESIGN CHOICE:
    `initial_state` is the state before position 0, so it reaches the first
    segment of each row only; the returned final state is that of the row's last
    segment. Equivalently alpha_t = 0 at a segment start, so the gate at a
    segment's first position is unused (its gradient is exactly zero).
  * scale: multiplies q; defaults to `Dk ** -0.5`.
  * Returns `o` `[B, T, H, Dv]` in q's dtype and `final_state` `[B, H, Dk, Dv]`
    in float32 (the state is always kept in fp32).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def check_gla_inputs(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  g: jax.Array | None,
  initial_state: jax.Array | None,
  segment_ids: jax.Array | None = None,
) -> None:
  """Raises ValueError naming the argument and the expected shape/dtype.

  Args:
    q: `[B, T, H, Dk]`.
    k: `[B, T, H, Dk]`, same dtype as q.
    v: `[B, T, H, Dv]`, same dtype as q.
    g: `[B, T, H, Dk]`, `[B, T, H]` or None; dtype q's or float32.
    initial_state: `[B, H, Dk, Dv]` float32 or None.
    segment_ids: `[B, T]` integer or None.
  """
  if q.ndim != 4:
    raise ValueError(f"q must be [B, T, H, Dk], got shape {q.shape}")
  b, t, h, dk = q.shape
  if k.shape != q.shape:
    raise ValueError(f"k must be [B, T, H, Dk] = {q.shape} like q, got shape {k.shape}")
  if v.ndim != 4 or v.shape[:3] != (b, t, h):
    raise ValueError(f"v must be [B, T, H, Dv] = {(b, t, h)} + (Dv,), got shape {v.shape}")
  dv = v.shape[3]
  if not jnp.issubdtype(q.dtype, jnp.floating):
    raise ValueError(f"q must have a floating dtype, got {q.dtype}")
  if not q.dtype == k.dtype == v.dtype:
    raise ValueError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
  if g is not None:
    if g.shape not in ((b, t, h, dk), (b, t, h)):
      raise ValueError(
        f"g must be [B, T, H, Dk] = {(b, t, h, dk)} (vector gate) or [B, T, H] = "
        f"{(b, t, h)} (scalar gate per head), got shape {g.shape}"
      )
    if g.dtype not in (q.dtype, jnp.dtype(jnp.float32)):
      raise ValueError(f"g must have q's dtype ({q.dtype}) or float32, got {g.dtype}")
  if initial_state is not None:
    if initial_state.shape != (b, h, dk, dv):
      raise ValueError(
        f"initial_state must be [B, H, Dk, Dv] = {(b, h, dk, dv)}, got shape {initial_state.shape}"
      )
    if initial_state.dtype != jnp.float32:
      raise ValueError(f"initial_state must be float32, got {initial_state.dtype}")
  if segment_ids is not None:
    if segment_ids.shape != (b, t):
      raise ValueError(f"segment_ids must be [B, T] = {(b, t)}, got shape {segment_ids.shape}")
    if not jnp.issubdtype(segment_ids.dtype, jnp.integer):
      raise ValueError(f"segment_ids must have an integer dtype, got {segment_ids.dtype}")


def segment_starts(segment_ids: jax.Array | None) -> jax.Array | None:
  """`[B, T]` bool, True where a new packed sequence starts (the id differs from the previous
  position's); never at t = 0, where `initial_state` applies. None for None."""
  if segment_ids is None:
    return None
  changed = segment_ids[:, 1:] != segment_ids[:, :-1]
  return jnp.pad(changed, ((0, 0), (1, 0)))


def reset_gate(alpha: jax.Array, segment_ids: jax.Array | None) -> jax.Array:
  """alpha `[B, T, H, Dk]` with zeros at segment starts (the state restarts there)."""
  starts = segment_starts(segment_ids)
  if starts is None:
    return alpha
  return jnp.where(starts[:, :, None, None], 0.0, alpha)


def gate_as_vector(g: jax.Array | None, q: jax.Array) -> jax.Array:
  """Returns the log-gate as fp32 shaped like q (zeros for None; a gate without Dk broadcasts).

  Args:
    g: `q.shape` (vector gate), `q.shape[:-1]` (scalar gate per head) or None.
    q: queries, `[B, T, H, Dk]` (or `[B, H, Dk]` for one decode step).
  """
  if g is None:
    return jnp.zeros(q.shape, jnp.float32)
  g = g.astype(jnp.float32)
  if g.ndim == q.ndim - 1:
    g = jnp.broadcast_to(g[..., None], q.shape)
  return g


def default_scale(q: jax.Array, scale: float | None) -> float:
  """`scale` if given, else `Dk ** -0.5`."""
  return q.shape[-1] ** -0.5 if scale is None else scale


def zero_state(q: jax.Array, v: jax.Array) -> jax.Array:
  """The empty state `[B, H, Dk, Dv]` float32."""
  b, _, h, dk = q.shape
  return jnp.zeros((b, h, dk, v.shape[-1]), jnp.float32)


def gla_naive(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  g: jax.Array | None = None,
  *,
  initial_state: jax.Array | None = None,
  scale: float | None = None,
  segment_ids: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Gated linear attention as a plain fp32 scan over time (the spec).

  Gated Linear Attention Transformers with Hardware-Efficient Training
  (Yang et al., arXiv:2312.06635), eq. for the recurrent form:
  `S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T`, `o_t = S_t^T (scale * q_t)`, with
  `exp(g_t)` replaced by 0 where a packed sequence starts.

  Args:
    q: queries `[B, T, H, Dk]`.
    k: keys `[B, T, H, Dk]`.
    v: values `[B, T, H, Dv]`.
    g: log-gates `[B, T, H, Dk]` or `[B, T, H]` (<= 0, unchecked) or None.
    initial_state: `[B, H, Dk, Dv]` float32 or None (zeros).
    scale: multiplies q; defaults to `Dk ** -0.5`.
    segment_ids: `[B, T]` ints or None; the state restarts from zero where the id changes.

  Returns:
    `(o [B, T, H, Dv] in q.dtype, final_state [B, H, Dk, Dv] float32)`.
  """
  check_gla_inputs(q, k, v, g, initial_state, segment_ids)
  scale = default_scale(q, scale)
  alpha = reset_gate(jnp.exp(gate_as_vector(g, q)), segment_ids)
  state = zero_state(q, v) if initial_state is None else initial_state

  def step(s, inputs):
    q_t, k_t, v_t, a_t = inputs  # [B, H, Dk], [B, H, Dk], [B, H, Dv], [B, H, Dk]
    s = a_t[..., None] * s + k_t[..., :, None] * v_t[..., None, :]
    o_t = jnp.einsum("bhk,bhkv->bhv", q_t, s, precision=jax.lax.Precision.HIGHEST)
    return s, o_t

  time_major = lambda x: jnp.moveaxis(x.astype(jnp.float32), 1, 0)
  final_state, o = jax.lax.scan(
    step, state, (time_major(q) * scale, time_major(k), time_major(v), time_major(alpha))
  )
  return jnp.moveaxis(o, 0, 1).astype(q.dtype), final_state
