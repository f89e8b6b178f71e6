"""Decoding with ROSA: automata that live on the host between calls, reached by handle.

A generation cache carries an int32 handle to a `host.RosaStreams` (one automaton per row and
route) and the value symbols `[B, S, R]` on device. Each prefill / decode call feeds the new
query and key symbols through `io_callback`; the host extends the automata by exactly those
symbols (no rebuild) and answers tau. The symbol history is the only ROSA state beyond the
attention window. Order is carried by data: layer l+1 and step s+1 consume what layer l and
step s produced.

With a batch split over a mesh (`sharding.row_split(exclusive=True)`: no two devices hold
the same rows), every device shard steps its own rows of the handle's automata
(`RosaStreams.step(first_row=)`, a global row index); on several processes each process
opens the same handles for the global batch and steps only its devices' rows. When devices
would share rows (a `tensor` axis that does not divide them) one callback steps the batch:
a row stepped twice would advance twice.

The host state is per row, so the op refuses `vmap` (one handle cannot serve several batched
copies) with an error naming the cache.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback
from jax.sharding import PartitionSpec as P

from reasoning_jax import sharding
from reasoning_jax.ops.rosa import host
from reasoning_jax.ops.rosa.config import RosaConfig


def open_streams(batch: int, routes: int, capacity: int, config: RosaConfig) -> int:
  """A new set of `batch x routes` host automata of `capacity` symbols; returns its handle."""
  return host.STREAMS.open(batch, routes, capacity, config)


def _callback(handle, q, k, starts, counts, first_row):
  streams = host.STREAMS.get(int(handle))
  first = int(np.asarray(first_row).reshape(-1)[0])
  args = (np.asarray(q), np.asarray(k), np.asarray(starts), np.asarray(counts))
  return streams.step(*args, first_row=None if first < 0 else first)


@jax.custom_batching.custom_vmap
def _stream_step(handle, q_symbols, k_symbols, starts, counts, first_row):
  shape = jax.ShapeDtypeStruct(q_symbols.shape, jnp.int32)
  return io_callback(
    _callback, shape, handle, q_symbols, k_symbols, starts, counts, first_row, ordered=False
  )


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
  `[B, T, R]` int32 (-1 past counts[b]).

  Under a mesh whose axes split B so that no two devices hold the same rows
  (`sharding.row_split(exclusive=True)`), every device shard steps its own rows
  (`RosaStreams.step(first_row=)`: its shard index times its row count); otherwise one
  callback steps the whole batch. Devices sharing rows would step them twice."""
  handle = jnp.asarray(handle, jnp.int32)
  starts = jnp.asarray(starts, jnp.int32)
  counts = jnp.asarray(counts, jnp.int32)
  split = sharding.row_split(q_symbols.shape[0], exclusive=True)
  if split is None:
    return _stream_step(handle, q_symbols, k_symbols, starts, counts, jnp.full(1, -1, jnp.int32))
  mesh, rows = split

  def per_shard(handle, q, k, starts, counts):
    first_row = jax.lax.axis_index(rows[0]) * q.shape[0]
    return _stream_step(
      handle, q, k, starts, counts, jnp.reshape(first_row, (1,)).astype(jnp.int32)
    )

  spec = (P(), rows, rows, rows, rows)
  return sharding.shard_map(per_shard, mesh=mesh, in_specs=spec, out_specs=rows)(
    handle, q_symbols, k_symbols, starts, counts
  )
