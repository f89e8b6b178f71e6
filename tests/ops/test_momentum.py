"""Momentum Attention op (arXiv:2602.04902): shear semantics, spec 4.2/4.3 cases, errors.

gamma = 0 == plain attention; vectorised shear == step-wise reference; DC / Nyquist gains and
the per-RoPE-pair gain; causality; chunked / step-wise decode == parallel (bit for bit);
segment and position resets with both t0 rules; the hand-built single-layer induction
constructions of spec 4.2; input validation.
"""

import functools

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

import reasoning_jax.models  # noqa: F401  (first: importing layers first hits the layers<->models cycle)
from reasoning_jax.layers.rope import apply_rope, inverse_frequencies, rope_tables
from reasoning_jax.ops.attention import attention
from reasoning_jax.ops.momentum import (
  momentum_attention,
  momentum_attention_reference,
  momentum_shear,
  momentum_shear_reference,
  optimal_gamma,
  sequence_starts,
)

B, T, N, K, D = 2, 11, 4, 2, 8


# Jitted entry points: one compile per call signature instead of one per primitive.
_ATTN_STATIC = ("t0_rule", "implementation", "scale", "sliding_window", "index_positions")
mattn = jax.jit(momentum_attention, static_argnames=_ATTN_STATIC)
mattn_ref = jax.jit(momentum_attention_reference, static_argnames=_ATTN_STATIC)
plain_attention = jax.jit(
  attention,
  static_argnames=("causal", "sliding_window", "scale", "implementation", "index_positions"),
)
shear = jax.jit(momentum_shear, static_argnames=("t0_rule",))
shear_ref = jax.jit(momentum_shear_reference, static_argnames=("t0_rule",))


def _normal(seed, shape, dtype=jnp.float32):
  return jnp.asarray(np.random.RandomState(seed).standard_normal(shape), dtype)


def _qkv(seed=0, b=B, t=T, n=N, kh=K, d=D, dtype=jnp.float32):
  return (
    _normal(seed, (b, t, n, d), dtype),
    _normal(seed + 100, (b, t, kh, d), dtype),
    _normal(seed + 200, (b, t, kh, d), dtype),
  )


def _positions(b=B, t=T):
  return jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))


def _segments():
  # Row 0: one sequence; row 1: three packed sequences of lengths 4, 5, 2.
  seg = np.zeros((B, T), np.int32)
  seg[1] = [0] * 4 + [1] * 5 + [2] * 2
  pos = np.tile(np.arange(T, dtype=np.int32), (B, 1))
  pos[1] = list(range(4)) + list(range(5)) + list(range(2))
  return jnp.asarray(seg), jnp.asarray(pos)


def test_optimal_gamma_scaling_law():
  np.testing.assert_allclose(
    [optimal_gamma(n) for n in (1, 2, 4, 6, 12)], [4.17, 2.50, 1.50, 1.11, 0.66], atol=0.01
  )
  with pytest.raises(ValueError, match="num_layers"):
    optimal_gamma(0)


def test_gamma_zero_equals_plain_attention():
  q, k, v = _qkv()
  seg, pos = _segments()
  expected = plain_attention(
    q,
    k,
    v,
    q_positions=pos,
    kv_positions=pos,
    q_segment_ids=seg,
    kv_segment_ids=seg,
    implementation="xla",
  )
  # A static zero (a Python float) skips the shear: the identical program.
  static_zero = jax.jit(
    functools.partial(momentum_attention, gamma_q=0.0, gamma_k=0.0, implementation="xla")
  )
  np.testing.assert_array_equal(static_zero(q, k, v, positions=pos, segment_ids=seg), expected)
  # Array zeros (0-d and per head) go through the shear arithmetic: (1 + 0) x - 0 x' == x.
  for fn in (mattn, mattn_ref):
    for zero_q, zero_k in ((jnp.zeros(()), jnp.zeros(())), (jnp.zeros((N,)), jnp.zeros((K,)))):
      out = fn(
        q,
        k,
        v,
        gamma_q=zero_q,
        gamma_k=zero_k,
        positions=pos,
        segment_ids=seg,
        implementation="xla",
      )
      np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
  # ... and a non-zero gamma does change the output.
  out = mattn(q, k, v, gamma_q=0.5, gamma_k=0.5, positions=pos, segment_ids=seg)
  assert np.abs(np.asarray(out - expected)).max() > 1e-2


@pytest.mark.parametrize("t0_rule", ["repeat", "zero"])
@pytest.mark.parametrize("gamma", [0.7, "per_head"])
def test_vectorised_shear_equals_stepwise_reference(t0_rule, gamma):
  q, _, _ = _qkv()
  if gamma == "per_head":
    gamma = jnp.array([0.0, 0.5, 1.0, 4.17])
  seg, pos = _segments()
  prev = _normal(5, (B, N, D))
  for kwargs in (
    {},
    dict(positions=pos, segment_ids=seg),
    dict(prev=prev),
    dict(prev=prev, positions=pos + 3),
  ):
    fast, last = shear(q, gamma, t0_rule=t0_rule, **kwargs)
    ref, ref_last = shear_ref(q, gamma, t0_rule=t0_rule, **kwargs)
    np.testing.assert_allclose(fast, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(last, q[:, -1])
    np.testing.assert_array_equal(ref_last, q[:, -1])


def test_hand_values_and_t0_rules():
  """x = 1, 2, 4 with gamma = 0.5: x̂ = (1.5 x_t - 0.5 x_{t-1})."""
  x = jnp.array([1.0, 2.0, 4.0]).reshape(1, 3, 1, 1)
  repeat, _ = momentum_shear(x, 0.5)
  zero, _ = momentum_shear(x, 0.5, t0_rule="zero")
  np.testing.assert_allclose(repeat.ravel(), [1.0, 2.5, 5.0])
  np.testing.assert_allclose(zero.ravel(), [1.5, 2.5, 5.0])
  carried, _ = momentum_shear(x, 0.5, prev=jnp.full((1, 1, 1), 3.0))
  np.testing.assert_allclose(carried.ravel(), [0.0, 2.5, 5.0])


def test_dc_and_nyquist_gains():
  """Spec 4.3(b): constant input passes unchanged; alternating +-c is scaled by 1 + 2 gamma."""
  gamma = 0.8
  c = _normal(0, (1, 1, 3, 5))
  constant = jnp.tile(c, (1, 9, 1, 1))
  out, _ = momentum_shear(constant, gamma)
  np.testing.assert_allclose(out, constant, rtol=1e-6)
  signs = jnp.array([(-1.0) ** t for t in range(9)]).reshape(1, 9, 1, 1)
  out, _ = momentum_shear(signs * c, gamma)
  np.testing.assert_allclose(out[:, 1:], (1 + 2 * gamma) * (signs * c)[:, 1:], rtol=1e-5)


def test_per_rope_pair_gain():
  """Spec 4.3(c): a token-constant raw vector rotated by RoPE gets per-pair gain
  sqrt(1 + 2 gamma (1 + gamma) (1 - cos theta_i)) from the shear (t >= 1)."""
  gamma, d, t = 1.3, 16, 12
  raw = _normal(1, (1, 1, 1, d))
  inv_freq = inverse_frequencies(d, 100.0, None)
  cos, sin = rope_tables(_positions(1, t), inv_freq)
  rotated = apply_rope(jnp.tile(raw, (1, t, 1, 1)), cos, sin)
  out, _ = momentum_shear(rotated, gamma)
  half = d // 2
  pair_norm = lambda x: jnp.sqrt(x[..., :half] ** 2 + x[..., half:] ** 2)  # rotate-half pairs
  gain = pair_norm(out[0, 1:, 0]) / pair_norm(rotated[0, 1:, 0])
  expected = jnp.sqrt(1 + 2 * gamma * (1 + gamma) * (1 - jnp.cos(inv_freq)))
  np.testing.assert_allclose(gain, jnp.broadcast_to(expected, gain.shape), rtol=1e-4)
  assert abs(float(gain[0, -1]) - 1.0) < 1e-3 < float(gain[0, 0]) - 1.5  # Slow ~ 1, fast > 1.5.


def test_causality():
  """Spec 4.3(d): perturbing token t + 1 leaves outputs at <= t unchanged."""
  q, k, v = _qkv()
  out = mattn(q, k, v, gamma_q=1.0, gamma_k=2.0)
  t = 5
  bump = lambda x: x.at[:, t + 1].add(3.0)
  out2 = mattn(bump(q), bump(k), bump(v), gamma_q=1.0, gamma_k=2.0)
  np.testing.assert_array_equal(out[:, : t + 1], out2[:, : t + 1])
  assert np.abs(np.asarray(out[:, t + 1 :] - out2[:, t + 1 :])).max() > 1e-3


@pytest.mark.parametrize("t0_rule", ["repeat", "zero"])
def test_stepwise_and_chunked_decode_equal_parallel(t0_rule):
  """Spec 4.3(e) at the op level: carrying `last` as `prev` reproduces the parallel shear.

  Bit for bit op by op (eager); under jit XLA may contract a*b + c into an FMA in one program
  and not in another, which moves results by an ulp, hence the jitted check's tolerance.
  """
  q, _, _ = _qkv(t=13)
  gamma = jnp.array([0.3, 1.0, 2.5, 4.17])
  parallel, _ = momentum_shear(q, gamma, t0_rule=t0_rule)
  step_jit = jax.jit(lambda x, p: momentum_shear(x, gamma, prev=p, t0_rule=t0_rule))
  first, prev = momentum_shear(q[:, :1], gamma, t0_rule=t0_rule)
  outs, outs_jit, prev_jit = [first], [first], prev
  for t in range(1, 13):
    out, prev = momentum_shear(q[:, t : t + 1], gamma, prev=prev, t0_rule=t0_rule)
    outs.append(out)
    out, prev_jit = step_jit(q[:, t : t + 1], prev_jit)
    outs_jit.append(out)
  np.testing.assert_array_equal(jnp.concatenate(outs, axis=1), parallel)
  parallel_jit, _ = jax.jit(lambda x: momentum_shear(x, gamma, t0_rule=t0_rule))(q)
  np.testing.assert_allclose(jnp.concatenate(outs_jit, axis=1), parallel_jit, rtol=1e-6, atol=1e-6)
  # Ragged chunks 5 + 3 + 4 + 1 (not a divisor of T).
  outs, prev, start = [], None, 0
  for size in (5, 3, 4, 1):
    out, prev = momentum_shear(q[:, start : start + size], gamma, prev=prev, t0_rule=t0_rule)
    outs.append(out)
    start += size
  np.testing.assert_array_equal(jnp.concatenate(outs, axis=1), parallel)


@pytest.mark.parametrize("t0_rule", ["repeat", "zero"])
def test_segment_resets_equal_separate_sequences(t0_rule):
  """Packed sequences (segment ids, positions restarting at 0) == each sequence alone."""
  q, k, v = _qkv()
  seg, pos = _segments()
  packed = mattn(q, k, v, gamma_q=1.5, gamma_k=0.5, positions=pos, segment_ids=seg, t0_rule=t0_rule)
  for lo, hi in ((0, 4), (4, 9), (9, 11)):
    alone = mattn(
      q[1:, lo:hi], k[1:, lo:hi], v[1:, lo:hi], gamma_q=1.5, gamma_k=0.5, t0_rule=t0_rule
    )
    np.testing.assert_allclose(packed[1:, lo:hi], alone, rtol=1e-5, atol=1e-6)
  # A start is detected from the segment id alone and from position 0 alone.
  starts = sequence_starts(B, T, segment_ids=seg)
  np.testing.assert_array_equal(np.nonzero(np.asarray(starts[1]))[0], [0, 4, 9])
  starts = sequence_starts(B, T, positions=pos, has_prev=True)
  np.testing.assert_array_equal(np.nonzero(np.asarray(starts[1]))[0], [0, 4, 9])
  np.testing.assert_array_equal(np.nonzero(np.asarray(starts[0]))[0], [0])


def _one_hot_heads(tokens, vocab, scale_q):
  """q = scale_q * e_x, k = v = e_x, each [1, T, 1, V]."""
  e = jax.nn.one_hot(jnp.asarray(tokens), vocab)[None, :, None, :]
  return scale_q * e, e, e


def test_single_layer_induction_key_only_construction():
  """Spec 4.2 / 4.3(f): one-hot tokens, W_k = I, q_t = -c e_{x_t}, v_j = e_{x_j}, no RoPE,
  gamma_q = 0, gamma_k = 1, c = 20, V = T = 64. score(t, j) = -c(1+g)[x_j = x_t] +
  c g [x_{j-1} = x_t]: wherever x_t occurred exactly once before, at p <= t - 2, the head
  outputs x_{p+1} (argmax, and the one-hot itself up to e^-20)."""
  vocab, t_len, c = 64, 64, 20.0
  tokens = np.random.RandomState(0).randint(0, vocab, t_len)
  q, k, v = _one_hot_heads(tokens, vocab, -c)
  out = np.asarray(mattn(q, k, v, gamma_q=0.0, gamma_k=1.0, scale=1.0))[0, :, 0]
  plain = np.asarray(plain_attention(q, k, v, scale=1.0))[0, :, 0]
  checked = plain_hits = 0
  for t in range(t_len):
    earlier = np.nonzero(tokens[:t] == tokens[t])[0]
    if len(earlier) != 1 or earlier[0] > t - 2:
      continue
    target = tokens[earlier[0] + 1]
    assert out[t].argmax() == target, t
    np.testing.assert_allclose(out[t], np.eye(vocab)[target], atol=1e-6)
    plain_hits += int(plain[t].argmax() == target)
    checked += 1
  assert checked >= 10, checked
  assert plain_hits <= checked // 4  # Without the shear one layer cannot do it.


def test_shared_shear_ties_and_two_head_repair():
  """Spec 4.2, shared gamma on repeated random tokens [r, r]: at t = n + i the induction
  target r_{i+1} ties with j = i - 1 AND j = t - 1 (both hold r_{i-1}), so one shared-gamma
  head returns (r_{i+1} + 2 r_{i-1}) / 3 (the spec's "~1/2 (r_{i-1} + r_{i+1})" counts two of
  the three tied keys). A query-only head (gamma_q = 1, gamma_k = 0) returns r_{i-1}, and
  3 h_1 - 2 h_2 = r_{i+1}: a 2-head single layer with a suitable W_O solves the task."""
  vocab, n, c = 32, 16, 20.0
  r = np.random.RandomState(1).permutation(vocab)[:n]
  tokens = np.concatenate([r, r])
  q, k, v = _one_hot_heads(tokens, vocab, -c)
  two = lambda x: jnp.concatenate([x, x], axis=2)  # Head 0: shared shear; head 1: query-only.
  out = np.asarray(
    mattn(
      two(q),
      two(k),
      two(v),
      gamma_q=jnp.array([1.0, 1.0]),
      gamma_k=jnp.array([1.0, 0.0]),
      scale=1.0,
    )
  )[0]
  eye = np.eye(vocab)
  for i in range(2, n - 1):
    t = n + i
    shared, prev_token = out[t, 0], out[t, 1]
    np.testing.assert_allclose(shared, (eye[r[i + 1]] + 2 * eye[r[i - 1]]) / 3, atol=1e-6)
    np.testing.assert_allclose(prev_token, eye[r[i - 1]], atol=1e-6)
    np.testing.assert_allclose(3 * shared - 2 * prev_token, eye[r[i + 1]], atol=1e-5)


def test_gradients_including_gamma():
  q, k, v = _qkv(b=1, t=5, n=2, kh=1, d=4)
  seg = jnp.array([[0, 0, 0, 1, 1]])
  pos = jnp.array([[0, 1, 2, 0, 1]])

  @jax.jit
  def f(q, k, v, gq, gk):
    return momentum_attention(
      q, k, v, gamma_q=gq, gamma_k=gk, positions=pos, segment_ids=seg, implementation="xla"
    )

  jax.test_util.check_grads(
    f, (q, k, v, jnp.float32(0.7), jnp.float32(1.3)), order=1, modes=("rev",), atol=2e-2, rtol=2e-2
  )
  grad = jax.grad(lambda g: f(q, k, v, g, g).sum() ** 2)(0.7)
  assert np.isfinite(grad) and abs(float(grad)) > 0


def test_bfloat16_close_to_float32():
  q, k, v = _qkv()
  out32 = mattn(q, k, v, gamma_q=1.0, gamma_k=1.0)
  bf = lambda x: x.astype(jnp.bfloat16)
  out16 = mattn(bf(q), bf(k), bf(v), gamma_q=1.0, gamma_k=1.0)
  assert out16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out16, np.float32), out32, atol=6e-2, rtol=6e-2)


def test_bad_inputs_raise_clear_errors():
  q, k, v = _qkv()
  kw = dict(gamma_q=1.0, gamma_k=1.0)
  with pytest.raises(ValueError, match="multiple of key/value heads"):
    momentum_attention(q[:, :, :3], k, v, **kw)
  with pytest.raises(ValueError, match="self-attention"):
    momentum_attention(q[:, :5], k, v, **kw)
  with pytest.raises(ValueError, match="k and v must have the same shape"):
    momentum_attention(q, k, v[:, :, :1], **kw)
  with pytest.raises(TypeError, match="share a dtype"):
    momentum_attention(q, k.astype(jnp.bfloat16), v, **kw)
  with pytest.raises(ValueError, match=r"\[B, T, heads, D\]"):
    momentum_attention(q[0], k, v, **kw)
  with pytest.raises(
    ValueError, match=r"gamma_k must be a scalar or one value per head \[H\] = \[2\]"
  ):
    momentum_attention(q, k, v, gamma_q=1.0, gamma_k=jnp.ones(4))
  with pytest.raises(ValueError, match="finite"):
    momentum_attention(q, k, v, gamma_q=float("nan"), gamma_k=1.0)
  with pytest.raises(TypeError, match="gamma_q must be a real scalar"):
    momentum_attention(q, k, v, gamma_q=None, gamma_k=1.0)
  with pytest.raises(ValueError, match=r"prev for k must be \[B, H, D\]"):
    momentum_attention(q, k, v, prev_k=jnp.zeros((B, N, D)), **kw)
  with pytest.raises(TypeError, match="prev for x must have x's dtype"):
    momentum_shear(q, 1.0, prev=jnp.zeros((B, N, D), jnp.bfloat16))
  with pytest.raises(ValueError, match="t0_rule"):
    momentum_shear(q, 1.0, t0_rule="zeros")
  with pytest.raises(ValueError, match=r"segment_ids must be \[B, T\]"):
    momentum_shear(q, 1.0, segment_ids=jnp.zeros((B, 3), jnp.int32))
  with pytest.raises(TypeError, match="positions must be an integer array"):
    momentum_shear(q, 1.0, positions=jnp.zeros((B, T)))
  with pytest.raises(TypeError, match="floating"):
    momentum_shear(jnp.zeros((B, T, N, D), jnp.int32), 1.0)
