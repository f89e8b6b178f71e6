"""OVQ attention (Online Vector Quantized Attention, arXiv:2602.03922): the triad and spec 3.4.

Spec tests (a)-(g) of /shared/methods/memory_attention.md section 3.4, then
invariants between the forms: naive == chunk == recurrent (ragged T, partly
filled buffers, right padding), prefill + decode steps == one pass, gradients
(chunk vs naive, finite differences), bf16 inputs, empty dictionaries, errors.
"""

import functools

import jax.test_util  # noqa: F401  (check_grads)

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax.ops.ovq import (
  OVQ_SCHEDULES,
  OVQState,
  init_state,
  ovq_attention,
  ovq_chunk,
  ovq_naive,
  ovq_recurrent,
  ovq_step,
)
from reasoning_jax.ops.ovq import common

B, T, H, D, DV = 2, 23, 2, 4, 3  # T = 23: not divisible by the chunk sizes used.
FORMS = {"naive": ovq_naive, "chunk": ovq_chunk, "recurrent": ovq_recurrent}


def _inputs(*, b=B, t=T, h=H, d=D, dv=DV, dtype=jnp.float32, seed=0):
  ks = jax.random.split(jax.random.key(seed), 3)
  q = jax.random.normal(ks[0], (b, t, h, d), dtype)
  k = jax.random.normal(ks[1], (b, t, h, d), dtype)
  v = jax.random.normal(ks[2], (b, t, h, dv), dtype)
  return q, k, v


@functools.partial(
  jax.jit, static_argnames=("mode", "chunk_size", "num_slots", "schedule", "renormalize")
)
def _run(
  q,
  k,
  v,
  beta,
  initial_state=None,
  lengths=None,
  *,
  mode,
  chunk_size,
  num_slots,
  schedule="saturating",
  renormalize=False,
):
  return FORMS[mode](
    q,
    k,
    v,
    beta=beta,
    initial_state=initial_state,
    lengths=lengths,
    chunk_size=chunk_size,
    num_slots=num_slots,
    schedule=schedule,
    renormalize=renormalize,
  )


def _softmax_attention(q, k, v, beta):
  """Causal softmax attention with logits beta q.k on unit-normalised q, k (fp32)."""
  qn, kn = common.l2_normalize(q), common.l2_normalize(k)
  logits = jnp.einsum("bthd,bshd->bhts", qn, kn, precision="highest") * beta
  t = q.shape[1]
  logits = jnp.where(jnp.tril(jnp.ones((t, t), bool)), logits, -jnp.inf)
  return jnp.einsum("bhts,bshv->bthv", jax.nn.softmax(logits, axis=-1), v, precision="highest")


def _close(actual, expected, atol, err_msg=""):
  np.testing.assert_allclose(
    np.asarray(actual, np.float32),
    np.asarray(expected, np.float32),
    atol=atol,
    rtol=atol,
    err_msg=err_msg,
  )


def _states_close(a: OVQState, e: OVQState, atol):
  for field in ("dk", "dv", "counts", "buf_k", "buf_v"):
    _close(getattr(a, field), getattr(e, field), atol, err_msg=field)
  np.testing.assert_array_equal(np.asarray(a.buf_len), np.asarray(e.buf_len))
  np.testing.assert_array_equal(np.asarray(a.tokens_seen), np.asarray(e.tokens_seen))


# ----------------------------------------------------------------------------- spec 3.4


@pytest.mark.parametrize(
  "mode,chunk_size", [("chunk", 1), ("chunk", 5), ("chunk", 32), ("naive", 4), ("recurrent", 3)]
)
def test_a_unbounded_dictionary_is_softmax_attention(mode, chunk_size):
  """(a) N_max >= T with "every_token": each token keeps its own slot -> causal softmax."""
  q, k, v = _inputs(t=13)
  beta = jnp.array([2.0, 5.0])
  o, state = _run(
    q, k, v, beta, mode=mode, chunk_size=chunk_size, num_slots=16, schedule="every_token"
  )
  _close(o, _softmax_attention(q, k, v, beta[None, :, None, None]), atol=1e-5)
  absorbed = 13 // chunk_size * chunk_size
  np.testing.assert_array_equal(np.asarray(state.counts.sum(-1)), absorbed)
  np.testing.assert_array_equal(np.asarray(state.counts.max()), 1.0 if absorbed else 0.0)


@pytest.mark.parametrize(
  "mode,schedule",
  [
    ("chunk", "saturating"),
    ("chunk", "every_token"),
    ("naive", "saturating"),
    ("recurrent", "every_token"),
  ],
)
def test_b_duplicate_keys_are_exact_with_three_slots(mode, schedule):
  """(b) Keys from 3 distinct unit vectors, N_max = 3: merging identical keys is lossless."""
  q, _, v = _inputs(t=29)
  basis = common.l2_normalize(jax.random.normal(jax.random.key(5), (3, H, D)))
  ids = jax.random.randint(jax.random.key(6), (B, 29), 0, 3).at[:, :3].set(jnp.arange(3))
  k = basis[ids]  # [B, T, H, D]; the first chunk holds all three vectors
  # L = 8, "saturating": N_target(8) = 3 - 9 // 11 = 3, so all three are seeded at once.
  o, state = _run(q, k, v, 3.0, mode=mode, chunk_size=8, num_slots=3, schedule=schedule)
  _close(o, _softmax_attention(q, k, v, 3.0), atol=1e-5)
  np.testing.assert_array_equal(np.asarray(state.counts.sum(-1)), 24)
  assert bool((state.counts > 0).all())


def test_c_online_mean_is_batch_mean_and_counts_sum_to_absorbed():
  """(c) Three tight clusters, N_max = 3: each slot is the batch mean of its cluster's keys
  and values over all absorbed tokens; sum n = absorbed tokens (the tail stays buffered)."""
  t, l = 29, 8
  centres = jnp.eye(D)[:3]  # orthogonal cluster centres
  ids = jax.random.randint(jax.random.key(1), (B, t, H), 0, 3).at[:, :3].set(jnp.arange(3)[:, None])
  k = centres[ids] + 0.05 * jax.random.normal(jax.random.key(2), (B, t, H, D))
  q, _, v = _inputs(t=t)
  for mode in ("chunk", "naive"):
    _, state = _run(q, k, v, 3.0, mode=mode, chunk_size=l, num_slots=3)
    absorbed = t // l * l
    np.testing.assert_array_equal(np.asarray(state.counts.sum(-1)), absorbed)
    np.testing.assert_array_equal(np.asarray(state.tokens_seen), absorbed)
    np.testing.assert_array_equal(np.asarray(state.buf_len), t - absorbed)
    kn = np.asarray(common.l2_normalize(k))[:, :absorbed]
    vv, ii = np.asarray(v)[:, :absorbed], np.asarray(ids)[:, :absorbed]
    for b in range(B):
      for h in range(H):
        for slot in range(3):
          cluster = int(np.argmax(np.asarray(state.dk[b, h, slot]) @ np.eye(D)[:3].T))
          sel = ii[b, :, h] == cluster
          assert state.counts[b, h, slot] == sel.sum()
          _close(state.dk[b, h, slot], kn[b, sel, h].mean(0), atol=1e-6)
          _close(state.dv[b, h, slot], vv[b, sel, h].mean(0), atol=1e-6)


@pytest.mark.parametrize("mode", ["chunk", "recurrent"])
def test_d_unassigned_slots_are_bit_identical(mode):
  """(d) One more chunk: every slot whose count did not change keeps its exact bits."""
  q, k, v = _inputs(t=16)
  _, s0 = _run(q, k, v, 3.0, mode="chunk", chunk_size=4, num_slots=8)
  q2, k2, v2 = _inputs(t=4, seed=1)
  _, s1 = _run(q2, k2, v2, 3.0, s0, mode=mode, chunk_size=4, num_slots=8)
  unchanged = np.asarray(s1.counts == s0.counts)
  assert unchanged.any() and not unchanged.all()
  np.testing.assert_array_equal(np.asarray(s1.dk)[unchanged], np.asarray(s0.dk)[unchanged])
  np.testing.assert_array_equal(np.asarray(s1.dv)[unchanged], np.asarray(s0.dv)[unchanged])
  assert not np.array_equal(np.asarray(s1.dk)[~unchanged], np.asarray(s0.dk)[~unchanged])


@pytest.mark.parametrize("mode", ["chunk", "recurrent"])
def test_e_causality(mode):
  """(e) Perturbing tokens after t leaves o[:t+1] unchanged (t across chunk edges)."""
  q, k, v = _inputs()
  o, _ = _run(q, k, v, 3.0, mode=mode, chunk_size=4, num_slots=5)
  for t in (0, 3, 4, 10, 21):
    noise = jax.random.normal(jax.random.key(t), q.shape)
    later = (jnp.arange(T) > t)[None, :, None, None]
    bump = lambda x, n: jnp.where(later, x + n[..., : x.shape[-1]], x)
    o2, _ = _run(
      bump(q, noise), bump(k, -noise), bump(v, 2 * noise), 3.0, mode=mode, chunk_size=4, num_slots=5
    )
    _close(o2[:, : t + 1], o[:, : t + 1], atol=1e-6)
    assert not np.allclose(np.asarray(o2[:, t + 1 :]), np.asarray(o[:, t + 1 :]))


def test_f_hand_case():
  """(f) d = 2, beta = 10, slots (1,0) n=3 value 1 and (0,1) n=1 value 0, query (1,0):
  o = 3 / (3 + e^-10) ~ 0.999985."""
  expected = 3.0 / (3.0 + np.exp(-10.0))
  q = jnp.array([1.0, 0.0]).reshape(1, 1, 1, 2)
  dict_k = jnp.array([[1.0, 0.0], [0.0, 1.0]]).reshape(1, 1, 2, 2)
  dict_v = jnp.array([[1.0], [0.0]]).reshape(1, 1, 2, 1)
  counts = jnp.array([3.0, 1.0]).reshape(1, 1, 2)
  no_keys = jnp.zeros((1, 1, 1, 2)), jnp.zeros((1, 1, 1, 1)), jnp.zeros((1, 1, 1), bool)
  o = common.readout(
    q, *no_keys, dict_k, dict_v, counts, jnp.array([10.0]), renormalize=False, precision="highest"
  )
  np.testing.assert_allclose(float(o[0, 0, 0, 0]), expected, rtol=1e-7)
  assert abs(expected - 0.999985) < 1e-6
  # The same through a decode step, whose own key (-1, 0) adds a weight e^{-20} at value 0.
  state = init_state(1, 1, 2, 4, 2, 1)
  state = OVQState(**{**state.__dict__, "dk": dict_k, "dv": dict_v, "counts": counts})
  o_t, _ = jax.jit(ovq_step)(state, q[:, 0], -q[:, 0], jnp.zeros((1, 1, 1)), beta=10.0)
  np.testing.assert_allclose(
    float(o_t[0, 0, 0]), 3.0 / (3.0 + np.exp(-10.0) + np.exp(-20.0)), rtol=1e-6
  )


@pytest.mark.parametrize("mode", ["chunk", "naive", "recurrent"])
def test_g_farthest_first_seeding(mode):
  """(g) Keys (1,0), (0.99,0.14), (0,1), (-1,0), empty dictionary, m = 2: seeds (1,0) then
  (-1,0). Assignment then puts (0,1) (equidistant, a tie) in the lower slot 0."""
  keys = jnp.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [-1.0, 0.0]]).reshape(1, 4, 1, 2)
  values = jnp.arange(4.0).reshape(1, 4, 1, 1)
  _, state = _run(
    keys, keys, values, 1.0, mode=mode, chunk_size=4, num_slots=2, schedule="every_token"
  )  # target min(2, 4) = 2 -> m = 2
  np.testing.assert_array_equal(np.asarray(state.counts[0, 0]), [3.0, 1.0])
  np.testing.assert_array_equal(np.asarray(state.dk[0, 0, 1]), [-1.0, 0.0])
  np.testing.assert_array_equal(np.asarray(state.dv[0, 0, :, 0]), [1.0, 3.0])
  kn = np.asarray(common.l2_normalize(keys))[0, :3, 0]
  _close(state.dk[0, 0, 0], kn.mean(0), atol=1e-7)


def test_schedules():
  tau = jnp.array([0, 1, 64, 1024, 10**6])
  np.testing.assert_array_equal(
    np.asarray(OVQ_SCHEDULES.get("saturating")(tau, 1024)), [0, 1, 61, 512, 1023]
  )
  np.testing.assert_array_equal(
    np.asarray(OVQ_SCHEDULES.get("every_token")(tau, 1024)), [0, 1, 64, 1024, 1024]
  )
  ceil = lambda t, n: min(n, int(np.ceil(n * t / (t + n))))
  got = OVQ_SCHEDULES.get("saturating")(jnp.arange(300), 37)
  np.testing.assert_array_equal(np.asarray(got), [ceil(t, 37) for t in range(300)])


# ------------------------------------------------------------------ forms agree (fp32)


@pytest.mark.parametrize(
  "chunk_size,num_slots,schedule,renormalize",
  [
    (4, 6, "saturating", False),
    (5, 30, "saturating", False),
    (8, 3, "every_token", True),
    (32, 7, "saturating", False),
  ],
)
def test_forms_agree(chunk_size, num_slots, schedule, renormalize):
  q, k, v = _inputs()
  beta = jnp.array([3.0, 1.5])
  kw = dict(chunk_size=chunk_size, num_slots=num_slots, schedule=schedule, renormalize=renormalize)
  expected = _run(q, k, v, beta, mode="naive", **kw)
  for mode in ("chunk", "recurrent"):
    o, state = _run(q, k, v, beta, mode=mode, **kw)
    _close(o, expected[0], atol=1e-5, err_msg=mode)
    _states_close(state, expected[1], atol=1e-5)


@pytest.fixture(scope="module")
def padded_prefix():
  """A right-padded prefill (lengths 7 and 10 of 11, L = 4): buffers of 3 and 2 tokens."""
  q, k, v = _inputs(t=11, seed=3)
  lengths = jnp.array([7, 10])
  _, state = _run(q, k, v, 3.0, None, lengths, mode="chunk", chunk_size=4, num_slots=6)
  return (q, k, v), lengths, state


def test_padding_state_is_the_valid_prefix_state(padded_prefix):
  (q, k, v), lengths, state = padded_prefix
  np.testing.assert_array_equal(np.asarray(state.buf_len), [3, 2])
  np.testing.assert_array_equal(np.asarray(state.tokens_seen), [4, 8])
  for mode in ("naive", "recurrent"):
    _states_close(
      _run(q, k, v, 3.0, None, lengths, mode=mode, chunk_size=4, num_slots=6)[1], state, atol=1e-5
    )
  for b in range(B):
    n = int(lengths[b])
    o_row, s_row = _run(
      q[b : b + 1, :n],
      k[b : b + 1, :n],
      v[b : b + 1, :n],
      3.0,
      mode="chunk",
      chunk_size=4,
      num_slots=6,
    )
    o_pad, _ = _run(q, k, v, 3.0, None, lengths, mode="chunk", chunk_size=4, num_slots=6)
    _close(o_pad[b : b + 1, :n], o_row, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(o_pad[b, n:]), 0.0)
    row = jax.tree.map(lambda x: x[b : b + 1], state)
    _states_close(row, s_row, atol=1e-6)


@pytest.mark.parametrize("with_lengths", [False, True])
def test_forms_agree_from_a_partly_filled_buffer(padded_prefix, with_lengths):
  """Continue from buffers of 3 and 2 tokens: the chunk form's first chunk completes them.
  Equal to one pass over each row's valid prefix followed by the new tokens."""
  (q0, k0, v0), lengths0, state = padded_prefix
  q, k, v = _inputs(t=13, seed=4)
  lengths = jnp.array([13, 6]) if with_lengths else None
  kw = dict(chunk_size=4, num_slots=6)
  expected = _run(q, k, v, 3.0, state, lengths, mode="naive", **kw)
  for mode in ("chunk", "recurrent"):
    out = _run(q, k, v, 3.0, state, lengths, mode=mode, **kw)
    _close(out[0], expected[0], atol=1e-5, err_msg=mode)
    _states_close(out[1], expected[1], atol=1e-5)
  for b in range(B):
    n0, n = int(lengths0[b]), 13 if lengths is None else int(lengths[b])
    cat = lambda x0, x: jnp.concatenate([x0[b : b + 1, :n0], x[b : b + 1, :n]], axis=1)
    o_row, s_row = _run(cat(q0, q), cat(k0, k), cat(v0, v), 3.0, mode="chunk", **kw)
    _close(expected[0][b : b + 1, :n], o_row[:, n0:], atol=1e-5)
    _states_close(jax.tree.map(lambda x: x[b : b + 1], expected[1]), s_row, atol=1e-5)


def test_decode_steps_continue_a_padded_prefill(padded_prefix):
  """Batched right-padded prefill (chunk form), then ovq_step token by token per row."""
  (q0, k0, v0), lengths0, state = padded_prefix
  q, k, v = _inputs(t=9, seed=5)
  step = jax.jit(functools.partial(ovq_step, beta=3.0))
  outs = []
  for t in range(9):
    o_t, state = step(state, q[:, t], k[:, t], v[:, t])
    outs.append(o_t)
  decoded = jnp.stack(outs, axis=1)
  for b in range(B):
    n0 = int(lengths0[b])
    cat = lambda x0, x: jnp.concatenate([x0[b : b + 1, :n0], x[b : b + 1]], axis=1)
    o_row, s_row = _run(
      cat(q0, q), cat(k0, k), cat(v0, v), 3.0, mode="chunk", chunk_size=4, num_slots=6
    )
    _close(decoded[b : b + 1], o_row[:, n0:], atol=1e-5)
    _states_close(jax.tree.map(lambda x: x[b : b + 1], state), s_row, atol=1e-5)


def test_step_valid_false_is_a_no_op():
  q, k, v = _inputs(t=6)
  _, state = _run(q, k, v, 3.0, mode="chunk", chunk_size=4, num_slots=6)
  o_t, new = jax.jit(ovq_step)(
    state, q[:, 0], k[:, 0], v[:, 0], beta=3.0, valid=jnp.array([False, True])
  )
  np.testing.assert_array_equal(np.asarray(o_t[0]), 0.0)
  for a, e in zip(
    jax.tree.leaves(jax.tree.map(lambda x: x[:1], new)),
    jax.tree.leaves(jax.tree.map(lambda x: x[:1], state)),
  ):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(e))
  assert int(new.buf_len[1]) == int(state.buf_len[1]) + 1


# ------------------------------------------------------------------------------ gradients


def _projected_loss(fn, q, k, v, beta, **kw):
  """A random linear functional of (o, dictionaries), so every output gets a cotangent."""
  o, state = fn(q, k, v, beta=beta, **kw)
  w = lambda x, s: jax.random.normal(jax.random.key(s), x.shape)
  return (
    jnp.sum(o * w(o, 7))
    + jnp.sum(state.dk * w(state.dk, 8))
    + jnp.sum(state.dv * w(state.dv, 9))
    + jnp.sum(state.buf_k * w(state.buf_k, 10))
  )


@pytest.mark.parametrize("chunk_size,num_slots,renormalize", [(4, 5, False), (7, 20, True)])
def test_chunk_gradients_match_naive(chunk_size, num_slots, renormalize):
  q, k, v = _inputs(t=15)
  beta = jnp.array([3.0, 1.5])
  kw = dict(chunk_size=chunk_size, num_slots=num_slots, renormalize=renormalize)
  grad = lambda fn: jax.jit(
    jax.grad(functools.partial(_projected_loss, fn, **kw), argnums=(0, 1, 2, 3))
  )(q, k, v, beta)
  expected = grad(ovq_naive)
  for name, a, e in zip("q k v beta".split(), grad(ovq_chunk), expected):
    assert a.shape == e.shape and bool(jnp.isfinite(a).all()), name
    _close(a, e, atol=2e-4, err_msg=name)
  assert float(jnp.abs(expected[1]).max()) > 0 and float(jnp.abs(expected[3]).max()) > 0


def test_finite_differences():
  """check_grads (reverse mode, fp32) on a tiny case: the assignments stay fixed under eps."""
  q, k, v = _inputs(b=1, t=6, h=1, d=3, dv=2, seed=11)
  f = lambda q, k, v, beta: _projected_loss(ovq_chunk, q, k, v, beta, chunk_size=2, num_slots=3)
  jax.test_util.check_grads(
    f, (q, k, v, jnp.array(2.0)), order=1, modes=("rev",), eps=1e-3, atol=2e-2, rtol=2e-2
  )


# --------------------------------------------------------------------- dtypes, edge cases


def test_bf16_inputs_keep_fp32_state():
  q, k, v = _inputs()
  bf = lambda x: x.astype(jnp.bfloat16)
  o, state = _run(bf(q), bf(k), bf(v), 3.0, mode="chunk", chunk_size=8, num_slots=6)
  assert o.dtype == jnp.bfloat16
  assert all(x.dtype == jnp.float32 for x in (state.dk, state.dv, state.counts, state.buf_k))
  o_ref, s_ref = _run(
    *(bf(x).astype(jnp.float32) for x in (q, k, v)), 3.0, mode="naive", chunk_size=8, num_slots=6
  )
  _close(o, o_ref, atol=2e-2)
  _close(state.dk, s_ref.dk, atol=1e-5)


def test_empty_dictionary_and_all_padding_rows_are_finite():
  """T < L: nothing is absorbed (all slots inactive, log n masked) -> causal softmax; a row of
  pure padding outputs 0; values and gradients are finite under jit."""
  q, k, v = _inputs(t=5)
  lengths = jnp.array([5, 0])
  o, state = _run(q, k, v, 3.0, None, lengths, mode="chunk", chunk_size=8, num_slots=4)
  assert float(state.counts.max()) == 0.0
  _close(o[:1], _softmax_attention(q, k, v, 3.0)[:1], atol=1e-5)
  np.testing.assert_array_equal(np.asarray(o[1]), 0.0)
  loss = lambda q, k, v: _projected_loss(
    ovq_chunk, q, k, v, 3.0, lengths=lengths, chunk_size=8, num_slots=4
  )
  grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)
  assert all(bool(jnp.isfinite(g).all()) for g in grads)
  np.testing.assert_array_equal(np.asarray(grads[0][1]), 0.0)


def test_dispatcher_modes_agree_under_jit():
  q, k, v = _inputs()
  f = jax.jit(
    ovq_attention,
    static_argnames=(
      "mode",
      "chunk_size",
      "num_slots",
      "schedule",
      "renormalize",
      "implementation",
    ),
  )
  expected = f(q, k, v, beta=2.0, mode="naive", chunk_size=5, num_slots=7)
  for mode in ("chunk", "recurrent"):
    out = f(q, k, v, beta=2.0, mode=mode, chunk_size=5, num_slots=7, implementation="xla")
    _close(out[0], expected[0], atol=1e-5)
    _states_close(out[1], expected[1], atol=1e-5)


def _bad_state(**change):
  state = init_state(B, H, 6, 4, D, DV)
  return OVQState(**{**state.__dict__, **change})


@pytest.mark.parametrize(
  "change,match",
  [
    (lambda a: {**a, "q": a["q"][0]}, r"q must be \[B, T, H, D\]"),
    (lambda a: {**a, "k": a["k"][:, :, :1]}, r"k must be \[B, T, H, D\]"),
    (lambda a: {**a, "k": a["k"][..., :2]}, r"k must be \[B, T, H, D\]"),
    (lambda a: {**a, "v": a["v"][:, :-1]}, r"v must be \[B, T, H, Dv\]"),
    (lambda a: {**a, "k": a["k"].astype(jnp.bfloat16)}, "q, k, v must share a dtype"),
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
    (lambda a: {**a, "num_slots": -1}, "num_slots must be a positive int"),
    (lambda a: {**a, "num_slots": 50000}, "num_slots must be <= 46340"),
    (lambda a: {**a, "beta": 0.0}, "beta must be positive"),
    (lambda a: {**a, "beta": jnp.ones((3,))}, r"beta must be a positive scalar or \[H\]"),
    (lambda a: {**a, "lengths": jnp.ones((3,), jnp.int32)}, r"lengths must be \[B\]"),
    (lambda a: {**a, "lengths": jnp.ones((B,))}, "lengths must be integers"),
    (lambda a: {**a, "schedule": "cubic"}, "schedule='cubic' is not a registered"),
    (lambda a: {**a, "renormalize": 1}, "renormalize must be a bool"),
    (
      lambda a: {**a, "initial_state": _bad_state(dk=jnp.zeros((B, H, 5, D)))},
      r"initial_state.dk must be \[B, H, N, D\]",
    ),
    (
      lambda a: {**a, "initial_state": _bad_state(buf_k=jnp.zeros((B, H, 3, D)))},
      r"initial_state.buf_k must be \[B, H, L, D\]",
    ),
    (
      lambda a: {**a, "initial_state": _bad_state(buf_len=jnp.zeros((B,)))},
      "initial_state.buf_len must be int32",
    ),
    (lambda a: {**a, "initial_state": jnp.zeros(3)}, "initial_state must be an OVQState"),
    (lambda a: {**a, "mode": "fused"}, "mode='fused' is not a registered ovq mode"),
    (lambda a: {**a, "implementation": "triton"}, "implementation='triton' is not"),
    (lambda a: {**a, "implementation": "pallas", "mode": "naive"}, 'mode="chunk" only'),
  ],
)
def test_bad_inputs_raise(change, match):
  q, k, v = _inputs(t=4)
  args = change(dict(q=q, k=k, v=v, beta=1.0, chunk_size=4, num_slots=6))
  with pytest.raises(ValueError, match=match):
    ovq_attention(**args)


def test_step_bad_inputs_raise():
  q, k, v = _inputs(t=1)
  state = init_state(B, H, 6, 4, D, DV)
  with pytest.raises(ValueError, match=r"q_t must be \[B, H, D\]"):
    ovq_step(state, q, k, v, beta=1.0)
  with pytest.raises(ValueError, match="state must be an OVQState"):
    ovq_step(None, q[:, 0], k[:, 0], v[:, 0], beta=1.0)
  with pytest.raises(ValueError, match=r"initial_state.dk must be"):
    ovq_step(init_state(B, H, 6, 4, D + 1, DV), q[:, 0], k[:, 0], v[:, 0], beta=1.0)
  with pytest.raises(ValueError, match=r"valid must be a \[B\]"):
    ovq_step(state, q[:, 0], k[:, 0], v[:, 0], beta=1.0, valid=jnp.ones((B,), jnp.int32))


def test_chunk_from_empty_dictionary_under_jit():
  """Guard for the XLA:CPU zero-constant miscompile that hit GLA (see
  `tests/ops/test_gla.py::test_chunk_without_initial_state_under_jit`): with no initial state
  the dictionary starts all-zero inside the jitted computation. Fresh executables for several
  shapes must all match the naive form (36 of 36 matched on jaxlib 0.10.2 and 0.12.0.1 in a
  wider probe)."""
  for b, t in ((1, 5), (2, 9), (3, 17), (2, 40)):
    q, k, v = _inputs(b=b, t=t, h=2, d=16, dv=16, seed=t)
    fn = jax.jit(functools.partial(ovq_chunk, beta=1.0, chunk_size=8, num_slots=16))
    o, _ = fn(q, k, v)
    o_ref, _ = ovq_naive(q, k, v, beta=1.0, chunk_size=8, num_slots=16)
    _close(o, o_ref, atol=1e-4, err_msg=f"b={b} t={t}")
