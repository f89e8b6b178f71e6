"""Group-relative advantage estimators for outcome rewards (one scalar per completion).

Layout: `N` completions (rows); the `G` completions sampled for one prompt form a
group. Pass either

* `group_size=G`: rows are grouped contiguously (`reshape(N // G, G)` order), or
* `group_ids [N]` (int): rows sharing an id form a group; ids may be any integers
  and groups may be non-contiguous or of different sizes.

`valid [N]` (bool, default all True) marks real rows. Invalid rows (padding,
filtered-out samples) never enter any group statistic, get advantage exactly 0,
and may hold any reward value, including NaN.

Estimators (all registered in `ADVANTAGES`; signature
`fn(rewards, *, group_ids=None, group_size=None, valid=None, **options) -> [N]`):

| name | advantage | source |
|---|---|---|
| `grpo` | `(R_i - mean_g R) / (std_g R + eps)` | DeepSeekMath (arXiv 2402.03300), rl.md 1.2 |
| `dr_grpo` | `R_i - mean_g R` | Understanding R1-Zero-Like Training: A Critical Perspective (arXiv 2503.20783), rl.md 1.4 |
| `rloo` | `R_i - mean_{j in g, j != i} R_j` | Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human Feedback in LLMs (arXiv 2402.14740) |

DESIGN CHOICE (rl.md section 0): `ddof=1` (unbiased std, as PyTorch/verl/TRL)
and `eps=1e-6` added to the std; `ddof=0` is `jnp.std`'s population std.

Guarantees: a group whose valid rewards are all equal (including a group with one
valid row, e.g. a single-row `group_ids` group) gets advantage exactly 0 under every
estimator, never NaN: the centred value `R - mean` of such a group can be a rounding
error (e.g. three rewards of 0.1), which `/ (0 + eps)` would blow up, so equality is
detected exactly (group max == group min) and such rows are set to 0. Advantages are returned under
`stop_gradient`: they are data for the policy update.

Errors (ValueError naming the argument; TypeError for a wrong dtype): non-finite
rewards in valid rows, an empty `rewards`, `group_size` < 1 or not dividing N,
`group_size=1` for an estimator (every advantage would be 0; `group_ids` may still
hold single-row groups), both or neither of `group_ids`/`group_size`, shapes that do
not match `rewards`.
Values are checked eagerly when concrete; under `jit`/`vmap` only shapes and
static arguments are checked, and a NaN/inf reward in a valid row propagates to
the advantages of its group (it is not hidden), which makes the loss NaN.

Extension: a new estimator is a function with the signature above registered with
`@ADVANTAGES.register("name")`; use `validate_group_inputs`, `group_sum`,
`group_count`, `group_all_equal` and `Groups.broadcast` to share the checks and the
segment statistics.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from reasoning_jax.registry import Registry
from reasoning_jax.rl.aggregation import compute_dtype
from reasoning_jax.validation import (
  as_array,
  as_mask,
  check_finite,
  check_positive_int,
  check_scalar,
)

__all__ = [
  "ADVANTAGES",
  "Groups",
  "compute_advantages",
  "dr_grpo_advantages",
  "group_all_equal",
  "group_count",
  "group_sum",
  "grpo_advantages",
  "make_groups",
  "rloo_advantages",
  "validate_group_inputs",
  "zero_variance_group_fraction",
]

# fn(rewards [N], *, group_ids=None, group_size=None, valid=None, **options) -> advantages [N].
ADVANTAGES: Registry[Callable[..., jax.Array]] = Registry("advantage estimator")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Groups:
  """Dense group index of every row: `index [N]` int32 in `[0, num_groups)`.

  With `group_size`, group k is rows `[k*G, (k+1)*G)` and `num_groups = N // G`.
  With `group_ids`, groups are numbered by ascending id and `num_groups = N` (a
  static upper bound, so it works under jit); slots past the number of distinct
  ids are empty groups. A pytree (`num_groups` is static metadata).
  """

  index: jax.Array
  num_groups: int = dataclasses.field(metadata=dict(static=True))

  def broadcast(self, per_group: jax.Array) -> jax.Array:
    """Per-group values `[num_groups, ...]` -> per-row values `[N, ...]`."""
    return per_group[self.index]


def _check_grouping(num_rows: int, group_ids: Any, group_size: Any) -> Any:
  """Validates the grouping arguments; returns `group_ids` as an array (or None)."""
  if (group_ids is None) == (group_size is None):
    raise ValueError(
      "pass exactly one of group_ids (an int array [N]) or group_size (an int G "
      "with rows grouped contiguously); got " + ("both" if group_ids is not None else "neither")
    )
  if group_size is not None:
    check_scalar(group_size, "group_size", low=1, integer=True)
    if num_rows % int(group_size):
      raise ValueError(
        f"group_size={int(group_size)} does not divide the number of rows N={num_rows}"
      )
    return None
  return as_array(group_ids, "group_ids", shape=(num_rows,), kind="int")


def _groups(num_rows: int, group_ids: jax.Array | None, group_size: int | None) -> Groups:
  """Traceable construction of `Groups` from validated arguments."""
  if group_ids is None:
    index = jnp.arange(num_rows, dtype=jnp.int32) // group_size
    return Groups(index=index, num_groups=num_rows // group_size)
  # Dense ids via a sort-based unique with a static size: jit-compatible for any id values.
  _, inverse = jnp.unique(group_ids, size=num_rows, fill_value=0, return_inverse=True)
  return Groups(index=inverse.reshape(num_rows).astype(jnp.int32), num_groups=num_rows)


def make_groups(
  num_rows: int, *, group_ids: jax.Array | None = None, group_size: int | None = None
) -> Groups:
  """Validated `Groups` for `num_rows` rows from exactly one of `group_ids`/`group_size`."""
  group_ids = _check_grouping(num_rows, group_ids, group_size)
  group_size = None if group_size is None else int(group_size)
  return _groups_jit(group_ids, num_rows=num_rows, group_size=group_size)


_groups_jit = jax.jit(
  lambda ids, num_rows, group_size: _groups(num_rows, ids, group_size),
  static_argnames=("num_rows", "group_size"),
)


def _check_group_inputs(
  rewards: Any, group_ids: Any, group_size: Any, valid: Any, argument: str = "rewards"
):
  """Eager boundary checks; returns validated `(rewards, group_ids | None, group_size | None,
  valid | None)` without transforming them."""
  rewards = as_array(rewards, argument, ndim=1, kind="number")
  n = rewards.shape[0]
  if n == 0:
    raise ValueError(f"{argument} is empty: need at least one row")
  group_ids = _check_grouping(n, group_ids, group_size)
  if valid is not None:
    valid = as_mask(valid, "valid", shape=(n,))
  check_finite(rewards, argument, where=valid)
  return rewards, group_ids, (None if group_size is None else int(group_size)), valid


def _check_estimator_inputs(rewards: Any, group_ids: Any, group_size: Any, valid: Any):
  """`_check_group_inputs` plus the estimators' rule: `group_size` >= 2.

  With one sample per group the group-relative baseline is the sample itself, so every
  advantage would be 0 (no learning signal at all); that is a configuration error. Explicit
  `group_ids` may still hold single-row groups (e.g. after filtering); those get 0.
  """
  rewards, group_ids, group_size, valid = _check_group_inputs(rewards, group_ids, group_size, valid)
  if group_size is not None:
    try:
      check_positive_int(group_size, "group_size", minimum=2)
    except ValueError as e:
      raise ValueError(
        f"{e}: group-relative advantages need at least 2 samples per group "
        "(with 1 every advantage is 0)"
      ) from None
  return rewards, group_ids, group_size, valid


def _prepare(rewards, group_ids, group_size, valid) -> tuple[jax.Array, Groups, jax.Array]:
  """Traceable: float rewards (0 on invalid rows), Groups, bool valid."""
  n = rewards.shape[0]
  valid = jnp.ones((n,), bool) if valid is None else valid.astype(bool)
  rewards = rewards.astype(compute_dtype(rewards))
  # Invalid rows are replaced before any arithmetic, so NaN there cannot leak.
  rewards = jnp.where(valid, jax.lax.stop_gradient(rewards), 0)
  return rewards, _groups(n, group_ids, group_size), valid


_prepare_jit = jax.jit(_prepare, static_argnames=("group_size",))


def validate_group_inputs(
  rewards: Any,
  *,
  group_ids: Any = None,
  group_size: Any = None,
  valid: Any = None,
  argument: str = "rewards",
) -> tuple[jax.Array, Groups, jax.Array]:
  """Boundary checks shared by estimators: returns `(rewards float32 [N], Groups, valid bool [N])`.

  Invalid rows' rewards are replaced by 0 (so NaN there never leaks).
  """
  rewards, group_ids, group_size, valid = _check_group_inputs(
    rewards, group_ids, group_size, valid, argument
  )
  return _prepare_jit(rewards, group_ids, group_size=group_size, valid=valid)


def group_sum(x: jax.Array, groups: Groups, valid: jax.Array) -> jax.Array:
  """Sum of `x [N]` over the valid rows of each group -> `[num_groups]`."""
  return jax.ops.segment_sum(jnp.where(valid, x, 0), groups.index, num_segments=groups.num_groups)


def group_count(groups: Groups, valid: jax.Array, dtype=jnp.float32) -> jax.Array:
  """Number of valid rows per group -> `[num_groups]`."""
  return group_sum(valid.astype(dtype), groups, valid)


def group_all_equal(x: jax.Array, groups: Groups, valid: jax.Array) -> jax.Array:
  """`[num_groups]` bool: the group has >= 1 valid row and all its valid values are equal."""
  inf = jnp.asarray(jnp.inf, x.dtype)
  hi = jax.ops.segment_max(jnp.where(valid, x, -inf), groups.index, num_segments=groups.num_groups)
  lo = jax.ops.segment_min(jnp.where(valid, x, inf), groups.index, num_segments=groups.num_groups)
  return hi == lo


def _centered(rewards: jax.Array, groups: Groups, valid: jax.Array):
  count = group_count(groups, valid, rewards.dtype)
  mean = group_sum(rewards, groups, valid) / jnp.maximum(count, 1)
  centered = rewards - groups.broadcast(mean)
  constant = groups.broadcast(group_all_equal(rewards, groups, valid))
  return centered, count, constant


def _finish(adv: jax.Array, valid: jax.Array, constant: jax.Array) -> jax.Array:
  return jax.lax.stop_gradient(jnp.where(valid & ~constant, adv, 0))


@functools.partial(jax.jit, static_argnames=("group_size", "ddof", "eps"))
def _grpo_core(rewards, group_ids, valid, *, group_size, ddof, eps):
  rewards, groups, valid = _prepare(rewards, group_ids, group_size, valid)
  centered, count, constant = _centered(rewards, groups, valid)
  sq = group_sum(jnp.square(centered), groups, valid)
  std = jnp.sqrt(sq / jnp.maximum(count - ddof, 1))
  return _finish(centered / (groups.broadcast(std) + eps), valid, constant)


@functools.partial(jax.jit, static_argnames=("group_size",))
def _dr_grpo_core(rewards, group_ids, valid, *, group_size):
  rewards, groups, valid = _prepare(rewards, group_ids, group_size, valid)
  centered, _, constant = _centered(rewards, groups, valid)
  return _finish(centered, valid, constant)


@functools.partial(jax.jit, static_argnames=("group_size",))
def _rloo_core(rewards, group_ids, valid, *, group_size):
  rewards, groups, valid = _prepare(rewards, group_ids, group_size, valid)
  centered, count, constant = _centered(rewards, groups, valid)
  g = groups.broadcast(count)
  return _finish(centered * g / jnp.maximum(g - 1, 1), valid, constant)


@ADVANTAGES.register("grpo")
def grpo_advantages(
  rewards: jax.Array,
  *,
  group_ids: jax.Array | None = None,
  group_size: int | None = None,
  valid: jax.Array | None = None,
  ddof: int = 1,
  eps: float = 1e-6,
) -> jax.Array:
  """GRPO group-normalised advantage `(R_i - mean_g R) / (std_g R + eps)`.

  DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models
  (Shao et al.), arXiv 2402.03300; rl.md section 1.2.

  Args:
    rewards: `[N]` outcome rewards (bool/int/float).
    group_ids / group_size: the grouping (exactly one; see the module docstring).
    valid: `[N]` bool, rows that exist (default all).
    ddof: DESIGN CHOICE default 1 (unbiased std, as verl); 0 = population std.
      A group with `count <= ddof` valid rows has std 0 (its advantage is 0 anyway).
    eps: DESIGN CHOICE default 1e-6, added to the std.

  Returns:
    `[N]` float32 advantages (stop-gradient); 0 on invalid rows and constant groups.
  """
  check_scalar(ddof, "ddof", low=0, integer=True)
  check_scalar(eps, "eps", low=0.0)
  rewards, group_ids, group_size, valid = _check_estimator_inputs(
    rewards, group_ids, group_size, valid
  )
  return _grpo_core(
    rewards, group_ids, valid, group_size=group_size, ddof=int(ddof), eps=float(eps)
  )


@ADVANTAGES.register("dr_grpo")
def dr_grpo_advantages(
  rewards: jax.Array,
  *,
  group_ids: jax.Array | None = None,
  group_size: int | None = None,
  valid: jax.Array | None = None,
) -> jax.Array:
  """Dr. GRPO mean-only advantage `R_i - mean_g R` (no std division).

  Understanding R1-Zero-Like Training: A Critical Perspective (Liu et al.),
  arXiv 2503.20783; rl.md section 1.4. Arguments as `grpo_advantages`.
  """
  rewards, group_ids, group_size, valid = _check_estimator_inputs(
    rewards, group_ids, group_size, valid
  )
  return _dr_grpo_core(rewards, group_ids, valid, group_size=group_size)


@ADVANTAGES.register("rloo")
def rloo_advantages(
  rewards: jax.Array,
  *,
  group_ids: jax.Array | None = None,
  group_size: int | None = None,
  valid: jax.Array | None = None,
) -> jax.Array:
  """REINFORCE leave-one-out: `R_i - mean_{j != i} R_j = G/(G-1) * (R_i - mean_g R)`.

  Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human
  Feedback in LLMs (Ahmadian et al.), arXiv 2402.14740. `G` counts the valid rows
  of the group; a group of one valid row has advantage 0. Arguments as
  `grpo_advantages`.
  """
  rewards, group_ids, group_size, valid = _check_estimator_inputs(
    rewards, group_ids, group_size, valid
  )
  return _rloo_core(rewards, group_ids, valid, group_size=group_size)


def compute_advantages(estimator: str, rewards: jax.Array, **kwargs) -> jax.Array:
  """Calls the advantage estimator registered as `estimator` (e.g. "grpo")."""
  ADVANTAGES.validate(estimator, argument="estimator")
  return ADVANTAGES.get(estimator)(rewards, **kwargs)


def zero_variance_group_fraction(
  rewards: jax.Array,
  *,
  group_ids: jax.Array | None = None,
  group_size: int | None = None,
  valid: jax.Array | None = None,
) -> jax.Array:
  """Fraction of non-empty groups whose valid rewards are all equal (no learning signal).

  The diagnostic logged by DAPO-style training (rl.md section 9).
  """
  rewards, group_ids, group_size, valid = _check_group_inputs(rewards, group_ids, group_size, valid)
  return _zero_variance_core(rewards, group_ids, valid, group_size=group_size)


@functools.partial(jax.jit, static_argnames=("group_size",))
def _zero_variance_core(rewards, group_ids, valid, *, group_size):
  rewards, groups, valid = _prepare(rewards, group_ids, group_size, valid)
  nonempty = group_count(groups, valid) > 0
  constant = group_all_equal(rewards, groups, valid) & nonempty
  return jnp.sum(constant) / jnp.maximum(jnp.sum(nonempty), 1)
