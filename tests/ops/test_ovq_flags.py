"""OVQ attention's DESIGN CHOICE flags (arXiv:2602.03922; spec memory_attention.md 3.1/3.2):
the readings of the paper's ablations (growth schedule, seeding rule, update rule, chunk
readout) by hand, then invariants: every form (naive, chunk, recurrent; packed rows) agrees
for every flag, chunk gradients equal naive ones, and bad flags raise naming the flag.
The default flags are pinned by tests/ops/test_ovq.py (spec tests (a)-(g))."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax.ops.ovq import (
  OVQ_SCHEDULES,
  OVQ_SEEDINGS,
  make_options,
  ovq_attention,
  ovq_chunk,
  ovq_naive,
  ovq_recurrent,
)
from reasoning_jax.ops.ovq import common, write
from tests.helpers import ovq_packed

FORMS = {"naive": ovq_naive, "chunk": ovq_chunk, "recurrent": ovq_recurrent}
B, T, H, D, DV = 2, 23, 2, 4, 3
BETA = jnp.array([3.0, 1.5])


def _inputs(*, t=T, seed=0):
  ks = jax.random.split(jax.random.key(seed), 3)
  return (
    jax.random.normal(ks[0], (B, t, H, D)),
    jax.random.normal(ks[1], (B, t, H, D)),
    jax.random.normal(ks[2], (B, t, H, DV)),
  )


@functools.partial(jax.jit, static_argnames=("mode", "chunk_size", "num_slots", "flags"))
def _run(q, k, v, beta, *, mode, chunk_size, num_slots, flags=(), segment_ids=None, lengths=None):
  """`flags`: a tuple of (name, value) pairs (hashable, static)."""
  return FORMS[mode](
    q,
    k,
    v,
    beta=beta,
    chunk_size=chunk_size,
    num_slots=num_slots,
    segment_ids=segment_ids,
    lengths=lengths,
    **dict(flags),
  )


def _close(actual, expected, atol=1e-5, err_msg=""):
  np.testing.assert_allclose(
    np.asarray(actual), np.asarray(expected), atol=atol, rtol=atol, err_msg=err_msg
  )


def _unit(rows):
  return jnp.array(rows, jnp.float32).reshape(1, len(rows), 1, 2)


# The spec test (g) keys: (1,0), (0.99,0.14), (0,1), (-1,0) (unit after normalisation).
G_KEYS = _unit([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [-1.0, 0.0]])
G_VALUES = jnp.arange(4.0).reshape(1, 4, 1, 1)

# ------------------------------------------------------------------------- growth schedules


def test_linear_schedule_by_hand():
  """`min(N, ceil(N tau / tokens))`: N = 16 full after 64 tokens (one slot per 4 tokens), the
  default tokens = 4 N, and a reference length that does not divide."""
  tau = jnp.array([0, 1, 4, 5, 16, 17, 32, 63, 64, 1000])
  got = OVQ_SCHEDULES.get("linear")(tau, 16, tokens=64)
  np.testing.assert_array_equal(np.asarray(got), [0, 1, 1, 2, 4, 5, 8, 16, 16, 16])
  options = make_options(16, schedule="linear")
  assert options.linear_tokens == 64 and options.schedule_params() == {"tokens": 64}
  got = OVQ_SCHEDULES.get("linear")(jnp.array([0, 1, 10, 11, 29, 30, 31]), 7, tokens=30)
  np.testing.assert_array_equal(np.asarray(got), [0, 1, 3, 3, 7, 7, 7])  # ceil(7 tau / 30)


def test_dirichlet_schedule_by_hand():
  """`min(N, ceil(alpha log(1 + tau / alpha)))`, the expected CRP table count: alpha = 4
  (the default N / 4 for N = 16): tau = 16, 32, 48, 64 give 4 ln 5 = 6.44, 4 ln 9 = 8.79,
  4 ln 13 = 10.26, 4 ln 17 = 11.33; alpha = 1: ln 2 = 0.69, ln 3 = 1.10."""
  options = make_options(16, schedule="dirichlet")
  assert options.schedule_params() == {"alpha": 4.0}
  tau = jnp.array([0, 16, 32, 48, 64, 1000])
  got = OVQ_SCHEDULES.get("dirichlet")(tau, 16, alpha=4.0)
  np.testing.assert_array_equal(np.asarray(got), [0, 7, 9, 11, 12, 16])
  got = OVQ_SCHEDULES.get("dirichlet")(jnp.array([1, 2, 100]), 1000, alpha=1.0)
  np.testing.assert_array_equal(np.asarray(got), [1, 2, 5])  # ln 101 = 4.62
  # Against the exact CRP expectation sum_{i < tau} alpha / (alpha + i): within one slot.
  crp = lambda t, a: sum(a / (a + i) for i in range(t))
  for t in (16, 64, 256):
    assert abs(int(OVQ_SCHEDULES.get("dirichlet")(jnp.array(t), 10**4, alpha=4.0)) - crp(t, 4)) < 2


def test_growth_opens_the_schedule_target_less_the_active_slots():
  """m = clip(target(tau + L) - active, 0, L), the target a function of tau only."""
  counts = jnp.array([[[2.0, 1.0, 0.0, 0.0] + [0.0] * 12]])  # 2 active of 16
  options = make_options(16, schedule="dirichlet")
  m = write.growth(counts, jnp.array([[16]]), 16, options)  # tau = 32: target 9
  np.testing.assert_array_equal(np.asarray(m), [[7]])
  options = make_options(16, schedule="linear")
  np.testing.assert_array_equal(
    np.asarray(write.growth(counts, jnp.array([[0]]), 4, options)), [[0]]
  )


# --------------------------------------------------------------------------- seeding rules


def _picks(score_fn, keys, m, noise):
  """The seeding loop by hand (numpy): empty dictionary, m picks by the rule's score."""
  keys = np.asarray(keys, np.float64)
  min_d = np.full(len(keys), np.inf)
  picked = np.zeros(len(keys), bool)
  out = []
  for r in range(m):
    score = np.asarray(score_fn(jnp.asarray(min_d, jnp.float32), jnp.asarray(picked), noise[r]))
    j = int(np.argmax(score))
    out.append(j)
    picked[j] = True
    min_d = np.minimum(min_d, ((keys - keys[j]) ** 2).sum(-1))
  return out


def _state_after_one_chunk(seeding, seed):
  _, state = _run(
    G_KEYS,
    G_KEYS,
    G_VALUES,
    1.0,
    mode="chunk",
    chunk_size=4,
    num_slots=2,
    flags=(("schedule", "every_token"), ("seeding", seeding), ("seed", seed)),
  )  # target min(2, 4) = 2 -> m = 2
  return state


@pytest.mark.parametrize("seeding", ["random", "kmeans++"])
def test_stochastic_seeding_picks_by_hand(seeding):
  """Spec (g)'s keys, empty dictionary, m = 2: the picks are the rule's argmax under the draws
  of `write.seeding_noise` (random: uniform without replacement; k-means++: the first uniform,
  the second by D^2 to it); the two seeds become slots 0 and 1 and every key is assigned to
  the nearer (ties to slot 0). Different seeds give different picks."""
  kn = np.asarray(common.l2_normalize(G_KEYS))[0, :, 0]
  values = np.arange(4.0)
  seen = set()
  for seed in range(4):
    noise = write.seeding_noise(jnp.asarray(kn), jnp.int32(0), jnp.int32(0), seed)
    j0, j1 = _picks(OVQ_SEEDINGS.get(seeding), kn, 2, noise)
    assert j0 != j1
    seen.add((j0, j1))
    seeds = kn[[j0, j1]]
    dist = ((kn[:, None] - seeds[None]) ** 2).sum(-1)
    assign = np.argmin(dist, axis=1)
    state = _state_after_one_chunk(seeding, seed)
    for slot in (0, 1):
      mine = assign == slot
      np.testing.assert_array_equal(np.asarray(state.counts[0, 0, slot]), mine.sum())
      _close(state.dk[0, 0, slot], kn[mine].mean(0), atol=1e-6)
      _close(state.dv[0, 0, slot, 0], values[mine].mean(), atol=1e-6)
  assert len(seen) > 1


def test_seeding_scores():
  """farthest: the largest distance (first on ties); k-means++: D^2 sampling (frequencies
  0 / 0.25 / 0.75 for distances 0, 1, 3; uniform with no centre); random: uniform over the
  keys not picked yet."""
  far, kpp, rnd = (OVQ_SEEDINGS.get(n) for n in ("farthest", "kmeans++", "random"))
  assert int(jnp.argmax(far(jnp.array([0.5, 2.0, 2.0]), None, None))) == 1
  n = 40000
  g = jax.random.gumbel(jax.random.key(0), (n, 3))
  freq = lambda s: np.bincount(np.asarray(jnp.argmax(s, -1)), minlength=3) / n
  _close(freq(kpp(jnp.array([0.0, 1.0, 3.0]), None, g)), [0.0, 0.25, 0.75], atol=0.015)
  _close(freq(kpp(jnp.full((3,), jnp.inf), None, g)), [1 / 3] * 3, atol=0.015)
  # A key within rounding of a centre (the matmul expansion's ~1e-7) counts as distance 0.
  assert freq(kpp(jnp.array([1e-7, 1.0, 3.0]), None, g))[0] == 0.0
  picked = jnp.array([True, False, False])
  _close(freq(rnd(jnp.array([9.0, 1.0, 0.0]), picked, g)), [0.0, 0.5, 0.5], atol=0.015)


# ---------------------------------------------------------------------------- update rules


@pytest.mark.parametrize("mode", ["naive", "chunk"])
def test_constant_lr_update_by_hand(mode):
  """update="constant", lr 0.25: `D <- D + lr (mean of assigned - D)`, a new slot starting at
  its seed. N = 2, L = 2, every_token: chunk 1 seeds (1,0) [v 1] and (0,1) [v 0] (each then
  its own mean, so unchanged); chunk 2 assigns (0.8,0.6) [v 5] and (0.6,-0.8) [v 7] both to
  slot 0 (distances 0.4, 0.8 vs 0.8, 3.6): mean (0.7,-0.1), v 6, so slot 0 becomes
  (1,0) + 0.25 (-0.3,-0.1) = (0.925,-0.025) and v 1 + 0.25 * 5 = 2.25; slot 1 untouched.
  Adaptive (1/count) would give ((1,0) + (0.8,0.6) + (0.6,-0.8)) / 3."""
  keys = _unit([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [0.6, -0.8]])
  values = jnp.array([1.0, 0.0, 5.0, 7.0]).reshape(1, 4, 1, 1)
  flags = (("schedule", "every_token"), ("update", "constant"), ("update_lr", 0.25))
  kw = dict(mode=mode, chunk_size=2, num_slots=2)
  _, state = _run(keys, keys, values, 1.0, flags=flags, **kw)
  _close(state.dk[0, 0], [[0.925, -0.025], [0.0, 1.0]], atol=1e-6)
  _close(state.dv[0, 0, :, 0], [2.25, 0.0], atol=1e-6)
  np.testing.assert_array_equal(np.asarray(state.counts[0, 0]), [3.0, 1.0])
  _, adaptive = _run(keys, keys, values, 1.0, flags=flags[:1], **kw)
  _close(adaptive.dk[0, 0, 0], [2.4 / 3, -0.2 / 3], atol=1e-6)
  # One new slot, two keys (the seed (1,0) [v 1] and (0.8,0.6) [v 3]): seed + 0.25 (mean - seed).
  keys = _unit([[1.0, 0.0], [0.8, 0.6]])
  values = jnp.array([1.0, 3.0]).reshape(1, 2, 1, 1)
  _, state = _run(keys, keys, values, 1.0, flags=flags, mode=mode, chunk_size=2, num_slots=1)
  _close(state.dk[0, 0, 0], [0.975, 0.075], atol=1e-6)
  _close(state.dv[0, 0, 0, 0], 1.25, atol=1e-6)


# ---------------------------------------------------------------------------- chunk readout


@pytest.mark.parametrize("mode", ["naive", "chunk", "recurrent"])
def test_vq_readout_by_hand(mode):
  """readout="vq", beta 2, N = 2, L = 2, every_token, query (1,0) everywhere. Chunk 1 (keys
  (1,0) [v 1], (0,1) [v 0]) reads exactly (no dictionary yet): o_0 = 1, o_1 = 1 / (1 + e^-2).
  Token 2 (key (0.8,0.6) [v 5]) reads slots {(1,0) n 1 v 1, (0,1) n 1 v 0} and its own key
  quantised to slot 0, (1,0): logits 0, -2, 0, so o_2 = 6 / (2 + e^-2) (exact: its key's
  logit is -(2/2) 0.4 = -0.4). The write uses the exact keys either way."""
  keys = _unit([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
  query = _unit([[1.0, 0.0]] * 3)
  values = jnp.array([1.0, 0.0, 5.0]).reshape(1, 3, 1, 1)
  kw = dict(mode=mode, chunk_size=2, num_slots=2)
  flags = (("schedule", "every_token"), ("readout", "vq"))
  o, state = _run(query, keys, values, 2.0, flags=flags, **kw)
  e2, e4 = np.exp(-2.0), np.exp(-0.4)
  _close(o[0, :, 0, 0], [1.0, 1.0 / (1.0 + e2), 6.0 / (2.0 + e2)], atol=1e-6)
  o_exact, state_exact = _run(query, keys, values, 2.0, flags=flags[:1], **kw)
  _close(o_exact[0, 2, 0, 0], (1.0 + 5.0 * e4) / (1.0 + e2 + e4), atol=1e-6)
  for a, e in zip(jax.tree.leaves(state), jax.tree.leaves(state_exact)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def test_vq_keys_are_straight_through():
  """The quantised key reads as its slot but passes the gradient to the key itself."""
  keys = common.l2_normalize(jnp.array([[[[0.8, 0.6], [0.0, 1.0]]]]))
  dict_k = jnp.array([[[[1.0, 0.0], [0.0, 0.0]]]])
  counts = jnp.array([[[2.0, 0.0]]])
  quantised, key_sq = common.OVQ_READOUTS.get("vq")(keys, dict_k, counts, "highest")
  _close(quantised[0, 0], [[1.0, 0.0], [1.0, 0.0]])  # only slot 0 is active
  _close(key_sq[0, 0], [1.0, 1.0])
  w = jnp.array([0.3, -2.0])
  grad = jax.grad(lambda k: jnp.sum(common.OVQ_READOUTS.get("vq")(k, dict_k, counts, None)[0] * w))
  _close(grad(keys)[0, 0], jnp.broadcast_to(w, (2, 2)))
  empty = common.OVQ_READOUTS.get("vq")(keys, dict_k, counts * 0, None)[0]
  _close(empty, keys)  # no active slot: the keys stay exact


# ---------------------------------------------------------------- forms agree, every flag

FLAG_CASES = [
  (("schedule", "linear"),),
  (("schedule", "linear"), ("linear_tokens", 10)),
  (("schedule", "dirichlet"),),
  (("schedule", "dirichlet"), ("dirichlet_alpha", 0.7)),
  (("seeding", "kmeans++"),),
  (("seeding", "random"), ("seed", 7)),
  (("update", "constant"), ("update_lr", 0.3)),
  (("readout", "vq"),),
  (
    ("schedule", "dirichlet"),
    ("seeding", "kmeans++"),
    ("update", "constant"),
    ("readout", "vq"),
    ("renormalize", True),
  ),
]


@pytest.fixture(scope="module")
def default_output():
  return _run(*_inputs(), BETA, mode="chunk", chunk_size=4, num_slots=6)


@pytest.mark.parametrize("flags", FLAG_CASES, ids=lambda f: "-".join(f"{k}={v}" for k, v in f))
def test_forms_agree_for_every_flag(flags, default_output):
  """naive == chunk == recurrent (outputs and final states, fp32, T = 23 with L = 4, N = 6),
  and every flag changes the result."""
  q, k, v = _inputs()
  kw = dict(chunk_size=4, num_slots=6, flags=flags)
  o_ref, s_ref = _run(q, k, v, BETA, mode="naive", **kw)
  for mode in ("chunk", "recurrent"):
    o, s = _run(q, k, v, BETA, mode=mode, **kw)
    _close(o, o_ref, err_msg=mode)
    for field in ("dk", "dv", "counts", "buf_k", "buf_v", "tokens_seen"):
      _close(getattr(s, field), getattr(s_ref, field), err_msg=f"{mode} {field}")
  assert float(jnp.abs(o_ref - default_output[0]).max()) > 1e-3


PACKED_FLAGS = (
  ("schedule", "dirichlet"),
  ("seeding", "random"),
  ("update", "constant"),
  ("readout", "vq"),
)


@pytest.mark.parametrize("mode", ["naive", "chunk", "recurrent"])
def test_packed_rows_with_flags_equal_each_segment_alone(mode):
  """The restart rule holds for the new flags too (the seeding draws do not depend on the
  batch row, so a packed segment draws what it draws alone)."""
  q, k, v = ovq_packed.inputs()
  separate = ovq_packed.separate_runs(q, k, v, **dict(PACKED_FLAGS))
  o, state = _run(
    q,
    k,
    v,
    ovq_packed.BETA,
    mode=mode,
    chunk_size=ovq_packed.L,
    num_slots=ovq_packed.N,
    flags=PACKED_FLAGS,
    segment_ids=ovq_packed.SEGMENT_IDS,
    lengths=ovq_packed.LENGTHS,
  )
  ovq_packed.check_against_separate(o, state, separate)


def test_chunk_gradients_match_naive_with_flags():
  """Gradients through the constant-lr update (seeds carry gradient), the straight-through vq
  keys and random seeding: chunk == naive."""
  q, k, v = _inputs(t=15)
  flags = (("schedule", "linear"), ("seeding", "random"), ("update", "constant"), ("readout", "vq"))

  def loss(fn, q, k, v, beta):
    o, state = fn(q, k, v, beta=beta, chunk_size=4, num_slots=5, **dict(flags))
    w = lambda x, s: jax.random.normal(jax.random.key(s), x.shape)
    return (
      jnp.sum(o * w(o, 7)) + jnp.sum(state.dk * w(state.dk, 8)) + jnp.sum(state.dv * w(state.dv, 9))
    )

  grad = lambda fn: jax.jit(jax.grad(functools.partial(loss, fn), argnums=(0, 1, 2, 3)))(
    q, k, v, BETA
  )
  expected = grad(ovq_naive)
  for name, a, e in zip("q k v beta".split(), grad(ovq_chunk), expected):
    assert bool(jnp.isfinite(a).all()), name
    _close(a, e, atol=2e-4, err_msg=name)
  assert float(jnp.abs(expected[1]).max()) > 0


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
  "flags,match",
  [
    ({"seeding": "spread"}, "seeding='spread' is not a registered ovq seeding rule"),
    ({"update": "newton"}, "update='newton' is not a registered ovq update rule"),
    ({"readout": "pure"}, "readout='pure' is not a registered ovq readout"),
    ({"update_lr": 0.0}, r"update_lr must be a number in \(0, 1\]"),
    ({"update_lr": 1.5}, r"update_lr must be a number in \(0, 1\]"),
    ({"seed": -1}, r"seed must be an int in \[0, 2\^31\)"),
    ({"seed": 1.5}, "seed must be an int"),
    ({"linear_tokens": 0}, "linear_tokens must be a positive int"),
    ({"linear_tokens": 2**30}, r"linear_tokens \* num_slots must be < 2\^31"),
    ({"dirichlet_alpha": 0.0}, "dirichlet_alpha must be a positive finite number"),
    ({"dirichlet_alpha": float("inf")}, "dirichlet_alpha must be a positive finite number"),
  ],
)
def test_bad_flags_raise(flags, match):
  q, k, v = _inputs(t=4)
  with pytest.raises(ValueError, match=match):
    ovq_attention(q, k, v, beta=1.0, chunk_size=4, num_slots=6, **flags)
  with pytest.raises(ValueError, match=match):
    ovq_chunk(q, k, v, beta=1.0, chunk_size=4, num_slots=6, **flags)
