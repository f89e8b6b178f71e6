"""Head-role gates for hybrid-head sparse decoding: HardKuma (LycheeDecode) and DuoAttention.

"LycheeDecode: Accelerating Long-Context LLM Inference via Hybrid-Head Sparse Decoding"
(Lin et al., arXiv:2602.04541) learns, per (layer, KV head), whether a head is a *retrieval*
head (full attention, re-selects tokens) or a *sparse* head (attends to the inherited set),
with one HardKuma gate per head. HardKuma is from "Interpretable Neural Predictions with
Differentiable Binary Variables" (Bastings, Aziz, Titov, ACL 2019, arXiv:1905.08160):

    u ~ U(EPS_U, 1 - EPS_U);  a, b clamped to A_B_RANGE
    s = (1 - (1 - u)^(1/b))^(1/a)              Kumaraswamy(a, b) on (0, 1)
    s_bar = l + (r - l) s,  (l, r) = STRETCH   stretch
    z = clip(s_bar, 0, 1)                      rectify: point masses at 0 and 1

Kuma CDF `F(x) = 1 - (1 - x^a)^b`; `P(z=0) = F(-l/(r-l)) = F(1/12)`, `P(z=1) = 1 - F(11/12)`.
The expected L0 density `rho_hat = mean(1 - P(z=0))` is held to a target by a Lagrangian
controller (`density_penalty`); final roles threshold the unstretched Kuma mean at 0.5.

The baseline gate is "DuoAttention: Efficient Long-Context LLM Inference with Retrieval and
Streaming Heads" (Xiao et al., arXiv:2410.10819): a continuous `alpha in [0, 1]` per KV head,
rounded at deployment by a threshold or a kept fraction (`roles_from_duo`).

Shapes: gate parameters a, b, alpha `[L, K]` (layers, KV heads), float32. All math in f32.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import betaln

from reasoning_jax.validation import check_array, check_float_in, check_positive_int

EPS_U = 1e-3  # u ~ U(EPS_U, 1 - EPS_U), as the LycheeDecode code.
STRETCH = (-0.1, 1.1)  # (l, r) of the stretched Kuma.
A_B_RANGE = (1e-6, 100.0)  # a and b are clamped here before use.

_L, _R = STRETCH
ZERO_POINT = -_L / (_R - _L)  # 1/12: s below it rectifies to z = 0.
ONE_POINT = (1.0 - _L) / (_R - _L)  # 11/12: s above it rectifies to z = 1.


def _f32(x: Any) -> jax.Array:
  return jnp.asarray(x, jnp.float32)


def clamp_ab(a: Any, b: Any) -> tuple[jax.Array, jax.Array]:
  """a and b in f32, clamped to `A_B_RANGE` (the gradient is zero where a clamp binds)."""
  lo, hi = A_B_RANGE
  return jnp.clip(_f32(a), lo, hi), jnp.clip(_f32(b), lo, hi)


def kuma_cdf(x: Any, a: Any, b: Any) -> jax.Array:
  """Kumaraswamy CDF `F(x) = 1 - (1 - x^a)^b`, x clipped to [0, 1] (F(0) = 0, F(1) = 1).

  a, b are used as given (no clamp). The endpoints are selected with a double `where`, so
  their gradients are zero rather than NaN.
  """
  x, a, b = jnp.clip(_f32(x), 0.0, 1.0), _f32(a), _f32(b)
  interior = (x > 0.0) & (x < 1.0)
  x_safe = jnp.where(interior, x, 0.5)
  f = -jnp.expm1(b * jnp.log1p(-jnp.power(x_safe, a)))
  return jnp.where(interior, f, jnp.where(x >= 1.0, 1.0, 0.0))


def kuma_sample(u: Any, a: Any, b: Any) -> jax.Array:
  """Inverse-CDF Kuma sample `s = (1 - (1 - u)^(1/b))^(1/a)` for u in (0, 1), a, b clamped.

  Computed in log space: `1 - (1-u)^(1/b) = -expm1(log1p(-u) / b)`; with u in
  (EPS_U, 1 - EPS_U) and a, b in `A_B_RANGE` the inner term stays in (0, 1).
  """
  a, b = clamp_ab(a, b)
  inner = -jnp.expm1(jnp.log1p(-_f32(u)) / b)
  return jnp.exp(jnp.log(inner) / a)


def hardkuma_from_uniform(u: Any, a: Any, b: Any) -> jax.Array:
  """HardKuma gate from given uniforms: stretch the Kuma sample to STRETCH, clip to [0, 1].

  Differentiable in a and b where `0 < s_bar < 1`; exactly zero gradient where clipped.
  """
  l, r = STRETCH
  s_bar = l + (r - l) * kuma_sample(u, a, b)
  return jnp.clip(s_bar, 0.0, 1.0)


def hardkuma_sample(
  key: jax.Array, a: Any, b: Any, *, shape: tuple[int, ...] | None = None
) -> jax.Array:
  """Draws z ~ HardKuma(a, b) with u ~ U(EPS_U, 1 - EPS_U) (reparameterised).

  Args:
    key: a `jax.random` key (use a key of its own for gate sampling).
    a, b: Kuma parameters (broadcastable), clamped to `A_B_RANGE`.
    shape: shape of the draw; defaults to the broadcast shape of a and b.

  Returns:
    z float32 in [0, 1] of `shape`, with point masses at 0 and 1.
  """
  if shape is None:
    shape = jnp.broadcast_shapes(jnp.shape(a), jnp.shape(b))
  u = jax.random.uniform(key, shape, jnp.float32, minval=EPS_U, maxval=1.0 - EPS_U)
  return hardkuma_from_uniform(u, a, b)


def prob_zero(a: Any, b: Any) -> jax.Array:
  """`P(z = 0) = F(-l / (r - l)) = F(1/12)` (a, b clamped)."""
  a, b = clamp_ab(a, b)
  return kuma_cdf(ZERO_POINT, a, b)


def prob_one(a: Any, b: Any) -> jax.Array:
  """`P(z = 1) = 1 - F((1 - l) / (r - l)) = 1 - F(11/12)` (a, b clamped)."""
  a, b = clamp_ab(a, b)
  return 1.0 - kuma_cdf(ONE_POINT, a, b)


def kuma_mean(a: Any, b: Any) -> jax.Array:
  """Mean of the unstretched Kuma: `E[s] = b Γ(1 + 1/a) Γ(b) / Γ(1 + 1/a + b)` (a, b clamped).

  Computed in log space as `exp(log b + log B(1 + 1/a, b))` with `jax.scipy.special.betaln`,
  i.e. `gammaln(1+1/a) + gammaln(b) - gammaln(1+1/a+b)` with a large-argument correction
  (three raw `gammaln`s lose all precision in f32 when 1/a is large, e.g. a = 1e-6).
  """
  a, b = clamp_ab(a, b)
  return jnp.exp(jnp.log(b) + betaln(1.0 + 1.0 / a, b))


def _check_gates(a: Any, b: Any) -> None:
  check_array(a, "a", 2, floating=True)
  check_array(b, "b", 2, floating=True)
  if tuple(a.shape) != tuple(b.shape):
    raise ValueError(
      f"a and b must have the same shape [L, K], got a {tuple(a.shape)} and b {tuple(b.shape)}"
    )


def expected_density(a: jax.Array, b: jax.Array) -> jax.Array:
  """Expected L0 density `rho_hat = mean over all gates of (1 - P(z = 0))`, a scalar.

  a, b: `[L, K]`. To leave out forced layers, pass the learnable slice (e.g. `a[1:], b[1:]`).
  """
  _check_gates(a, b)
  return jnp.mean(1.0 - prob_zero(a, b))


def roles_from_kuma(a: jax.Array, b: jax.Array, *, force_first_layer: bool = True) -> jax.Array:
  """Final roles: retrieval iff the unstretched Kuma mean > 0.5; layer 0 forced to retrieval.

  The decision uses `kuma_mean`, never a sampled z (LycheeDecode's code). At the init
  a = b = 1 the mean is 0.5 up to f32 rounding, so roles of untrained gates are arbitrary.

  Args:
    a, b: `[L, K]` Kuma parameters.
    force_first_layer: set every head of layer 0 to retrieval (True, as LycheeDecode).

  Returns:
    bool `[L, K]`, True = retrieval head.
  """
  _check_gates(a, b)
  roles = kuma_mean(a, b) > 0.5
  return roles.at[0].set(True) if force_first_layer else roles


# ---- density constraint (Lagrangian controller on the expected L0 density) -------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DensityConstraintState:
  """State of `density_penalty`: `ema` of the violation and the multiplier `lam` (f32 scalars)."""

  ema: jax.Array
  lam: jax.Array


def init_density_constraint(lam0: float = 2.0) -> DensityConstraintState:
  """Initial controller state: ema = 0, lam = lam0 (2.0 in LycheeDecode)."""
  check_float_in(lam0, "lam0", 0.0, None, low_inclusive=False)
  return DensityConstraintState(ema=jnp.zeros((), jnp.float32), lam=jnp.asarray(lam0, jnp.float32))


def density_penalty(
  rho_hat: jax.Array,
  target: float | jax.Array,
  state: DensityConstraintState,
  *,
  eta: float = 1e-3,
  ema_decay: float = 0.9,
  lam_range: tuple[float, float] = (1e-12, 20.0),
) -> tuple[jax.Array, DensityConstraintState, dict[str, jax.Array]]:
  """LycheeDecode's density constraint, one training step (spec order, every line in turn):

      c_hat = relu(rho_hat - target)
      ema'  = ema_decay * ema + (1 - ema_decay) * stopgrad(c_hat)
      c     = c_hat + stopgrad(ema' - c_hat)       value ema', gradient of c_hat
      lam'  = clip(lam * exp(eta * stopgrad(c)), *lam_range)
      penalty = stopgrad(lam') * c

  ORDER: the EMA is updated first and the multiplier is updated with the new `c` (= ema');
  the penalty uses the UPDATED multiplier lam'. So `d penalty / d rho_hat = lam'` above the
  target and 0 at or below it.

  Args:
    rho_hat: scalar expected density (`expected_density`), differentiable.
    target: the target density rho* (e.g. 24/256 = 0.09375 for Llama-3-8B).
    state: `DensityConstraintState` from `init_density_constraint` or the previous step.
    eta: multiplier step size eta_lambda (1e-3).
    ema_decay: EMA decay (0.9).
    lam_range: clip range of the multiplier ((1e-12, 20)).

  Returns:
    `(penalty, new_state, metrics)`; add `penalty` to the distillation loss. metrics: c_hat,
    c (= ema'), lam (= lam'), penalty, all stop-gradient scalars.
  """
  check_float_in(eta, "eta", 0.0, None)
  check_float_in(ema_decay, "ema_decay", 0.0, 1.0, high_inclusive=False)
  if len(lam_range) != 2 or not 0.0 <= lam_range[0] <= lam_range[1]:
    raise ValueError(f"lam_range must be (low, high) with 0 <= low <= high, got {lam_range!r}")
  sg = jax.lax.stop_gradient
  c_hat = jax.nn.relu(_f32(rho_hat) - _f32(target))
  ema = ema_decay * state.ema + (1.0 - ema_decay) * sg(c_hat)
  c = c_hat + sg(ema - c_hat)
  lam = jnp.clip(state.lam * jnp.exp(eta * sg(c)), lam_range[0], lam_range[1])
  penalty = sg(lam) * c
  metrics = {"c_hat": sg(c_hat), "c": sg(c), "lam": sg(lam), "penalty": sg(penalty)}
  return penalty, DensityConstraintState(ema=sg(ema), lam=sg(lam)), metrics


# ---- learning-rate schedule -------------------------------------------------------------------


def lr_schedule_factor(step: Any, num_steps: int) -> jax.Array:
  """`min(1, max((s+1)/(0.2N), 0.1), max((N-s)/(0.2N), 0.1))`: 20% linear warm-up and
  cool-down, floored at 0.1 (LycheeDecode's role-learning schedule). jnp; `step` may be traced.
  """
  check_positive_int(num_steps, "num_steps")
  s, ramp = _f32(step), 0.2 * num_steps
  up = jnp.maximum((s + 1.0) / ramp, 0.1)
  down = jnp.maximum((num_steps - s) / ramp, 0.1)
  return jnp.minimum(1.0, jnp.minimum(up, down))


def lycheedecode_schedule(lr: float, num_steps: int) -> Callable[[Any], jax.Array]:
  """An optax-style schedule `step -> lr * lr_schedule_factor(step, num_steps)` (lr 0.01,
  3000 steps in LycheeDecode)."""
  check_float_in(lr, "lr", 0.0, None, low_inclusive=False)
  check_positive_int(num_steps, "num_steps")
  return lambda step: lr * lr_schedule_factor(step, num_steps)


# ---- DuoAttention gates -----------------------------------------------------------------------


def duo_gate_values(alpha: Any) -> jax.Array:
  """DuoAttention gate values `clip(alpha, 0, 1)`: `attn = a full + (1 - a) streaming`."""
  return jnp.clip(_f32(alpha), 0.0, 1.0)


def roles_from_duo(
  alpha: jax.Array,
  *,
  threshold: float | None = None,
  fraction: float | None = None,
  force_first_layer: bool = False,
) -> jax.Array:
  """DuoAttention deployment: round the continuous gates to retrieval (True) / streaming.

  Exactly one of:
    threshold: retrieval iff `clip(alpha, 0, 1) >= threshold` (`>=` as the DuoAttention code).
    fraction: keep the top `round(fraction * L * K)` gates by alpha (Python `round`, half to
      even), in (0, 1]. DESIGN CHOICE: ties are broken by flat index (lower `l * K + k` wins),
      deterministically (the DuoAttention code adds random noise instead).
  force_first_layer: set layer 0 to retrieval (False). With `fraction`, the forced heads COUNT
    toward the kept number (equal-resource accounting): the remaining
    `max(round(fraction * L * K) - K, 0)` are the top gates of layers 1..L-1.

  Args:
    alpha: `[L, K]` float gate parameters.

  Returns:
    bool `[L, K]`, True = retrieval head.
  """
  check_array(alpha, "alpha", 2, floating=True)
  if (threshold is None) == (fraction is None):
    raise ValueError(
      f"exactly one of threshold and fraction must be given, got threshold={threshold!r}, "
      f"fraction={fraction!r}"
    )
  values = duo_gate_values(alpha)
  num_layers, num_heads = alpha.shape
  if threshold is not None:
    check_float_in(threshold, "threshold")
    roles = values >= threshold
    return roles.at[0].set(True) if force_first_layer else roles
  check_float_in(fraction, "fraction", 0.0, 1.0, low_inclusive=False)
  keep = round(fraction * num_layers * num_heads)
  first = 1 if force_first_layer else 0
  keep = max(keep - first * num_heads, 0)
  rest = _f32(alpha)[first:].reshape(-1)  # Ranked by raw alpha (finer than the clipped value).
  chosen = jnp.zeros(rest.shape, bool)
  if keep > 0:
    _, idx = jax.lax.top_k(rest, keep)  # Equal values: the lower index comes first.
    chosen = chosen.at[idx].set(True)
  roles = chosen.reshape(num_layers - first, num_heads)
  if force_first_layer:
    roles = jnp.concatenate([jnp.ones((1, num_heads), bool), roles], axis=0)
  return roles
