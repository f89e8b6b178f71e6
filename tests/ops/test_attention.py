"""The attention op: reference numerics, mask conventions (window edges pinned), errors."""

import jax
import jax.test_util  # noqa: F401  (check_grads)
import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax.ops import attention, make_attention_mask


def _naive(q, k, v, allowed):
  """Loop-level numpy attention; allowed[b, t, s] bool."""
  q, k, v = map(lambda x: np.asarray(x, np.float64), (q, k, v))
  b_, t_, n, d = q.shape
  kh = k.shape[2]
  out = np.zeros_like(q)
  for b in range(b_):
    for h in range(n):
      kv = h // (n // kh)
      for t in range(t_):
        s = q[b, t, h] @ k[b, :, kv].T / np.sqrt(d)
        s = np.where(allowed[b, t], s, -np.inf)
        if not allowed[b, t].any():
          s = np.zeros_like(s)
        p = np.exp(s - s.max())
        p /= p.sum()
        out[b, t, h] = p @ v[b, :, kv]
  return out


def _qkv(b=2, t=7, s=7, n=4, kh=2, d=8, dtype=jnp.float32, seed=0):
  ks = jax.random.split(jax.random.key(seed), 3)
  return (
    jax.random.normal(ks[0], (b, t, n, d), dtype),
    jax.random.normal(ks[1], (b, s, kh, d), dtype),
    jax.random.normal(ks[2], (b, s, kh, d), dtype),
  )


@pytest.mark.parametrize("n,kh", [(4, 4), (4, 2), (6, 1)])
def test_causal_matches_naive(n, kh):
  q, k, v = _qkv(n=n, kh=kh)
  allowed = np.tril(np.ones((7, 7), bool))[None].repeat(2, 0)
  np.testing.assert_allclose(np.asarray(attention(q, k, v)), _naive(q, k, v, allowed), atol=1e-5)


def test_gqa_equals_repeated_kv_heads():
  q, k, v = _qkv(n=6, kh=2)
  full = attention(q, jnp.repeat(k, 3, axis=2), jnp.repeat(v, 3, axis=2))
  np.testing.assert_allclose(np.asarray(attention(q, k, v)), np.asarray(full), atol=1e-6)


@pytest.mark.parametrize("window", [1, 2, 3, 7, 20])
def test_sliding_window_edges(window):
  """Query i sees keys j with i - window < j <= i: exactly `window` keys."""
  pos = jnp.arange(9)[None]
  mask = np.asarray(make_attention_mask(pos, pos, sliding_window=window))[0, 0]
  for i in range(9):
    for j in range(9):
      assert mask[i, j] == (j <= i and i - j < window), (i, j)
    assert mask[i].sum() == min(i + 1, window)
  if window < 9:  # The key exactly `window` back is out, `window - 1` back is in.
    assert not mask[window, 0] and mask[window - 1, 0]
  q, k, v = _qkv(t=9, s=9)
  allowed = np.broadcast_to(mask, (2, 9, 9))
  np.testing.assert_allclose(
    np.asarray(attention(q, k, v, sliding_window=window)), _naive(q, k, v, allowed), atol=1e-5
  )


def test_segment_ids_and_padding_mask():
  q, k, v = _qkv(b=1, t=6, s=6)
  seg = jnp.array([[0, 0, 0, 1, 1, 1]])
  kv_mask = jnp.array([[1, 1, 0, 1, 1, 1]], bool)
  out = attention(q, k, v, q_segment_ids=seg, kv_segment_ids=seg, kv_mask=kv_mask)
  causal = np.tril(np.ones((6, 6), bool))
  same = np.asarray(seg[0][:, None] == seg[0][None, :])
  allowed = (causal & same & np.asarray(kv_mask[0])[None])[None]
  np.testing.assert_allclose(np.asarray(out), _naive(q, k, v, allowed), atol=1e-5)


def test_positions_drive_the_mask_for_decode():
  """A single query at position p against a cache sees slots 0..p only."""
  q, k, v = _qkv(b=2, t=1, s=8)
  qpos = jnp.array([[3], [6]])
  out = attention(q, k, v, q_positions=qpos)
  allowed = np.arange(8)[None, None, :] <= np.asarray(qpos)[:, :, None]
  np.testing.assert_allclose(np.asarray(out), _naive(q, k, v, allowed), atol=1e-5)


def test_fully_masked_rows_are_finite():
  q, k, v = _qkv(b=1, t=2, s=2)
  out = attention(q, k, v, kv_mask=jnp.zeros((1, 2), bool))
  assert np.isfinite(np.asarray(out)).all()


def test_bf16_close_to_fp32():
  q, k, v = _qkv()
  a = attention(q, k, v)
  b = attention(*(x.astype(jnp.bfloat16) for x in (q, k, v)))
  assert b.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(b, np.float32), np.asarray(a), atol=5e-2)


def test_gradients_match_finite_differences():
  q, k, v = _qkv(b=1, t=4, s=4, n=2, kh=1, d=4)
  jax.test_util.check_grads(
    lambda q, k, v: attention(q, k, v, sliding_window=2),
    (q, k, v),
    order=1,
    modes=("rev",),
    atol=1e-2,
    rtol=1e-2,
  )


def test_errors_name_the_problem():
  q, k, v = _qkv(n=3, kh=2)
  with pytest.raises(ValueError, match="multiple of key/value heads"):
    attention(q, k, v)
  q, k, v = _qkv()
  with pytest.raises(ValueError, match="sliding_window"):
    attention(q, k, v, sliding_window=0)
  with pytest.raises(ValueError, match="share a dtype"):
    attention(q, k.astype(jnp.bfloat16), v)
  with pytest.raises(ValueError, match=r"\[B, T, N, D\]"):
    attention(q[0], k, v)
  with pytest.raises(ValueError, match="implementation='pallas'"):
    # Decode against a cache (S != T, explicit positions) is not expressible by the kernel.
    attention(
      q[:, :1], k, v, q_positions=jnp.full((q.shape[0], 1), 2, jnp.int32), implementation="pallas"
    )
  with pytest.raises(ValueError, match="implementation='triton'"):
    attention(q, k, v, implementation="triton")
  with pytest.raises(ValueError, match="q_positions"):
    attention(q, k, v, q_positions=jnp.zeros((2, 3), jnp.int32))


def test_pallas_backend_matches_xla_through_the_op():
  """The registered Pallas flash kernel (interpret mode on CPU) equals the reference."""
  q, k, v = _qkv(b=1, t=16, s=16, n=4, kh=2, d=8)
  for window in (None, 5):
    a = attention(q, k, v, sliding_window=window, implementation="xla")
    b = attention(q, k, v, sliding_window=window, implementation="pallas")
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-5)
