"""Decoding with ROSA: automata that live on the host between calls, reached by handle.

A generation cache carries an int32 handle to a `host.RosaStreams` (one automaton per row and
route) and the value symbols `[B, S, R]` on device. Each prefill / decode call feeds the new
query and key symbols through `io_callback`; the host extends the automata by exactly those
symbols (no rebuild) and answers tau. The symbol history is the only ROSA state beyond the
attention window. Order is carried by data: layer l+1 and step s+1 consume what layer l and
step s produced.

The host state is per row, so the op refuses `vmap` (one handle cannot serve several batched
copies) with an error naming the cache.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

from reasoning_jax.ops.rosa import host
from reasoning_jax.ops.rosa.config import RosaConfig


def open_streams(batch: int, routes: int, capacity: int, config: RosaConfig) -> int:
  """A new set of `batch x routes` host automata of `capacity` symbols; returns its handle."""
  return host.STREAMS.open(batch, routes, capacity, config)


def _callback(handle, q, k, starts, counts):
  streams = host.STREAMS.get(int(handle))
  return streams.step(np.asarray(q), np.asarray(k), np.asarray(starts), np.asarray(counts))


@jax.custom_batching.custom_vmap
def _stream_step(handle, q_symbols, k_symbols, starts, counts):
  shape = jax.ShapeDtypeStruct(q_symbols.shape, jnp.int32)
  return io_callback(_callback, shape, handle, q_symbols, k_symbols, starts, counts, ordered=False)


@_stream_step.def_vmap
def _no_vmap(axis_size, in_batched, *args):
  raise ValueError(
    "cache: a ROSA generation cache cannot be used under jax.vmap (its automata live on the "
    "host, one per row and route, behind one handle); put the rows in the batch axis B of "
    "one call instead"
  )


def stream_match(handle, q_symbols, k_symbols, starts, counts) -> jax.Array:
  """Continues the host automata `handle`: row b consumes the first counts[b] of its `[T, R]`
  query/key symbols from position starts[b] (0 starts a new sequence). Returns tau
  `[B, T, R]` int32 (-1 past counts[b])."""
  return _stream_step(
    jnp.asarray(handle, jnp.int32),
    q_symbols,
    k_symbols,
    jnp.asarray(starts, jnp.int32),
    jnp.asarray(counts, jnp.int32),
  )
