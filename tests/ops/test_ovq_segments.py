"""OVQ attention on packed rows (arXiv:2602.03922): every segment restarts the whole state.

The reference for a packed batch is the same segments run separately
(`tests/helpers/ovq_packed.py`): one row per segment, left-aligned and right-padded
(`lengths`), through the unpacked naive form. Outputs of every segment and each row's final state (its last segment's) must match
for naive, chunk and recurrent, with segments starting mid-chunk and on a chunk edge,
segments of length 1, several segments per row, different layouts per row and padding.
Then: a single segment id equals no segment ids, gradients (chunk vs naive, finite, no
leak across segments), an all-padding row, and input errors.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax.ops.ovq import ovq_attention, ovq_chunk, ovq_naive, ovq_recurrent
from reasoning_jax.ops.ovq import segments
from tests.helpers import ovq_packed
from tests.helpers.ovq_packed import BETA, LENGTHS, SEGMENT_IDS, L, N, T

FORMS = {"naive": ovq_naive, "chunk": ovq_chunk, "recurrent": ovq_recurrent}
_inputs = ovq_packed.inputs
_close = ovq_packed.close


@functools.partial(jax.jit, static_argnames=("mode",))
def _run(q, k, v, segment_ids, lengths, *, mode):
  return FORMS[mode](
    q,
    k,
    v,
    beta=BETA,
    lengths=lengths,
    segment_ids=segment_ids,
    chunk_size=L,
    num_slots=N,
  )


@pytest.fixture(scope="module")
def separate():
  return ovq_packed.separate_runs(*_inputs())


def test_separate_runs_exercise_the_restart(separate):
  """The reference itself: segments absorb chunks (counts > 0) and keep buffers of their own
  length mod L; the 10-token segment absorbed two chunks counted from its own start."""
  spans, _, state = separate
  np.testing.assert_array_equal(
    np.asarray(state.tokens_seen), [((e - a) // L) * L for _, a, e in spans]
  )
  np.testing.assert_array_equal(np.asarray(state.buf_len), [(e - a) % L for _, a, e in spans])
  assert int(state.tokens_seen.max()) == 8


@pytest.mark.parametrize("mode", ["naive", "chunk", "recurrent"])
def test_packed_rows_equal_each_segment_alone(mode, separate):
  q, k, v = _inputs()
  o, state = _run(q, k, v, SEGMENT_IDS, LENGTHS, mode=mode)
  ovq_packed.check_against_separate(o, state, separate)


def test_segment_starts():
  """Boundaries only at valid positions; padding (and positions past T) extend the last
  segment."""
  ids = jnp.array([[1, 1, 2, 2, 2, 3, 7, 7]])
  starts = segments.segment_starts(ids, jnp.array([6]), 10)
  np.testing.assert_array_equal(np.asarray(starts[0]), [0, 0, 2, 2, 2, 5, 5, 5, 5, 5])
  assert int(segments.last_start(starts, jnp.array([6]))[0]) == 5
  assert int(segments.last_start(starts, jnp.array([0]))[0]) == 0


@pytest.mark.parametrize("mode", ["chunk", "recurrent"])
def test_one_segment_id_is_no_segment_ids(mode):
  q, k, v = _inputs(b=2, seed=1)
  lengths = jnp.array([14, 9])
  ids = jnp.full((2, T), 3, jnp.int32)
  packed = _run(q, k, v, ids, lengths, mode=mode)
  plain = _run(q, k, v, None, lengths, mode=mode)
  for a, e in zip(jax.tree.leaves(packed), jax.tree.leaves(plain)):
    _close(a, e, 1e-6)


def test_all_padding_row_and_single_token_segments_are_finite():
  """A row of pure padding outputs 0 with an empty state; a row of length-1 segments reads
  only its own token (o = v, beta-independent) and ends with the last token buffered."""
  q, k, v = _inputs(b=2, seed=2)
  ids = jnp.stack([jnp.zeros((T,), jnp.int32), jnp.arange(T, dtype=jnp.int32)])
  o, state = _run(q, k, v, ids, jnp.array([0, T]), mode="chunk")
  assert bool(jnp.isfinite(o).all())
  np.testing.assert_array_equal(np.asarray(o[0]), 0.0)
  _close(o[1], v[1], 1e-6)
  np.testing.assert_array_equal(np.asarray(state.counts), 0.0)
  np.testing.assert_array_equal(np.asarray(state.buf_len), [0, 1])
  _close(state.buf_v[1, :, 0], v[1, -1], 1e-6)


def _projected_loss(fn, q, k, v, beta, **kw):
  o, state = fn(q, k, v, beta=beta, **kw)
  w = lambda x, s: jax.random.normal(jax.random.key(s), x.shape)
  return (
    jnp.sum(o * w(o, 7))
    + jnp.sum(state.dk * w(state.dk, 8))
    + jnp.sum(state.dv * w(state.dv, 9))
    + jnp.sum(state.buf_k * w(state.buf_k, 10))
  )


def test_chunk_gradients_match_naive_with_segments():
  """The first 10 positions (segments 6 | 1 | 3, 3 | 7, 8 | 2; one row padded to 9)."""
  q, k, v = (x[:, :10] for x in _inputs())
  lengths = jnp.array([10, 9, 10])
  kw = dict(segment_ids=SEGMENT_IDS[:, :10], lengths=lengths, chunk_size=L, num_slots=N)
  grad = lambda fn: jax.jit(
    jax.grad(functools.partial(_projected_loss, fn, **kw), argnums=(0, 1, 2, 3))
  )(q, k, v, BETA)
  expected = grad(ovq_naive)
  for name, a, e in zip("q k v beta".split(), grad(ovq_chunk), expected):
    assert bool(jnp.isfinite(a).all()), name
    _close(a, e, 2e-4, err_msg=name)
  assert float(jnp.abs(expected[1]).max()) > 0


def test_no_gradient_crosses_a_segment_boundary():
  """The outputs of row 1's second segment ([3, 13)) do not depend on its first segment's
  tokens, nor on the padding."""
  q, k, v = _inputs()

  def loss(q, k, v):
    o, _ = ovq_chunk(
      q, k, v, beta=BETA, segment_ids=SEGMENT_IDS, lengths=LENGTHS, chunk_size=L, num_slots=N
    )
    return jnp.sum(o[1, 3:13] ** 2)

  grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)
  for g in grads:
    assert bool(jnp.isfinite(g).all())
    np.testing.assert_array_equal(np.asarray(g[1, :3]), 0.0)
    np.testing.assert_array_equal(np.asarray(g[1, 13:]), 0.0)
    np.testing.assert_array_equal(np.asarray(g[jnp.array([0, 2])]), 0.0)
    assert float(jnp.abs(g[1, 3:13]).max()) > 0


def test_segment_ids_errors():
  q, k, v = _inputs(b=3)
  kw = dict(beta=1.0, chunk_size=L, num_slots=N)
  with pytest.raises(ValueError, match=r"segment_ids must be \[B, T\]"):
    ovq_attention(q, k, v, segment_ids=SEGMENT_IDS[:, :5], **kw)
  with pytest.raises(ValueError, match="segment_ids must be integers"):
    ovq_attention(q, k, v, segment_ids=SEGMENT_IDS.astype(jnp.float32), **kw)
  _, state = ovq_chunk(q, k, v, **kw)
  with pytest.raises(ValueError, match="cannot be combined with initial_state"):
    ovq_attention(q, k, v, segment_ids=SEGMENT_IDS, initial_state=state, **kw)
