"""Chunked prefill: a prompt block fed into the cache a chunk of tokens at a time.

One forward over a `[B, P]` prompt block attends every prompt token to every cache slot at
once: dense attention holds `B * heads * P * S` scores (S = cache slots), 16 GiB in float32
for a 4-head model at P = S = 32k. Feeding the block in chunks of C tokens, each chunk a
forward on the cache the earlier chunks wrote, bounds that to `B * heads * C * S` and gives
the same cache and the same last-position hidden states: slot == position, causality on
positions hides the slots a chunk has not written yet, and recurrent mixers carry their state
in the cache from one chunk to the next exactly as they do from prefill to decode. This is
the chunked prefill of serving systems (vLLM, MaxText's prefill chunking), used here to
prefill long contexts (32k and beyond) on a host whose memory one dense forward exceeds.

`forward_last(model, cache, tokens, positions, valid, last_index, chunk)` runs the forward,
whole (`chunk` 0 or >= P) or chunked: the full chunks in a `lax.fori_loop` (one traced
forward however long the prompt), the remainder of 1 .. C tokens in a second forward. It
returns each row's hidden state at `last_index` (the row's last real prompt token, which may
fall in any chunk when rows have different lengths) and the filled cache.
"""

from __future__ import annotations

import operator
from typing import Any

import jax
import jax.numpy as jnp


def check_prefill_chunk(value: Any) -> int:
  """`prefill_chunk` as a static int: None / 0 = one forward over the whole prompt block."""
  if value is None:
    return 0
  if not isinstance(value, bool):
    try:
      chunk = operator.index(value)
    except TypeError:
      chunk = None
    if chunk is not None and chunk >= 0:
      return chunk
  raise ValueError(
    f"prefill_chunk must be None (the whole prompt in one forward) or an int >= 1 (prompt "
    f"tokens per prefill forward), got {value!r}"
  )


def _hidden_at(hidden: jax.Array, index: jax.Array) -> jax.Array:
  """`hidden[b, index[b]]` -> `[B, H]` (`index` clipped into `[0, T)`)."""
  index = jnp.clip(index, 0, hidden.shape[1] - 1)
  return jnp.take_along_axis(hidden, index[:, None, None], axis=1)[:, 0]


def forward_last(
  model: Any,
  cache: Any,
  tokens: jax.Array,
  positions: jax.Array,
  valid: jax.Array,
  last_index: jax.Array,
  chunk: int,
) -> tuple[jax.Array, Any]:
  """(`[B, H]` hidden states at `last_index`, the cache) after feeding `tokens` `[B, P]` at
  `positions` `[B, P]` (`valid` `[B, P]` False on padding), `chunk` tokens per forward."""
  p = tokens.shape[1]
  if not chunk or chunk >= p:
    hidden, cache = model.forward(tokens, positions=positions, attention_mask=valid, cache=cache)
    return _hidden_at(hidden, last_index), cache
  full = (p - 1) // chunk  # Full chunks in the loop; the remainder (1 .. chunk tokens) after.

  def piece(array, start, size):
    return jax.lax.dynamic_slice_in_dim(array, start, size, axis=1)

  def body(i, carry):
    cache, last = carry
    start = i * chunk
    hidden, cache = model.forward(
      piece(tokens, start, chunk),
      positions=piece(positions, start, chunk),
      attention_mask=piece(valid, start, chunk),
      cache=cache,
    )
    local = last_index - start
    inside = (local >= 0) & (local < chunk)
    return cache, jnp.where(inside[:, None], _hidden_at(hidden, local).astype(last.dtype), last)

  width = model.config.hidden_size
  last = jnp.zeros((tokens.shape[0], width), model.dtype)
  cache, last = jax.lax.fori_loop(0, full, body, (cache, last))
  start = full * chunk
  hidden, cache = model.forward(
    tokens[:, start:], positions=positions[:, start:], attention_mask=valid[:, start:], cache=cache
  )
  local = last_index - start
  here = _hidden_at(hidden, local)
  return jnp.where((local >= 0)[:, None], here, last.astype(here.dtype)), cache
