"""Helpers over the model's generic decoding cache.

Cache interface (defined by `Transformer.init_cache` and the mixers):

  * the cache is a *tuple with one pytree per layer*, each built by that
    layer's mixer `init_cache(batch_size, max_length, dtype)`. Attention layers
    keep a `KVCache` (`k`, `v` of shape `[B, S, K, D]`, slot index == token
    position); other mixers (e.g. recurrent ones) may keep any pytree, such as a
    constant-size state, so code here never looks inside a layer's entry;
  * `model.forward(ids [B, T], positions=[B, T], cache=cache)` writes row b's T
    new tokens at slots `positions[b, 0] ... positions[b, 0] + T - 1` and returns
    the updated cache (same structure, shapes and dtypes), so it can be carried
    through `jax.lax.while_loop` and donated to jitted functions;
  * causal masking is on positions, so slots beyond a row's current position
    are invisible: right-padded prompts can be prefilled in one block and their
    padding slots are overwritten by the generated tokens later.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def _positive_int(value: Any, argument: str) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{argument} must be a positive int, got {value!r}")
  return int(value)


def init_cache(model: Any, batch_size: int, max_length: int, dtype: Any = None) -> tuple[Any, ...]:
  """Allocates an empty decoding cache for `model`.

  Args:
    model: a model with `init_cache(batch_size, max_length, dtype)` (e.g. `Transformer`).
    batch_size: number of rows B (>= 1).
    max_length: number of cache slots S (>= 1): the longest prompt plus
      generated sequence that fits.
    dtype: storage dtype of the cache (None: the model's compute dtype).

  Returns:
    A tuple with one cache pytree per layer.
  """
  if not hasattr(model, "init_cache"):
    raise TypeError(
      f"model must define init_cache(batch_size, max_length, dtype), got {type(model).__name__}"
    )
  batch_size = _positive_int(batch_size, "batch_size")
  max_length = _positive_int(max_length, "max_length")
  return tuple(model.init_cache(batch_size, max_length, dtype))


def cache_bytes(cache: Any) -> int:
  """Total bytes held by the arrays of `cache` (works on `jax.ShapeDtypeStruct`s too)."""
  total = 0
  for leaf in jax.tree_util.tree_leaves(cache):
    total += int(np.prod(leaf.shape, dtype=np.int64)) * np.dtype(leaf.dtype).itemsize
  return total
