"""Loss aggregation modes: per-token values `[N, T]` -> an exact `(sum, denominator)` pair.

The mean loss of a mini-batch is `sum / denominator`. Returning the pair instead
of the mean keeps micro-batching and cross-device / cross-host reduction exact:
split the rows of a mini-batch into chunks, add up the sums and the
denominators, and `total_sum / total_denominator` equals the full-batch value
(and so does its gradient, since the denominator carries no gradient). This
removes the need to "compute the mini-batch token count first and pass it into
each micro-batch" (rl.md section 9): the count is the summed denominator.

How each registered mode maps to (sum, denominator) (`m` = mask, `l` = values,
`|o_n| = sum_t m[n, t]`, "valid rows" = rows with `|o_n| > 0`):

| mode | mean it represents | sum | denominator |
|---|---|---|---|
| `token_mean` (DAPO) | `sum(m*l) / sum(m)` | `sum_{n,t} m*l` | `sum_{n,t} m` (token count) |
| `seq_mean_token_mean` (GRPO) | `mean_n( sum_t m*l / |o_n| )` | `sum_n sum_t m*l / |o_n|` | number of valid rows |
| `seq_mean_token_sum_norm` (Dr. GRPO) | `mean_n( sum_t m*l ) / C` | `sum_n sum_t m*l / C` | number of valid rows |

For the two sequence-mean modes each sequence contributes its own (normalised)
sum to `sum`, and the denominator counts sequences, so a chunk of rows carries
exactly its share. Rows whose mask is all zero (padding rows, rows removed by
overlong filtering) are not sequences: they add 0 to both terms. (A PyTorch
`mean` over `N` would count them; here they never dilute the loss.)

`C` (`norm_constant`) of `seq_mean_token_sum_norm` is a constant, the generation
budget in Dr. GRPO (rl.md section 1.4). DESIGN CHOICE: `norm_constant=None`
uses `T`, the padded length, which equals the budget when rollouts are padded to
`max_new_tokens` (as in the Dr. GRPO code); pass the budget explicitly when
batches are padded to their longest response, otherwise `C` changes with the
batch.

Add a mode with `@AGGREGATIONS.register("name")` on `fn(values, mask, **kw) ->
(sum, denominator)`; keyword-only parameters it declares (e.g. `norm_constant`)
are the options `aggregate` accepts for it.

This module also holds the array-converting boundary helpers shared by `reasoning_jax.rl`
(`check_array` returns the argument as an array and knows mask/number dtype kinds; the
messages are part of the tested API). They build on `reasoning_jax.validation`
(`is_concrete`), which the rl modules use directly for the checks it covers.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from reasoning_jax.registry import Registry
from reasoning_jax.validation import is_concrete

__all__ = [
  "AGGREGATIONS",
  "aggregate",
  "aggregation_options",
  "token_mean",
  "seq_mean_token_mean",
  "seq_mean_token_sum_norm",
]

# fn(values [N, T], mask [N, T], *, <options>) -> (sum [], denominator []).
AGGREGATIONS: Registry[Callable[..., tuple[jax.Array, jax.Array]]] = Registry("aggregation mode")


# --------------------------------------------------------------------------------------------
# Boundary validation helpers (used by every public function of reasoning_jax.rl).
# --------------------------------------------------------------------------------------------


def concrete_values(x: Any) -> np.ndarray | None:
  """`x` as a host numpy array when its values are available here, else None.

  None for tracers and for arrays spread over other hosts. Value checks use numpy, so
  they also work on concrete arrays closed over by a function being traced by jit.
  """
  if x is None or not is_concrete(x) or not getattr(x, "is_fully_addressable", True):
    return None
  return np.asarray(x)


def _shape(x: Any) -> tuple[int, ...] | None:
  shape = getattr(x, "shape", None)
  return None if shape is None else tuple(shape)


def check_array(
  x: Any,
  argument: str,
  *,
  ndim: int | tuple[int, ...] | None = None,
  shape: tuple[int, ...] | None = None,
  kind: str = "float",
) -> jax.Array:
  """Returns `x` as an array after checking its rank, shape and dtype kind.

  kind: "float" (floating), "int" (integer), "bool_like" (bool, integer or float: masks),
  "number" (anything numeric, including bool).
  """
  if not hasattr(x, "dtype") or not hasattr(x, "shape"):
    if isinstance(x, (list, tuple, int, float, bool, np.number)):
      x = jnp.asarray(x)
    else:
      raise TypeError(f"{argument} must be an array, got {type(x).__name__}")
  dtype = x.dtype
  ok = {
    "float": jnp.issubdtype(dtype, jnp.floating),
    "int": jnp.issubdtype(dtype, jnp.integer),
    "bool_like": (
      jnp.issubdtype(dtype, jnp.bool_)
      or jnp.issubdtype(dtype, jnp.integer)
      or jnp.issubdtype(dtype, jnp.floating)
    ),
    "number": (jnp.issubdtype(dtype, jnp.bool_) or jnp.issubdtype(dtype, jnp.number)),
  }[kind]
  if not ok:
    expected = {
      "float": "a floating dtype",
      "int": "an integer dtype",
      "bool_like": "a bool, integer or float dtype",
      "number": "a numeric dtype",
    }[kind]
    raise TypeError(f"{argument} must have {expected}, got {dtype}")
  if ndim is not None:
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if x.ndim not in allowed:
      names = " or ".join(f"{d}-D" for d in allowed)
      raise ValueError(f"{argument} must be {names}, got shape {tuple(x.shape)}")
  if shape is not None and tuple(x.shape) != tuple(shape):
    raise ValueError(f"{argument} must have shape {tuple(shape)}, got {tuple(x.shape)}")
  return x


def check_mask(
  mask: Any,
  argument: str = "mask",
  *,
  shape: tuple[int, ...] | None = None,
  ndim: int | None = None,
) -> jax.Array:
  """Checks a 0/1 mask (bool, int or float); values are checked when concrete."""
  mask = check_array(mask, argument, ndim=ndim, shape=shape, kind="bool_like")
  values = concrete_values(mask) if mask.dtype != jnp.bool_ else None
  if values is not None and not np.all((values == 0) | (values == 1)):
    raise ValueError(f"{argument} must contain only 0 and 1")
  return mask


def check_finite(x: jax.Array, argument: str, *, where: jax.Array | None = None) -> None:
  """Raises if `x` (restricted to `where`) holds NaN/inf; skipped for tracers."""
  values = concrete_values(x)
  if values is None or not values.size or not jnp.issubdtype(values.dtype, jnp.inexact):
    return
  finite = np.isfinite(values.astype(np.float64))
  if where is not None:
    selected = concrete_values(where)
    if selected is None:
      return
    finite = finite | ~np.broadcast_to(selected.astype(bool), finite.shape)
  if not finite.all():
    bad = int(np.sum(~finite))
    raise ValueError(f"{argument} contains {bad} non-finite value(s) (NaN or inf)")


def check_scalar(
  value: Any,
  argument: str,
  *,
  low: float | None = None,
  high: float | None = None,
  low_inclusive: bool = True,
  allow_inf: bool = False,
  integer: bool = False,
) -> None:
  """Validates a Python scalar hyper-parameter against a range; the message names it."""
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
    kind = "an int" if integer else "a float"
    raise TypeError(f"{argument} must be {kind}, got {value!r}")
  if integer and not float(value).is_integer():
    raise TypeError(f"{argument} must be an int, got {value!r}")
  value = float(value)
  if math.isnan(value) or (math.isinf(value) and not allow_inf):
    raise ValueError(f"{argument} must be finite, got {value!r}")
  if low is not None and (value < low or (value == low and not low_inclusive)):
    op = ">=" if low_inclusive else ">"
    raise ValueError(f"{argument} must be {op} {low}, got {value!r}")
  if high is not None and value > high:
    raise ValueError(f"{argument} must be <= {high}, got {value!r}")


def compute_dtype(*arrays: jax.Array | None) -> Any:
  """float32, or wider when an input is wider: losses and statistics never run in bf16."""
  dtype = jnp.float32
  for a in arrays:
    if a is not None and jnp.issubdtype(a.dtype, jnp.floating):
      dtype = jnp.promote_types(dtype, a.dtype)
  return dtype


# --------------------------------------------------------------------------------------------
# Aggregation modes.
# --------------------------------------------------------------------------------------------


def _masked_row_sums(values: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  valid = mask.astype(bool)
  # `where`, not `values * mask`: a NaN/inf in a padded slot must not leak (NaN * 0 = NaN).
  row_sum = jnp.sum(jnp.where(valid, values, 0), axis=-1)
  row_tokens = jnp.sum(valid, axis=-1).astype(values.dtype)
  return row_sum, row_tokens


@AGGREGATIONS.register("token_mean")
def token_mean(values: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """DAPO token-level mean: (sum over valid tokens, number of valid tokens).

  DAPO: An Open-Source LLM Reinforcement Learning System at Scale, arXiv 2503.14476.
  """
  row_sum, row_tokens = _masked_row_sums(values, mask)
  return jnp.sum(row_sum), jnp.sum(row_tokens)


@AGGREGATIONS.register("seq_mean_token_mean")
def seq_mean_token_mean(values: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Original GRPO: (sum over rows of each row's token mean, number of valid rows).

  DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models,
  arXiv 2402.03300.
  """
  row_sum, row_tokens = _masked_row_sums(values, mask)
  row_valid = row_tokens > 0
  per_row = row_sum / jnp.where(row_valid, row_tokens, 1)
  return jnp.sum(per_row), jnp.sum(row_valid).astype(values.dtype)


@AGGREGATIONS.register("seq_mean_token_sum_norm")
def seq_mean_token_sum_norm(
  values: jax.Array, mask: jax.Array, *, norm_constant: float | None = None
) -> tuple[jax.Array, jax.Array]:
  """Dr. GRPO: (sum over rows of each row's token sum / C, number of valid rows).

  Understanding R1-Zero-Like Training: A Critical Perspective, arXiv 2503.20783.
  `norm_constant=None` means C = T (see the module docstring).
  """
  c = values.shape[-1] if norm_constant is None else norm_constant
  row_sum, row_tokens = _masked_row_sums(values, mask)
  return jnp.sum(row_sum) / c, jnp.sum(row_tokens > 0).astype(values.dtype)


def aggregation_options(mode: str) -> tuple[str, ...]:
  """Keyword-only options the registered aggregation `mode` accepts (e.g. `norm_constant`)."""
  fn = AGGREGATIONS.get(mode)
  return tuple(
    name
    for name, p in inspect.signature(fn).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
  )


def validate_aggregation(
  mode: Any, *, argument: str = "aggregation", norm_constant: float | None = None
) -> None:
  """Checks `mode` is registered and `norm_constant` is valid and used by that mode."""
  AGGREGATIONS.validate(mode, argument=argument)
  if norm_constant is not None:
    if "norm_constant" not in aggregation_options(mode):
      users = [m for m in AGGREGATIONS.names() if "norm_constant" in aggregation_options(m)]
      raise ValueError(
        f"norm_constant={norm_constant!r} is only used by aggregation modes {users}, "
        f"not by {argument}={mode!r}; leave it None"
      )
    check_scalar(norm_constant, "norm_constant", low=0.0, low_inclusive=False)


def aggregate(
  values: jax.Array,
  mask: jax.Array,
  mode: str = "token_mean",
  *,
  norm_constant: float | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Aggregates per-token `values [N, T]` over `mask [N, T]` into `(sum, denominator)`.

  Args:
    values: per-token losses `[N, T]` (may carry gradient). Entries where `mask == 0`
      are ignored, even if NaN/inf.
    mask: `[N, T]`, 1 on the tokens that count.
    mode: a name registered in `AGGREGATIONS` (see the module docstring for the table).
    norm_constant: C for `seq_mean_token_sum_norm` (None = T); an error for other modes.

  Returns:
    `(sum, denominator)`, float32 (or wider) scalars; the mean is `sum / denominator`.
  """
  validate_aggregation(mode, argument="mode", norm_constant=norm_constant)
  values = check_array(values, "values", ndim=2)
  mask = check_mask(mask, "mask", shape=values.shape)
  return _aggregate_core(values, mask, mode=mode, norm_constant=norm_constant)


@functools.partial(jax.jit, static_argnames=("mode", "norm_constant"))
def _aggregate_core(values, mask, *, mode, norm_constant):
  values = values.astype(compute_dtype(values))
  kwargs = {} if norm_constant is None else {"norm_constant": norm_constant}
  return AGGREGATIONS.get(mode)(values, mask, **kwargs)
