"""DAPO's data-side pieces (rl.md 1.3): overlong handling and dynamic sampling; not losses.

DAPO: An Open-Source LLM Reinforcement Learning System at Scale, arXiv 2503.14476. Pure
functions of rewards, masks and lengths, applied to a rollout batch before the loss:
`response_lengths` and `soft_overlong_punishment` (a reward term from token counts),
`overlong_filter` (drop truncated rows from the loss), `dynamic_sampling_filter` and
`select_kept_groups` (keep only groups with mixed outcomes, then refill the batch).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from reasoning_jax.rl.advantages import _check_group_inputs, group_all_equal, group_count
from reasoning_jax.rl.advantages import _prepare as _prepare_groups
from reasoning_jax.validation import as_array, as_mask, check_scalar

__all__ = [
  "DynamicSamplingResult",
  "dynamic_sampling_filter",
  "overlong_filter",
  "response_lengths",
  "select_kept_groups",
  "soft_overlong_punishment",
]


def response_lengths(mask: jax.Array) -> jax.Array:
  """`|o_i|` = number of completion tokens per row `[N]` (int32) from a `[N, T]` mask."""
  mask = as_mask(mask, "mask", ndim=2)
  return jnp.sum(mask.astype(bool), axis=-1).astype(jnp.int32)


def soft_overlong_punishment(
  lengths: jax.Array, *, max_length: int = 20480, cache_length: int = 4096
) -> jax.Array:
  """DAPO soft overlong punishment `R_len(|y|)` `[N]` float32, from token counts.

  `0` if `|y| <= L_max - L_cache`; `((L_max - L_cache) - |y|) / L_cache` if
  `L_max - L_cache < |y| <= L_max`; `-1` if `|y| > L_max`. Added to the correctness
  reward. Defaults L_max = 20480, L_cache = 4096 (DAPO's reported setup).
  DAPO: An Open-Source LLM Reinforcement Learning System at Scale, arXiv 2503.14476.

  Args:
    lengths: `[N]` integer response lengths (`response_lengths(mask)`).
  """
  check_scalar(max_length, "max_length", low=1, integer=True)
  check_scalar(cache_length, "cache_length", low=1, integer=True)
  if cache_length > max_length:
    raise ValueError(f"cache_length={cache_length} must be <= max_length={max_length}")
  lengths = as_array(lengths, "lengths", ndim=1, kind="number")
  expected = max_length - cache_length
  ln = lengths.astype(jnp.float32)
  ramp = (expected - ln) / cache_length
  return jnp.where(ln <= expected, 0.0, jnp.where(ln <= max_length, ramp, -1.0))


def overlong_filter(mask: jax.Array, truncated: jax.Array) -> jax.Array:
  """DAPO overlong filtering: zero the mask of truncated rows so they leave the loss.

  With every aggregation mode they then drop out of both the sum and the denominator.
  Args: `mask [N, T]`; `truncated [N]` bool (the row hit the length limit without EOS).
  """
  mask = as_mask(mask, "mask", ndim=2)
  truncated = as_mask(truncated, "truncated", shape=mask.shape[:1]).astype(bool)
  return jnp.where(truncated[:, None], jnp.zeros((), mask.dtype), mask)


class DynamicSamplingResult(NamedTuple):
  """`group_keep [num_groups]` (dense group order, see `Groups`) and `row_keep [N]`."""

  group_keep: jax.Array
  row_keep: jax.Array


def dynamic_sampling_filter(
  rewards: jax.Array,
  *,
  group_ids: jax.Array | None = None,
  group_size: int | None = None,
  valid: jax.Array | None = None,
) -> DynamicSamplingResult:
  """DAPO dynamic sampling: keep only groups with mixed outcomes (`0 < #correct < G`).

  A group is kept iff it has valid rows and its valid rewards are not all equal (for 0/1
  correctness that is exactly `0 < #correct < G`; pass the correctness, not a shaped
  reward, to follow DAPO literally). Pure: the caller over-samples prompts, filters, and
  refills the batch (`select_kept_groups`). rl.md 1.3, arXiv 2503.14476.

  Returns:
    `DynamicSamplingResult(group_keep, row_keep)`; with `group_size`, `group_keep` is in
    prompt order (`[N // G]`); with `group_ids`, groups are ordered by ascending id
    (`[N]`, trailing empty slots False).
  """
  rewards, group_ids, group_size, valid = _check_group_inputs(rewards, group_ids, group_size, valid)
  return _dynamic_sampling_core(rewards, group_ids, valid, group_size=group_size)


@functools.partial(jax.jit, static_argnames=("group_size",))
def _dynamic_sampling_core(rewards, group_ids, valid, *, group_size):
  rewards, groups, valid = _prepare_groups(rewards, group_ids, group_size, valid)
  nonempty = group_count(groups, valid) > 0
  keep = nonempty & ~group_all_equal(rewards, groups, valid)
  return DynamicSamplingResult(group_keep=keep, row_keep=groups.broadcast(keep) & valid)


def select_kept_groups(group_keep: jax.Array, num_groups: int) -> tuple[jax.Array, jax.Array]:
  """Indices of the first `num_groups` kept groups (stable), for refilling a batch.

  Returns `(indices [num_groups] int32, filled [num_groups] bool)`; `filled[k]` is False
  when fewer than `k + 1` groups were kept (sample more prompts). jit-compatible.
  """
  check_scalar(num_groups, "num_groups", low=1, integer=True)
  group_keep = as_mask(group_keep, "group_keep", ndim=1)
  num_groups = int(num_groups)
  if num_groups > group_keep.shape[0]:
    raise ValueError(
      f"num_groups={num_groups} exceeds the number of groups {group_keep.shape[0]} in group_keep"
    )
  return _select_core(group_keep.astype(bool), num_groups=num_groups)


@functools.partial(jax.jit, static_argnames=("num_groups",))
def _select_core(group_keep, *, num_groups):
  order = jnp.argsort(~group_keep, stable=True)[:num_groups].astype(jnp.int32)
  filled = jnp.arange(num_groups) < jnp.sum(group_keep)
  return order, filled
