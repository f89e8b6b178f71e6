"""Restore targets: the abstract leaves (shape, dtype, sharding) that Orbax restores onto.

A restore is driven by a target pytree of `jax.ShapeDtypeStruct` leaves carrying shardings,
which is what lets a checkpoint written on one mesh be read onto another (resharding). Concrete
arrays in a target stand for their own shape, dtype and sharding; typed PRNG keys stand for
their key data; numpy arrays and Python scalars are their own targets.
"""

from __future__ import annotations

from typing import Any

import jax

from reasoning_jax.checkpoint.typed_keys import is_typed_key, key_data_sharding


def abstract_leaf(x: Any, default_sharding: Any) -> Any:
  """The restore target for one leaf: a ShapeDtypeStruct carrying a sharding."""
  if isinstance(x, (jax.Array, jax.ShapeDtypeStruct)):
    sharding = getattr(x, "sharding", None) or default_sharding
    if is_typed_key(x):
      data = jax.eval_shape(jax.random.key_data, jax.ShapeDtypeStruct(x.shape, x.dtype))
      return jax.ShapeDtypeStruct(
        data.shape, data.dtype, sharding=key_data_sharding(sharding, data.ndim - x.ndim)
      )
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
  return x  # numpy arrays and Python scalars are their own targets.


def abstract_tree(tree: Any) -> Any:
  """The restore target of every leaf of `tree` (see `abstract_leaf`)."""
  # Leaves without a sharding: this process's first local device (on several processes each
  # one reads the whole leaf into a process-local array).
  default = jax.sharding.make_single_device_sharding(jax.local_devices()[0])
  return jax.tree.map(lambda x: abstract_leaf(x, default), tree)
