"""Gated linear attention, step-wise form for decoding with a recurrent-state cache.

Gated Linear Attention Transformers with Hardware-Efficient Training
(Yang et al., arXiv:2312.06635). `gla_step` advances the fp32 state `[B, H, Dk, Dv]`
by one token; it is what a generation cache calls per decoded token.
`gla_recurrent` scans `gla_step` over a sequence and has the triad signature of
`gla_naive` / `gla_chunk` (see `reasoning_jax.ops.gla.naive` for the conventions).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from reasoning_jax.ops.gla import naive


def _step(q_t, k_t, v_t, alpha_t, state):
  """Core step on fp32 `[B, H, *]` inputs (q already scaled); returns (o_t fp32, state)."""
  state = alpha_t[..., :, None] * state + k_t[..., :, None] * v_t[..., None, :]
  o_t = jnp.einsum("bhk,bhkv->bhv", q_t, state, precision=jax.lax.Precision.HIGHEST)
  return o_t, state


def gla_step(
  q_t: jax.Array,
  k_t: jax.Array,
  v_t: jax.Array,
  g_t: jax.Array | None,
  state: jax.Array | None,
  *,
  scale: float | None = None,
) -> tuple[jax.Array, jax.Array]:
  """One decode step: `S = diag(exp(g_t)) S + k_t v_t^T; o_t = S^T (scale * q_t)`.

  Args:
    q_t: query of the new token `[B, H, Dk]`.
    k_t: key `[B, H, Dk]`, same dtype as q_t.
    v_t: value `[B, H, Dv]`, same dtype as q_t.
    g_t: log-gate `[B, H, Dk]` or `[B, H]` (<= 0, unchecked) or None (alpha = 1).
    state: `[B, H, Dk, Dv]` float32 from the previous step, or None (empty).
    scale: multiplies q_t; defaults to `Dk ** -0.5`.

  Returns:
    `(o_t [B, H, Dv] in q_t.dtype, state [B, H, Dk, Dv] float32)`.
  """
  if q_t.ndim != 3:
    raise ValueError(f"q_t must be [B, H, Dk], got shape {q_t.shape}")
  # Validate through the sequence-level checks with T = 1.
  add_t = lambda x: None if x is None else x[:, None]
  naive.check_gla_inputs(add_t(q_t), add_t(k_t), add_t(v_t), add_t(g_t), state)
  scale = naive.default_scale(q_t, scale)
  alpha_t = jnp.exp(naive.gate_as_vector(g_t, q_t))
  if state is None:
    state = naive.zero_state(q_t[:, None], v_t[:, None])
  f32 = lambda x: x.astype(jnp.float32)
  o_t, state = _step(f32(q_t) * scale, f32(k_t), f32(v_t), alpha_t, state)
  return o_t.astype(q_t.dtype), state


def gla_recurrent(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  g: jax.Array | None = None,
  *,
  initial_state: jax.Array | None = None,
  scale: float | None = None,
  segment_ids: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Gated linear attention by scanning the decode step over time.

  Gated Linear Attention Transformers with Hardware-Efficient Training
  (Yang et al., arXiv:2312.06635). O(T) sequential steps with an fp32
  `[B, H, Dk, Dv]` state; cheapest for short T (prefill of a few tokens, decode).

  Args:
    q: queries `[B, T, H, Dk]`.
    k: keys `[B, T, H, Dk]`.
    v: values `[B, T, H, Dv]`.
    g: log-gates `[B, T, H, Dk]` or `[B, T, H]` (<= 0, unchecked) or None.
    initial_state: `[B, H, Dk, Dv]` float32 or None (zeros).
    scale: multiplies q; defaults to `Dk ** -0.5`.
    segment_ids: `[B, T]` ints or None; the state restarts from zero where the id changes
      (alpha = 0 at a segment start; see `reasoning_jax.ops.gla.naive`).

  Returns:
    `(o [B, T, H, Dv] in q.dtype, final_state [B, H, Dk, Dv] float32)`.
  """
  naive.check_gla_inputs(q, k, v, g, initial_state, segment_ids)
  scale = naive.default_scale(q, scale)
  alpha = naive.reset_gate(jnp.exp(naive.gate_as_vector(g, q)), segment_ids)
  state = naive.zero_state(q, v) if initial_state is None else initial_state

  def body(s, inputs):
    o_t, s = _step(*inputs, s)
    return s, o_t

  time_major = lambda x: jnp.moveaxis(x.astype(jnp.float32), 1, 0)
  final_state, o = jax.lax.scan(
    body, state, (time_major(q) * scale, time_major(k), time_major(v), time_major(alpha))
  )
  return jnp.moveaxis(o, 0, 1).astype(q.dtype), final_state
