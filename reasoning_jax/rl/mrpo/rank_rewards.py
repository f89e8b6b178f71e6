"""MRPO Stage II: effective rank, trajectory rank, NormRank and the rank-aware reward.

Paper: "Beyond Alignment: Expanding Reasoning Capacity via Manifold-Reshaping Policy
Optimization", Dayu Wang, Jiaye Yang, Weikang Li, Jiahui Liang, Yang Li,
arXiv 2602.02545 (2026).

`R(y) = 1[y correct] * (1 + alpha * NormRank(y))`, where `rank(y)` is the minimum (or mean)
effective rank over sliding windows of the response's last-layer hidden states; plain GRPO
advantages ("DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language
Models", arXiv 2402.03300) are then computed from R (`ADVANTAGES["mrpo"]`, registered here).

Effective rank (Roy & Vetterli, "The effective rank: A measure of effective
dimensionality", EUSIPCO 2007): centre the rows of a window, take its singular
values s (float32, values < 1e-10 dropped), `p_i = s_i / sum_j s_j` (singular values,
not squared) and `erank = exp(-sum_i p_i log p_i)`; an all-zero centred window has
erank 1. Rank features feed only the reward, so every output is under
`jax.lax.stop_gradient`.

Token-level base estimators (broadcast rule). The rank bonus is a sequence reward, so with
a token-level `base_estimator` (`token_grpo`, `token_rloo` of
`reasoning_jax.rl.token_advantages`) `ADVANTAGES["mrpo"]` puts it on each response's last
valid token: `[N]` rewards become `R(y)` placed on the last token
(`sequence_to_token_rewards`); `[N, T]` token rewards are kept and
`1[correct] * alpha * NormRank` is added on the last token, where a response is correct
when its sequence reward (the masked token sum) is `> 0`. With 0/1 sparse token rewards
the two give the same advantages. `[N, T]` rewards with a sequence-level base estimator
are an error (`rewards`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from reasoning_jax.rl.advantages import ADVANTAGES, Groups, make_groups
from reasoning_jax.rl.token_advantages import (
  TOKEN_LEVEL_ESTIMATORS,
  is_token_level,
  sequence_to_token_rewards,
)
from reasoning_jax.rl.mrpo.config import (
  NORM_RANGE_FLOOR,
  NORM_SCOPES,
  RANK_REDUCTIONS,
  SINGULAR_VALUE_FLOOR,
  DEFAULT_CONFIG,
  MRPOConfig,
  check_config,
)
from reasoning_jax.validation import (
  check_array,
  check_choice,
  check_finite_float,
  check_finite_where,
  check_mask,
  check_positive_int,
  shape_of,
)


class MRPORewards(NamedTuple):
  """Output of `mrpo_rewards` (all detached): `[N]` rewards, raw ranks, NormRank."""

  rewards: jax.Array
  rank: jax.Array
  norm_rank: jax.Array


def _erank_core(rows: jax.Array, row_valid: jax.Array) -> jax.Array:
  """erank of `rows [..., w, d]` over rows where `row_valid [..., w]`; trusts inputs."""
  rows = rows.astype(jnp.float32)
  valid = row_valid[..., None]
  rows = jnp.where(valid, rows, 0.0)  # Padding (even NaN) never reaches the arithmetic.
  count = jnp.maximum(jnp.sum(row_valid, axis=-1), 1).astype(jnp.float32)
  # Centring is shift invariant; subtracting the first valid row first makes a window
  # of identical rows centre to exact zeros (its float mean need not equal the row).
  first = jnp.argmax(row_valid, axis=-1)
  ref = jnp.take_along_axis(rows, first[..., None, None], axis=-2)
  rows = jnp.where(valid, rows - ref, 0.0)
  mean = jnp.sum(rows, axis=-2, keepdims=True) / count[..., None, None]
  centred = jnp.where(valid, rows - mean, 0.0)  # Zero rows leave singular values unchanged.
  s = jnp.linalg.svd(centred, compute_uv=False)
  keep = s >= SINGULAR_VALUE_FLOOR
  s = jnp.where(keep, s, 0.0)
  total = jnp.sum(s, axis=-1, keepdims=True)
  safe_total = jnp.where(total > 0, total, 1.0)
  p = s / safe_total
  safe_p = jnp.where(keep, p, 1.0)
  entropy = -jnp.sum(jnp.where(keep, p * jnp.log(safe_p), 0.0), axis=-1)
  return jnp.where(total[..., 0] > 0, jnp.exp(entropy), 1.0)


_erank_jit = jax.jit(_erank_core)


def effective_rank(window: jax.Array, row_mask: jax.Array | None = None) -> jax.Array:
  """Effective rank (Roy & Vetterli 2007) of the rows of `window`, as used by MRPO.

  Rows are centred, singular values < 1e-10 dropped, `p = s / sum(s)`,
  `erank = exp(H(p))`; a window whose centred rows are all zero (identical rows, a
  single row, no valid row) has erank 1.

  Args:
    window: `[..., w, d]` hidden states (computed in float32).
    row_mask: optional `[..., w]` 1 on rows that belong to the window; other rows
      (padding) never enter the mean or the SVD and may hold anything.

  Returns:
    `[...]` float32 effective ranks in [1, min(w, d)].
  """
  check_array(window, "window", tuple(range(2, 8)), floating=True)
  if row_mask is None:
    row_mask = jnp.ones(window.shape[:-1], bool)
  check_mask(row_mask, "row_mask", window.shape[:-1], "window[..., 0]")
  check_finite_where(window, row_mask, "window")
  return _erank_jit(window, jnp.asarray(row_mask) != 0)


def _row_trajectory_rank(
  hidden: jax.Array, valid: jax.Array, window: int, stride: int, reduction: str
) -> jax.Array:
  """min/mean window erank of one response `hidden [T, d]` with `valid [T]`."""
  t = hidden.shape[0]
  # Compact the valid rows to the front (stable, so token order is kept): windows
  # then slide over the response alone and never straddle padding.
  order = jnp.argsort(~valid, stable=True)
  compact = hidden[order]
  length = jnp.sum(valid)
  size = min(window, t)
  num_windows = 1 if t <= size else (t - size) // stride + 1
  starts = jnp.arange(num_windows) * stride
  index = starts[:, None] + jnp.arange(size)[None, :]  # [num_windows, size], all < t.
  rows = compact[index]
  row_valid = index < length
  full = starts + window <= length
  whole = (starts == 0) & (length < window)  # Shorter than a window: the whole response.
  window_valid = (full | whole) & (length > 0)
  ranks = _erank_core(rows, row_valid)
  if reduction == "min":
    value = jnp.min(jnp.where(window_valid, ranks, jnp.inf))
  else:
    value = jnp.sum(jnp.where(window_valid, ranks, 0.0)) / jnp.maximum(jnp.sum(window_valid), 1)
  return jnp.where(jnp.any(window_valid), value, 1.0)


@functools.partial(jax.jit, static_argnames=("window", "stride", "reduction", "row_batch_size"))
def _trajectory_rank_core(
  hidden: jax.Array,
  valid: jax.Array,
  window: int,
  stride: int,
  reduction: str,
  row_batch_size: int | None,
) -> jax.Array:
  hidden = jax.lax.stop_gradient(hidden)
  fn = lambda hv: _row_trajectory_rank(hv[0], hv[1], window, stride, reduction)
  if row_batch_size is None:
    ranks = jax.vmap(fn)((hidden, valid))
  else:
    ranks = jax.lax.map(fn, (hidden, valid), batch_size=row_batch_size)
  return jax.lax.stop_gradient(ranks)


def trajectory_rank(
  hidden: jax.Array,
  mask: jax.Array,
  *,
  window: int = 64,
  stride: int | None = None,
  reduction: str = "min",
  row_batch_size: int | None = None,
) -> jax.Array:
  """MRPO `rank(y)`: min (or mean) erank over sliding windows of each response.

  Windows have `window` valid tokens and start at 0, stride, 2*stride, ... while
  they fit in the response (the usual unfold semantics: tokens after the last full
  window are not covered); a response with fewer than `window` valid tokens is one
  window. Padding is removed before windowing (left, right or interior padding all
  give the same result), so no window ever contains a padding row.

  Args:
    hidden: `[N, T, d]` last-layer hidden states of the response positions.
    mask: `[N, T]` 1 on valid response tokens.
    window: DESIGN CHOICE default 64.
    stride: default `window // 2`.
    reduction: "min" (DESIGN CHOICE default) or "mean".
    row_batch_size: memory knob, not a hyper-parameter: None processes all rows at
      once (peak ~ N * num_windows * window * d floats); an int processes that many
      rows per step (`jax.lax.map`). Same values either way.

  Returns:
    `[N]` float32 ranks, detached; an empty response gets 1.
  """
  check_array(hidden, "hidden", 3, floating=True)
  check_mask(mask, "mask", hidden.shape[:2], "hidden[:, :, 0]")
  check_positive_int(window, "window")
  stride = window // 2 if stride is None else stride
  check_positive_int(stride, "stride")
  check_choice(reduction, RANK_REDUCTIONS, "reduction")
  if row_batch_size is not None:
    check_positive_int(row_batch_size, "row_batch_size")
  check_finite_where(hidden, mask, "hidden")
  return _trajectory_rank_core(
    hidden, jnp.asarray(mask) != 0, window, stride, reduction, row_batch_size
  )


def normalize_rank(
  rank: jax.Array,
  *,
  valid: jax.Array | None = None,
  scope: str = "batch",
  group_size: int | None = None,
  group_ids: jax.Array | None = None,
) -> jax.Array:
  """`NormRank = (rank - min rank) / (max rank - min rank)`, 0 when the range < 1e-8.

  Args:
    rank: `[N]` ranks.
    valid: optional `[N]` rows that take part (e.g. non-empty responses); others
      neither set the min/max nor get a non-zero NormRank, and may hold NaN.
    scope: "batch" (DESIGN CHOICE default, as reported) or "group" (per prompt).
    group_size / group_ids: the grouping for scope="group", exactly one (as in
      `reasoning_jax.rl.advantages`); ignored for scope="batch".

  Returns:
    `[N]` float32 in [0, 1], detached.
  """
  check_array(rank, "rank", 1, floating=True)
  check_choice(scope, NORM_SCOPES, "scope")
  n = rank.shape[0]
  if valid is None:
    valid = jnp.ones((n,), bool)
  check_mask(valid, "valid", (n,), "rank")
  check_finite_where(rank, valid, "rank")
  if scope == "group":
    groups = make_groups(n, group_ids=group_ids, group_size=group_size)
  else:
    groups = Groups(index=jnp.zeros((n,), jnp.int32), num_groups=1)
  return _normalize_rank_core(rank, jnp.asarray(valid) != 0, groups)


@jax.jit
def _normalize_rank_core(rank: jax.Array, valid: jax.Array, groups: Groups) -> jax.Array:
  r = jnp.where(valid, jax.lax.stop_gradient(rank).astype(jnp.float32), 0.0)
  lo = jax.ops.segment_min(
    jnp.where(valid, r, jnp.inf), groups.index, num_segments=groups.num_groups
  )
  hi = jax.ops.segment_max(
    jnp.where(valid, r, -jnp.inf), groups.index, num_segments=groups.num_groups
  )
  lo, spread = groups.broadcast(lo), groups.broadcast(hi - lo)
  ok = valid & (spread >= NORM_RANGE_FLOOR)
  out = jnp.where(ok, (r - jnp.where(ok, lo, 0.0)) / jnp.where(ok, spread, 1.0), 0.0)
  return jax.lax.stop_gradient(jnp.clip(out, 0.0, 1.0))


def rank_aware_rewards(
  correct: jax.Array, norm_rank: jax.Array, *, alpha: float = 0.5, valid: jax.Array | None = None
) -> jax.Array:
  """MRPO reward `R = 1[correct] * (1 + alpha * NormRank)`.

  Incorrect responses get 0 whatever their rank (the rank is a bonus, never a
  substitute for correctness). With `alpha = 0` the result is exactly the 0/1
  correctness, so GRPO advantages from it equal GRPO on 0/1 rewards bitwise.

  Args:
    correct: `[N]` bool, or outcome rewards read as correct where `> 0`.
    norm_rank: `[N]` NormRank in [0, 1].
    alpha: bonus weight (spec default 0.5).
    valid: optional `[N]` rows that exist; other rows get reward 0 (and may hold NaN).

  Returns:
    `[N]` float32 rewards, detached.
  """
  check_array(norm_rank, "norm_rank", 1, floating=True)
  n = norm_rank.shape[0]
  if not hasattr(correct, "shape") or tuple(correct.shape) != (n,):
    raise ValueError(f"correct must have shape [N]=({n},), got {shape_of(correct)}")
  check_finite_float(alpha, "alpha")
  if valid is None:
    valid = jnp.ones((n,), bool)
  check_mask(valid, "valid", (n,), "norm_rank")
  check_finite_where(correct, valid, "correct")
  check_finite_where(norm_rank, valid, "norm_rank")
  return _rank_aware_rewards_core(jnp.asarray(correct), norm_rank, jnp.asarray(valid) != 0, alpha)


@jax.jit
def _rank_aware_rewards_core(
  correct: jax.Array, norm_rank: jax.Array, valid: jax.Array, alpha: Any
) -> jax.Array:
  is_correct = (valid & (correct > 0)).astype(jnp.float32)
  bonus = 1.0 + alpha * jnp.where(valid, norm_rank.astype(jnp.float32), 0.0)
  return jax.lax.stop_gradient(is_correct * bonus)


def mrpo_rewards(
  correct: jax.Array,
  hidden: jax.Array,
  mask: jax.Array,
  *,
  group_size: int | None = None,
  group_ids: jax.Array | None = None,
  valid: jax.Array | None = None,
  config: MRPOConfig = DEFAULT_CONFIG,
) -> MRPORewards:
  """Stage II rewards: window ranks -> NormRank -> `1[correct] * (1 + alpha * NormRank)`.

  Feed `.rewards` to a plain GRPO group advantage (or use `ADVANTAGES["mrpo"]`).
  Empty responses (no valid token) and invalid rows are left out of the NormRank
  min/max.

  Args:
    correct: `[N]` bool, or outcome rewards (correct where `> 0`).
    hidden: `[N, T, d]` last-layer hidden states from a no-grad forward.
    mask: `[N, T]` response mask.
    group_size / group_ids: the grouping; needed only for `config.norm_scope == "group"`.
    valid: optional `[N]` rows that exist (others get reward 0).
    config: `MRPOConfig`.
  """
  check_config(config)
  rank = trajectory_rank(
    hidden,
    mask,
    window=config.window,
    stride=config.window_stride,
    reduction=config.rank_reduction,
    row_batch_size=config.rank_row_batch_size,
  )
  nonempty = jnp.any(jnp.asarray(mask) != 0, axis=-1)
  if valid is not None:
    check_mask(valid, "valid", hidden.shape[:1], "hidden[:, 0, 0]")
    nonempty = nonempty & (jnp.asarray(valid) != 0)
  if config.norm_scope == "batch":
    group_size = group_ids = None
  norm = normalize_rank(
    rank, valid=nonempty, scope=config.norm_scope, group_size=group_size, group_ids=group_ids
  )
  rewards = rank_aware_rewards(correct, norm, alpha=config.alpha, valid=valid)
  return MRPORewards(rewards, rank, norm)


@ADVANTAGES.register("mrpo")
def mrpo_group_advantages(
  rewards: jax.Array,
  *,
  group_ids: jax.Array | None = None,
  group_size: int | None = None,
  valid: jax.Array | None = None,
  hidden: jax.Array,
  mask: jax.Array,
  config: MRPOConfig = DEFAULT_CONFIG,
  base_estimator: str = "grpo",
  **base_options: Any,
) -> jax.Array:
  """`ADVANTAGES["mrpo"]`: rank-aware rewards (Stage II), then plain GRPO advantages.

  Same signature as the other estimators in `reasoning_jax.rl.advantages` plus the
  hidden states; `rewards > 0` defines correctness. With `config.alpha = 0` this
  equals `ADVANTAGES["grpo"]` on 0/1 rewards exactly. `base_options` (e.g. `ddof`,
  `eps`) go to the base estimator.

  With a token-level `base_estimator` the result is `[N, T]` and `rewards` may be `[N]`
  or `[N, T]` token rewards (the rank bonus goes on the last token; module docstring).
  """
  if base_estimator in ("arm", "mrpo"):
    raise ValueError(f"base_estimator={base_estimator!r} must be a plain estimator, e.g. 'grpo'")
  ADVANTAGES.validate(base_estimator, argument="base_estimator")
  token_level = is_token_level(base_estimator)
  dense = hasattr(rewards, "ndim") and rewards.ndim == 2
  if dense and not token_level:
    raise ValueError(
      f"rewards must be [N] sequence rewards for base_estimator={base_estimator!r}, got "
      f"shape {tuple(rewards.shape)}; [N, T] token rewards need a token-level "
      f"base_estimator ({sorted(TOKEN_LEVEL_ESTIMATORS)})"
    )
  correct = rewards
  if dense:
    check_mask(mask, "mask", rewards.shape, "rewards")
    correct = jnp.sum(jnp.where(jnp.asarray(mask) != 0, rewards.astype(jnp.float32), 0.0), -1)
  shaped = mrpo_rewards(
    correct, hidden, mask, group_size=group_size, group_ids=group_ids, valid=valid, config=config
  )
  shaped_rewards = shaped.rewards
  if dense:
    bonus = jnp.where(correct > 0, config.alpha * shaped.norm_rank, 0.0)
    shaped_rewards = rewards + sequence_to_token_rewards(bonus, mask, valid=valid)
  elif token_level:
    shaped_rewards = sequence_to_token_rewards(shaped_rewards, mask, valid=valid)
  if token_level:
    base_options = dict(base_options, mask=mask)
  return ADVANTAGES.get(base_estimator)(
    shaped_rewards, group_ids=group_ids, group_size=group_size, valid=valid, **base_options
  )
