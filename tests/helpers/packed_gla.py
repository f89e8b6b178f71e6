"""Packed-sequence checks for GLA (arXiv:2312.06635): a packed row must equal its sequences run
one by one (the first one from the row's initial state, the others from zero) and concatenated.

Shared by the op tests (naive / chunk / recurrent) and the Pallas kernel tests.
"""

import jax
import jax.numpy as jnp
import numpy as np

# Packed layouts for T = 23 (two rows each): a sequence starting mid-chunk for every chunk size
# used, sequences of length 1 (also at the very start and end), many sequences per row, rows
# with different layouts, a row without any boundary, reused and non-increasing ids.
LAYOUTS = {
  "mixed": [[0] * 3 + [1] + [2] * 9 + [3] * 10, [5] * 7 + [2] * 16],
  "singletons": [[0] + [1] * 20 + [2] + [3], [4] * 23],
  "many": [[i // 3 for i in range(23)], [0, 1] * 11 + [0]],
}


def segment_bounds(row_ids) -> list[tuple[int, int]]:
  """`[(start, end), ...]` of the runs of equal ids in one row."""
  ids = np.asarray(row_ids)
  cuts = [0] + [t for t in range(1, len(ids)) if ids[t] != ids[t - 1]] + [len(ids)]
  return list(zip(cuts[:-1], cuts[1:]))


def _numpy_run(q, k, v, alpha, state):
  """Float64 recurrence on one sequence (`[T, H, D]` inputs, q scaled), from `state`."""
  out = []
  for t in range(q.shape[0]):
    state = alpha[t][..., None] * state + k[t][..., None] * v[t][..., None, :]
    out.append(np.einsum("hk,hkv->hv", q[t], state))
  return np.stack(out), state


def separate_reference(q, k, v, g, h0, segment_ids, scale=None):
  """`(o [B, T, H, Dv], final_state [B, H, Dk, Dv])`, float64: every sequence of every row run
  alone (the row's first from `h0`, the others from zero) and the outputs concatenated."""
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  q = q * (q.shape[-1] ** -0.5 if scale is None else scale)
  alpha = np.ones(q.shape) if g is None else np.exp(np.asarray(g, np.float64))
  alpha = np.broadcast_to(alpha[..., None], q.shape) if alpha.ndim == 3 else alpha
  outs, finals = np.zeros(q.shape[:3] + v.shape[-1:]), []
  for b, row in enumerate(np.asarray(segment_ids)):
    for start, end in segment_bounds(row):
      if start == 0 and h0 is not None:
        state = np.asarray(h0[b], np.float64)
      else:
        state = np.zeros(q.shape[2:] + v.shape[-1:])
      piece = lambda x: x[b, start:end]  # noqa: E731
      outs[b, start:end], state = _numpy_run(piece(q), piece(k), piece(v), piece(alpha), state)
    finals.append(state)
  return outs, np.stack(finals)


def layout_batch(*names):
  """`[2 * len(names), 23]` int32 segment ids stacking the named LAYOUTS (all when none)."""
  rows = [row for name in (names or LAYOUTS) for row in LAYOUTS[name]]
  return jnp.asarray(rows, jnp.int32)


def assert_close(actual, expected, atol):
  for a, e in zip(actual, expected):
    np.testing.assert_allclose(
      np.asarray(a, np.float32), np.asarray(e, np.float32), atol=atol, rtol=atol
    )


def gla_inputs(b, t, *, heads=2, dk=8, dv=16, gate="vector", dtype=jnp.float32, seed=0):
  """Random q, k, v `[b, t, heads, d]`, a gate ("vector" `[.., dk]`, "scalar" or None, biased
  towards slow decay) and a float32 initial state: the GLA kernel tests' inputs."""
  ks = jax.random.split(jax.random.key(seed), 5)
  q = jax.random.normal(ks[0], (b, t, heads, dk), dtype)
  k = jax.random.normal(ks[1], (b, t, heads, dk), dtype)
  v = jax.random.normal(ks[2], (b, t, heads, dv), dtype)
  gate_shape = {"vector": (b, t, heads, dk), "scalar": (b, t, heads)}
  g = None if gate is None else jax.nn.log_sigmoid(jax.random.normal(ks[3], gate_shape[gate]) + 1.5)
  h0 = jax.random.normal(ks[4], (b, heads, dk, dv), jnp.float32)
  return q, k, v, g, h0
