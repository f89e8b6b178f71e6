"""The suffix automaton and the ROSA matcher: hand checks of memory_attention.md 0.3 and 2.2,
brute forces, the compiled (numba) code against the plain-Python reference, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from reasoning_jax.ops.rosa import host, reference, sam
from reasoning_jax.ops.rosa.config import RosaConfig

FLAG_SETS = {
  "canonical": {},
  "rle_k": dict(rle_k=True),
  "q_runs": dict(q_runs=True),
  "unseen_keep": dict(unseen="keep"),
  "no_length": dict(track_length=False),
  "released": dict(rle_k=True, q_runs=True, unseen="keep", track_length=False),
}


def _automaton(text):
  a = reference.SuffixAutomaton()
  for c in text:
    a.extend(c)
  return a


@pytest.mark.parametrize(
  "text, distinct, states", [("abcbc", 12, None), ("ababa", 9, None), ("aaaa", 4, 5)]
)
def test_distinct_substrings_by_hand(text, distinct, states):
  a = _automaton(text)
  assert a.distinct_substrings() == distinct
  assert a.num_states <= max(2 * len(text) - 1, 2)
  if states is not None:
    assert a.num_states == states
  # The compiled automaton has the same structure (same state count, same class lengths).
  codes = np.array([ord(c) - ord("a") for c in text], np.int32)
  nxt, link, length, maxend, firstpos, _ = sam.build_automaton(codes, 4, -1)
  assert len(length) == a.num_states
  assert int(np.sum(length[1:] - length[link[1:]])) == distinct


@pytest.mark.parametrize("alphabet", [2, 4, 16])
def test_state_bound_maxend_and_firstpos_against_brute_force(alphabet):
  rng = np.random.default_rng(alphabet)
  for _ in range(6):
    n = int(rng.integers(1, 120))
    x = rng.integers(0, alphabet, n).astype(np.int32)
    a = _automaton(list(x))
    assert a.num_states <= max(2 * n - 1, 2)
    nxt, link, length, maxend, firstpos, _ = sam.build_automaton(x, alphabet, -1)
    np.testing.assert_array_equal(length, a.length)
    np.testing.assert_array_equal(link, a.link)
    np.testing.assert_array_equal(maxend[1:], a.maxend[1:])
    np.testing.assert_array_equal(firstpos[1:], a.firstpos[1:])
    for _ in range(20):  # Every substring: its state's maxend / firstpos are its last / first end.
      i = int(rng.integers(0, n))
      j = int(rng.integers(i, min(n, i + 6)))
      pattern = list(x[i : j + 1])
      v = a.state_of(pattern)
      ends = [
        e for e in range(len(pattern) - 1, n) if list(x[e - len(pattern) + 1 : e + 1]) == pattern
      ]
      assert a.maxend[v] == max(ends) == maxend[v]
      assert a.firstpos[v] == min(ends) == firstpos[v]


@pytest.mark.parametrize("alphabet", [2, 4, 16])
def test_streaming_longest_match_static_and_interleaved(alphabet):
  """Streaming (s, l) with relocation == O(n^3) brute force, both when the text is complete
  before the query and when text and query grow together."""
  rng = np.random.default_rng(100 + alphabet)
  for _ in range(8):
    n = int(rng.integers(1, 80))
    x = list(rng.integers(0, alphabet, n))
    y = list(rng.integers(0, alphabet, n))
    static = _automaton(x)
    online = reference.SuffixAutomaton()
    s1 = l1 = s2 = l2 = 0
    for i in range(n):
      online.extend(x[i])  # Text grows by one symbol before each query symbol.
      for sa, (s, ell), text in ((static, (s1, l1), x), (online, (s2, l2), x[: i + 1])):
        s = sa.relocate(s, ell)
        ns, nl = sa.transition(s, ell, y[i])
        s, ell = (0, 0) if ns == -1 else (ns, nl)
        want_len, want_end = reference.longest_suffix_match(y[: i + 1], text)
        assert ell == want_len
        if ell:
          assert sa.maxend[s] == want_end
        if sa is static:
          s1, l1 = s, ell
        else:
          s2, l2 = s, ell


def test_canonical_hand_example():
  """Section 2.2: Q = K = V = "a b c a b" -> tau = -1, -1, -1, 1, 2 (an induction head)."""
  text = [0, 1, 2, 0, 1]
  assert reference.brute_force_rosa(text, text) == [-1, -1, -1, 1, 2]
  dest, _ = host.match(
    np.array(text)[None, :, None],
    np.array(text)[None, :, None],
    config=RosaConfig(bits_per_route=2),
  )
  assert dest[0, :, 0].tolist() == [-1, -1, -1, 1, 2]
  assert reference.self_match_reference(text) == [-1, -1, -1, 1, 2]


@pytest.mark.parametrize("rle_k", [False, True])
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_matcher_equals_brute_force(rle_k, bits):
  """Test (a): canonical matcher (and its run-length variant) vs ROSA_match by definition."""
  rng = np.random.default_rng(bits * 2 + rle_k)
  config = RosaConfig(bits_per_route=bits, rle_k=rle_k)
  for _ in range(12):
    t = int(rng.integers(1, 128))
    q = rng.integers(0, 1 << bits, (1, t, 3))
    k = rng.integers(0, 1 << bits, (1, t, 3))
    dest, _ = host.match(q, k, config=config)
    for r in range(3):
      want = reference.brute_force_rosa(list(q[0, :, r]), list(k[0, :, r]), rle_k=rle_k)
      assert dest[0, :, r].tolist() == want
    assert (dest <= np.arange(t)[None, :, None]).all()  # Causal: tau[t] <= t.


@pytest.mark.parametrize("flags", list(FLAG_SETS), ids=list(FLAG_SETS))
def test_compiled_matcher_equals_python_reference(flags):
  """Every flag combination, with counterfactual tables and packed segments."""
  rng = np.random.default_rng(len(flags))
  for trial in range(24):
    bits = (1, 2, 4)[trial % 3]
    t = int(rng.integers(1, 70))
    q = rng.integers(0, 1 << bits, (2, t, 2))
    k = rng.integers(0, 1 << bits, (2, t, 2))
    if trial % 4 == 0:  # Low-entropy streams: long runs exercise q-runs and RLE.
      q, k = q // (1 << bits) * 0 + (q > 0), k // (1 << bits) * 0 + (k > 0)
    seg = np.sort(rng.integers(0, 3, (2, t)), axis=1)
    config = RosaConfig(bits_per_route=bits, **FLAG_SETS[flags])
    dest, cf = host.match(q, k, config=config, segment_ids=seg, want_counterfactual=True)
    for b in range(2):
      for r in range(2):
        want_dest, want_cf = reference.reference_route(
          list(q[b, :, r]),
          list(k[b, :, r]),
          bits=bits,
          rle_k=config.rle_k,
          q_runs=config.q_runs,
          unseen_keeps_state=config.unseen == "keep",
          track_length=config.track_length,
          segment_ids=list(seg[b]),
        )
        np.testing.assert_array_equal(dest[b, :, r], want_dest)
        np.testing.assert_array_equal(cf[b, :, r], want_cf)
    # Without counterfactuals the answers are the same.
    np.testing.assert_array_equal(host.match(q, k, config=config, segment_ids=seg)[0], dest)


def test_segments_restart_the_automaton():
  rng = np.random.default_rng(7)
  a = rng.integers(0, 16, (1, 30, 2))
  b = rng.integers(0, 16, (1, 25, 2))
  packed = np.concatenate([a, b], axis=1)
  seg = np.array([[0] * 30 + [1] * 25])
  dest, _ = host.match(packed, packed, config=RosaConfig(), segment_ids=seg)
  alone_b, _ = host.match(b, b, config=RosaConfig())
  np.testing.assert_array_equal(dest[:, 30:], np.where(alone_b >= 0, alone_b + 30, -1))


def test_counterfactual_entry_is_a_rerun_with_the_flipped_bit():
  """Test (d): tau^(j, beta)[t] == tau[t] of the matcher re-run with bit j of q[t] forced."""
  rng = np.random.default_rng(3)
  for flags in ("canonical", "rle_k"):
    config = RosaConfig(bits_per_route=4, **FLAG_SETS[flags])
    q = rng.integers(0, 4, (1, 40, 1))  # Small alphabet in use: many matches.
    k = rng.integers(0, 4, (1, 40, 1))
    _, cf = host.match(q, k, config=config, want_counterfactual=True)
    for t in range(40):
      for j in range(4):
        for beta in (0, 1):
          flipped = q.copy()
          flipped[0, t, 0] = (q[0, t, 0] & ~(1 << j)) | (beta << j)
          rerun, _ = host.match(flipped, k, config=config)
          assert cf[0, t, 0, j, beta] == rerun[0, t, 0]


def test_self_match_equals_canonical_with_q_equal_k():
  rng = np.random.default_rng(5)
  for bits in (1, 2, 4):
    x = rng.integers(0, 1 << bits, (2, 90, 3))
    want, _ = host.match(x, x, config=RosaConfig(bits_per_route=bits))
    np.testing.assert_array_equal(host.self_match(x, bits_per_route=bits), want)
    assert reference.self_match_reference(list(x[0, :, 0])) == want[0, :, 0].tolist()


def test_exact_induction_on_token_ids():
  """Test (e): Q = K = V = [r1..rn, r1..rn] with distinct r's -> r_{i+1} at every position of
  the second copy (zero parameters)."""
  n = 100
  r = np.random.default_rng(0).permutation(256)[:n]
  x = np.concatenate([r, r])[None, :, None]
  dest, _ = host.match(x, x, config=RosaConfig(bits_per_route=8))
  tau = dest[0, :, 0]
  assert (tau[:n] == -1).all()
  predicted = x[0, tau[n : 2 * n - 1], 0]
  np.testing.assert_array_equal(predicted, r[1:])


def test_periodic_worst_case_and_bounded_walk():
  """On "aaaa..." the maxend walk visits the whole suffix-link path: n(n+1)/2 steps; a bound
  caps it, and the answers stay valid occurrences (just not the rightmost)."""
  n = 400
  x = np.zeros(n, np.int32)
  assert sam.build_automaton(x, 2, -1)[-1] == n * (n + 1) // 2
  assert sam.build_automaton(x, 2, 8)[-1] <= 8 * n
  q = np.random.default_rng(0).integers(0, 2, (1, n, 1))
  k = np.tile([0, 1], n // 2)[None, :, None]
  exact, _ = host.match(q, k, config=RosaConfig(bits_per_route=1))
  capped, _ = host.match(q, k, config=RosaConfig(bits_per_route=1, max_link_walk=4))
  np.testing.assert_array_equal(capped >= 0, exact >= 0)
  for t in np.flatnonzero(capped[0, :, 0] >= 0):  # A capped answer still follows a true match.
    tau = capped[0, t, 0]
    assert q[0, t, 0] == k[0, tau - 1, 0] and tau <= t


def test_streams_continue_without_rebuild_and_equal_one_pass():
  rng = np.random.default_rng(11)
  for flags in FLAG_SETS:
    config = RosaConfig(bits_per_route=2, **FLAG_SETS[flags])
    q = rng.integers(0, 4, (2, 50, 3))
    k = rng.integers(0, 4, (2, 50, 3))
    want, _ = host.match(q, k, config=config)
    streams = host.RosaStreams(2, 3, 64, config)
    got = [streams.step(q[:, :20], k[:, :20], starts=[0, 0])]
    for t in range(20, 50, 3):
      got.append(streams.step(q[:, t : t + 3], k[:, t : t + 3], starts=[t, t])[:, : min(3, 50 - t)])
    np.testing.assert_array_equal(np.concatenate(got, axis=1)[:, :50], want)


def test_streams_ragged_counts_and_restart():
  rng = np.random.default_rng(12)
  config = RosaConfig(bits_per_route=2)
  q = rng.integers(0, 4, (2, 30, 1))
  streams = host.RosaStreams(2, 1, 40, config)
  first = streams.step(q[:, :10], q[:, :10], starts=[0, 0], counts=[10, 6])
  assert (first[1, 6:] == -1).all()
  nxt = streams.step(q[:, 10:12], q[:, 10:12], starts=[10, 6])
  row1 = np.concatenate([q[1, :6], q[1, 10:12]])[None]
  want1, _ = host.match(row1, row1, config=config)
  np.testing.assert_array_equal(nxt[1], want1[0, 6:])
  again = streams.step(q[:, :10], q[:, :10], starts=[0, 0])  # A new sequence resets.
  np.testing.assert_array_equal(again, host.match(q[:, :10], q[:, :10], config=config)[0])


def test_bad_input_names_the_argument():
  config = RosaConfig(bits_per_route=2)
  good = np.zeros((1, 4, 2), np.int32)
  with pytest.raises(ValueError, match=r"q_symbols has symbols in \[4, 4\].*needs \[0, 4\)"):
    host.match(good + 4, good, config=config)
  with pytest.raises(ValueError, match="k_symbols.*\\[B, T, R\\]"):
    host.match(good, good[0], config=config)
  with pytest.raises(TypeError, match="q_symbols must be an integer"):
    host.match(good.astype(np.float32), good, config=config)
  with pytest.raises(ValueError, match="segment_ids must be"):
    host.match(good, good, config=config, segment_ids=np.zeros((2, 4)))
  streams = host.RosaStreams(1, 2, 6, config)
  streams.step(good, good, starts=[0])
  with pytest.raises(ValueError, match="beyond the capacity max_length=6"):
    streams.step(good, good, starts=[4])
  with pytest.raises(ValueError, match="holds 4 symbols but the call continues it from position 2"):
    streams.step(good[:, :1], good[:, :1], starts=[2])
  with pytest.raises(ValueError, match="bits_per_route"):
    RosaConfig(bits_per_route=9)
  with pytest.raises(ValueError, match="unseen"):
    RosaConfig(unseen="skip")
  with pytest.raises(KeyError, match="not live"):
    host.STREAMS.get(-5)
