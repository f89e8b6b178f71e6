"""The ROSA branch op: symbols, the read-out, the zero-table no-op, causality, and the
counterfactual backward against an independent loop implementation of section 2.3."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax.ops.rosa import host
from reasoning_jax.ops.rosa.branch import read_values, rosa_branch, to_symbols
from reasoning_jax.ops.rosa.config import RosaConfig


def _inputs(b=2, t=20, c=8, seed=0, bias=0.0):
  keys = jax.random.split(jax.random.PRNGKey(seed), 5)
  q, k, v = (jax.random.normal(kk, (b, t, c)) for kk in keys[:3])
  # A bias on q and k makes symbols repeat, so the matcher finds many matches.
  q, k = q + bias, k + bias
  e0 = jax.random.normal(keys[3], (c,))
  e1 = jax.random.normal(keys[4], (c,))
  return q, k, v, e0, e1


def test_symbols_pack_bits_little_endian():
  x = jnp.array([[[1.0, -1.0, 2.0, 0.0, -3.0, 5.0, 5.0, 5.0]]])
  assert to_symbols(x, 4).tolist() == [[[0b0101, 0b1110]]]
  assert to_symbols(x, 1).tolist() == [[[1, 0, 1, 0, 0, 1, 1, 1]]]
  with pytest.raises(ValueError, match="width 8, not divisible by bits_per_route=3"):
    to_symbols(x, 3)


def test_forward_is_the_table_at_the_matched_value_bits():
  q, k, v, e0, e1 = _inputs(bias=0.6)
  config = RosaConfig()
  y = np.asarray(jax.jit(lambda *a: rosa_branch(*a, config=config))(q, k, v, e0, e1))
  dest, _ = host.match(np.asarray(to_symbols(q, 4)), np.asarray(to_symbols(k, 4)), config=config)
  assert (dest >= 0).mean() > 0.3
  vb = np.asarray(v) > 0
  for b in range(2):
    for t in range(20):
      for c in range(8):
        tau = dest[b, t, c // 4]
        want = 0.0 if tau < 0 else (e1[c] if vb[b, tau, c] else e0[c])
        assert y[b, t, c] == pytest.approx(float(want), abs=1e-6)


def test_zero_tables_are_an_exact_no_op_with_no_projection_gradient():
  """Test (c) at the op level: e0 = e1 = 0 -> y == 0 and theta = 0 (no q/k/v gradient)."""
  q, k, v, _, _ = _inputs()
  zero = jnp.zeros(8)
  assert not np.any(np.asarray(rosa_branch(q, k, v, zero, zero)))
  grads = jax.grad(lambda q, k, v: jnp.sum(rosa_branch(q, k, v, zero, zero) ** 2 + q), (0, 1, 2))(
    q, k, v
  )
  assert not np.any(np.asarray(grads[1])) and not np.any(np.asarray(grads[2]))


def test_causality():
  """Test (b): y[:s] does not change when q, k, v change at positions >= s."""
  q, k, v, e0, e1 = _inputs(bias=0.5)
  y = np.asarray(rosa_branch(q, k, v, e0, e1))
  noise = jax.random.normal(jax.random.PRNGKey(9), (3,) + q.shape)
  for s in (1, 7, 15):
    late = jnp.arange(20)[None, :, None] >= s
    q2, k2, v2 = (jnp.where(late, x + 3 * n, x) for x, n in zip((q, k, v), noise))
    y2 = np.asarray(rosa_branch(q2, k2, v2, e0, e1))
    np.testing.assert_array_equal(y2[:, :s], y[:, :s])


def _loop_grads(config, q, k, v, e0, e1, dest, cf, g):
  """Section 2.3 with explicit loops over (b, t, r, j, m) (independent of the op's gathers)."""
  q, k, v, e0, e1, g = (np.asarray(x, np.float64) for x in (q, k, v, e0, e1, g))
  b_, t_, c_ = q.shape
  m_ = config.bits_per_route
  sig = lambda x: 1 / (1 + np.exp(-x))
  pv, pq, pk = sig(v), sig(q), sig(k)
  field = pv if config.cf_value_q == "prob" else (v > 0).astype(float)
  dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
  for b in range(b_):
    for t in range(t_):
      for r in range(c_ // m_):
        cols = range(r * m_, (r + 1) * m_)
        theta = [g[b, t, c] * (e1[c] - e0[c]) for c in cols]
        if dest[b, t, r] >= 0:
          for i, c in enumerate(cols):
            dv[b, dest[b, t, r], c] += theta[i]
        for j in range(m_):
          val = []
          for beta in (0, 1):
            tau = cf[b, t, r, j, beta]
            val.append(
              0.0 if tau < 0 else sum(theta[i] * field[b, tau, c] for i, c in enumerate(cols))
            )
            if tau >= 0:
              dk[b, tau, r * m_ + j] += val[-1] * (1 if beta else -1)
          dq[b, t, r * m_ + j] = val[1] - val[0]
  return dq * pq * (1 - pq), dk * pk * (1 - pk), dv * pv * (1 - pv)


@pytest.mark.parametrize(
  "flags", [{}, dict(rle_k=True, q_runs=True, unseen="keep", track_length=False)]
)
def test_counterfactual_gradients_match_a_loop_implementation(flags):
  config = RosaConfig(**flags)
  q, k, v, e0, e1 = _inputs(b=2, t=18, c=8, seed=3, bias=0.5)
  g = jax.random.normal(jax.random.PRNGKey(4), q.shape)
  _, vjp = jax.vjp(lambda *a: rosa_branch(*a, config=config), q, k, v, e0, e1)
  dq, dk, dv, de0, de1 = vjp(g)
  dest, cf = host.match(
    np.asarray(to_symbols(q, 4)),
    np.asarray(to_symbols(k, 4)),
    config=config,
    want_counterfactual=True,
  )
  want = _loop_grads(config, q, k, v, e0, e1, dest, cf, g)
  for got, ref in zip((dq, dk, dv), want):
    assert np.abs(ref).max() > 0
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5, atol=1e-6)

  # e0 / e1 (and an output projection) get exact gradients: equal to jax.grad of a dense
  # re-implementation that reads the table at the same (constant) destinations.
  w_out = jax.random.normal(jax.random.PRNGKey(5), (8, 8))
  vbits = (v > 0).reshape(2, 18, 2, 4).astype(jnp.float32)
  dense = lambda e0, e1, w: jnp.sum(jnp.sin(read_values(vbits, jnp.asarray(dest), e0, e1) @ w))
  ours = lambda e0, e1, w: jnp.sum(jnp.sin(rosa_branch(q, k, v, e0, e1, config=config) @ w))
  # Float32 tolerance: the two graphs sum the same terms in an order each XLA version picks
  # (JAX 0.12's CPU compile differs from 0.10's by 2.4e-6 on a gradient entry of 0.57).
  for got, ref in zip(
    jax.grad(ours, (0, 1, 2))(e0, e1, w_out), jax.grad(dense, (0, 1, 2))(e0, e1, w_out)
  ):
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(
    np.asarray(de1),
    np.asarray(jax.grad(lambda e: jnp.vdot(g, read_values(vbits, jnp.asarray(dest), e0, e)))(e1)),
    rtol=1e-6,
  )


def test_hard_value_bits_flag_changes_only_the_query_and_key_credit():
  q, k, v, e0, e1 = _inputs(seed=6, bias=0.5)
  g = jnp.ones(q.shape)
  grads = {}
  for value in ("prob", "bits"):
    config = RosaConfig(cf_value_q=value, cf_value_k=value)
    grads[value] = jax.vjp(lambda *a: rosa_branch(*a, config=config), q, k, v, e0, e1)[1](g)
  np.testing.assert_array_equal(np.asarray(grads["prob"][2]), np.asarray(grads["bits"][2]))
  assert not np.allclose(np.asarray(grads["prob"][0]), np.asarray(grads["bits"][0]))


def test_vmap_jit_and_segments():
  q, k, v, e0, e1 = _inputs(bias=0.5)
  y = rosa_branch(q, k, v, e0, e1)
  batched = jax.jit(jax.vmap(lambda a, b, c: rosa_branch(a[None], b[None], c[None], e0, e1)[0]))
  np.testing.assert_array_equal(np.asarray(batched(q, k, v)), np.asarray(y))
  seg = jnp.concatenate([jnp.zeros((2, 9), jnp.int32), jnp.ones((2, 11), jnp.int32)], axis=1)
  packed = rosa_branch(q, k, v, e0, e1, segment_ids=seg)
  tail = rosa_branch(q[:, 9:], k[:, 9:], v[:, 9:], e0, e1)
  np.testing.assert_array_equal(np.asarray(packed[:, 9:]), np.asarray(tail))
  np.testing.assert_array_equal(np.asarray(packed[:, :9]), np.asarray(y[:, :9]))


def test_bad_shapes_name_the_argument():
  q, k, v, e0, e1 = _inputs()
  with pytest.raises(ValueError, match="q, k, v must be"):
    rosa_branch(q, k[:, :3], v, e0, e1)
  with pytest.raises(ValueError, match="width C=8, not divisible by bits_per_route=3"):
    rosa_branch(q, k, v, e0, e1, config=RosaConfig(bits_per_route=3))
  with pytest.raises(ValueError, match=r"e1 must be \[C=8\]"):
    rosa_branch(q, k, v, e0, e1[:4])
  with pytest.raises(ValueError, match="segment_ids must be"):
    rosa_branch(q, k, v, e0, e1, segment_ids=jnp.zeros((2, 3), jnp.int32))


def test_stream_op_continues_the_host_automata_and_refuses_vmap():
  from reasoning_jax.ops.rosa.stream import open_streams, stream_match

  config = RosaConfig(bits_per_route=2)
  q = np.random.default_rng(0).integers(0, 4, (2, 12, 3)).astype(np.uint8)
  handle = open_streams(2, 3, 16, config)
  step = jax.jit(stream_match)
  first = step(handle, q[:, :7], q[:, :7], jnp.zeros(2, jnp.int32), jnp.full(2, 7, jnp.int32))
  rest = step(handle, q[:, 7:], q[:, 7:], jnp.full(2, 7, jnp.int32), jnp.full(2, 5, jnp.int32))
  want, _ = host.match(q, q, config=config)
  np.testing.assert_array_equal(np.concatenate([first, rest], axis=1), want)
  with pytest.raises(
    ValueError, match="cache: a ROSA generation cache cannot be used under jax.vmap"
  ):
    jax.vmap(lambda x: stream_match(handle, x, x, jnp.zeros(2, jnp.int32), jnp.ones(2, jnp.int32)))(
      q[None, :, :1].repeat(2, 0)
    )
