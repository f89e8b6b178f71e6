"""The memory policy of a training run: dtypes, rematerialisation, gradient accumulation.

Three dtypes are separate knobs:

* `param_dtype`: storage of the parameters (and of their gradients, which take the
  parameters' dtype);
* `compute_dtype`: activations and matmul inputs (`ModelConfig.dtype`);
* `opt_state_dtype`: the optimizer moments (Adam's mu and nu). With bf16 parameters and
  a float32 state the update is computed in float32 and cast back on apply.

`remat` is a `ModelConfig.remat` name ("none" | "full" | "dots_saveable", one for all
blocks or one per block; see `reasoning_jax.models.transformer.REMAT_POLICIES` for the
`jax.checkpoint_policies` they map to). `micro_batches` is the exact gradient accumulation
of `reasoning_jax.train.step.make_train_step`.

  >>> policy = MemoryPolicy(param_dtype="bfloat16", compute_dtype="bfloat16", remat="full")
  >>> config = policy.apply(get_preset("qwen3-8b"))
  >>> tx = policy.optimizer(optax.adamw(1e-5))
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from reasoning_jax.models.config import REMAT_POLICIES, ModelConfig
from reasoning_jax.validation import check_choice, check_positive_int


def _float_dtype_name(value: Any, name: str) -> str:
  try:
    dtype = jnp.dtype(value)
  except TypeError:
    raise ValueError(f"{name}={value!r} is not a dtype") from None
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"{name} must be a floating dtype, got {dtype.name}")
  return dtype.name


@dataclasses.dataclass(frozen=True, kw_only=True)
class MemoryPolicy:
  """Dtypes, rematerialisation and accumulation of one training run (validated on build).

  Attributes:
    param_dtype: parameter (and gradient) storage dtype.
    compute_dtype: activation dtype.
    opt_state_dtype: optimizer-moment dtype.
    remat: "none" | "full" | "dots_saveable", or a tuple with one per block.
    micro_batches: gradient-accumulation slices of each batch (exact; >= 1).
  """

  param_dtype: str = "float32"
  compute_dtype: str = "float32"
  opt_state_dtype: str = "float32"
  remat: str | tuple[str, ...] = "none"
  micro_batches: int = 1

  def __post_init__(self):
    for name in ("param_dtype", "compute_dtype", "opt_state_dtype"):
      object.__setattr__(self, name, _float_dtype_name(getattr(self, name), name))
    remat = tuple(self.remat) if isinstance(self.remat, (list, tuple)) else self.remat
    object.__setattr__(self, "remat", remat)
    for policy in (remat,) if isinstance(remat, str) else remat:
      check_choice(policy, REMAT_POLICIES, "remat")
    check_positive_int(self.micro_batches, "micro_batches")

  def apply(self, config: ModelConfig) -> ModelConfig:
    """`config` with this policy's parameter / compute dtypes and remat."""
    return config.replace(dtype=self.compute_dtype, param_dtype=self.param_dtype, remat=self.remat)

  def optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """`tx` whose state is held in `opt_state_dtype` (see `with_state_dtype`)."""
    return with_state_dtype(tx, self.opt_state_dtype)


def with_state_dtype(tx: optax.GradientTransformation, dtype: Any) -> optax.GradientTransformation:
  """Wraps `tx` so that its parameter-shaped state is `dtype`, whatever the parameters' dtype.

  `init` sees the parameters cast to `dtype` (so Adam's mu and nu are `dtype`), `update`
  sees gradients and parameters cast to `dtype`; the updates come back in `dtype` and
  `optax.apply_updates` casts each sum to its parameter's dtype. Non-float leaves are
  passed through unchanged.
  """
  dtype = jnp.dtype(dtype)

  def cast(tree):
    return jax.tree_util.tree_map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
    )

  def init(params):
    return tx.init(cast(params))

  def update(updates, state, params=None):
    return tx.update(cast(updates), state, None if params is None else cast(params))

  return optax.GradientTransformation(init, update)


def optimizer_state_dtype(model: Any, flag: str = "config.model.opt_state_dtype") -> str | None:
  """The `opt_state_dtype` of a trainer's `config.model` (a mapping, or None): a dtype name,
  or None when unset ("" or absent: the state takes the parameters' dtype, optax's default).

  Raises:
    ValueError: naming `flag`, for a value that is not a floating dtype.
  """
  value = (model or {}).get("opt_state_dtype", "") or ""
  return _float_dtype_name(value, flag) if value else None


def with_model_state_dtype(tx: optax.GradientTransformation, config: Any):
  """`tx` with its state in the trainer config's `config.model.opt_state_dtype` when set
  (`with_state_dtype`); `tx` itself otherwise. Used by the SFT and RL trainers."""
  dtype = optimizer_state_dtype(config.get("model"))
  return tx if dtype is None else with_state_dtype(tx, dtype)


OPTIMIZERS = ("adamw", "sgd")


def make_optimizer(name: str, policy: MemoryPolicy, learning_rate: float = 1e-5):
  """The planner's optimizer by name: "adamw" (two moments) or "sgd" (no state)."""
  check_choice(name, OPTIMIZERS, "optimizer")
  tx = optax.adamw(learning_rate) if name == "adamw" else optax.sgd(learning_rate)
  return policy.optimizer(tx)
