"""Typed PRNG keys in checkpoints: stored as their uint32 key data, keyed by pytree path.

Orbax writes arrays of numeric dtypes only, so a typed key (`jax.random.key(...)`) anywhere in
a pytree item is replaced by `jax.random.key_data(key)` and its implementation is recorded in
`train_meta` under a structure-agnostic id of its pytree path; on restore the key data at
those paths is re-wrapped with `jax.random.wrap_key_data`. The path ids are part of the
on-disk format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jax


def is_typed_key(x: Any) -> bool:
  """True when `x` (an array or abstract array) holds typed PRNG keys."""
  dtype = getattr(x, "dtype", None)
  return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def path_id(path: Sequence[Any]) -> str:
  """A structure-agnostic id of a pytree path (dict key, attribute and index alike)."""
  names = []
  for entry in path:
    for attr in ("key", "name", "idx"):
      if hasattr(entry, attr):
        names.append(str(getattr(entry, attr)))
        break
    else:
      names.append(str(entry))
  return json.dumps(names)


def encode_typed_keys(tree: Any) -> tuple[Any, dict[str, str]]:
  """Replaces typed PRNG keys by their uint32 key data; returns the tree and {path: impl}."""
  impls: dict[str, str] = {}

  def encode(path, x):
    if is_typed_key(x):
      impls[path_id(path)] = str(jax.random.key_impl(x))
      return jax.random.key_data(x)
    return x

  return jax.tree_util.tree_map_with_path(encode, tree), impls


def decode_typed_keys(tree: Any, impls: Mapping[str, str]) -> Any:
  """Re-wraps the key data at the paths of `impls` (from `encode_typed_keys`) as typed keys."""
  if not impls:
    return tree

  def decode(path, x):
    impl = impls.get(path_id(path))
    return x if impl is None else jax.random.wrap_key_data(x, impl=impl)

  return jax.tree_util.tree_map_with_path(decode, tree)


def _is_single_device(sharding: Any) -> bool:
  # jax 0.12 deprecates the `SingleDeviceSharding` name for this predicate; 0.10 lacks it.
  check = getattr(jax.sharding, "is_single_device_sharding", None)
  if check is not None:
    return check(sharding)
  return isinstance(sharding, jax.sharding.SingleDeviceSharding)


def key_data_sharding(sharding: Any, extra_dims: int) -> Any:
  """The sharding of `key_data(keys)` for keys sharded as `sharding`."""
  if sharding is None or _is_single_device(sharding):
    return sharding
  if isinstance(sharding, jax.sharding.NamedSharding):
    spec = tuple(sharding.spec) + (None,) * extra_dims
    return jax.sharding.NamedSharding(
      sharding.mesh, jax.sharding.PartitionSpec(*spec), memory_kind=sharding.memory_kind
    )
  raise TypeError(
    f"typed PRNG key targets must use a NamedSharding or a single-device sharding, "
    f"got {type(sharding).__name__}"
  )
