"""`to_global_batch`: each host's batch assembled into global `jax.Array`s sharded over a mesh."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np


def to_global_batch(local_batch: Mapping[str, Any], mesh: Any, spec: Any) -> dict[str, Any]:
  """Assembles each host's batch into global `jax.Array`s sharded over `mesh`.

  Each numeric array goes through `jax.make_array_from_process_local_data(
  NamedSharding(mesh, spec), local_array)`, so the global batch dimension is
  the concatenation of all hosts' local batches. Non-numeric entries (object or
  string arrays such as answers) stay host-local numpy arrays.

  Args:
    local_batch: Dict of this host's arrays (leading dim = local batch).
    mesh: A `jax.sharding.Mesh`.
    spec: A `PartitionSpec` for every array, or a dict of them by key. A spec
      longer than an array's rank is cut to the rank, so `P("data", None)`
      serves both `[B, L]` and `[B]` arrays.

  Returns:
    A dict with the same keys.

  Raises:
    KeyError: If `spec` is a dict that lacks a numeric key of `local_batch`.
  """
  import jax
  from jax.sharding import NamedSharding, PartitionSpec

  if not isinstance(local_batch, Mapping):
    raise TypeError(f"local_batch must be a dict of arrays, got {type(local_batch).__name__}")
  out: dict[str, Any] = {}
  for key, value in local_batch.items():
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind in "USV":
      out[key] = value
      continue
    if isinstance(spec, Mapping):
      if key not in spec:
        raise KeyError(f"spec has no PartitionSpec for {key!r}; keys: {sorted(spec)}")
      s = spec[key]
    else:
      s = spec
    if not isinstance(s, PartitionSpec):
      raise TypeError(f"spec for {key!r} must be a PartitionSpec, got {type(s).__name__}")
    if len(s) > arr.ndim:
      s = PartitionSpec(*tuple(s)[: arr.ndim])
    out[key] = jax.make_array_from_process_local_data(NamedSharding(mesh, s), arr)
  return out
