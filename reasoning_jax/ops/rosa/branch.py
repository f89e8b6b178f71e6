"""The ROSA branch as a JAX op: bit symbols, host matching, the two-entry value table, and
the local counterfactual gradient (LCG) backward.

"ROSA-Tuning: Enhancing Long-Context Modeling via Suffix Matching" (Zheng, Wang, Ren, Chen;
arXiv:2602.02499), sections 2.1-2.3 of ../shared/methods/memory_attention.md. With the
projections q~, k~, v~ `[B, T, C]` of one layer, C = R * M (R routes of M bits):

    b^X[t, c] = [x~[t, c] > 0]                 a^X[t, r] = sum_m b^X[t, (r, m)] 2^m
    tau[t, r] = ROSA_match(a^Q[:, r], a^K[:, r], t)                 (host, `ops.rosa.sam`)
    y[t, c]   = [tau >= 0] (e0[c] + (e1[c] - e0[c]) b^V[tau[t, r], c])

The forward is discrete. e0 and e1 get exact gradients; q~, k~, v~ get the released code's
counterfactual credit (section 2.3), with theta = dL/dy (e1 - e0) and p^X = sigmoid(x~ / temp):
  * values: theta scattered to the destinations, times p^V (1 - p^V);
  * queries: for bit j, theta . (V[tau^(j,1)] - V[tau^(j,0)]), times p^Q (1 - p^Q), where
    tau^(j,beta) re-matches with bit j of the query symbol forced to beta (V = p^V by default);
  * keys: theta . V[tau^(j,beta)] accumulated at each counterfactual destination (a key unit's
    start), U^(1) - U^(0), times p^K (1 - p^K) there.
The counterfactual destinations come from the same host pass as the forward (`custom_vjp`
residuals); a forward that is not differentiated skips them.

`rosa_branch` works under `jit`, `grad` and `vmap` (the callback flattens leading axes), and
with a batch sharded over a mesh: under `jax.set_mesh`, when the mesh's batch axes (`data`,
`fsdp`) split B (`sharding.row_split`), the callback runs per device shard inside a
`shard_map` and matches that shard's rows only (on several processes, each process its own
devices' rows). Rows are independent, so tau and the counterfactual destinations are
bit-identical to one gathered callback's. Without such a mesh (no mesh, one device, batch axes
that do not divide B) one callback sees the whole batch, as before.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from reasoning_jax import sharding
from reasoning_jax.ops.rosa import host
from reasoning_jax.ops.rosa.config import RosaConfig


def to_symbols(x: jax.Array, bits_per_route: int, *, argument: str = "x") -> jax.Array:
  """`[..., C]` reals -> `[..., C / M]` uint8 symbols: bit m of route r is [x[(r, m)] > 0]."""
  c = x.shape[-1]
  if c % bits_per_route:
    raise ValueError(
      f"{argument} has width {c}, not divisible by bits_per_route={bits_per_route} "
      "(routes = width / bits_per_route)"
    )
  b = (x > 0).reshape(*x.shape[:-1], c // bits_per_route, bits_per_route).astype(jnp.int32)
  return jnp.sum(b << jnp.arange(bits_per_route, dtype=jnp.int32), axis=-1).astype(jnp.uint8)


def host_match(q_symbols, k_symbols, segment_ids, *, config: RosaConfig, counterfactual: bool):
  """`pure_callback` to `host.match`: tau `[..., T, R]` int32 (and `[..., T, R, M, 2]`).

  `[B, T, R]` symbols under a mesh whose batch axes split B (`sharding.row_split`) are matched
  per device shard: a `shard_map` gives every device's callback its own rows only (rows are
  independent, so the result is the gathered one, bit for bit). Otherwise one callback sees
  the whole array.
  """
  split = None
  if q_symbols.ndim == 3 and segment_ids.shape == q_symbols.shape[:2]:
    split = sharding.row_split(q_symbols.shape[0])
  call = functools.partial(_match_callback, config=config, counterfactual=counterfactual)
  if split is None:
    return call(q_symbols, k_symbols, segment_ids)
  mesh, rows = split
  n_out = 2 if counterfactual else 1
  per_shard = sharding.shard_map(call, mesh=mesh, in_specs=(rows,) * 3, out_specs=(rows,) * n_out)
  return per_shard(q_symbols, k_symbols, segment_ids)


def _match_callback(q_symbols, k_symbols, segment_ids, *, config: RosaConfig, counterfactual):
  """The `pure_callback` of `host_match` on the arrays it is given (leading axes flattened)."""
  *lead, t, r = q_symbols.shape
  m = config.bits_per_route
  shapes = [jax.ShapeDtypeStruct((*lead, t, r), jnp.int32)]
  if counterfactual:
    shapes.append(jax.ShapeDtypeStruct((*lead, t, r, m, 2), jnp.int32))

  def callback(q, k, seg):
    lead_shape = q.shape[:-2]
    q = np.asarray(q).reshape(-1, t, r)
    k = np.asarray(k).reshape(-1, t, r)
    seg = np.broadcast_to(np.asarray(seg), (*lead_shape, t)).reshape(-1, t)
    dest, cf = host.match(q, k, config=config, segment_ids=seg, want_counterfactual=counterfactual)
    out = [dest.reshape(*lead_shape, t, r)]
    if counterfactual:
      out.append(cf.reshape(*lead_shape, t, r, m, 2))
    return tuple(out)

  return jax.pure_callback(
    callback, tuple(shapes), q_symbols, k_symbols, segment_ids, vmap_method="broadcast_all"
  )


def value_bits(v: jax.Array, m: int) -> jax.Array:
  """`[B, T, C]` -> hard value bits `[B, T, R, M]` float32."""
  return (v > 0).reshape(*v.shape[:-1], v.shape[-1] // m, m).astype(jnp.float32)


def _gather_time(field: jax.Array, times: jax.Array) -> jax.Array:
  """field `[B, T, R, M]`, times `[B, T, R, ...]` (-1 = none) -> `[B, T, R, ..., M]`, field
  rows at those times of the same route (0 where the time is -1)."""
  b, t, r, _ = field.shape
  extra = times.ndim - 3
  tc = jnp.clip(times, 0, t - 1)
  bi = jnp.arange(b).reshape((b, 1, 1) + (1,) * extra)
  ri = jnp.arange(r).reshape((1, 1, r) + (1,) * extra)
  return field[bi, tc, ri] * (times >= 0)[..., None]


def read_values(v_bits: jax.Array, dest: jax.Array, e0: jax.Array, e1: jax.Array) -> jax.Array:
  """y `[B, T, C]` float32 from value bits `[B, S, R, M]` (S >= T: a cache's slots) read at
  tau `[B, T, R]`."""
  r, m = v_bits.shape[2:]
  at = _gather_time(v_bits, dest)
  e0 = e0.astype(jnp.float32).reshape(r, m)
  e1 = e1.astype(jnp.float32).reshape(r, m)
  y = jnp.where((dest >= 0)[..., None], e0 + (e1 - e0) * at, 0.0)
  return y.reshape(*dest.shape[:2], r * m)


def branch_output(v: jax.Array, dest: jax.Array, e0: jax.Array, e1: jax.Array, m: int):
  """The branch's y `[B, T, C]` in v's dtype: the table read at the value bits of v at tau."""
  return read_values(value_bits(v, m), dest, e0, e1).astype(v.dtype)


def counterfactual_grads(config: RosaConfig, q, k, v, e0, e1, dest, cf, g):
  """(dq~, dk~, dv~, de0, de1) of section 2.3 for the cotangent g `[B, T, C]`."""
  b, t, c = q.shape
  m = config.bits_per_route
  r = c // m
  g = g.astype(jnp.float32).reshape(b, t, r, m)
  valid = (dest >= 0)[..., None]
  vb = value_bits(v, m)
  at = _gather_time(vb, dest)
  de1 = jnp.sum(jnp.where(valid, g * at, 0.0), axis=(0, 1)).reshape(c)
  de0 = jnp.sum(jnp.where(valid, g * (1.0 - at), 0.0), axis=(0, 1)).reshape(c)
  delta = (e1.astype(jnp.float32) - e0.astype(jnp.float32)).reshape(r, m)
  # theta is NOT masked by tau >= 0 (as in the released code): a position with no match can
  # still credit the query bits whose flip would have created one. Only values need a tau.
  theta = g * delta

  def soft(x, temp):
    return jax.nn.sigmoid(x.astype(jnp.float32) / temp).reshape(b, t, r, m)

  p_v, p_q, p_k = soft(v, config.temp_v), soft(q, config.temp_q), soft(k, config.temp_k)
  bi = jnp.arange(b)[:, None, None]
  ri = jnp.arange(r)[None, None, :]
  s_v = jnp.zeros((b, t, r, m), jnp.float32)
  s_v = s_v.at[bi, jnp.clip(dest, 0, t - 1), ri].add(jnp.where(valid, theta, 0.0))
  dv = p_v * (1.0 - p_v) * s_v

  field_q = p_v if config.cf_value_q == "prob" else vb
  field_k = p_v if config.cf_value_k == "prob" else vb
  cf0, cf1 = cf[..., 0], cf[..., 1]  # [B, T, R, J]
  dot = lambda field, times: jnp.sum(theta[:, :, :, None, :] * _gather_time(field, times), -1)
  dq = p_q * (1.0 - p_q) * (dot(field_q, cf1) - dot(field_q, cf0))

  ji = jnp.arange(m)[None, None, None, :]
  bj, rj = bi[..., None], ri[..., None]
  u = jnp.zeros((b, t, r, m), jnp.float32)
  u = u.at[bj, jnp.clip(cf1, 0, t - 1), rj, ji].add(jnp.where(cf1 >= 0, dot(field_k, cf1), 0.0))
  u = u.at[bj, jnp.clip(cf0, 0, t - 1), rj, ji].add(-jnp.where(cf0 >= 0, dot(field_k, cf0), 0.0))
  dk = p_k * (1.0 - p_k) * u
  shape = (b, t, c)
  return (
    dq.reshape(shape).astype(q.dtype),
    dk.reshape(shape).astype(k.dtype),
    dv.reshape(shape).astype(v.dtype),
    de0.astype(e0.dtype),
    de1.astype(e1.dtype),
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(6,))
def _branch(q, k, v, e0, e1, segment_ids, config):
  m = config.bits_per_route
  (dest,) = host_match(
    to_symbols(q, m), to_symbols(k, m), segment_ids, config=config, counterfactual=False
  )
  return branch_output(v, dest, e0, e1, m)


def _branch_fwd(q, k, v, e0, e1, segment_ids, config):
  m = config.bits_per_route
  dest, cf = host_match(
    to_symbols(q, m), to_symbols(k, m), segment_ids, config=config, counterfactual=True
  )
  y = branch_output(v, dest, e0, e1, m)
  return y, (q, k, v, e0, e1, dest, cf, segment_ids)


def _branch_bwd(config, residuals, g):
  q, k, v, e0, e1, dest, cf, segment_ids = residuals
  grads = counterfactual_grads(config, q, k, v, e0, e1, dest, cf, g)
  seg_zero = np.zeros(segment_ids.shape, jax.dtypes.float0)
  return (*grads, seg_zero)


_branch.defvjp(_branch_fwd, _branch_bwd)


def rosa_branch(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  e0: jax.Array,
  e1: jax.Array,
  *,
  config: RosaConfig | None = None,
  segment_ids: jax.Array | None = None,
) -> jax.Array:
  """The ROSA read-out y `[B, T, C]` (before the output projection).

  Args:
    q, k, v: `[B, T, C]` projections q~, k~, v~ (C divisible by `config.bits_per_route`).
    e0, e1: `[C]` the two-entry value table (both zero: y == 0, an exact no-op).
    config: `RosaConfig` (matcher and gradient flags; None: the defaults).
    segment_ids: optional `[B, T]` ints; matching restarts where the id changes.
  """
  config = RosaConfig() if config is None else config
  if q.ndim != 3 or q.shape != k.shape or q.shape != v.shape:
    raise ValueError(f"q, k, v must be [B, T, C] of one shape, got {q.shape}, {k.shape}, {v.shape}")
  b, t, c = q.shape
  if c % config.bits_per_route:
    raise ValueError(
      f"q, k, v have width C={c}, not divisible by bits_per_route={config.bits_per_route} "
      "(routes = width / bits_per_route)"
    )
  for name, e in (("e0", e0), ("e1", e1)):
    if e.shape != (c,):
      raise ValueError(f"{name} must be [C={c}], got {e.shape}")
  if segment_ids is None:
    segment_ids = jnp.zeros((b, t), jnp.int32)
  elif segment_ids.shape != (b, t):
    raise ValueError(f"segment_ids must be [B, T] = {(b, t)}, got {segment_ids.shape}")
  return _branch(q, k, v, e0, e1, segment_ids.astype(jnp.int32), config)
