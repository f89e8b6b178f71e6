"""Shared packed-row case for the OVQ tests (ops and kernel): a packed batch and its
reference, the same segments run separately.

Each segment alone is one left-aligned, right-padded row (`lengths`) of a batch with one
row per segment, run through the unpacked naive form; a packed run must give every
segment's outputs and, per row, its last segment's final state.
"""

import jax
import jax.numpy as jnp
import numpy as np

from reasoning_jax.ops.ovq import ovq_naive

T, H, D, DV, L, N = 14, 2, 4, 3, 4, 5
BETA = jnp.array([3.0, 1.5])
# Row 0: lengths 6 | 1 | 7 (the second segment starts mid-chunk and has one token).
# Row 1: 3 | 10 | padding (a 10-token segment from position 3: two absorptions inside it).
# Row 2: 8 | 6 (the second segment starts on a chunk edge).
SEGMENT_IDS = jnp.array(
  [[1] * 6 + [2] + [3] * 7, [5] * 3 + [7] * 10 + [9], [4] * 8 + [6] * 6], jnp.int32
)
LENGTHS = jnp.array([14, 13, 14], jnp.int32)
STATE_FIELDS = ("dk", "dv", "counts", "buf_k", "buf_v", "buf_len", "tokens_seen")


def inputs(b=3, t=T, seed=0, dtype=jnp.float32):
  ks = jax.random.split(jax.random.key(seed), 3)
  return (
    jax.random.normal(ks[0], (b, t, H, D), dtype),
    jax.random.normal(ks[1], (b, t, H, D), dtype),
    jax.random.normal(ks[2], (b, t, H, DV), dtype),
  )


def segments_of(ids, n):
  """[(start, stop)] of the segments in ids[:n]."""
  ids = np.asarray(ids)[:n]
  cuts = [0] + [i for i in range(1, n) if ids[i] != ids[i - 1]] + [n]
  return list(zip(cuts[:-1], cuts[1:]))


def spans():
  """[(row, start, stop)] of every valid segment of the packed batch."""
  return [
    (b, start, stop)
    for b in range(SEGMENT_IDS.shape[0])
    for start, stop in segments_of(SEGMENT_IDS[b], int(LENGTHS[b]))
  ]


def separate_runs(q, k, v, **flags):
  """(spans, o, state) of the segments run separately (naive form, one row each; `flags`: the
  op's DESIGN CHOICE flags)."""
  rows_of = spans()
  rows = lambda x: jnp.stack(
    [jnp.pad(x[b, a:e], ((0, T - (e - a)), (0, 0), (0, 0))) for b, a, e in rows_of]
  )
  lengths = jnp.array([e - a for _, a, e in rows_of], jnp.int32)
  run = jax.jit(
    lambda q, k, v: ovq_naive(
      q, k, v, beta=BETA, lengths=lengths, chunk_size=L, num_slots=N, **flags
    )
  )
  o, state = run(rows(q), rows(k), rows(v))
  return rows_of, o, state


def close(actual, expected, atol, err_msg=""):
  np.testing.assert_allclose(
    np.asarray(actual, np.float32),
    np.asarray(expected, np.float32),
    atol=atol,
    rtol=atol,
    err_msg=err_msg,
  )


def check_against_separate(o, state, separate, atol=1e-5, state_atol=1e-5):
  """Packed outputs and final states equal the separate runs; padding outputs are 0."""
  rows_of, o_sep, s_sep = separate
  last = {}
  for i, (b, a, e) in enumerate(rows_of):
    close(o[b, a:e], o_sep[i, : e - a], atol, err_msg=f"row {b} segment [{a}, {e})")
    last[b] = i
  for b in range(o.shape[0]):
    np.testing.assert_array_equal(np.asarray(o[b, int(LENGTHS[b]) :], np.float32), 0.0)
    for field in STATE_FIELDS:
      close(getattr(state, field)[b], getattr(s_sep, field)[last[b]], state_atol, err_msg=field)
