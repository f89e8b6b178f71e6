"""Host-side entry points of the ROSA matcher: validated numpy in, numpy out.

`match` answers whole sequences (training and cache-free forwards); `RosaStreams` keeps one
automaton per (row, route) alive between calls so that decoding extends it by the new symbols
only (no rebuild). Both call the compiled routines of `reasoning_jax.ops.rosa.sam`; the JAX op
(`reasoning_jax.ops.rosa.branch`) reaches them through host callbacks.
"""

from __future__ import annotations

import collections
import itertools
import threading

import numba
import numpy as np

from reasoning_jax.ops.rosa import sam
from reasoning_jax.ops.rosa.config import RosaConfig


def _check_symbols(x, argument: str, alphabet: int, ndim: int = 3) -> np.ndarray:
  x = np.asarray(x)
  if not np.issubdtype(x.dtype, np.integer):
    raise TypeError(f"{argument} must be an integer array of symbols, got dtype {x.dtype}")
  if x.ndim != ndim:
    raise ValueError(f"{argument} must be [B, T, R] symbols, got shape {x.shape}")
  if x.size:
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= alphabet:
      raise ValueError(
        f"{argument} has symbols in [{lo}, {hi}]; the alphabet of {alphabet} symbols "
        f"(bits_per_route={alphabet.bit_length() - 1}) needs [0, {alphabet})"
      )
  return x


def _set_threads(config: RosaConfig) -> None:
  if config.num_threads is not None:
    numba.set_num_threads(min(config.num_threads, numba.config.NUMBA_NUM_THREADS))


def _routes_first(x: np.ndarray) -> np.ndarray:
  """[B, T, R] -> [B * R, T] int32, contiguous (one route per row)."""
  b, t, r = x.shape
  return np.ascontiguousarray(np.transpose(x, (0, 2, 1)).reshape(b * r, t), dtype=np.int32)


def match(
  q_symbols,
  k_symbols,
  *,
  config: RosaConfig,
  segment_ids=None,
  want_counterfactual: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
  """ROSA_match of every (row, route): tau `[B, T, R]` int32 in {-1} U [0, t].

  Args:
    q_symbols, k_symbols: `[B, T, R]` integer symbols in `[0, 2^bits_per_route)`.
    config: the matcher flags.
    segment_ids: optional `[B, T]` ints; every route restarts where the id changes.
    want_counterfactual: also return the destinations with bit j of each query symbol forced
      to beta, `[B, T, R, M, 2]` int32 (section 2.3; all positions of a q-run share them).
  """
  alphabet = config.alphabet
  q = _check_symbols(q_symbols, "q_symbols", alphabet)
  k = _check_symbols(k_symbols, "k_symbols", alphabet)
  if q.shape != k.shape:
    raise ValueError(f"q_symbols {q.shape} and k_symbols {k.shape} must have the same shape")
  b, t, r = q.shape
  if segment_ids is None:
    seg = np.zeros((b * r, t), np.int32)
  else:
    seg = np.asarray(segment_ids)
    if seg.shape != (b, t):
      raise ValueError(f"segment_ids must be [B, T] = {(b, t)}, got {seg.shape}")
    seg = np.ascontiguousarray(np.repeat(seg.astype(np.int32), r, axis=0))
  _set_threads(config)
  dest, cf = sam.match_routes(
    _routes_first(q),
    _routes_first(k),
    seg,
    alphabet,
    config.bits_per_route,
    config.matcher_flags(),
    int(want_counterfactual),
  )
  dest = dest.reshape(b, r, t).transpose(0, 2, 1)
  if not want_counterfactual:
    return np.ascontiguousarray(dest), None
  cf = cf.reshape(b, r, t, config.bits_per_route, 2).transpose(0, 2, 1, 3, 4)
  return np.ascontiguousarray(dest), np.ascontiguousarray(cf)


def self_match(x, *, bits_per_route: int = 4, max_link_walk: int | None = None) -> np.ndarray:
  """The self-matching variant (q = k = x, section 0.3) of `[B, T, R]` symbols."""
  alphabet = 1 << bits_per_route
  x = _check_symbols(x, "x", alphabet)
  b, t, r = x.shape
  walk = -1 if max_link_walk is None else int(max_link_walk)
  dest = sam.self_match_routes(_routes_first(x), alphabet, walk)
  return np.ascontiguousarray(dest.reshape(b, r, t).transpose(0, 2, 1))


class RosaStreams:
  """Persistent automata for `batch x routes` streams of at most `capacity` symbols each.

  `step` continues row b from time `starts[b]` with `counts[b]` new symbols; a row whose
  start is 0 is emptied first (a new sequence). A row can only be continued where it stopped:
  the automaton cannot be rolled back.
  """

  def __init__(self, batch: int, routes: int, capacity: int, config: RosaConfig):
    if batch < 1 or routes < 1 or capacity < 1:
      raise ValueError(
        f"RosaStreams needs batch, routes, capacity >= 1, got {batch}, {routes}, {capacity}"
      )
    self.batch, self.routes, self.capacity, self.config = batch, routes, capacity, config
    n, a, states = batch * routes, config.alphabet, sam.state_capacity(capacity)
    # np.empty: pages are committed only as states are created (reset writes the root only),
    # so a generous capacity costs address space, not memory.
    self.nxt = np.empty((n, states * a), np.int32)
    self.link = np.empty((n, states), np.int32)
    self.length = np.empty((n, states), np.int32)
    self.maxend = np.empty((n, states), np.int32)
    self.firstpos = np.empty((n, states), np.int32)
    self.unit_start = np.empty((n, capacity), np.int32)
    self.sc = np.zeros((n, sam.NUM_SCALARS), np.int64)
    self.cf_cur = np.full((n, 2 * config.bits_per_route), -1, np.int32)
    self.time = np.zeros(batch, np.int64)
    sam.reset_streams(
      np.arange(n, dtype=np.int64), self.nxt, self.link, self.length, self.maxend,
      self.firstpos, self.sc, a,
    )  # fmt: skip

  @property
  def states(self) -> tuple[np.ndarray, ...]:
    """Every route's arrays, stacked (the layout `sam.run_streams` takes)."""
    return (
      self.nxt, self.link, self.length, self.maxend, self.firstpos, self.unit_start, self.sc,
      self.cf_cur,
    )  # fmt: skip

  @property
  def nbytes(self) -> int:
    arrays = (self.nxt, self.link, self.length, self.maxend, self.firstpos, self.unit_start)
    return int(sum(x.nbytes for x in arrays))

  def step(self, q_symbols, k_symbols, starts, counts=None, *, first_row=None) -> np.ndarray:
    """Feeds `[B, T, R]` symbols (the first counts[b] of row b); returns tau `[B, T, R]`.

    `first_row`: None (B is every row of the streams) or the index of the first of B
    consecutive rows (one device shard's; calls on disjoint rows may run concurrently)."""
    cfg = self.config
    q = _check_symbols(q_symbols, "q_symbols", cfg.alphabet)
    k = _check_symbols(k_symbols, "k_symbols", cfg.alphabet)
    if q.shape != k.shape or q.shape[2] != self.routes:
      raise ValueError(
        f"q_symbols {q.shape} and k_symbols {k.shape} must both be "
        f"[B={self.batch}, T, R={self.routes}]"
      )
    if first_row is None:
      if q.shape[0] != self.batch:
        raise ValueError(
          f"q_symbols {q.shape} and k_symbols {k.shape} must both be "
          f"[B={self.batch}, T, R={self.routes}] (or name their rows with first_row=)"
        )
      first_row = 0
    first_row = int(first_row)
    if first_row < 0 or first_row + q.shape[0] > self.batch:
      raise ValueError(
        f"first_row={first_row} with {q.shape[0]} rows of q_symbols is outside the "
        f"{self.batch} rows of the streams"
      )
    b, t, r = q.shape
    time = self.time[first_row : first_row + b]
    starts = np.asarray(starts, np.int64).reshape(b)
    counts = np.full(b, t, np.int64) if counts is None else np.asarray(counts, np.int64)
    if counts.shape != (b,) or counts.min(initial=0) < 0 or counts.max(initial=0) > t:
      raise ValueError(f"counts must be [B={b}] ints in [0, {t}], got {counts}")
    fresh = starts == 0
    stale = (~fresh) & (starts != time)
    if stale.any():
      row = int(np.argmax(stale))
      raise ValueError(
        f"ROSA stream row {first_row + row} holds {int(time[row])} symbols but the call "
        f"continues it from position {int(starts[row])}: a ROSA cache only grows in order "
        "(no rollback)"
      )
    if (starts + counts > self.capacity).any():
      row = int(np.argmax(starts + counts > self.capacity))
      raise ValueError(
        f"ROSA stream row {first_row + row} would hold {int(starts[row] + counts[row])} "
        f"symbols, beyond the capacity max_length={self.capacity} given to init_cache"
      )
    rows = first_row + np.arange(b)
    route_rows = (rows[:, None] * r + np.arange(r)[None, :]).astype(np.int64)
    if fresh.any():
      sam.reset_streams(
        route_rows[fresh].reshape(-1), self.nxt, self.link, self.length, self.maxend,
        self.firstpos, self.sc, cfg.alphabet,
      )  # fmt: skip
    _set_threads(cfg)
    dest = sam.run_streams(
      route_rows.reshape(-1),
      _routes_first(q),
      _routes_first(k),
      np.zeros((b * r, t), np.int32),
      np.repeat(starts, r),
      self.states,
      np.repeat(counts, r),
      cfg.alphabet,
      cfg.bits_per_route,
      cfg.matcher_flags(),
    )
    self.time[first_row : first_row + b] = starts + counts
    return np.ascontiguousarray(dest.reshape(b, r, t).transpose(0, 2, 1))


class StreamStore:
  """Live `RosaStreams` by integer handle (what a generation cache carries on device).

  Bounded: opening more than `max_live` evicts the least recently used, whose handle then
  raises on use."""

  def __init__(self, max_live: int = 64):
    self.max_live = max_live
    self._streams: collections.OrderedDict[int, RosaStreams] = collections.OrderedDict()
    self._ids = itertools.count(1)
    self._lock = threading.Lock()

  def open(self, batch: int, routes: int, capacity: int, config: RosaConfig) -> int:
    streams = RosaStreams(batch, routes, capacity, config)
    with self._lock:
      handle = next(self._ids)
      self._streams[handle] = streams
      while len(self._streams) > self.max_live:
        self._streams.popitem(last=False)
    return handle

  def get(self, handle: int) -> RosaStreams:
    with self._lock:
      if handle not in self._streams:
        raise KeyError(
          f"ROSA stream handle {handle} is not live (closed, or evicted after "
          f"{self.max_live} newer caches); build a new cache with init_cache"
        )
      self._streams.move_to_end(handle)
      return self._streams[handle]

  def close(self, handle: int) -> None:
    with self._lock:
      self._streams.pop(handle, None)


STREAMS = StreamStore()
