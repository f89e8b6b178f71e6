"""Token-level group advantages for dense (per-token) rewards: `[N, T]` in, `[N, T]` out.

Grad2Reward: From Sparse Judgment to Dense Rewards for Improving Open-Ended LLM Reasoning
(Zhang et al.), arXiv 2602.01791; rl.md sections 6.3-6.4. The judge's token rewards
`r [N, T]` become returns-to-go (gamma = 1) `R_{i,t} = sum_{s >= t} mask_{i,s} r_{i,s}`,
which are normalised over ALL valid tokens of ALL responses of the group.

Layout and grouping as in `reasoning_jax.rl.advantages`: `N` rows (responses) padded to
`T` tokens; `group_size=G` (contiguous rows) or `group_ids [N]`; `valid [N]` marks real
rows. `mask [N, T]` (required keyword) is 1 on response tokens; a token counts when its
row is valid and its mask is 1. Rewards at other positions are ignored (may be NaN).

Estimators (registered in `ADVANTAGES`; `fn(rewards [N, T], *, mask, group_ids=None,
group_size=None, valid=None, **options) -> [N, T]`):

| name | advantage | source |
|---|---|---|
| `token_grpo` | `(R_{i,t} - mean_g R) / (std_g R + eps)`, stats over the group's tokens | Grad2Reward (arXiv 2602.01791), rl.md 6.3 |
| `token_rloo` | `R_{i,t} - mean_{j in g, j != i; s} R_{j,s}` | Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human Feedback in LLMs (arXiv 2402.14740) |

DESIGN CHOICES (flags, defaults):
  ddof=0      population std over tokens (rl.md 6.4: "ddof=0 here since it is over many
              tokens"); the sequence-level `grpo` keeps ddof=1.
  eps=1e-6    added to the std (rl.md section 0).
  token_rloo baseline: the token mean of R over ALL valid tokens of the OTHER valid rows
              of the group (tokens pooled, so longer responses weigh more, as in
              token_grpo's pooled statistics); no std division. Rl.md 6.3 only says
              Grad2Reward "works unchanged with RLOO-style baselines". A row whose group
              has no other token gets 0.

Sparse rewards: `sequence_to_token_rewards(rewards [N], mask)` puts each sequence reward on
its last valid token, so its return-to-go is the sequence reward on every valid token and
the token estimators apply unchanged.

Guarantees: output is float32 (or wider for wider rewards), exactly 0 on masked tokens,
invalid rows and groups whose valid token returns are all equal (detected exactly, max ==
min, as in `reasoning_jax.rl.advantages`), and under `stop_gradient`. Static shapes and
segment sums only, so every function traces under `jax.jit`. With `group_size`, at least
2 rows per group are required (as for the sequence estimators).

Errors (ValueError naming the argument): `rewards` not 2-D `[N, T]` (the message points to
`sequence_to_token_rewards`), an empty `rewards`, `mask`/`valid` of the wrong shape or not
0/1, a NaN/inf reward at a counted token, the grouping errors of
`reasoning_jax.rl.advantages`. Value checks run eagerly on concrete inputs only.

`TOKEN_LEVEL_ESTIMATORS` / `is_token_level(name, base_estimator=...)` tell a caller (the
trainer) that an estimator wants `[N, T]` rewards and `mask`, and returns `[N, T]`.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from reasoning_jax.rl.advantages import ADVANTAGES, Groups, make_groups
from reasoning_jax.rl.aggregation import compute_dtype
from reasoning_jax.validation import (
  as_array,
  as_mask,
  check_finite,
  check_positive_int,
  check_scalar,
  concrete_values,
)

__all__ = [
  "TOKEN_LEVEL_ESTIMATORS",
  "is_token_level",
  "returns_to_go",
  "sequence_to_token_rewards",
  "token_grpo_advantages",
  "token_rloo_advantages",
]

TOKEN_LEVEL_ESTIMATORS = frozenset({"token_grpo", "token_rloo"})


def is_token_level(name: str, *, base_estimator: str | None = None) -> bool:
  """True when the estimator `name` takes `[N, T]` token rewards plus `mask` and returns
  `[N, T]` advantages. Composite estimators (arm, mrpo) are token-level exactly when
  their `base_estimator` is: pass it."""
  return name in TOKEN_LEVEL_ESTIMATORS or base_estimator in TOKEN_LEVEL_ESTIMATORS


# ------------------------------------------------------------------------------ checks


def _check_token_inputs(rewards: Any, mask: Any, valid: Any, estimator: str):
  """Eager checks; returns `(rewards [N, T], mask [N, T], valid [N] | None)` untransformed."""
  if hasattr(rewards, "ndim") and rewards.ndim == 1:
    raise ValueError(
      f"{estimator}: rewards must be 2-D token rewards [N, T], got shape {tuple(rewards.shape)}; "
      "put sequence rewards [N] on the last token with sequence_to_token_rewards(rewards, mask)"
    )
  rewards = as_array(rewards, "rewards", ndim=2, kind="number")
  if rewards.size == 0:
    raise ValueError(f"rewards is empty (shape {tuple(rewards.shape)}): need N, T >= 1")
  mask = as_mask(mask, "mask", shape=tuple(rewards.shape))
  if valid is not None:
    valid = as_mask(valid, "valid", shape=rewards.shape[:1])
  counted = concrete_values(mask)
  if counted is not None:
    counted = counted != 0
    if valid is not None:
      rows = concrete_values(valid)
      counted = None if rows is None else counted & (rows != 0)[:, None]
  if counted is not None:
    check_finite(rewards, "rewards", where=counted)
  return rewards, mask, valid


def _checked_groups(num_rows: int, group_ids: Any, group_size: Any) -> Groups:
  groups = make_groups(num_rows, group_ids=group_ids, group_size=group_size)
  if group_size is not None:
    try:
      check_positive_int(group_size, "group_size", minimum=2)
    except ValueError as e:
      raise ValueError(
        f"{e}: group-relative advantages need at least 2 samples per group"
      ) from None
  return groups


# ------------------------------------------------------------------------------ cores


def _returns(rewards: jax.Array, counted: jax.Array) -> jax.Array:
  """Return-to-go with gamma = 1 over counted tokens; 0 elsewhere."""
  r = jnp.where(counted, rewards, 0)
  return jnp.where(counted, jnp.flip(jnp.cumsum(jnp.flip(r, -1), axis=-1), -1), 0)


def _prepare(rewards, mask, valid):
  n = rewards.shape[0]
  valid = jnp.ones((n,), bool) if valid is None else valid.astype(bool)
  counted = mask.astype(bool) & valid[:, None]
  dtype = compute_dtype(rewards)
  returns = _returns(jax.lax.stop_gradient(rewards).astype(dtype), counted)
  return returns, counted


def _group_token_stats(returns, counted, groups: Groups):
  """Per-row `(row_sum, row_count)` and per-group `(sum, count, all_equal)` of the returns."""
  row_sum = jnp.sum(returns, axis=-1)
  row_count = jnp.sum(counted, axis=-1).astype(returns.dtype)
  seg = functools.partial(jax.ops.segment_sum, segment_ids=groups.index)
  total = seg(row_sum, num_segments=groups.num_groups)
  count = seg(row_count, num_segments=groups.num_groups)
  inf = jnp.asarray(jnp.inf, returns.dtype)
  hi = jax.ops.segment_max(
    jnp.max(jnp.where(counted, returns, -inf), -1), groups.index, num_segments=groups.num_groups
  )
  lo = jax.ops.segment_min(
    jnp.min(jnp.where(counted, returns, inf), -1), groups.index, num_segments=groups.num_groups
  )
  return row_sum, row_count, total, count, hi == lo


def _finish(adv, counted, constant_row):
  return jax.lax.stop_gradient(jnp.where(counted & ~constant_row[:, None], adv, 0))


@functools.partial(jax.jit, static_argnames=("ddof", "eps"))
def _token_grpo_core(rewards, mask, valid, groups, *, ddof, eps):
  returns, counted = _prepare(rewards, mask, valid)
  _, _, total, count, constant = _group_token_stats(returns, counted, groups)
  mean = groups.broadcast(total / jnp.maximum(count, 1))[:, None]
  centered = jnp.where(counted, returns - mean, 0)
  sq = jax.ops.segment_sum(
    jnp.sum(jnp.square(centered), -1), groups.index, num_segments=groups.num_groups
  )
  std = groups.broadcast(jnp.sqrt(sq / jnp.maximum(count - ddof, 1)))[:, None]
  return _finish(centered / (std + eps), counted, groups.broadcast(constant))


@jax.jit
def _token_rloo_core(rewards, mask, valid, groups):
  returns, counted = _prepare(rewards, mask, valid)
  row_sum, row_count, total, count, constant = _group_token_stats(returns, counted, groups)
  others = groups.broadcast(count) - row_count
  baseline = (groups.broadcast(total) - row_sum) / jnp.maximum(others, 1)
  no_others = others <= 0
  return _finish(returns - baseline[:, None], counted, groups.broadcast(constant) | no_others)


@jax.jit
def _returns_core(rewards, mask):
  counted = mask.astype(bool)
  return _returns(rewards.astype(compute_dtype(rewards)), counted)


@jax.jit
def _place_core(rewards, mask, valid):
  t = mask.shape[-1]
  tokens = mask.astype(bool)
  last = t - 1 - jnp.argmax(jnp.flip(tokens, -1), axis=-1)
  has_token = jnp.any(tokens, -1) & valid
  values = jnp.where(has_token, rewards.astype(compute_dtype(rewards)), 0)
  onehot = (jnp.arange(t)[None, :] == last[:, None]) & has_token[:, None]
  return jnp.where(onehot, values[:, None], 0)


# ------------------------------------------------------------------------------ public


def returns_to_go(rewards: jax.Array, mask: jax.Array) -> jax.Array:
  """`R_{i,t} = sum_{s >= t} mask_{i,s} r_{i,s}` (gamma = 1), 0 on masked tokens.

  Args:
    rewards: `[N, T]` token rewards; masked positions may hold anything.
    mask: `[N, T]` 1 on response tokens.

  Returns:
    `[N, T]` float32 (or wider) returns.
  """
  rewards, mask, _ = _check_token_inputs(rewards, mask, None, "returns_to_go")
  return _returns_core(rewards, mask)


def sequence_to_token_rewards(
  rewards: jax.Array, mask: jax.Array, *, valid: jax.Array | None = None
) -> jax.Array:
  """Places each sequence reward `[N]` on the last valid token of its row -> `[N, T]`.

  The return-to-go of the result is the sequence reward on every valid token of the row,
  so sparse outcome rewards go through `token_grpo` / `token_rloo` unchanged. Left, right
  or interior padding all work (the last position with mask 1 is used).

  Args:
    rewards: `[N]` sequence rewards (bool/int/float).
    mask: `[N, T]` 1 on response tokens.
    valid: optional `[N]` rows that exist; other rows get all zeros and may hold NaN.

  Returns:
    `[N, T]` float32 (or wider) token rewards, 0 everywhere but the last valid token.

  Raises:
    ValueError: shapes, a non-finite reward of a valid row, or a valid row with a non-zero
      reward and no token to carry it (mark such rows invalid).
  """
  rewards = as_array(rewards, "rewards", ndim=1, kind="number")
  mask = as_mask(mask, "mask", ndim=2)
  if mask.shape[0] != rewards.shape[0]:
    raise ValueError(
      f"mask must have shape [N, T] with N={rewards.shape[0]} (rows of rewards), "
      f"got {tuple(mask.shape)}"
    )
  if valid is not None:
    valid = as_mask(valid, "valid", shape=rewards.shape)
  check_finite(rewards, "rewards", where=valid)
  values, tokens = concrete_values(rewards), concrete_values(mask)
  rows = np.ones(rewards.shape, bool) if valid is None else concrete_values(valid)
  if values is not None and tokens is not None and rows is not None and values.size:
    lost = (rows != 0) & ~np.any(tokens != 0, axis=-1) & (values != 0)
    if lost.any():
      raise ValueError(
        f"rewards of row(s) {np.flatnonzero(lost)[:8].tolist()} are non-zero but mask has no "
        "token in them to carry the reward; mark those rows invalid (valid=False)"
      )
  valid = jnp.ones(rewards.shape, bool) if valid is None else valid.astype(bool)
  return _place_core(rewards, mask, valid)


def _token_estimator_inputs(rewards, mask, group_ids, group_size, valid, estimator):
  rewards, mask, valid = _check_token_inputs(rewards, mask, valid, estimator)
  groups = _checked_groups(rewards.shape[0], group_ids, group_size)
  return rewards, mask, valid, groups


@ADVANTAGES.register("token_grpo")
def token_grpo_advantages(
  rewards: jax.Array,
  *,
  mask: jax.Array,
  group_ids: jax.Array | None = None,
  group_size: int | None = None,
  valid: jax.Array | None = None,
  ddof: int = 0,
  eps: float = 1e-6,
) -> jax.Array:
  """Token-level GRPO: `A_{i,t} = (R_{i,t} - mean_g R) / (std_g R + eps)` over the group's tokens.

  Grad2Reward: From Sparse Judgment to Dense Rewards for Improving Open-Ended LLM
  Reasoning (Zhang et al.), arXiv 2602.01791; rl.md 6.3-6.4. `R` is the return-to-go
  (gamma = 1); mean and std run over all counted tokens of all valid rows of the group.

  Args:
    rewards: `[N, T]` token rewards (e.g. Grad2Reward's dense rewards, or
      `sequence_to_token_rewards` of outcome rewards).
    mask: `[N, T]` 1 on response tokens (required).
    group_ids / group_size: the grouping (exactly one; see `reasoning_jax.rl.advantages`).
    valid: `[N]` bool, rows that exist (default all).
    ddof: DESIGN CHOICE default 0 (population std over tokens, rl.md 6.4); 1 = unbiased.
    eps: DESIGN CHOICE default 1e-6, added to the std.

  Returns:
    `[N, T]` float32 advantages (stop-gradient); 0 on masked tokens, invalid rows and
    groups whose counted returns are all equal.
  """
  check_scalar(ddof, "ddof", low=0, integer=True)
  check_scalar(eps, "eps", low=0.0)
  rewards, mask, valid, groups = _token_estimator_inputs(
    rewards, mask, group_ids, group_size, valid, "token_grpo"
  )
  return _token_grpo_core(rewards, mask, valid, groups, ddof=int(ddof), eps=float(eps))


@ADVANTAGES.register("token_rloo")
def token_rloo_advantages(
  rewards: jax.Array,
  *,
  mask: jax.Array,
  group_ids: jax.Array | None = None,
  group_size: int | None = None,
  valid: jax.Array | None = None,
) -> jax.Array:
  """Token-level RLOO: `A_{i,t} = R_{i,t} - mean_{j in g, j != i; s} R_{j,s}`.

  Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human
  Feedback in LLMs (Ahmadian et al.), arXiv 2402.14740, applied to Grad2Reward's
  returns-to-go (arXiv 2602.01791, rl.md 6.3). DESIGN CHOICE: the baseline of row i
  pools all counted tokens of the other valid rows of its group (a token mean, no std
  division); a row with no other token in its group gets 0. Arguments as
  `token_grpo_advantages` (no ddof/eps).
  """
  rewards, mask, valid, groups = _token_estimator_inputs(
    rewards, mask, group_ids, group_size, valid, "token_rloo"
  )
  return _token_rloo_core(rewards, mask, valid, groups)
