"""Plain-Python references for the suffix automaton and the ROSA matcher, and brute forces.

Readable, slow and independent of `reasoning_jax.ops.rosa.sam` (the compiled version), which
the tests compare against these symbol for symbol. Section numbers refer to
../shared/methods/memory_attention.md (0.3: the automaton; 2.2: ROSA_match).

  >>> sam = SuffixAutomaton()
  >>> for c in "abcbc": sam.extend(c)
  >>> sam.distinct_substrings()
  12
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


class SuffixAutomaton:
  """Online suffix automaton with `firstpos` (earliest end) and `maxend` (rightmost end).

  States are endpos-equivalence classes; state v holds the strings of lengths
  (length[link[v]], length[v]]. Root = 0 (length 0, link -1). Positions count symbols from 0.
  """

  def __init__(self, max_link_walk: int | None = None):
    self.next: list[dict[Hashable, int]] = [{}]
    self.link = [-1]
    self.length = [0]
    self.firstpos = [-1]
    self.maxend = [-1]
    self.last = 0
    self.size = 0  # Symbols added.
    self.max_link_walk = max_link_walk
    self.walk_steps = 0  # Suffix-link steps taken by the maxend walks so far.

  def _state(self, length: int, *, like: int | None = None) -> int:
    self.next.append(dict(self.next[like]) if like is not None else {})
    self.link.append(self.link[like] if like is not None else -1)
    self.length.append(length)
    self.firstpos.append(self.firstpos[like] if like is not None else length - 1)
    self.maxend.append(self.maxend[like] if like is not None else -1)
    return len(self.length) - 1

  def extend_structure(self, c: Hashable) -> int:
    """Appends c (steps 1-4 of section 0.3) without touching maxend; returns the new state."""
    cur = self._state(self.length[self.last] + 1)
    p = self.last
    while p != -1 and c not in self.next[p]:
      self.next[p][c] = cur
      p = self.link[p]
    if p == -1:
      self.link[cur] = 0
    else:
      q = self.next[p][c]
      if self.length[p] + 1 == self.length[q]:
        self.link[cur] = q
      else:
        clone = self._state(self.length[p] + 1, like=q)
        while p != -1 and self.next[p].get(c) == q:
          self.next[p][c] = clone
          p = self.link[p]
        self.link[q] = clone
        self.link[cur] = clone
    self.last = cur
    return cur

  def raise_maxend(self, cur: int, pos: int) -> None:
    """maxend = pos along the suffix-link path of cur (the states whose endpos gains pos)."""
    v, steps = cur, 0
    while v > 0 and self.maxend[v] != pos:
      if self.max_link_walk is not None and steps >= self.max_link_walk:
        break
      self.maxend[v] = pos
      v = self.link[v]
      steps += 1
    self.walk_steps += steps

  def extend(self, c: Hashable) -> int:
    cur = self.extend_structure(c)
    self.raise_maxend(cur, self.size)
    self.size += 1
    return cur

  @property
  def num_states(self) -> int:
    return len(self.length)

  def distinct_substrings(self) -> int:
    """Number of distinct non-empty substrings: sum over v != root of len[v] - len[link[v]]."""
    return sum(self.length[v] - self.length[self.link[v]] for v in range(1, self.num_states))

  def state_of(self, pattern: Sequence[Hashable]) -> int:
    """The state of `pattern` (-1 if it is not a substring)."""
    v = 0
    for c in pattern:
      v = self.next[v].get(c, -1)
      if v == -1:
        return -1
    return v

  def transition(self, s: int, match_len: int, c: Hashable) -> tuple[int, int]:
    """Streaming step from (s, l) by c: (state, length), state -1 if c never occurred."""
    p = s
    while p != -1 and c not in self.next[p]:
      p = self.link[p]
    if p == -1:
      return -1, 0
    return self.next[p][c], (match_len if p == s else self.length[p]) + 1

  def relocate(self, s: int, match_len: int) -> int:
    """The class that holds the current match of length l after the automaton grew."""
    while s != 0 and self.length[self.link[s]] >= match_len:
      s = self.link[s]
    return s


# -- Brute forces ---------------------------------------------------------------------------


def rightmost_end(text: Sequence, pattern: Sequence) -> int:
  """Rightmost end index of `pattern` in `text` (-1 if absent); O(n m)."""
  m = len(pattern)
  for end in range(len(text) - 1, m - 2, -1):
    if list(text[end - m + 1 : end + 1]) == list(pattern):
      return end
  return -1


def longest_suffix_match(query: Sequence, text: Sequence) -> tuple[int, int]:
  """(length, rightmost end in text) of the longest suffix of `query` that occurs in `text`."""
  for length in range(min(len(query), len(text)), 0, -1):
    end = rightmost_end(text, query[len(query) - length :])
    if end >= 0:
      return length, end
  return 0, -1


def brute_force_rosa(q: Sequence, k: Sequence, *, rle_k: bool = False) -> list[int]:
  """ROSA_match by definition (section 2.2), O(T^3).

  Canonical: tau[t] = 1 + the rightmost end in k[0..t-1] of the longest suffix of q[0..t]
  occurring there, -1 if none. `rle_k`: the text is the run symbols of the runs of k started
  <= t; tau = start time of the run after the match, -1 if that run has not started.
  """
  out = []
  for t in range(len(q)):
    if rle_k:
      starts = [i for i in range(t + 1) if i == 0 or k[i] != k[i - 1]]
      text = [k[i] for i in starts]
      length, end = longest_suffix_match(list(q[: t + 1]), text)
      out.append(starts[end + 1] if length and end + 1 < len(starts) else -1)
    else:
      length, end = longest_suffix_match(list(q[: t + 1]), list(k[:t]))
      out.append(end + 1 if length else -1)
  return out


# -- The matcher, step by step --------------------------------------------------------------


def reference_route(
  q: Sequence[int],
  k: Sequence[int],
  *,
  bits: int,
  rle_k: bool = False,
  q_runs: bool = False,
  unseen_keeps_state: bool = False,
  track_length: bool = True,
  max_link_walk: int | None = None,
  segment_ids: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """One route: (tau [T], counterfactual destinations [T, bits, 2]) with the flags of
  `RosaMatchConfig` (see `sam.run_route` for the order of operations it mirrors)."""
  t_len = len(q)
  seg = [0] * t_len if segment_ids is None else list(segment_ids)
  dest = np.full(t_len, -1, np.int64)
  cf = np.full((t_len, bits, 2), -1, np.int64)
  sam = None
  for t in range(t_len):
    if sam is None or seg[t] != seg[t - 1]:
      sam, starts = SuffixAutomaton(max_link_walk), []
      s, ell, last_q, last_k, advanced = 0, 0, None, None, False
      cf_run = [[-1, -1] for _ in range(bits)]

    def add(symbol, time):
      sam.extend(symbol)
      starts.append(time)

    def destination(state):
      if state == -1 or sam.maxend[state] < 0:
        return -1
      unit = sam.maxend[state] + 1
      if unit < len(starts):
        return starts[unit]
      return t if (not rle_k and unit == len(starts)) else -1

    if rle_k and k[t] != last_k:  # A new run of keys starts at t.
      add(k[t], t)
    last_k = k[t]
    if track_length:
      s = sam.relocate(s, ell)
    if not q_runs or q[t] != last_q:
      advanced = False
      for j in range(bits):
        for beta in (0, 1):
          flipped = (q[t] & ~(1 << j)) | (beta << j)
          cf_run[j][beta] = destination(sam.transition(s, ell, flipped)[0])
    last_q = q[t]
    cf[t] = cf_run
    ns, nl = sam.transition(s, ell, q[t])
    dest[t] = destination(ns)
    if ns != -1:
      if not advanced:
        s, ell = ns, nl
        advanced = q_runs
    elif not unseen_keeps_state:
      s, ell = 0, 0
    if not rle_k:
      add(k[t], t)
  return dest, cf


def self_match_reference(x: Sequence) -> list[int]:
  """Self-matching variant: tau[t] = 1 + previous rightmost end of the longest suffix of
  x[0..t] that also ends before t (-1 if none)."""
  sam, out = SuffixAutomaton(), []
  for t, c in enumerate(x):
    cur = sam.extend_structure(c)
    prev = sam.link[cur]
    out.append(sam.maxend[prev] + 1 if prev > 0 and sam.maxend[prev] >= 0 else -1)
    sam.raise_maxend(cur, t)
    sam.size += 1
  return out
