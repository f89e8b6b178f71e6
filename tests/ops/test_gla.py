"""Gated linear attention (arXiv:2312.06635): the naive / chunk / recurrent triad.

Hand-computed case from the spec, equivalence of the three forms (ragged T, with
and without an initial state), vanilla LA == masked quadratic form, strong decay,
gradients of every input, decode steps == parallel forward, dispatcher errors, and
packed sequences (segment_ids) == each sequence run alone, with finite gradients.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax.ops.gla import (
  gated_linear_attention,
  gla_chunk,
  gla_naive,
  gla_recurrent,
  gla_step,
)
from tests.helpers import packed_gla

B, T, H, DK, DV = 2, 23, 2, 5, 3  # T = 23: not divisible by most chunk sizes.


def _inputs(*, b=B, t=T, h=H, dk=DK, dv=DV, gate="vector", dtype=jnp.float32, seed=0):
  ks = jax.random.split(jax.random.key(seed), 5)
  q = jax.random.normal(ks[0], (b, t, h, dk), dtype)
  k = jax.random.normal(ks[1], (b, t, h, dk), dtype)
  v = jax.random.normal(ks[2], (b, t, h, dv), dtype)
  gate_shape = {"vector": (b, t, h, dk), "scalar": (b, t, h)}
  g = (
    None if gate is None else jax.nn.log_sigmoid(jax.random.normal(ks[3], gate_shape[gate]) + 1.5)
  )  # g in about (-3, 0), float32
  h0 = jax.random.normal(ks[4], (b, h, dk, dv), jnp.float32)
  return q, k, v, g, h0


@functools.partial(jax.jit, static_argnames=("fn", "chunk_size"))
def _run(fn, q, k, v, g, h0, chunk_size=None):
  kwargs = {} if chunk_size is None else {"chunk_size": chunk_size}
  return fn(q, k, v, g, initial_state=h0, **kwargs)


def _close(actual, expected, atol):
  for a, e in zip(actual, expected):
    np.testing.assert_allclose(
      np.asarray(a, np.float32), np.asarray(e, np.float32), atol=atol, rtol=atol
    )


@pytest.mark.parametrize("mode", ["naive", "chunk", "recurrent"])
def test_hand_check_scalar_gate_half(mode):
  """Spec 0.2(c): dk = dv = 1, q = k = v = 1, a = 0.5 -> o = 1, 1.5, 1.75, 1.875."""
  ones = jnp.ones((1, 4, 1, 1))
  g = jnp.full((1, 4, 1), jnp.log(0.5))
  o, state = gated_linear_attention(ones, ones, ones, g, scale=1.0, mode=mode, chunk_size=3)
  np.testing.assert_allclose(np.asarray(o[0, :, 0, 0]), [1.0, 1.5, 1.75, 1.875], rtol=1e-6)
  np.testing.assert_allclose(float(state[0, 0, 0, 0]), 1.875, rtol=1e-6)


@pytest.fixture(scope="module")
def reference():
  """Naive outputs for the shared inputs, with and without an initial state."""
  q, k, v, g, h0 = _inputs()
  return {True: _run(gla_naive, q, k, v, g, h0), False: _run(gla_naive, q, k, v, g, None)}


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 2, 7, 16, 20, 23, 64])
def test_chunk_matches_naive(reference, chunk_size, with_state):
  """Chunk sizes cover: one-position chunks, padding, one sub-chunk, two sub-chunks (20 -> R=10),
  a prime chunk (fully factorised), C == T, C > T."""
  q, k, v, g, h0 = _inputs()
  out = _run(gla_chunk, q, k, v, g, h0 if with_state else None, chunk_size=chunk_size)
  assert out[0].shape == (B, T, H, DV) and out[1].shape == (B, H, DK, DV)
  assert out[0].dtype == jnp.float32 and out[1].dtype == jnp.float32
  _close(out, reference[with_state], atol=1e-4)


@pytest.mark.parametrize("with_state", [False, True])
def test_recurrent_matches_naive(reference, with_state):
  q, k, v, g, h0 = _inputs()
  _close(
    _run(gla_recurrent, q, k, v, g, h0 if with_state else None), reference[with_state], atol=1e-5
  )


@pytest.mark.parametrize("g_kind", ["none", "zeros"])
def test_unit_gates_equal_masked_quadratic_form(g_kind):
  """alpha = 1: o = scale * (Q K^T ⊙ M_causal) V and S_T = K^T V."""
  q, k, v, _, _ = _inputs()
  g = None if g_kind == "none" else jnp.zeros(q.shape)
  o, state = _run(gla_chunk, q, k, v, g, None, chunk_size=7)
  scores = jnp.einsum("bthd,bshd->bhts", q, k) * DK**-0.5
  scores = jnp.where(jnp.tril(jnp.ones((T, T), bool)), scores, 0.0)
  np.testing.assert_allclose(
    np.asarray(o), np.asarray(jnp.einsum("bhts,bshv->bthv", scores, v)), atol=1e-4
  )
  np.testing.assert_allclose(
    np.asarray(state), np.asarray(jnp.einsum("bthk,bthv->bhkv", k, v)), atol=1e-4
  )


def test_scalar_gate_equals_broadcast_vector_gate():
  q, k, v, g, h0 = _inputs(gate="scalar")
  g_vec = jnp.broadcast_to(g[..., None], q.shape)
  _close(
    _run(gla_chunk, q, k, v, g, h0, chunk_size=16), _run(gla_naive, q, k, v, g_vec, h0), atol=1e-4
  )


def test_strong_decay_is_finite_and_matches_naive():
  """g = -30 per step: a chunk spans exp(-30 * 63); nothing may overflow, also in the gradient."""
  q, k, v, _, h0 = _inputs()
  g = jnp.full(q.shape, -30.0).at[:, 10:].set(-0.01)  # strong decay, then almost none
  out = _run(gla_chunk, q, k, v, g, h0, chunk_size=16)
  assert all(bool(jnp.isfinite(x).all()) for x in out)
  _close(out, _run(gla_naive, q, k, v, g, h0), atol=1e-4)
  # Right after a -30 step the past is forgotten: o_t = scale * (q_t . k_t) v_t.
  expected0 = jnp.einsum("bhd,bhd->bh", q[:, 3], k[:, 3])[..., None] * v[:, 3] * DK**-0.5
  np.testing.assert_allclose(np.asarray(out[0][:, 3]), np.asarray(expected0), atol=1e-5)
  grads = jax.grad(lambda g: _run(gla_chunk, q, k, v, g, h0, chunk_size=16)[0].sum())(g)
  assert bool(jnp.isfinite(grads).all())


def _projected_loss(fn, q, k, v, g, h0, **kwargs):
  """A random linear functional of (o, final_state), so every output entry gets a cotangent."""
  o, state = fn(q, k, v, g, initial_state=h0, **kwargs)
  wo = jax.random.normal(jax.random.key(7), o.shape)
  ws = jax.random.normal(jax.random.key(8), state.shape)
  return jnp.sum(o * wo) + jnp.sum(state * ws)


@pytest.mark.parametrize(
  "gate,chunk_size,shape",
  [
    ("vector", 20, {}),
    ("scalar", 7, {}),
    # Several heads, two chunks of 32 (sub-chunks of 16): the shape at which an earlier
    # formulation crashed XLA:CPU (jaxlib 0.10.2) in the backward pass.
    ("vector", 32, dict(b=1, t=64, h=4, dk=8, dv=8)),
  ],
)
def test_chunk_gradients_match_naive(gate, chunk_size, shape):
  q, k, v, g, h0 = _inputs(gate=gate, **shape)
  grad = lambda fn, **kw: jax.jit(
    jax.grad(functools.partial(_projected_loss, fn, **kw), argnums=(0, 1, 2, 3, 4))
  )(q, k, v, g, h0)
  expected = grad(gla_naive)
  actual = grad(gla_chunk, chunk_size=chunk_size)
  for name, a, e in zip("q k v g initial_state".split(), actual, expected):
    assert a.shape == e.shape, name
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=2e-4, rtol=2e-4, err_msg=name)


def test_decode_steps_continue_a_chunked_prefill():
  """Prefill T0 tokens with the chunk form, then gla_step token by token (the decode path):
  outputs and final state equal one parallel forward over the whole sequence."""
  q, k, v, g, h0 = _inputs()
  t0 = 9
  full_o, full_state = _run(gla_chunk, q, k, v, g, h0, chunk_size=4)
  pre_o, state = _run(gla_chunk, q[:, :t0], k[:, :t0], v[:, :t0], g[:, :t0], h0, chunk_size=4)
  step = jax.jit(gla_step)
  outs = []
  for t in range(t0, T):
    o_t, state = step(q[:, t], k[:, t], v[:, t], g[:, t], state)
    outs.append(o_t)
  decoded = jnp.concatenate([pre_o, jnp.stack(outs, axis=1)], axis=1)
  _close((decoded, state), (full_o, full_state), atol=1e-4)


def test_step_from_empty_state_and_scalar_gate():
  q, k, v, g, _ = _inputs(t=1, gate="scalar")
  o_t, state = gla_step(q[:, 0], k[:, 0], v[:, 0], g[:, 0], None)
  _close((o_t[:, None], state), gla_naive(q, k, v, g), atol=1e-6)


def test_bf16_inputs_keep_fp32_state():
  q, k, v, g, h0 = _inputs()
  bf = lambda x: x.astype(jnp.bfloat16)
  o, state = _run(gla_chunk, bf(q), bf(k), bf(v), g, h0, chunk_size=16)
  assert o.dtype == jnp.bfloat16 and state.dtype == jnp.float32
  _close((o, state), _run(gla_naive, bf(q), bf(k), bf(v), g, h0), atol=2e-2)


def test_dispatcher_modes_agree_under_jit():
  q, k, v, g, h0 = _inputs()
  f = jax.jit(gated_linear_attention, static_argnames=("mode", "chunk_size", "implementation"))
  expected = f(q, k, v, g, initial_state=h0, mode="naive")
  for mode in ("chunk", "recurrent"):
    _close(
      f(q, k, v, g, initial_state=h0, mode=mode, chunk_size=8, implementation="xla"),
      expected,
      atol=1e-4,
    )


@pytest.mark.parametrize(
  "change,match",
  [
    (lambda a: {**a, "q": a["q"][0]}, r"q must be \[B, T, H, Dk\]"),
    (lambda a: {**a, "k": a["k"][:, :-1]}, r"k must be \[B, T, H, Dk\]"),
    (lambda a: {**a, "v": a["v"][:, :, :1]}, r"v must be \[B, T, H, Dv\]"),
    (lambda a: {**a, "g": a["g"][..., :2]}, r"g must be \[B, T, H, Dk\]"),
    (
      lambda a: {**a, "initial_state": a["initial_state"][..., :1, :]},
      r"initial_state must be \[B, H, Dk, Dv\]",
    ),
    (lambda a: {**a, "k": a["k"].astype(jnp.bfloat16)}, "q, k, v must share a dtype"),
    (lambda a: {**a, "g": a["g"].astype(jnp.float16)}, "g must have q's dtype"),
    (
      lambda a: {**a, "initial_state": a["initial_state"].astype(jnp.bfloat16)},
      "initial_state must be float32",
    ),
    (
      lambda a: {
        **a,
        "q": a["q"].astype(jnp.int32),
        "k": a["k"].astype(jnp.int32),
        "v": a["v"].astype(jnp.int32),
      },
      "floating dtype",
    ),
    (lambda a: {**a, "chunk_size": 0}, "chunk_size must be a positive int"),
    (lambda a: {**a, "chunk_size": 2.5}, "chunk_size must be a positive int"),
    (lambda a: {**a, "mode": "fused"}, "mode='fused' is not a registered gla mode"),
    (lambda a: {**a, "implementation": "triton"}, "implementation='triton' is not"),
    (lambda a: {**a, "implementation": "pallas", "mode": "naive"}, 'mode="chunk" only'),
    (
      lambda a: {**a, "segment_ids": jnp.zeros((2, 3), jnp.int32)},
      r"segment_ids must be \[B, T\] = \(2, 4\)",
    ),
    (lambda a: {**a, "segment_ids": jnp.zeros((2, 4))}, "segment_ids must have an integer"),
  ],
)
def test_bad_inputs_raise(change, match):
  q, k, v, g, h0 = _inputs(t=4)
  args = change(dict(q=q, k=k, v=v, g=g, initial_state=h0))
  with pytest.raises(ValueError, match=match):
    gated_linear_attention(**args)


def test_step_bad_shape_raises():
  q, k, v, g, h0 = _inputs(t=1)
  with pytest.raises(ValueError, match=r"q_t must be \[B, H, Dk\]"):
    gla_step(q, k, v, g, h0)


def _numpy_gla(q, k, v, g):
  """Float64 recurrence from a zero state (a reference that compiles nothing)."""
  q, k, v, g = (np.asarray(x, np.float64) for x in (q, k, v, g))
  q = q * q.shape[-1] ** -0.5
  state = np.zeros(q.shape[:1] + q.shape[2:] + v.shape[-1:])
  out = []
  for t in range(q.shape[1]):
    state = np.exp(g[:, t])[..., None] * state + k[:, t, ..., None] * v[:, t, ..., None, :]
    out.append(np.einsum("bhk,bhkv->bhv", q[:, t], state))
  return np.stack(out, 1), state


def test_chunk_without_initial_state_under_jit():
  """Regression: with `initial_state=None` and one chunk, the old form multiplied the queries by
  an all-zero state that XLA saw as a constant; XLA:CPU (jaxlib 0.12.0.1) put that
  `dot(x, broadcast(0))` into a YNN fusion that read garbage, in about a third of the
  executables (decided per compilation). Fresh executables for several shapes (GLA layer sizes,
  one chunk of 64) must all match the recurrence."""
  for b in (2, 3):
    for t in range(3, 10):
      q, k, v, g, _ = _inputs(b=b, t=t, h=4, dk=24, dv=24, seed=t)
      fn = jax.jit(functools.partial(gla_chunk, chunk_size=64))  # A new executable per shape.
      _close(fn(q, k, v, g), _numpy_gla(q, k, v, g), atol=1e-4)


# ------------------------------------------------------------------------------ packed sequences


@functools.partial(jax.jit, static_argnames=("fn", "chunk_size"))
def _run_packed(fn, q, k, v, g, h0, seg, chunk_size=None):
  kwargs = {} if chunk_size is None else {"chunk_size": chunk_size}
  return fn(q, k, v, g, initial_state=h0, segment_ids=seg, **kwargs)


PACKED_FORMS = [
  (gla_naive, None),
  (gla_recurrent, None),
  (gla_chunk, 1),
  (gla_chunk, 4),  # sequences start mid-chunk, several per chunk
  (gla_chunk, 7),  # prime: fully factorised off-diagonal terms
  (gla_chunk, 16),  # one sub-chunk of 16
  (gla_chunk, 20),  # two sub-chunks of 10, padding
  (gla_chunk, 64),  # one chunk longer than T
]


@pytest.mark.parametrize("fn,chunk_size", PACKED_FORMS, ids=lambda x: getattr(x, "__name__", x))
@pytest.mark.parametrize("gate,with_state", [("vector", True), ("scalar", False), (None, True)])
def test_packed_segments_equal_separate_runs(fn, chunk_size, gate, with_state):
  """All LAYOUTS in one batch (six rows, each its own layout): outputs and final states equal
  every sequence run alone; initial_state reaches each row's first sequence only."""
  seg = packed_gla.layout_batch()
  q, k, v, g, h0 = _inputs(b=seg.shape[0], gate=gate)
  h0 = h0 if with_state else None
  out = _run_packed(fn, q, k, v, g, h0, seg, chunk_size=chunk_size)
  packed_gla.assert_close(out, packed_gla.separate_reference(q, k, v, g, h0, seg), atol=1e-4)


def test_packed_chunk_equals_chunk_on_each_sequence():
  """The chunk form itself, run on each sequence of a row and concatenated."""
  seg = packed_gla.layout_batch("mixed")
  q, k, v, g, h0 = _inputs(b=2)
  o, state = _run_packed(gla_chunk, q, k, v, g, h0, seg, chunk_size=4)
  for b, row in enumerate(np.asarray(seg)):
    pieces, s = [], None
    for start, end in packed_gla.segment_bounds(row):
      part = lambda x: x[b : b + 1, start:end]  # noqa: E731
      init = h0[b : b + 1] if start == 0 else None
      o_part, s = _run(gla_chunk, part(q), part(k), part(v), part(g), init, chunk_size=4)
      pieces.append(o_part)
    _close((o[b : b + 1], state[b : b + 1]), (jnp.concatenate(pieces, 1), s), atol=1e-5)


def test_single_segment_ids_change_nothing():
  q, k, v, g, h0 = _inputs()
  seg = jnp.full((B, T), 3, jnp.int32)
  _close(
    _run_packed(gla_chunk, q, k, v, g, h0, seg, chunk_size=8),
    _run(gla_chunk, q, k, v, g, h0, chunk_size=8),
    atol=1e-6,
  )


@pytest.mark.parametrize("gate,chunk_size", [("vector", 4), ("scalar", 7), ("vector", 16)])
def test_packed_gradients_finite_and_match_naive(gate, chunk_size):
  """With segment_ids and a very strong gate at some positions (also at sequence starts): the
  chunk form's gradients equal the naive scan's, are finite, and the gate at a sequence start
  (unused: the state restarts there) gets exactly zero gradient."""
  seg = packed_gla.layout_batch()
  q, k, v, g, h0 = _inputs(b=seg.shape[0], gate=gate)
  g = g.at[:, ::5].set(-30.0)
  grad = lambda fn, **kw: jax.jit(
    jax.grad(functools.partial(_projected_loss, fn, segment_ids=seg, **kw), argnums=(0, 1, 2, 3, 4))
  )(q, k, v, g, h0)
  expected = grad(gla_naive)
  actual = grad(gla_chunk, chunk_size=chunk_size)
  for name, a, e in zip("q k v g initial_state".split(), actual, expected):
    assert bool(jnp.isfinite(a).all()), name
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=2e-4, rtol=2e-4, err_msg=name)
  starts = np.asarray(seg[:, 1:] != seg[:, :-1])
  d_gate = np.asarray(actual[3])[:, 1:]
  assert np.all(d_gate[starts] == 0.0)
  assert np.any(d_gate[~starts] != 0.0)
