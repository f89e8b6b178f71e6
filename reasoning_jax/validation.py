"""Input checks at the public boundary: every op, loss, advantage and reward uses these.

Public functions validate their arguments here and then call a core that trusts them. Each
check names the argument and the expected shape, dtype or range in its message. Checks of
array *values* (0/1 masks, finite entries, log-probabilities <= 0) run only on concrete
arrays: under `jax.jit` the arguments are tracers and only their shapes and dtypes are known,
so the value checks are skipped there (the shape and dtype checks still run at trace time).

Structural checks delegate to `chex` where its assertion fits and re-raise with the
argument's name, so a message reads `logp must have 2 dims ...` rather than chex's generic
text. Scalar (hyper-parameter) checks take Python numbers and reject bools.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
  "as_array",
  "as_mask",
  "check_finite",
  "check_scalar",
  "concrete_values",
  "is_concrete",
  "shape_of",
  "check_array",
  "check_mask",
  "check_finite_where",
  "check_log_probs",
  "check_positive_int",
  "check_finite_float",
  "check_float_in",
  "check_choice",
  "check_config_types",
]

# A log-probability above this at a valid position is taken to be a probability (or a bug).
LOGP_POSITIVE_TOL = 1e-3


def is_concrete(x: Any) -> bool:
  """True when `x`'s values can be read here, so they can be checked: not a tracer under jit,
  and not a global array with rows on other processes (`is_fully_addressable` False)."""
  return not isinstance(x, jax.core.Tracer) and getattr(x, "is_fully_addressable", True)


def shape_of(x: Any) -> tuple[int, ...] | str:
  """`x`'s shape for a message, or its type name when it has none."""
  return tuple(x.shape) if hasattr(x, "shape") else type(x).__name__


def check_array(
  x: Any,
  name: str,
  ndim: int | Sequence[int] | None = None,
  *,
  floating: bool = False,
  integer: bool = False,
  shape: Sequence[int | None] | None = None,
) -> None:
  """Raises unless `x` is an array of `ndim` dims (one of them), dtype kind and `shape`.

  Args:
    x: the value to check.
    name: the argument's name, used in the message.
    ndim: the allowed number of dimensions (an int or a sequence of ints), or None for any.
    floating: require a floating dtype.
    integer: require an integer dtype.
    shape: the expected shape; None entries match any size.
  """
  if not hasattr(x, "shape") or not hasattr(x, "dtype"):
    raise TypeError(f"{name} must be an array, got {type(x).__name__}")
  if ndim is not None:
    ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    try:
      chex.assert_rank(x, set(ndims) if len(ndims) > 1 else ndims[0])
    except AssertionError:
      raise ValueError(
        f"{name} must have {' or '.join(map(str, ndims))} dims, got shape {tuple(x.shape)}"
      ) from None
  if shape is not None:
    try:
      chex.assert_shape(x, tuple(shape))
    except AssertionError:
      expected = tuple("*" if s is None else s for s in shape)
      raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}") from None
  if floating and not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"{name} must be a floating array, got dtype {x.dtype}")
  if integer and not jnp.issubdtype(x.dtype, jnp.integer):
    raise TypeError(f"{name} must be an integer array, got dtype {x.dtype}")


def check_mask(mask: Any, name: str, shape: Sequence[int], like: str) -> None:
  """Raises unless `mask` has `shape` (that of the argument `like`) and holds only 0/1."""
  if not hasattr(mask, "shape") or tuple(mask.shape) != tuple(shape):
    raise ValueError(f"{name} must have the shape of {like} {tuple(shape)}, got {shape_of(mask)}")
  if is_concrete(mask) and mask.size:
    values = np.asarray(mask)
    if not np.all((values == 0) | (values == 1)):
      raise ValueError(f"{name} must hold only 0/1 (or bool) values")


def check_finite_where(x: Any, valid: Any, name: str) -> None:
  """Raises if `x` is NaN/inf where `valid` is set (padding may hold anything).

  `valid` is broadcast over `x`'s trailing dims (a `[B, T]` mask over `[B, T, D]` states);
  `valid=None` checks every entry.
  """
  if not is_concrete(x) or not getattr(x, "size", 0):
    return
  if valid is not None and not is_concrete(valid):
    return
  bad = ~np.isfinite(np.asarray(x, np.float32))
  if valid is not None:
    keep = np.asarray(valid) != 0
    bad = bad & keep.reshape(keep.shape + (1,) * (bad.ndim - keep.ndim))
  if bad.any():
    where = "valid positions" if valid is not None else "any position"
    raise ValueError(f"{name} has {int(bad.sum())} non-finite value(s) (NaN/inf) at {where}")


def check_log_probs(logp: Any, valid: Any, name: str, *, tol: float = LOGP_POSITIVE_TOL) -> None:
  """Raises if `logp` is non-finite or above `tol` (not a log-probability) where `valid`."""
  check_finite_where(logp, valid, name)
  if not is_concrete(logp) or not getattr(logp, "size", 0):
    return
  if valid is not None and not is_concrete(valid):
    return
  values = np.asarray(logp, np.float32)
  if valid is not None:
    values = np.where(np.asarray(valid) != 0, values, -1.0)
  if values.max() > tol:
    raise ValueError(
      f"{name} must hold log-probabilities (<= 0), got a maximum of {values.max():.4g} "
      "at a valid position; did you pass probabilities?"
    )


def _is_real(value: Any) -> bool:
  return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> None:
  """Raises unless `value` is a Python/numpy int >= `minimum` (1 by default)."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    raise ValueError(f"{name} must be {what}, got {value!r}")


def check_finite_float(value: Any, name: str) -> None:
  """Raises unless `value` is a finite real number."""
  if not _is_real(value) or not math.isfinite(value):
    raise ValueError(f"{name} must be a finite float, got {value!r}")


def check_float_in(
  value: Any,
  name: str,
  low: float | None = None,
  high: float | None = None,
  *,
  low_inclusive: bool = True,
  high_inclusive: bool = True,
) -> None:
  """Raises unless `value` is a finite real number in the interval given by `low`, `high`."""
  ok = _is_real(value) and math.isfinite(value)
  if ok and low is not None:
    ok = value >= low if low_inclusive else value > low
  if ok and high is not None:
    ok = value <= high if high_inclusive else value < high
  if not ok:
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    interval = (
      ("[" if low_inclusive and low is not None else "(")
      + f"{lo}, {hi}"
      + ("]" if high_inclusive and high is not None else ")")
    )
    raise ValueError(f"{name} must be a float in {interval}, got {value!r}")


def check_config_types(
  config: Any, types: Mapping[str, Any], *, error: type[Exception] = ValueError
) -> None:
  """Each key of `types` is in `config` (a ConfigDict or dict) with that type or tuple of types.

  An int passes for a float, a bool never for an int, and a nested ConfigDict is compared as
  a dict unless its type asks for a ConfigDict. Raises `error` (a trainer's ConfigError)
  naming the key: "config.<key> is missing" / "config.<key> must be <type>, got ...".
  """
  for key, kind in types.items():
    if key not in config:
      raise error(f"config.{key} is missing")
    value = config[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if hasattr(value, "to_dict") and not isinstance(value, kinds):
      value = value.to_dict()
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
      continue
    if not isinstance(value, kinds) or (int in kinds and isinstance(value, bool)):
      name = " or ".join(getattr(k, "__name__", str(k)) for k in kinds)
      raise error(f"config.{key} must be {name}, got {type(value).__name__} {value!r}")


def check_choice(value: Any, choices: Sequence[Any], name: str) -> None:
  """Raises unless `value` is one of `choices`."""
  if value not in tuple(choices):
    raise ValueError(f"{name}={value!r}; expected one of {tuple(choices)}")


# --------------------------------------------------------------------------------------------
# Converting checks: return the argument as an array (lists and Python numbers are accepted),
# know dtype kinds of masks and numbers, and check values only where they are addressable
# here. The rl losses, advantages and statistics use these (their messages are pinned by
# tests/rl).
# --------------------------------------------------------------------------------------------


def concrete_values(x: Any) -> np.ndarray | None:
  """`x` as a host numpy array when its values are available here, else None.

  None for tracers and for arrays spread over other hosts. Value checks use numpy, so
  they also work on concrete arrays closed over by a function being traced by jit.
  """
  if x is None or not is_concrete(x):
    return None
  return np.asarray(x)


def as_array(
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


def as_mask(
  mask: Any,
  argument: str = "mask",
  *,
  shape: tuple[int, ...] | None = None,
  ndim: int | None = None,
) -> jax.Array:
  """Checks a 0/1 mask (bool, int or float); values are checked when concrete."""
  mask = as_array(mask, argument, ndim=ndim, shape=shape, kind="bool_like")
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
