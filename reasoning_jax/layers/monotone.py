"""Monotone FFN blocks (registered in `registry.FFNS`) and their training helpers.

"Monotonicity as an Architectural Bias for Robust Language Models" (Cooper et al.,
arXiv:2602.02686). Each FFN is monotone as a function of its own (normed) input; attention,
norms, residuals, embeddings and the head stay unconstrained, so the model as a whole is not
monotone (by design). The math lives in `reasoning_jax.ops.monotone`.

Registered FFNs:
  * "monotone": `relu(x @ softplus(V_up)) @ softplus(V_down)` (the paper's T5 form);
  * "monotone_gated" (DESIGN CHOICE, SwiGLU-shaped): `(relu(x @ W_gate) *
    softplus(x @ W_up)) @ W_down` with every W = softplus(V).
Biases (unconstrained) follow `config.mlp_bias`. Variants: `make_monotone_ffn`.

Parameters keep the SwiGLU names and layouts (`gate`/`up` `[H, I]`, `down` `[I, H]`) so
the existing partition rules apply, but hold the RAW V (type `MonotoneRawParam`, a
`nnx.Param` subclass); the weight is `softplus(V)`. Init: V = softplus^-1(|N(0,
initializer_range)| + 1e-4) (`load_dense` converts a pretrained dense FFN, discarding
signs). Weight decay: V must be excluded (decaying V drives W to ln 2); use
`monotone_weight_decay_mask` as the `mask` of `optax.adamw` / `add_decayed_weights`, and,
if decay on W is wanted, add `coeff * monotone_weight_l2(...)` to the loss.

`is_monotone_ffn(name)` tells monotone FFNs from the rest ("swiglu" is not: gated SiLU is
not monotone even with non-negative weights); `require_monotone_ffns(config)` raises unless
every layer's FFN is monotone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.layers.ffn import bias_param
from reasoning_jax.ops.monotone import (
  DEFAULT_EPS,
  check_activation,
  init_raw,
  monotone_ffn_core,
  monotone_weight_l2,
  nonnegative_weight,
  raw_from_dense,
)

if TYPE_CHECKING:
  from reasoning_jax.models.config import ModelConfig


class MonotoneRawParam(nnx.Param):
  """A raw parameter V of a monotone FFN; the weight used is softplus(V). Never decay V."""


@registry.FFNS.register("monotone")
class MonotoneFFN(nnx.Module):
  """Monotone FFN with softplus-reparameterised non-negative weights.

  Class attributes (set by `make_monotone_ffn`):
    activation: a name in `reasoning_jax.ops.monotone.MONOTONE_ACTIVATIONS` ("relu").
    gated: False (non-gated, the paper's form) or True (DESIGN CHOICE gated product).
    init_eps: epsilon of the softplus^-1(|W| + eps) initialisation (1e-4, as the authors).
  """

  monotone = True  # Read by `is_monotone_ffn`.
  activation: str = "relu"
  gated: bool = False
  init_eps: float = DEFAULT_EPS

  def __init__(self, config: ModelConfig, layer_idx: int, *, rngs: nnx.Rngs):
    del layer_idx
    check_activation(self.activation, gated=self.gated)
    h, i = config.hidden_size, config.intermediate_size
    self.dtype = config.compute_dtype

    def raw(shape):
      return MonotoneRawParam(
        init_raw(rngs.params(), shape, config.initializer_range, config.params_dtype, self.init_eps)
      )

    self.gate = raw((h, i)) if self.gated else None
    self.up = raw((h, i))
    self.down = raw((i, h))
    if config.mlp_bias:
      self.gate_bias = bias_param((i,), config) if self.gated else None
      self.up_bias = bias_param((i,), config)
      self.down_bias = bias_param((h,), config)
    else:
      self.gate_bias = self.up_bias = self.down_bias = None

  def weights(self) -> dict[str, jax.Array]:
    """The non-negative weights softplus(V) in the compute dtype."""
    out = {"up": self.up, "down": self.down}
    if self.gate is not None:
      out["gate"] = self.gate
    return {k: nonnegative_weight(v[...]).astype(self.dtype) for k, v in out.items()}

  def load_dense(
    self, *, up: jax.Array, down: jax.Array, gate: jax.Array | None = None, eps: float = DEFAULT_EPS
  ) -> None:
    """Sets V = softplus^-1(|W| + eps) from dense kernels `[H, I]`/`[I, H]` (signs lost)."""
    if (gate is None) != (self.gate is None):
      raise ValueError(f"gate must be given iff the FFN is gated (gated={self.gated})")
    for name, w in (("up", up), ("down", down), ("gate", gate)):
      if w is None:
        continue
      param = getattr(self, name)
      if tuple(w.shape) != tuple(param.shape):
        raise ValueError(f"{name} must have shape {tuple(param.shape)}, got {tuple(w.shape)}")
      param[...] = raw_from_dense(w, eps).astype(param.dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    w = self.weights()
    dt = self.dtype

    def bias(b):
      return None if b is None else b[...].astype(dt)

    return monotone_ffn_core(
      x.astype(dt),
      w["up"],
      w["down"],
      gate=w.get("gate"),
      up_bias=bias(self.up_bias),
      down_bias=bias(self.down_bias),
      gate_bias=bias(self.gate_bias),
      activation=self.activation,
    )


def make_monotone_ffn(
  name: str,
  *,
  activation: str = "relu",
  gated: bool = False,
  init_eps: float = DEFAULT_EPS,
  override: bool = False,
) -> type:
  """Registers (in `registry.FFNS`) and returns a `MonotoneFFN` variant named `name`."""
  check_activation(activation, gated=gated)
  if not init_eps > 0:
    raise ValueError(f"init_eps must be > 0, got {init_eps}")
  cls_name = "MonotoneFFN_" + "".join(c if c.isalnum() else "_" for c in name)
  cls = type(
    cls_name,
    (MonotoneFFN,),
    dict(
      activation=activation,
      gated=bool(gated),
      init_eps=float(init_eps),
      __doc__=f"Monotone FFN registered as {name!r} ({activation}, gated={gated}).",
      __module__=__name__,
    ),
  )
  return registry.FFNS.register(name, override=override)(cls)


MonotoneGatedFFN = make_monotone_ffn("monotone_gated", gated=True)


def is_monotone_ffn(name: str) -> bool:
  """True iff the FFN registered as `name` declares itself monotone (`monotone = True`)."""
  return bool(getattr(registry.FFNS.get(name), "monotone", False))


def require_monotone_ffns(config: ModelConfig) -> None:
  """Raises ValueError unless every layer's FFN in `config` is a monotone FFN."""
  for layer in range(config.num_layers):
    name = config.layer_ffn(layer)
    if not is_monotone_ffn(name):
      monotone = [n for n in registry.FFNS.names() if is_monotone_ffn(n)]
      raise ValueError(
        f"ffn[{layer}]={name!r} is not a monotone FFN (gated SiLU/GELU blocks such as "
        f"SwiGLU are not monotone even with non-negative weights); choose one of {monotone}"
      )


def _is_variable(x: Any) -> bool:
  return isinstance(x, nnx.Variable)


def monotone_weight_decay_mask(params: Any) -> Any:
  """optax weight-decay mask: False for `MonotoneRawParam` leaves, True for the others.

  Args:
    params: an `nnx.State` (e.g. from `nnx.split(model, nnx.Param)`) or a module; leaves
      must be `nnx.Variable`s, since the variable type is what marks a raw V.

  Returns:
    A pytree of bools with one entry per variable (a prefix of `params`), usable as
    `optax.adamw(..., mask=monotone_weight_decay_mask)`.
  """
  if isinstance(params, nnx.Module):
    params = nnx.state(params, nnx.Param)
  leaves = jax.tree_util.tree_leaves(params, is_leaf=_is_variable)
  if leaves and not any(_is_variable(x) for x in leaves):
    raise TypeError(
      "monotone_weight_decay_mask needs nnx.Variable leaves (an nnx.State from nnx.split/"
      "nnx.state) to recognise MonotoneRawParam; got a tree of plain arrays"
    )
  return jax.tree_util.tree_map(
    lambda v: not isinstance(v, MonotoneRawParam), params, is_leaf=_is_variable
  )


def monotone_raw_params(params: Any) -> list[jax.Array]:
  """The raw V arrays of all `MonotoneRawParam`s in `params` (a module or an nnx.State)."""
  if isinstance(params, nnx.Module):
    params = nnx.state(params, nnx.Param)
  return [
    v[...]
    for v in jax.tree_util.tree_leaves(params, is_leaf=_is_variable)
    if isinstance(v, MonotoneRawParam)
  ]


def monotone_decay_penalty(params: Any) -> jax.Array:
  """0.5 * sum softplus(V)^2 over the model's raw monotone params (decay on W, for the loss)."""
  return monotone_weight_l2(monotone_raw_params(params))


__all__ = [
  "MonotoneFFN",
  "MonotoneGatedFFN",
  "MonotoneRawParam",
  "is_monotone_ffn",
  "make_monotone_ffn",
  "monotone_decay_penalty",
  "monotone_raw_params",
  "monotone_weight_decay_mask",
  "require_monotone_ffns",
]
