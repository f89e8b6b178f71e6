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

Its inputs are checked with `reasoning_jax.validation` (`as_array`, `as_mask`), like every
public function of `reasoning_jax.rl`.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp

from reasoning_jax.registry import Registry
from reasoning_jax.validation import as_array, as_mask, check_scalar

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
# Numerics shared by the rl losses and statistics.
# --------------------------------------------------------------------------------------------


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
  values = as_array(values, "values", ndim=2)
  mask = as_mask(mask, "mask", shape=values.shape)
  return _aggregate_core(values, mask, mode=mode, norm_constant=norm_constant)


@functools.partial(jax.jit, static_argnames=("mode", "norm_constant"))
def _aggregate_core(values, mask, *, mode, norm_constant):
  values = values.astype(compute_dtype(values))
  kwargs = {} if norm_constant is None else {"norm_constant": norm_constant}
  return AGGREGATIONS.get(mode)(values, mask, **kwargs)
