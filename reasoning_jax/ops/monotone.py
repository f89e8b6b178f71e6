"""Monotone feed-forward blocks: non-negative weights and non-decreasing activations.

"Monotonicity as an Architectural Bias for Robust Language Models" (Cooper, Nadali,
Trivedi, Velasquez; arXiv:2602.02686). A map f is monotone if x <= x' (elementwise) implies
f(x) <= f(x'). An MLP `out = W_2 sigma(W_1 x + b_1) + b_2` is monotone when every W >= 0
elementwise and sigma is non-decreasing (biases unconstrained); its Jacobian
`W_2 diag(sigma'(.)) W_1` is then entrywise >= 0.

* Weights are reparameterised as W = softplus(V) with V unconstrained (projection / clipping
  after each step is reported to break training): `nonnegative_weight`.
* Initialisation from a dense (pretrained) matrix: V_0 = softplus^-1(|W_pre| + eps), eps =
  1e-4 (`raw_from_dense`): magnitudes kept, SIGNS DISCARDED. From scratch we apply the same
  rule to a normal(0, std) draw (`init_raw`), so W starts at the usual init magnitude rather
  than softplus(0) = ln 2. Near-zero weights sit where softplus' slope sigma(V) ~ W is tiny
  and move slowly.
* Weight decay acts on V, not W: decaying V -> 0 drives W -> ln 2 ~ 0.69. Exclude V from
  decay (`reasoning_jax.layers.monotone.monotone_weight_decay_mask`) or penalise softplus(V)
  explicitly (`monotone_weight_l2`).
* Gated FFNs (SwiGLU/GEGLU) are NOT monotone even with W >= 0 (SiLU/GELU dip below zero and
  the product of a negative factor with an increasing one decreases). DESIGN CHOICE gated
  form: `act(W_g x + b_g) * softplus(W_u x + b_u)` with both factors non-negative and
  non-decreasing (a product of such functions is non-decreasing), act in {relu, softplus,
  sigmoid}.

Shapes: x `[..., H]`; up/gate `[H, I]`; down `[I, H]` (kernels stored `[in, out]`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from reasoning_jax import registry
from reasoning_jax.validation import check_array, is_concrete

# Non-decreasing activations, by name. `NONNEGATIVE_ACTIVATIONS` may gate a product.
MONOTONE_ACTIVATIONS: registry.Registry[Callable[[jax.Array], jax.Array]] = registry.Registry(
  "monotone activation"
)
MONOTONE_ACTIVATIONS.register("relu")(jax.nn.relu)
MONOTONE_ACTIVATIONS.register("softplus")(jax.nn.softplus)
MONOTONE_ACTIVATIONS.register("sigmoid")(jax.nn.sigmoid)
MONOTONE_ACTIVATIONS.register("tanh")(jnp.tanh)
MONOTONE_ACTIVATIONS.register("identity")(lambda x: x)
NONNEGATIVE_ACTIVATIONS = ("relu", "softplus", "sigmoid")
# Common activations that are NOT monotone (negative dip), named in error messages.
NON_MONOTONE_ACTIVATIONS = ("silu", "swish", "gelu", "mish")

DEFAULT_EPS = 1e-4  # The authors' epsilon in softplus^-1(|W| + eps).


def check_activation(name: Any, *, gated: bool = False) -> str:
  """Returns `name` if it is a monotone activation (non-negative too when `gated`)."""
  if name in NON_MONOTONE_ACTIVATIONS:
    raise ValueError(
      f"activation={name!r} is not monotone (it dips below zero before rising), so the FFN "
      f"would not be monotone; choose one of {MONOTONE_ACTIVATIONS.names()}"
    )
  MONOTONE_ACTIVATIONS.validate(name, argument="activation")
  if gated and name not in NONNEGATIVE_ACTIVATIONS:
    raise ValueError(
      f"activation={name!r} can be negative; a gated product is only monotone when both "
      f"factors are non-negative: choose one of {list(NONNEGATIVE_ACTIVATIONS)}"
    )
  return name


def nonnegative_weight(raw: jax.Array) -> jax.Array:
  """W = softplus(V), elementwise >= 0 (computed in float32, returned in V's dtype)."""
  return jax.nn.softplus(raw.astype(jnp.float32)).astype(raw.dtype)


def inverse_softplus(w: jax.Array) -> jax.Array:
  """softplus^-1(w) = w + log(-expm1(-w)) for w > 0 (stable for small and large w)."""
  w = jnp.asarray(w, jnp.float32)
  return w + jnp.log(-jnp.expm1(-w))


def raw_from_dense(w: jax.Array, eps: float = DEFAULT_EPS) -> jax.Array:
  """V_0 = softplus^-1(|w| + eps): softplus(V_0) == |w| + eps (signs discarded)."""
  if not eps > 0:
    raise ValueError(f"eps must be > 0 (softplus^-1(0) = -inf), got {eps}")
  w = jnp.asarray(w)
  return inverse_softplus(jnp.abs(w.astype(jnp.float32)) + eps).astype(
    w.dtype if jnp.issubdtype(w.dtype, jnp.floating) else jnp.float32
  )


def init_raw(
  key: jax.Array, shape, std: float, dtype=jnp.float32, eps: float = DEFAULT_EPS
) -> jax.Array:
  """From-scratch raw init: `raw_from_dense(normal(0, std))`, so W ~ |N(0, std)| + eps."""
  return raw_from_dense(std * jax.random.normal(key, shape, jnp.float32), eps).astype(dtype)


def monotone_weight_l2(raw_weights) -> jax.Array:
  """0.5 * sum of softplus(V)^2 over `raw_weights` (a pytree of raw V arrays).

  An explicit decay on W to add to the loss (times a coefficient) when V is excluded from
  the optimizer's weight decay.
  """
  leaves = jax.tree_util.tree_leaves(raw_weights)
  return 0.5 * sum(jnp.sum(jnp.square(jax.nn.softplus(v.astype(jnp.float32)))) for v in leaves)


def _check(x, up, down, gate, up_bias, down_bias, gate_bias, activation):
  if not hasattr(x, "ndim") or x.ndim < 1:
    raise ValueError(f"x must be [..., H], got shape {getattr(x, 'shape', None)}")
  h = x.shape[-1]
  for name, w in (("up", up), ("down", down), ("gate", gate)):
    if w is None:
      continue
    check_array(w, name, 2)
    if w.dtype != x.dtype:
      raise TypeError(f"{name} dtype {w.dtype} differs from x dtype {x.dtype}; cast first")
    if is_concrete(w) and np.any(np.asarray(w, np.float32) < 0):
      raise ValueError(
        f"{name} has negative entries: a monotone FFN needs weights >= 0 "
        "(pass nonnegative_weight(raw), i.e. softplus of the raw parameter)"
      )
  if up.shape[0] != h:
    raise ValueError(f"up must be [H, I] with H = {h} (x's last axis), got {tuple(up.shape)}")
  i = up.shape[1]
  if down.shape != (i, h):
    raise ValueError(f"down must be [I, H] = {(i, h)}, got {tuple(down.shape)}")
  if gate is not None and gate.shape != up.shape:
    raise ValueError(f"gate must be [H, I] = {tuple(up.shape)}, got {tuple(gate.shape)}")
  for name, bias, size in (
    ("up_bias", up_bias, i),
    ("down_bias", down_bias, h),
    ("gate_bias", gate_bias, i),
  ):
    if bias is not None:
      check_array(bias, name, shape=(size,))
  if gate_bias is not None and gate is None:
    raise ValueError("gate_bias given without gate")
  check_activation(activation, gated=gate is not None)


def monotone_ffn(
  x: jax.Array,
  up: jax.Array,
  down: jax.Array,
  *,
  gate: jax.Array | None = None,
  up_bias: jax.Array | None = None,
  down_bias: jax.Array | None = None,
  gate_bias: jax.Array | None = None,
  activation: str = "relu",
) -> jax.Array:
  """A monotone MLP of its input (arXiv:2602.02686), given NON-NEGATIVE weights.

  Non-gated: `act(x @ up + up_bias) @ down + down_bias`.
  Gated (DESIGN CHOICE): `(act(x @ gate + gate_bias) * softplus(x @ up + up_bias)) @ down
  + down_bias`, act in {relu, softplus, sigmoid}.

  Args:
    x: `[..., H]`.
    up: `[H, I]` >= 0. down: `[I, H]` >= 0. gate: `[H, I]` >= 0 or None.
    up_bias, gate_bias: `[I]`; down_bias: `[H]` (unconstrained, optional).
    activation: a name in `MONOTONE_ACTIVATIONS`.

  Returns:
    `[..., H]` in x's dtype. Weights must be x's dtype; negative concrete weights raise.
  """
  _check(x, up, down, gate, up_bias, down_bias, gate_bias, activation)
  return monotone_ffn_core(
    x,
    up,
    down,
    gate=gate,
    up_bias=up_bias,
    down_bias=down_bias,
    gate_bias=gate_bias,
    activation=activation,
  )


def monotone_ffn_core(
  x, up, down, *, gate=None, up_bias=None, down_bias=None, gate_bias=None, activation="relu"
):
  """`monotone_ffn` without input checks (callers guarantee weights >= 0)."""
  act = MONOTONE_ACTIVATIONS.get(activation)

  def affine(w, b):
    y = x @ w
    return y if b is None else y + b.astype(y.dtype)

  if gate is None:
    hidden = act(affine(up, up_bias))
  else:
    hidden = act(affine(gate, gate_bias)) * jax.nn.softplus(affine(up, up_bias))
  out = hidden @ down
  return out if down_bias is None else out + down_bias.astype(out.dtype)


@functools.partial(jax.jit, static_argnums=(2,))
def _ordered_pairs(base, key, num_pairs, scale, delta_scale):
  k1, k2 = jax.random.split(key)
  idx = jax.random.randint(k1, (num_pairs,), 0, base.shape[0])
  noise, delta = jax.random.normal(k2, (2, num_pairs, base.shape[-1]))
  lo = base[idx] + scale * noise
  return lo, lo + delta_scale * jnp.abs(delta)


def probe_monotone(
  fn: Callable[[jax.Array], jax.Array],
  x: jax.Array,
  key: jax.Array,
  *,
  num_pairs: int = 1024,
  scale: float = 1.0,
  delta_scale: float | None = None,
  atol: float = 1e-5,
) -> int:
  """Counts order violations of `fn` on random ordered pairs (x, x + |delta|).

  Draws `num_pairs` points `x_i + scale * noise` around rows of `x` (`[H]` or `[..., H]`),
  raises every coordinate by `delta_scale * |N(0, 1)|` (default `scale`) and returns the
  number of pairs with some output coordinate decreasing by more than `atol`. 0 for a
  monotone fn (empirical evidence, not a proof). Small `delta_scale` probes local slopes.
  """
  delta_scale = scale if delta_scale is None else delta_scale
  lo, hi = _ordered_pairs(
    jnp.asarray(x, jnp.float32).reshape(-1, x.shape[-1]), key, num_pairs, scale, delta_scale
  )
  y_lo = fn(lo.astype(x.dtype)).astype(jnp.float32)
  y_hi = fn(hi.astype(x.dtype)).astype(jnp.float32)
  return int(jnp.sum(jnp.any(y_hi < y_lo - atol, axis=-1)))
