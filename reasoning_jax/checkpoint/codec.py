"""The training state as Orbax checkpointables, and back: item kinds, JSON items, `train_meta`.

A training state is a dict of items. Saving turns it into Orbax checkpointables: JSON items
(`json_items`) are stored as JSON, None items and leafless pytrees are only recorded, a bare
array is wrapped in a one-entry dict (Orbax items must be containers), and every other item
is a pytree whose typed PRNG keys are stored as key data. The kind of each item and the typed
key paths go into the `train_meta` item, which restoring reads to build the abstract items
Orbax loads and to turn the loaded checkpointables back into a state.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from etils import epath
from jax.experimental import multihost_utils

from reasoning_jax.checkpoint.layout import FORMAT_VERSION, META_ITEM, State, check_item_name
from reasoning_jax.checkpoint.targets import abstract_tree
from reasoning_jax.checkpoint.typed_keys import decode_typed_keys, encode_typed_keys, path_id

# The key under which a bare-array ("leaf") item is wrapped.
_LEAF_KEY = "value"


def check_same_on_every_process(name: str, value: Any) -> None:
  """Raises ValueError unless every process passes the same JSON item (a collective).

  A JSON item is written once, so a process whose value differs would resume from
  another process's value. Grain iterator states of per-host shards are positions in the
  shard-local order (`{"next_index": n}`), equal on every host that stepped in lockstep;
  this check turns any other case (e.g. shards that ran out at different steps) into an
  error at save time instead of a silently wrong resume.
  """
  digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
  local = np.frombuffer(digest, np.uint32)
  gathered = np.asarray(multihost_utils.process_allgather(local))
  if not (gathered == gathered[0]).all():
    differing = [i for i in range(gathered.shape[0]) if not (gathered[i] == gathered[0]).all()]
    raise ValueError(
      f"state[{name!r}] differs between processes (process 0 vs {differing}); JSON items "
      f"are written once, so every process must pass the same value (e.g. data iterators "
      f"stepped in lockstep over equal-length shards)"
    )


def _encode_json_item(name: str, value: Any) -> Any:
  if value is not None and not isinstance(value, Mapping) and hasattr(value, "to_dict"):
    value = value.to_dict()  # e.g. an ml_collections ConfigDict.
  try:
    json.dumps(value)
  except (TypeError, ValueError) as e:
    raise TypeError(f"state[{name!r}] must be JSON-serialisable (it is stored as JSON): {e}") from e
  if jax.process_count() > 1:
    check_same_on_every_process(name, value)
  return value


def _check_pytree_leaves(name: str, tree: Any) -> None:
  for leaf in jax.tree.leaves(tree):
    if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, int, float, str)):
      raise TypeError(
        f"state[{name!r}] has a leaf of type {type(leaf).__name__}; pytree "
        f"items may hold only arrays and numbers (list {name!r} in json_items "
        f"to store it as JSON)"
      )


def encode_state(step: int, state: Any, json_items: Sequence[str]) -> dict[str, Any]:
  """Checkpointables for Orbax (pytree items with key data, JSON items, `train_meta`).

  Validates the whole state before anything is written: raises TypeError or ValueError.
  """
  if not isinstance(state, Mapping):
    raise TypeError(f"state must be a dict of items, got {type(state).__name__}")
  items: dict[str, Any] = {}
  kinds: dict[str, str] = {}
  typed_keys: dict[str, dict[str, str]] = {}
  for name, value in state.items():
    if name == "step":
      if value is not None and int(value) != step:
        raise ValueError(f"state['step']={int(value)} does not match the step argument {step}")
      continue
    check_item_name(name)
    if name in json_items:
      items[name] = _encode_json_item(name, value)
      kinds[name] = "json"
      continue
    if value is None:
      kinds[name] = "none"
      continue
    encoded, impls = encode_typed_keys(value)
    if jax.process_count() > 1:
      # Process-local arrays (e.g. an RNG key every process holds) cannot be written as
      # jax.Arrays on several hosts; as numpy values they are (the same on every process).
      encoded = jax.tree.map(
        lambda x: np.asarray(x) if isinstance(x, jax.Array) and x.is_fully_addressable else x,
        encoded,
      )
    if not jax.tree.leaves(encoded):
      kinds[name] = "empty"  # Orbax cannot write leafless trees; restored from the target.
      continue
    if jax.tree_util.treedef_is_leaf(jax.tree.structure(encoded)):
      # A bare array (e.g. one PRNG key): Orbax items must be containers.
      encoded = {_LEAF_KEY: encoded}
      impls = {path_id([_LEAF_KEY]): impl for impl in impls.values()}
      kinds[name] = "leaf"
    else:
      kinds[name] = "pytree"
    _check_pytree_leaves(name, encoded)
    items[name] = encoded
    if impls:
      typed_keys[name] = impls
  items[META_ITEM] = {
    "format_version": FORMAT_VERSION,
    "step": step,
    "items": kinds,
    "typed_keys": typed_keys,
    "process_count": jax.process_count(),
    "saved_at_unix": time.time(),
  }
  return items


def _wanted(target: Mapping[str, Any] | None, name: str) -> bool:
  """Whether item `name` is restored: every item without a target, else those it names."""
  return target is None or name in target


def abstract_items(
  step: int, path: epath.Path, kinds: Mapping[str, str], target: Mapping[str, Any] | None
) -> dict[str, Any]:
  """What Orbax should load of step `step` (at `path`, with item `kinds`) for `target`.

  Raises KeyError when `target` names an item the step does not have.
  """
  if target is not None:
    unknown = sorted(set(target) - set(kinds) - {"step"})
    if unknown:
      raise KeyError(
        f"target names items {unknown} that checkpoint step {step} at {path} "
        f"does not have (it has {sorted(kinds)})"
      )
  abstract: dict[str, Any] = {}
  for name, kind in kinds.items():
    if kind == "json":
      abstract[name] = None
    elif kind in ("pytree", "leaf") and _wanted(target, name):
      tree = None if target is None or target[name] is None else target[name]
      if tree is not None:
        tree = abstract_tree(tree)
        if kind == "leaf":
          tree = {_LEAF_KEY: tree}
      abstract[name] = tree
  return abstract


def decode_state(
  step: int,
  meta: Mapping[str, Any],
  loaded: Mapping[str, Any],
  target: Mapping[str, Any] | None,
) -> State:
  """The training state from the `loaded` checkpointables of a step with `train_meta` `meta`."""
  state: State = {"step": step}
  typed_keys = meta.get("typed_keys", {})
  for name, kind in meta["items"].items():
    if kind == "json":
      state[name] = loaded[name]
    elif kind == "none":
      if _wanted(target, name):
        state[name] = None
    elif kind == "empty":
      if _wanted(target, name):
        state[name] = None if target is None else target[name]
    elif name in loaded:
      value = decode_typed_keys(loaded[name], typed_keys.get(name, {}))
      state[name] = value[_LEAF_KEY] if kind == "leaf" else value
  return state
