"""Meshes, parameter shardings from partition rules, and activation constraints.

One code path from one CPU to a TPU pod:

  >>> mesh = make_mesh({"data": -1, "fsdp": 2, "tensor": 1})
  >>> shardings = param_shardings(params, rules_for("qwen3"), mesh)
  >>> params = jax.device_put(params, shardings)
  >>> step = jax.jit(step_fn, in_shardings=(shardings, batch_sharding(mesh)),
  ...                out_shardings=..., donate_argnums=(0,))

Axes: `data` (replicated params, split batch), `fsdp` (split batch *and*
params/optimizer state), `tensor` (split heads / FFN units). Meshes use
`AxisType.Auto` so XLA's sharding propagation fills in intermediates; explicit
constraints are placed on activations with `constrain_batch`. Only current JAX
APIs: `jax.make_mesh`, `jax.set_mesh`, `jax.jit` shardings (no `pjit`, no
`with mesh:`).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")


def make_mesh(
  shape: Mapping[str, int] | None = None, *, devices: Sequence[jax.Device] | None = None
) -> Mesh:
  """A mesh over `devices` (default: all) with axes `data`, `fsdp`, `tensor`.

  Args:
    shape: axis name -> size; one size may be -1 (= the remaining devices);
      missing axes get size 1. Default: all devices on `data`.
    devices: devices to use (default `jax.devices()`).

  Raises:
    ValueError: unknown axis names, bad sizes, or sizes whose product is not the
      device count (the message names the key).
  """
  devices = list(jax.devices() if devices is None else devices)
  shape = dict({"data": -1} if shape is None else shape)
  unknown = set(shape) - set(MESH_AXES)
  if unknown:
    raise ValueError(f"mesh: unknown axis {sorted(unknown)}; axes are {MESH_AXES}")
  sizes = {}
  for axis in MESH_AXES:
    size = shape.get(axis, 1)
    if (
      not isinstance(size, (int, np.integer)) or isinstance(size, bool) or (size != -1 and size < 1)
    ):
      raise ValueError(f"mesh.{axis} must be a positive int or -1, got {size!r}")
    sizes[axis] = int(size)
  rest = [a for a, s in sizes.items() if s == -1]
  if len(rest) > 1:
    raise ValueError(f"mesh: only one axis may be -1, got {rest}")
  known = math.prod(s for s in sizes.values() if s != -1)
  if rest:
    if len(devices) % known:
      raise ValueError(
        f"mesh.{rest[0]}=-1: the other axes multiply to {known}, which does not divide the "
        f"{len(devices)} devices"
      )
    sizes[rest[0]] = len(devices) // known
  if math.prod(sizes.values()) != len(devices):
    raise ValueError(
      f"mesh sizes {sizes} multiply to {math.prod(sizes.values())} but there are "
      f"{len(devices)} devices"
    )
  auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
  return jax.make_mesh(
    tuple(sizes[a] for a in MESH_AXES), MESH_AXES, axis_types=auto, devices=devices
  )


def path_to_name(path: tuple[Any, ...]) -> str:
  """Dotted name of a pytree path in an nnx.State / pure dict (`layers.0.mixer.q_proj`)."""
  parts = []
  for key in path:
    if isinstance(key, jax.tree_util.DictKey):
      parts.append(str(key.key))
    elif isinstance(key, jax.tree_util.SequenceKey):
      parts.append(str(key.idx))
    elif isinstance(key, jax.tree_util.GetAttrKey):
      if key.name != "value":  # nnx.Variable's payload.
        parts.append(key.name)
    else:
      parts.append(str(key))
  return ".".join(parts)


def spec_for(name: str, shape: Sequence[int], rules, mesh: Mesh, *, strict: bool = True) -> P:
  """The PartitionSpec of parameter `name`, fitted to `shape` and `mesh`.

  Mesh axes that do not divide their dimension (e.g. 2 KV heads on tensor=4) or
  that the mesh lacks are dropped (that dimension is replicated), with a log line.
  """
  for pattern, spec in rules:  # noqa: B007 (spec is used after the break)
    if re.fullmatch(pattern, name):
      break
  else:
    if strict:
      raise ValueError(f"no partition rule matches parameter {name!r} (shape {tuple(shape)})")
    return P()
  if len(spec) > len(shape):
    raise ValueError(
      f"partition rule {pattern!r} -> {spec} has more axes than parameter "
      f"{name!r} of shape {tuple(shape)}"
    )
  fitted = []
  for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
    if axes is None:
      fitted.append(None)
      continue
    axes_tuple = axes if isinstance(axes, tuple) else (axes,)
    kept = tuple(a for a in axes_tuple if a in mesh.shape)
    size = math.prod(mesh.shape[a] for a in kept)
    if size > 1 and dim % size:
      logging.log_first_n(
        logging.INFO,
        "replicating dim %d of %s: %s=%d does not divide it",
        20,
        dim,
        name,
        kept,
        size,
      )
      kept = ()
    fitted.append(kept[0] if len(kept) == 1 else (kept or None))
  return P(*fitted)


def param_specs(params: Any, rules, mesh: Mesh, *, strict: bool = True) -> Any:
  """A pytree of PartitionSpecs matching `params` (an nnx.State or nested dict)."""
  return jax.tree_util.tree_map_with_path(
    lambda path, x: spec_for(path_to_name(path), x.shape, rules, mesh, strict=strict), params
  )


def param_shardings(params: Any, rules, mesh: Mesh, *, strict: bool = True) -> Any:
  """A pytree of NamedShardings matching `params`."""
  return jax.tree_util.tree_map(
    lambda spec: NamedSharding(mesh, spec),
    param_specs(params, rules, mesh, strict=strict),
    is_leaf=lambda x: isinstance(x, P),
  )


def batch_spec(mesh: Mesh | None = None, ndim: int = 2) -> P:
  """Leading (batch) dimension over the batch axes present in the mesh."""
  names = mesh.axis_names if mesh is not None else jax.sharding.get_abstract_mesh().axis_names
  axes = tuple(a for a in BATCH_AXES if a in names)
  return P(axes if axes else None, *([None] * (ndim - 1)))


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
  return NamedSharding(mesh, batch_spec(mesh, ndim))


def constrain_batch(x: jax.Array) -> jax.Array:
  """Constrains activations `[B, ...]` to batch sharding when a mesh is set (else a no-op).

  Uses the mesh installed with `jax.set_mesh`; without one (single device,
  tests, eager calls) it returns `x` unchanged.
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or not any(a in mesh.axis_names for a in BATCH_AXES):
    return x
  axes = tuple(a for a in BATCH_AXES if a in mesh.axis_names)
  if x.shape[0] % math.prod(mesh.shape[a] for a in axes):
    return x  # e.g. a decode batch smaller than the mesh: let XLA decide.
  return jax.lax.with_sharding_constraint(x, batch_spec(None, x.ndim))


def batch_shard_count(mesh: Mesh | None) -> int:
  """How many shards the mesh's batch axes (`data`, `fsdp`) cut a batch into (1 without a mesh)."""
  if mesh is None:
    return 1
  return math.prod(mesh.shape[a] for a in BATCH_AXES if a in mesh.shape)


def place_rows(x: Any, mesh: Mesh | None) -> jax.Array:
  """Host rows `[N, ...]` on the mesh's batch axes. Every process passes the same N rows (the
  whole batch; on several processes each device takes its slice of them, so no process needs
  to know which rows are its own). Without a mesh, or when N does not divide over the batch
  axes, an uncommitted array that `jit` places next to its other arguments."""
  x = np.asarray(x)
  if mesh is None or x.shape[0] % batch_shard_count(mesh):
    return jnp.asarray(x)
  sharding = batch_sharding(mesh, x.ndim)
  if jax.process_count() == 1:
    return jax.device_put(x, sharding)
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def place_padded_rows(mesh: Mesh | None, *arrays: Any) -> list[jax.Array]:
  """`arrays` (the same rows each) padded with copies of their last row to a multiple of
  `mesh`'s batch shards and split over them (`place_rows`); the caller drops the padding
  from the results (`host_rows(out)[:rows]`). Without a mesh, as they are."""
  arrays = tuple(np.asarray(x) for x in arrays)
  pad = -len(arrays[0]) % batch_shard_count(mesh)
  if pad:
    arrays = tuple(np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) for x in arrays)
  return [place_rows(x, mesh) for x in arrays]


def host_rows(x: Any) -> Any:
  """A (possibly global) array's values, or a pytree's, as host numpy, the same on every
  process. Arrays with rows on other processes are gathered in one `process_allgather` of the
  whole tree (a collective that every process must call, once per call, however many leaves);
  anything else is read directly."""
  leaves = jax.tree.leaves(x)
  if any(isinstance(a, jax.Array) and not a.is_fully_addressable for a in leaves):
    from jax.experimental import multihost_utils

    x = multihost_utils.process_allgather(x, tiled=True)
  return jax.tree.map(np.asarray, x)


@functools.lru_cache(maxsize=16)
def _replicate(mesh: Mesh):
  """A jitted identity whose outputs are replicated over `mesh` (one compile per tree shape)."""
  return jax.jit(lambda tree: tree, out_shardings=NamedSharding(mesh, P()))


def local_replicas(tree: Any, mesh: Mesh, local_mesh: Mesh) -> Any:
  """`tree`'s arrays (laid out over the global `mesh`) as full copies on every device of
  `local_mesh` (this process's devices), without a trip through host memory.

  One jitted program gathers every array replicated over `mesh` (a collective every process
  must join) and waits for it; each process then reads its own devices' copies as arrays on
  `local_mesh`. Used for per-host rollout engines on several processes.
  """
  replicated = _replicate(mesh)(tree)
  jax.block_until_ready(replicated)  # Waited on: see reasoning_jax/distributed.py.
  local = NamedSharding(local_mesh, P())
  order = list(local_mesh.devices.flat)

  def to_local(x):
    copies = {shard.device: shard.data for shard in x.addressable_shards}
    return jax.make_array_from_single_device_arrays(x.shape, local, [copies[d] for d in order])

  return jax.tree_util.tree_map(to_local, replicated)


def on_mesh(tree: Any, mesh: Mesh) -> Any:
  """`tree`'s arrays that are not already laid out over `mesh`'s devices, replicated onto it
  (arrays already placed on the mesh keep their shardings)."""
  devices = set(mesh.devices.flat)

  def put(x):
    if isinstance(x, jax.Array) and set(x.sharding.device_set) == devices:
      return x
    return jax.device_put(x, NamedSharding(mesh, P()))

  return jax.tree_util.tree_map(put, tree)


def shard_map(f, *, mesh, in_specs, out_specs):
  """`jax.shard_map(f)` per device shard over every axis of `mesh` (fully manual).

  Replication is not checked (`f` may be a host callback, whose outputs JAX cannot type): an
  out spec that leaves an axis out asserts that every device along it computes the same value.
  """
  return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


def row_split(rows: int, *, exclusive: bool = False) -> tuple[jax.sharding.AbstractMesh, P] | None:
  """How to split `rows` independent rows (dim 0) for per-device host work, or None.

  Under a mesh set with `jax.set_mesh` whose batch axes (`data`, `fsdp`) split the batch
  (some size > 1), returns that mesh and the spec `P(axes)` for dim 0: the batch axes, then
  the other axes (`tensor`) too when they divide `rows` as well, so that devices holding the
  same batch rows share them out instead of each repeating the work. None (the caller keeps
  one gathered callback, as without a mesh) when there is no such mesh, when it already has
  manual axes (inside a `shard_map`), or when the batch axes do not divide `rows`.
  `exclusive=True` (host work with side effects: each row must be handled exactly once)
  also answers None when some devices would share their rows (a `tensor` axis that does not
  divide `rows`).
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or mesh.manual_axes:
    return None
  batch = tuple(a for a in BATCH_AXES if a in mesh.axis_names and mesh.shape[a] > 1)
  if not batch or rows % math.prod(mesh.shape[a] for a in batch):
    return None
  rest = tuple(a for a in mesh.axis_names if a not in BATCH_AXES and mesh.shape[a] > 1)
  axes = batch + rest
  if rows % math.prod(mesh.shape[a] for a in axes):
    if exclusive and rest:
      return None
    axes = batch
  return mesh, P(axes)


def shard_batch(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
  """Builds global arrays from this process's rows (`jax.make_array_from_process_local_data`).

  On one process this is a plain sharded `device_put`; on many, each host passes
  only its own slice of the global batch.
  """
  out = {}
  for key, value in batch.items():
    value = np.asarray(value)
    if value.dtype == object:
      continue  # Strings / ragged metadata stay on the host.
    out[key] = jax.make_array_from_process_local_data(batch_sharding(mesh, value.ndim), value)
  return out


def place(tree: Any, shardings: Any) -> Any:
  """`jax.device_put(tree, shardings)` that also works for process-local arrays on many hosts.

  On several processes a committed process-local array (e.g. restored from a checkpoint onto
  this process's device) cannot be transferred to devices of other hosts; every process holds
  the same values, so each builds its own shards from a host copy instead (typed PRNG keys,
  e.g. a restored training RNG, through their key data).
  """
  if jax.process_count() == 1:
    return jax.device_put(tree, shardings)
  if not any(_is_key(x) for x in jax.tree.leaves(tree)):
    tree = jax.tree.map(lambda x: np.asarray(x) if isinstance(x, jax.Array) else x, tree)
    return jax.device_put(tree, shardings)
  if isinstance(shardings, jax.sharding.Sharding):
    return jax.tree.map(lambda x: _place_from_host(x, shardings), tree)
  return jax.tree.map(_place_from_host, tree, shardings)


def uncommitted(x: jax.Array) -> jax.Array:
  """`x`'s values as an uncommitted array (jit places it next to its other arguments), as a
  freshly made one is: e.g. a training RNG restored from a checkpoint onto one device, which
  must then serve a global-mesh update and a per-host rollout engine alike. Typed PRNG keys go
  through their key data."""
  if _is_key(x):
    data = jnp.asarray(np.asarray(jax.random.key_data(x)))
    return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
  return jnp.asarray(np.asarray(x))


def _is_key(x: Any) -> bool:
  return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _place_from_host(x: Any, sharding: Any) -> Any:
  """One leaf of `place` on several processes: from a host copy; a typed PRNG key array
  (`jax.random.key`, which has no numpy form) through its `key_data`, re-wrapped after."""
  if _is_key(x):
    data = np.asarray(jax.random.key_data(x))
    extra = data.ndim - x.ndim  # the key data's trailing dims, replicated
    if isinstance(sharding, NamedSharding):
      sharding = NamedSharding(sharding.mesh, P(*sharding.spec, *([None] * extra)))
    return jax.random.wrap_key_data(jax.device_put(data, sharding), impl=jax.random.key_impl(x))
  return jax.device_put(np.asarray(x) if isinstance(x, jax.Array) else x, sharding)
