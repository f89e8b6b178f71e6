"""Momentum Attention: a symplectic shear (high-pass filter) on post-RoPE queries and keys.

"Momentum Attention: The Physics of In-Context Learning and Spectral Forensics for
Mechanistic Interpretability" (Kingsuk Maitra, arXiv:2602.04902). Per head, after the
projections AND after RoPE, with the kinematic difference p_t = x_t - x_{t-1}:

    x̂_t = x_t + gamma * p_t = (1 + gamma) * x_t - gamma * x_{t-1}      (x = q and x = k)
    o_t = sum_{j <= t} softmax_j(q̂_t . k̂_j * scale) v_j                (values unchanged)

Per channel this is the FIR filter H(z) = (1 + gamma) - gamma z^-1: DC gain 1, Nyquist gain
1 + 2 gamma. Cost is O(T * D) elementwise work; the attention itself is the standard op
(`reasoning_jax.ops.attention`), so every backend (incl. Pallas flash) serves it unchanged.

Sequence starts (where x_{t-1} does not exist) are: array index 0 when no carried `prev` is
given, every token at position 0, and (with `segment_ids`) every token whose segment id
differs from its predecessor's (packing). There the predecessor is set by

  DESIGN CHOICE `t0_rule` (default "repeat"): "repeat" uses x_{-1} := x_t (zero momentum,
  x̂ = x, the spec's default); "zero" uses x_{-1} := 0 (x̂ = (1 + gamma) x).

Decoding: `momentum_shear(..., prev=x_{t0-1})` continues a sequence whose previous raw
(post-RoPE, un-sheared) vector is `prev` `[B, H, D]`, and returns the raw vector of its last
step, so chunked / step-wise application equals the parallel form bit for bit. Padding is
not a sequence start: left-padded rows should give the padding its own segment id.

DESIGN CHOICE `gamma`: a scalar or one value per head (`[H]`), separately for q and k
(`gamma_q`, `gamma_k`); the paper's scaling law for the best coupling is `optimal_gamma`
(UNCERTAIN whether N counts layers).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from reasoning_jax.ops.attention import attention
from reasoning_jax.validation import check_array, check_finite_where, check_positive_int

T0_RULES = ("repeat", "zero")


def optimal_gamma(num_layers: int) -> float:
  """The paper's associative-recall scaling law gamma* = 4.17 * N^-0.74 (N: layers, UNCERTAIN)."""
  check_positive_int(num_layers, "num_layers")
  return 4.17 * float(num_layers) ** -0.74


def _check_gamma(gamma: Any, num_heads: int, argument: str) -> jax.Array:
  """`gamma` as a float32 array broadcastable to `[..., H, 1]` (scalar or per head)."""
  if isinstance(gamma, bool) or gamma is None:
    raise TypeError(f"{argument} must be a real scalar or a [H] array, got {gamma!r}")
  g = jnp.asarray(gamma)
  if not (jnp.issubdtype(g.dtype, jnp.floating) or jnp.issubdtype(g.dtype, jnp.integer)):
    raise TypeError(f"{argument} must be real, got dtype {g.dtype}")
  if g.ndim == 0:
    g = g.reshape(1)
  elif g.shape != (num_heads,):
    raise ValueError(
      f"{argument} must be a scalar or one value per head [H] = [{num_heads}], got shape "
      f"{tuple(g.shape)}"
    )
  check_finite_where(g, None, argument)
  return g.astype(jnp.float32)[:, None]


def _check_shear_inputs(x, gamma, positions, segment_ids, prev, t0_rule, argument="x"):
  if not hasattr(x, "ndim") or x.ndim != 4:
    raise ValueError(f"{argument} must be [B, T, H, D], got shape {getattr(x, 'shape', None)}")
  check_array(x, argument, floating=True)
  b, t, h, d = x.shape
  for name, ids in (("positions", positions), ("segment_ids", segment_ids)):
    if ids is None:
      continue
    if tuple(ids.shape) != (b, t):
      raise ValueError(
        f"{name} must be [B, T] = {(b, t)} (from {argument}), got shape {tuple(ids.shape)}"
      )
    check_array(ids, name, integer=True)
  if prev is not None:
    if tuple(prev.shape) != (b, h, d):
      raise ValueError(
        f"prev for {argument} must be [B, H, D] = {(b, h, d)}, got shape {tuple(prev.shape)}"
      )
    if prev.dtype != x.dtype:
      raise TypeError(
        f"prev for {argument} must have {argument}'s dtype {x.dtype}, got {prev.dtype}"
      )
  if t0_rule not in T0_RULES:
    raise ValueError(f"t0_rule must be one of {T0_RULES}, got {t0_rule!r}")
  return _check_gamma(gamma, h, "gamma" if argument == "x" else f"gamma_{argument}")


def sequence_starts(
  batch: int, length: int, *, positions=None, segment_ids=None, has_prev: bool = False
) -> jax.Array:
  """`[B, T]` bool: True where a token has no predecessor (see the module docstring)."""
  starts = jnp.zeros((batch, length), bool)
  if not has_prev:
    starts = starts.at[:, 0].set(True)
  if positions is not None:
    starts |= positions == 0
  if segment_ids is not None:
    changed = segment_ids[:, 1:] != segment_ids[:, :-1]
    starts = starts.at[:, 1:].set(starts[:, 1:] | changed)
  return starts


def _boundary_value(x32: jax.Array, t0_rule: str) -> jax.Array:
  return x32 if t0_rule == "repeat" else jnp.zeros_like(x32)


def _shear_fast(x, g, starts, prev, t0_rule):
  x32 = x.astype(jnp.float32)
  first = x32[:, :1] if prev is None else prev.astype(jnp.float32)[:, None]
  shifted = jnp.concatenate([first, x32[:, :-1]], axis=1)
  shifted = jnp.where(starts[:, :, None, None], _boundary_value(x32, t0_rule), shifted)
  return ((1.0 + g) * x32 - g * shifted).astype(x.dtype), x[:, -1]


def _shear_scan(x, g, starts, prev, t0_rule):
  x32 = x.astype(jnp.float32)
  carry0 = jnp.zeros_like(x32[:, 0]) if prev is None else prev.astype(jnp.float32)

  def step(previous, inputs):
    x_t, start_t = inputs
    previous = jnp.where(start_t[:, None, None], _boundary_value(x_t, t0_rule), previous)
    momentum = x_t - previous  # p_t, the kinematic difference.
    return x_t, x_t + g * momentum

  last, out = jax.lax.scan(step, carry0, (jnp.swapaxes(x32, 0, 1), starts.T))
  return jnp.swapaxes(out, 0, 1).astype(x.dtype), last.astype(x.dtype)


def _shear(x, gamma, *, positions, segment_ids, prev, t0_rule, argument, core):
  g = _check_shear_inputs(x, gamma, positions, segment_ids, prev, t0_rule, argument)
  if isinstance(gamma, (int, float)) and gamma == 0:  # Static zero: the identity, exactly.
    return x, x[:, -1]
  starts = sequence_starts(
    x.shape[0], x.shape[1], positions=positions, segment_ids=segment_ids, has_prev=prev is not None
  )
  return core(x, g, starts, prev, t0_rule)


def momentum_shear(
  x: jax.Array,
  gamma: Any,
  *,
  positions: jax.Array | None = None,
  segment_ids: jax.Array | None = None,
  prev: jax.Array | None = None,
  t0_rule: str = "repeat",
) -> tuple[jax.Array, jax.Array]:
  """x̂_t = (1 + gamma) x_t - gamma x_{t-1} along time, with resets at sequence starts.

  Momentum Attention (arXiv:2602.04902), applied to post-RoPE queries or keys. Vectorised
  form: one shifted copy of x (`concatenate([x[:, :1], x[:, :-1]])`) and a `where` at starts.

  Args:
    x: `[B, T, H, D]` raw post-RoPE vectors.
    gamma: scalar or `[H]` coupling (float or array; may be a traced parameter).
    positions: `[B, T]` ints; tokens at position 0 are sequence starts.
    segment_ids: `[B, T]` ints; a change of id starts a new sequence (packing).
    prev: `[B, H, D]` raw vector preceding `x[:, 0]` (decode / chunked prefill), same dtype
      as x; None: `x[:, 0]` is a sequence start.
    t0_rule: "repeat" (default, x̂ = x at starts) or "zero" (x̂ = (1 + gamma) x at starts).

  Returns:
    `(x_hat [B, T, H, D]` in x's dtype (computed in float32), `last [B, H, D])`, where
    `last = x[:, -1]` is the `prev` to carry into the next chunk.
  """
  return _shear(
    x,
    gamma,
    positions=positions,
    segment_ids=segment_ids,
    prev=prev,
    t0_rule=t0_rule,
    argument="x",
    core=_shear_fast,
  )


def momentum_shear_reference(
  x: jax.Array,
  gamma: Any,
  *,
  positions: jax.Array | None = None,
  segment_ids: jax.Array | None = None,
  prev: jax.Array | None = None,
  t0_rule: str = "repeat",
) -> tuple[jax.Array, jax.Array]:
  """Readable step-by-step form of `momentum_shear` (same signature): a scan carrying x_{t-1}.

  p_t = x_t - x_{t-1} (x_{t-1} from the t0 rule at a start), x̂_t = x_t + gamma * p_t.
  """
  return _shear(
    x,
    gamma,
    positions=positions,
    segment_ids=segment_ids,
    prev=prev,
    t0_rule=t0_rule,
    argument="x",
    core=_shear_scan,
  )


def _check_attention_inputs(q, k, v):
  for name, a in (("q", q), ("k", k), ("v", v)):
    if not hasattr(a, "ndim") or a.ndim != 4:
      raise ValueError(f"{name} must be [B, T, heads, D], got shape {getattr(a, 'shape', None)}")
  if not (q.dtype == k.dtype == v.dtype):
    raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
  if k.shape != v.shape:
    raise ValueError(f"k and v must have the same shape [B, T, K, D], got {k.shape} and {v.shape}")
  if q.shape[:2] != k.shape[:2]:
    raise ValueError(
      f"momentum attention is self-attention: q {q.shape} and k {k.shape} must share "
      "[B, T] (the shear needs time-aligned q and k; decode with a KV cache goes through "
      "momentum_shear + the attention op)"
    )
  if q.shape[3] != k.shape[3]:
    raise ValueError(f"q {q.shape} and k {k.shape} must have the same head_dim (axis 3)")
  if q.shape[2] % k.shape[2]:
    raise ValueError(
      f"number of query heads N={q.shape[2]} must be a multiple of key/value heads "
      f"K={k.shape[2]} (grouped-query attention)"
    )


def _momentum_attention(
  q,
  k,
  v,
  *,
  gamma_q,
  gamma_k,
  positions,
  segment_ids,
  kv_mask,
  sliding_window,
  scale,
  t0_rule,
  prev_q,
  prev_k,
  implementation,
  index_positions,
  core,
):
  _check_attention_inputs(q, k, v)
  shear = functools.partial(
    _shear, positions=positions, segment_ids=segment_ids, t0_rule=t0_rule, core=core
  )
  q_hat, _ = shear(q, gamma_q, prev=prev_q, argument="q")
  k_hat, _ = shear(k, gamma_k, prev=prev_k, argument="k")
  return attention(
    q_hat,
    k_hat,
    v,
    q_positions=positions,
    kv_positions=positions,
    sliding_window=sliding_window,
    kv_mask=kv_mask,
    q_segment_ids=segment_ids,
    kv_segment_ids=segment_ids,
    scale=scale,
    implementation=implementation,
    index_positions=index_positions,
  )


def momentum_attention(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  *,
  gamma_q: Any,
  gamma_k: Any,
  positions: jax.Array | None = None,
  segment_ids: jax.Array | None = None,
  kv_mask: jax.Array | None = None,
  sliding_window: int | None = None,
  scale: float | None = None,
  t0_rule: str = "repeat",
  prev_q: jax.Array | None = None,
  prev_k: jax.Array | None = None,
  implementation: str | None = None,
  index_positions: bool | None = None,
) -> jax.Array:
  """Causal self-attention on sheared post-RoPE queries and keys (values unchanged).

  Momentum Attention (arXiv:2602.04902): q̂ = shear(q, gamma_q), k̂ = shear(k, gamma_k),
  then `reasoning_jax.ops.attention.attention(q̂, k̂, v, ...)`.

  Args:
    q: `[B, T, N, D]` post-RoPE queries.
    k: `[B, T, K, D]` post-RoPE keys, `N % K == 0`.
    v: `[B, T, K, D]` values.
    gamma_q, gamma_k: couplings, scalar or per head (`[N]`, `[K]`); 0 gives plain attention.
    positions: `[B, T]` ints (default `arange(T)`), used for the mask and for resets.
    segment_ids: `[B, T]` ints: packing mask and shear resets.
    kv_mask: `[B, T]` bool, False for padding keys.
    sliding_window, scale, implementation, index_positions: as in the attention op.
    t0_rule: see `momentum_shear`.
    prev_q, prev_k: `[B, N, D]`, `[B, K, D]` raw vectors preceding the block (else None).

  Returns:
    `[B, T, N, D]` in q's dtype.
  """
  return _momentum_attention(
    q,
    k,
    v,
    gamma_q=gamma_q,
    gamma_k=gamma_k,
    positions=positions,
    segment_ids=segment_ids,
    kv_mask=kv_mask,
    sliding_window=sliding_window,
    scale=scale,
    t0_rule=t0_rule,
    prev_q=prev_q,
    prev_k=prev_k,
    implementation=implementation,
    index_positions=index_positions,
    core=_shear_fast,
  )


def momentum_attention_reference(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  *,
  gamma_q: Any,
  gamma_k: Any,
  positions: jax.Array | None = None,
  segment_ids: jax.Array | None = None,
  kv_mask: jax.Array | None = None,
  sliding_window: int | None = None,
  scale: float | None = None,
  t0_rule: str = "repeat",
  prev_q: jax.Array | None = None,
  prev_k: jax.Array | None = None,
  implementation: str | None = "xla",
  index_positions: bool | None = None,
) -> jax.Array:
  """`momentum_attention` (same signature) via the step-wise shear and the fp32 XLA attention."""
  del implementation
  return _momentum_attention(
    q,
    k,
    v,
    gamma_q=gamma_q,
    gamma_k=gamma_k,
    positions=positions,
    segment_ids=segment_ids,
    kv_mask=kv_mask,
    sliding_window=sliding_window,
    scale=scale,
    t0_rule=t0_rule,
    prev_q=prev_q,
    prev_k=prev_k,
    implementation="xla",
    index_positions=index_positions,
    core=_shear_scan,
  )
