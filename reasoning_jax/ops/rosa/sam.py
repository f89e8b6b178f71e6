"""The compiled suffix automaton and the ROSA matcher (numba), batched over routes.

"ROSA-Tuning: Enhancing Long-Context Modeling via Suffix Matching" (Yunao Zheng, Xiaojie Wang,
Lei Ren, Wei Chen; arXiv:2602.02499), built on BlinkDL's ROSA ("RWKV Online Suffix Automaton").
The plain-Python reference of every routine here is `reasoning_jax.ops.rosa.reference`; the two
are compared symbol for symbol in tests/ops/test_rosa_sam.py.

Why numba and not a C extension: it needs no compiler at install time (wheels for every Python
we support), `prange` gives the thread pool over (batch x routes) the released code also uses,
and `cache=True` keeps the compiled code on disk, so only the first process pays the compile.

One route is one independent stream: a query stream q and a key stream k of symbols in
`[0, alphabet)`. Its state lives in flat arrays so that a route can be processed in pieces
(training processes [0, T) at once; decoding extends it one token at a time, never rebuilding):

  nxt      int32 [cap * A]   transitions (-1 = none), state s at nxt[s*A : (s+1)*A]
  link, length, maxend, firstpos   int32 [cap]
  unit_start  int32 [T_max]  time at which each automaton symbol ("unit") starts: a key
                             symbol (canonical) or a run of identical key symbols (`rle_k`)
  sc       int64 [NUM_SCALARS]  size, last, matcher (s, l), units, last k/q symbol, ...
  cf_cur   int32 [M * 2]     counterfactual destinations of the current q-run

Matching semantics (`ops/rosa/config.py` holds the flags, defaults = the canonical query):
at time t the answer tau[t] is the time right after the rightmost end of the longest suffix of
the query stream that occurs in the key text, or -1. Canonical: the key text is k[0..t-1] (k[t]
is added after the query), so tau[t] <= t. `rle_k`: the text is the run-length-collapsed key
stream of runs started <= t, tau is the start time of the run after the match, and a match
whose successor run does not exist yet answers -1.
"""

from __future__ import annotations

import numba
import numpy as np

# Indices into the per-route scalar array `sc`.
SIZE, LAST, MATCH_STATE, MATCH_LEN, UNITS, LAST_K, LAST_Q, ADVANCED, STEPS, LAST_SEG = range(10)
NUM_SCALARS = 10

_JIT = dict(cache=True, nogil=True)


@numba.njit(**_JIT)
def _new_state(nxt, link, length, maxend, firstpos, sc, size_len, alphabet):
  s = sc[SIZE]
  if (s + 1) * alphabet > nxt.shape[0] or s >= link.shape[0]:
    raise ValueError("suffix automaton capacity exceeded")
  sc[SIZE] = s + 1
  length[s] = size_len
  link[s] = -1
  maxend[s] = -1
  firstpos[s] = -1
  for j in range(alphabet):
    nxt[s * alphabet + j] = -1
  return s


@numba.njit(**_JIT)
def reset(nxt, link, length, maxend, firstpos, sc, alphabet):
  """Empties the automaton and the matcher of one route (the time counter keeps counting)."""
  sc[SIZE] = 0
  _new_state(nxt, link, length, maxend, firstpos, sc, 0, alphabet)
  sc[LAST] = 0
  sc[MATCH_STATE] = 0
  sc[MATCH_LEN] = 0
  sc[UNITS] = 0
  sc[LAST_K] = -1
  sc[LAST_Q] = -1
  sc[ADVANCED] = 0


@numba.njit(**_JIT)
def _extend(nxt, link, length, maxend, firstpos, sc, x, alphabet):
  """Online extension by symbol x (section 0.3 steps 1-4); returns the new state `cur`.

  `maxend` is left to `_raise_maxend` so that the self-matching variant can read the previous
  rightmost end of `link[cur]` first."""
  last = sc[LAST]
  cur = _new_state(nxt, link, length, maxend, firstpos, sc, length[last] + 1, alphabet)
  firstpos[cur] = length[cur] - 1
  p = last
  while p != -1 and nxt[p * alphabet + x] == -1:
    nxt[p * alphabet + x] = cur
    p = link[p]
  if p == -1:
    link[cur] = 0
  else:
    q = nxt[p * alphabet + x]
    if length[p] + 1 == length[q]:
      link[cur] = q
    else:
      clone = _new_state(nxt, link, length, maxend, firstpos, sc, length[p] + 1, alphabet)
      for j in range(alphabet):
        nxt[clone * alphabet + j] = nxt[q * alphabet + j]
      link[clone] = link[q]
      maxend[clone] = maxend[q]
      firstpos[clone] = firstpos[q]
      while p != -1 and nxt[p * alphabet + x] == q:
        nxt[p * alphabet + x] = clone
        p = link[p]
      link[q] = clone
      link[cur] = clone
  sc[LAST] = cur
  return cur


@numba.njit(**_JIT)
def _raise_maxend(link, maxend, cur, pos, max_link_walk):
  """The states whose endpos gains `pos` are the suffix-link path of `cur`: set their maxend.

  Cost = depth of that path: O(log n) on random text, O(n) on periodic text. With
  `max_link_walk >= 0` the walk stops after that many states; the states above keep an older
  (still valid, no longer rightmost) end. Returns the number of states visited."""
  v = cur
  steps = 0
  while v > 0 and maxend[v] != pos:
    if max_link_walk >= 0 and steps >= max_link_walk:
      break
    maxend[v] = pos
    v = link[v]
    steps += 1
  return steps


@numba.njit(**_JIT)
def _add_unit(nxt, link, length, maxend, firstpos, unit_start, sc, x, t, alphabet, max_link_walk):
  u = sc[UNITS]
  cur = _extend(nxt, link, length, maxend, firstpos, sc, x, alphabet)
  _raise_maxend(link, maxend, cur, u, max_link_walk)
  unit_start[u] = t
  sc[UNITS] = u + 1
  sc[LAST_K] = x


@numba.njit(**_JIT)
def _transition(nxt, link, length, s, match_len, a, alphabet):
  """Streaming step (section 0.3 steps 1-2): from (s, l), read a. Returns (state, length),
  state -1 when a never occurred in the text."""
  p = s
  while p != -1 and nxt[p * alphabet + a] == -1:
    p = link[p]
  if p == -1:
    return -1, 0
  base = match_len if p == s else length[p]
  return nxt[p * alphabet + a], base + 1


@numba.njit(**_JIT)
def _destination(maxend, unit_start, sc, state, t, rle_k):
  if state == -1:
    return -1
  end = maxend[state]
  if end < 0:
    return -1
  nxt_unit = end + 1
  if nxt_unit < sc[UNITS]:
    return unit_start[nxt_unit]
  if not rle_k and nxt_unit == sc[UNITS]:
    return t  # Canonical: k[t] is not in the text yet; its position is the successor.
  return -1


@numba.njit(**_JIT)
def run_route(q, k, seg, t0, state, dest_out, cf_out, alphabet, bits, flags, want_cf):
  """Processes times t0 .. t0 + len(q) - 1 of one route, writing tau to `dest_out[i]` and, with
  `want_cf`, the counterfactual destinations (bit j of the q-symbol forced to beta) to
  `cf_out[i, j, beta]`. `seg[i]` restarts the route where it changes (packed sequences).
  `state` is a route's arrays (`new_route`), `flags` = `RosaConfig.matcher_flags()`."""
  nxt, link, length, maxend, firstpos, unit_start, sc, cf_cur = state
  rle_k, q_runs, unseen_keeps_state, track_length, max_link_walk = flags
  n = q.shape[0]
  for i in range(n):
    t = t0 + i
    qc = q[i]
    if sc[STEPS] > 0 and seg[i] != sc[LAST_SEG]:
      reset(nxt, link, length, maxend, firstpos, sc, alphabet)
    sc[LAST_SEG] = seg[i]
    sc[STEPS] += 1
    if rle_k and (sc[UNITS] == 0 or k[i] != sc[LAST_K]):
      _add_unit(
        nxt, link, length, maxend, firstpos, unit_start, sc, k[i], t, alphabet, max_link_walk
      )
    s = sc[MATCH_STATE]
    ell = sc[MATCH_LEN]
    if track_length:  # Relocate: a clone may have split the class of the current match.
      while s != 0 and length[link[s]] >= ell:
        s = link[s]
      sc[MATCH_STATE] = s
    new_run = (not q_runs) or qc != sc[LAST_Q]  # LAST_Q is -1 after a reset.
    sc[LAST_Q] = qc
    if new_run:
      sc[ADVANCED] = 0
      if want_cf:
        for j in range(bits):
          for beta in range(2):
            a = (qc & ~(1 << j)) | (beta << j)
            cs, cl = _transition(nxt, link, length, s, ell, a, alphabet)
            cf_cur[j * 2 + beta] = _destination(maxend, unit_start, sc, cs, t, rle_k)
    if want_cf:
      for j in range(bits):
        cf_out[i, j, 0] = cf_cur[j * 2]
        cf_out[i, j, 1] = cf_cur[j * 2 + 1]
    ns, nl = _transition(nxt, link, length, s, ell, qc, alphabet)
    dest_out[i] = _destination(maxend, unit_start, sc, ns, t, rle_k)
    if ns != -1:
      if sc[ADVANCED] == 0:
        sc[MATCH_STATE] = ns
        sc[MATCH_LEN] = nl
        if q_runs:
          sc[ADVANCED] = 1
    elif not unseen_keeps_state:
      sc[MATCH_STATE] = 0
      sc[MATCH_LEN] = 0
    if not rle_k:
      _add_unit(
        nxt, link, length, maxend, firstpos, unit_start, sc, k[i], t, alphabet, max_link_walk
      )


def state_capacity(num_symbols: int) -> int:
  """States an automaton over `num_symbols` symbols can need (2n - 1, plus the root)."""
  return 2 * max(int(num_symbols), 1) + 1


@numba.njit(**_JIT)
def new_route(num_symbols, alphabet, bits):
  """The arrays of one empty route of capacity `num_symbols`:
  (nxt, link, length, maxend, firstpos, unit_start, sc, cf_cur)."""
  cap = 2 * max(num_symbols, 1) + 1
  nxt = np.empty(cap * alphabet, np.int32)
  link = np.empty(cap, np.int32)
  length = np.empty(cap, np.int32)
  maxend = np.empty(cap, np.int32)
  firstpos = np.empty(cap, np.int32)
  unit_start = np.empty(max(num_symbols, 1), np.int32)
  sc = np.zeros(NUM_SCALARS, np.int64)
  cf_cur = np.full(2 * bits, -1, np.int32)
  reset(nxt, link, length, maxend, firstpos, sc, alphabet)
  return nxt, link, length, maxend, firstpos, unit_start, sc, cf_cur


@numba.njit(parallel=True, **_JIT)
def match_routes(q, k, seg, alphabet, bits, flags, want_cf):
  """Every route from scratch: q, k, seg `[N, T]` int32 -> tau `[N, T]` and the counterfactual
  destinations `[N, T, bits, 2]` (`[N, 1, bits, 2]` of -1 without `want_cf`). Routes run in
  parallel over numba's thread pool (`numba.set_num_threads`)."""
  num, t_len = q.shape
  dest = np.empty((num, t_len), np.int32)
  cf = np.full((num, t_len if want_cf else 1, bits, 2), -1, np.int32)
  for r in numba.prange(num):
    state = new_route(t_len, alphabet, bits)
    run_route(q[r], k[r], seg[r], 0, state, dest[r], cf[r], alphabet, bits, flags, want_cf)
  return dest, cf


@numba.njit(parallel=True, **_JIT)
def self_match_routes(x, alphabet, max_link_walk):
  """The self-matching variant (query stream = key stream, the original Q = K = V ROSA):
  after extending by x[t], the longest suffix of x[0..t] that also ends earlier is the class
  link[cur]; tau[t] = its rightmost previous end + 1 (read before this step's maxend walk),
  -1 when that suffix is empty. Equal to `match_routes(x, x, ...)` with canonical flags."""
  num, t_len = x.shape
  dest = np.empty((num, t_len), np.int32)
  for r in numba.prange(num):
    nxt, link, length, maxend, firstpos, unit_start, sc, cf_cur = new_route(t_len, alphabet, 1)
    for t in range(t_len):
      cur = _extend(nxt, link, length, maxend, firstpos, sc, x[r, t], alphabet)
      prev = link[cur]
      dest[r, t] = maxend[prev] + 1 if prev > 0 and maxend[prev] >= 0 else -1
      _raise_maxend(link, maxend, cur, t, max_link_walk)
  return dest


@numba.njit(**_JIT)
def build_automaton(x, alphabet, max_link_walk):
  """One automaton over the whole of x `[n]` (the static construction, for tests and tools):
  returns (nxt [S, A], link, length, maxend, firstpos) trimmed to the S states used, and the
  total number of suffix-link steps the maxend walks took (the periodic worst-case cost)."""
  n = x.shape[0]
  nxt, link, length, maxend, firstpos, unit_start, sc, cf_cur = new_route(n, alphabet, 1)
  walk = 0
  for t in range(n):
    cur = _extend(nxt, link, length, maxend, firstpos, sc, x[t], alphabet)
    walk += _raise_maxend(link, maxend, cur, t, max_link_walk)
  size = sc[SIZE]
  return (
    nxt[: size * alphabet].reshape(size, alphabet),
    link[:size],
    length[:size],
    maxend[:size],
    firstpos[:size],
    walk,
  )


@numba.njit(parallel=True, **_JIT)
def run_streams(rows, q, k, seg, t0, states, counts, alphabet, bits, flags):
  """Continues persistent routes (decoding): route `rows[i]` consumes q[i, :counts[i]],
  k[i, :counts[i]] from time t0[i]; `states` holds every route's arrays stacked on a leading
  axis (`RosaStreams`). Returns tau `[len(rows), T]` (-1 past counts[i])."""
  nxt, link, length, maxend, firstpos, unit_start, sc, cf_cur = states
  num, t_len = q.shape
  dest = np.full((num, t_len), -1, np.int32)
  for i in numba.prange(num):
    r = rows[i]
    n = counts[i]
    state = (nxt[r], link[r], length[r], maxend[r], firstpos[r], unit_start[r], sc[r], cf_cur[r])
    cf_dummy = np.empty((1, bits, 2), np.int32)
    run_route(
      q[i, :n], k[i, :n], seg[i, :n], t0[i], state, dest[i, :n], cf_dummy, alphabet, bits, flags,
      False,
    )  # fmt: skip
  return dest


@numba.njit(parallel=True, **_JIT)
def reset_streams(rows, nxt, link, length, maxend, firstpos, sc, alphabet):
  """Empties the routes `rows` of a persistent batch (a new sequence starts there)."""
  for i in numba.prange(rows.shape[0]):
    r = rows[i]
    sc[r, STEPS] = 0
    sc[r, LAST_SEG] = 0
    reset(nxt[r], link[r], length[r], maxend[r], firstpos[r], sc[r], alphabet)
