"""Host matching that overlaps the device's window attention (memory_attention.md section 2.4).

The released code launches the CPU matcher on a side thread right after the q/k projections,
runs the window attention meanwhile, and waits for the matcher only when the branch needs tau.
The JAX equivalent here splits the host work into two callbacks:

    ticket      = submit(q~, k~)              io_callback: starts the matcher on a host thread
    u', ticket  = optimization_barrier(u, ticket)  the attention input now depends on the submit
    attn        = WindowAttn(u')              device compute while the host matches
    y           = collect(ticket, ..., after=attn) io_callback: waits (it needs attn: so it is
                                                  scheduled after the attention)

so the order (submit, attention, wait) is forced by data dependencies, whatever the scheduler
does. The host job computes tau and the counterfactual destinations in one pass (the released
code's forward always does), and `collect` carries them into the same counterfactual backward
as `rosa_branch`. The serial reference (`rosa_branch`) gives identical values and gradients.

With a batch split over a mesh's batch axes (`sharding.row_split`, as in `rosa_branch`), both
callbacks run per device shard: `submit` returns one ticket per shard (`[S]`, split like the
rows), each device collects its own ticket, and a shard's wait depends only on its own rows'
attention output. Tickets are process-local (each process's devices submit and collect in
that process).
"""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
import math
import threading

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback
from jax.sharding import PartitionSpec as P

from reasoning_jax import sharding
from reasoning_jax.ops.rosa import host
from reasoning_jax.ops.rosa.branch import branch_output, counterfactual_grads, to_symbols
from reasoning_jax.ops.rosa.config import RosaConfig


class _Jobs:
  """Matcher jobs in flight, by ticket (one worker per job; numba parallelises inside)."""

  def __init__(self):
    self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="rosa")
    self._jobs: dict[int, concurrent.futures.Future] = {}
    self._ids = itertools.count(1)
    self._lock = threading.Lock()

  def submit(self, q, k, seg, config: RosaConfig) -> int:
    q, k, seg = np.array(q), np.array(k), np.array(seg)  # Copies: the buffers may be reused.
    future = self._pool.submit(
      host.match, q, k, config=config, segment_ids=seg, want_counterfactual=True
    )
    with self._lock:
      ticket = next(self._ids)
      self._jobs[ticket] = future
    return ticket

  def collect(self, ticket: int):
    with self._lock:
      future = self._jobs.pop(ticket)
    return future.result()


JOBS = _Jobs()


def _submit_here(q_symbols, k_symbols, segment_ids, *, config: RosaConfig) -> jax.Array:
  def callback(q, k, seg):
    return np.full(1, JOBS.submit(q, k, seg, config), np.int32)

  shape = jax.ShapeDtypeStruct((1,), jnp.int32)
  return io_callback(callback, shape, q_symbols, k_symbols, segment_ids)


def submit(q_symbols, k_symbols, segment_ids, *, config: RosaConfig) -> jax.Array:
  """Starts host matching of `[B, T, R]` symbols; returns int32 tickets `[S]`, one per shard.

  S = 1 (one callback on the whole batch) unless a mesh's batch axes split B
  (`sharding.row_split`): then every device shard submits its own rows and S is the number
  of shards (the tickets are split like the rows, one per device)."""
  call = functools.partial(_submit_here, config=config)
  split = sharding.row_split(q_symbols.shape[0])
  if split is None:
    return call(q_symbols, k_symbols, segment_ids)
  mesh, rows = split
  return sharding.shard_map(call, mesh=mesh, in_specs=(rows,) * 3, out_specs=rows)(
    q_symbols, k_symbols, segment_ids
  )


def _wait_here(ticket, after, *, shape, bits):
  def callback(tk, _):
    return JOBS.collect(int(np.asarray(tk).reshape(-1)[0]))

  b, t, r = shape
  shapes = (
    jax.ShapeDtypeStruct((b, t, r), jnp.int32),
    jax.ShapeDtypeStruct((b, t, r, bits, 2), jnp.int32),
  )
  return io_callback(callback, shapes, ticket, after)


def _wait(ticket, after, *, shape, bits):
  """tau `[B, T, R]` and counterfactual destinations `[B, T, R, M, 2]` of the tickets `[S]`.
  `after` (`[B, 1]` or `[1]`) is passed along only so that the wait is scheduled after what
  computes it; per shard when it has the batch's rows."""
  if ticket.shape == (1,):
    return _wait_here(ticket, after, shape=shape, bits=bits)
  mesh, rows = sharding.row_split(shape[0])
  axes = rows[0] if isinstance(rows[0], tuple) else (rows[0],)
  n = math.prod(mesh.shape[a] for a in axes)
  local = (shape[0] // n, *shape[1:])
  after_spec = rows if after.shape[0] == shape[0] else P()
  call = functools.partial(_wait_here, shape=local, bits=bits)
  return sharding.shard_map(call, mesh=mesh, in_specs=(rows, after_spec), out_specs=(rows, rows))(
    ticket, after
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(7,))
def _collect(ticket, q, k, v, e0, e1, after, config):
  m = config.bits_per_route
  dest, _ = _wait(ticket, after, shape=(*q.shape[:2], q.shape[2] // m), bits=m)
  return branch_output(v, dest, e0, e1, m)


def _collect_fwd(ticket, q, k, v, e0, e1, after, config):
  m = config.bits_per_route
  dest, cf = _wait(ticket, after, shape=(*q.shape[:2], q.shape[2] // m), bits=m)
  y = branch_output(v, dest, e0, e1, m)
  return y, (ticket, q, k, v, e0, e1, after, dest, cf)


def _collect_bwd(config, residuals, g):
  ticket, q, k, v, e0, e1, after, dest, cf = residuals
  grads = counterfactual_grads(config, q, k, v, e0, e1, dest, cf, g)
  return (np.zeros(ticket.shape, jax.dtypes.float0), *grads, jnp.zeros_like(after))


_collect.defvjp(_collect_fwd, _collect_bwd)


def overlapped_branch(q, k, v, e0, e1, attention, attention_input, *, config, segment_ids=None):
  """`(rosa_branch(q, k, v, e0, e1), attention(attention_input))` with the host matching
  running while `attention` computes. Same values and gradients as the serial op."""
  b, t, _ = q.shape
  m = config.bits_per_route
  seg = jnp.zeros((b, t), jnp.int32) if segment_ids is None else segment_ids.astype(jnp.int32)
  ticket = submit(to_symbols(q, m), to_symbols(k, m), seg, config=config)
  attention_input, ticket = jax.lax.optimization_barrier((attention_input, ticket))
  attn = attention(attention_input)
  out = attn[0] if isinstance(attn, tuple) else attn
  out = jax.lax.stop_gradient(out)
  # One element per row when `out` has the batch's rows (a shard waits on its own rows' attention).
  after = out.reshape(b, -1)[:, :1] if out.ndim and out.shape[0] == b else out.reshape(-1)[:1]
  y = _collect(ticket, q, k, v, e0, e1, after, config)
  return y, attn
