"""NOT IN THE PAPER (spec 2.5): a loss penalising hidden-state mass inside the bias manifold.

An extra on top of MRPO, which does not use it; off unless called. Paper:
"Beyond Alignment: Expanding Reasoning Capacity via Manifold-Reshaping Policy
Optimization", Dayu Wang, Jiaye Yang, Weikang Li, Jiahui Liang, Yang Li,
arXiv 2602.02545 (2026).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from reasoning_jax.rl.mrpo.config import OMEGA_EPS
from reasoning_jax.rl.mrpo.manifold import BiasManifold, check_manifold
from reasoning_jax.validation import (
  check_array,
  check_finite_float,
  check_finite_where,
  check_mask,
  shape_of,
)


def orthogonal_penalty_not_in_paper(
  hidden: jax.Array,
  mask: jax.Array,
  manifold: BiasManifold,
  *,
  correct: jax.Array | None = None,
  weight: float = 1.0,
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
  """NOT IN THE PAPER (spec 2.5): penalty on hidden-state mass inside the bias manifold.

  `weight * mean_t ||U^T (h_t - mu)||^2 / ||h_t - mu||^2` over the valid tokens of
  correct responses, differentiable w.r.t. `hidden` (the manifold is detached).
  No source validates this variant of arXiv 2602.02545; it is off unless called.

  Args:
    hidden: `[N, T, d]` hidden states (carrying gradient).
    mask: `[N, T]` valid tokens.
    manifold: `BiasManifold`, e.g. from the current policy's recent rollouts.
    correct: optional `[N]` bool/rewards (> 0 = correct); None uses every row.
    weight: lambda.

  Returns:
    `(loss_sum, denominator, aux)`: loss = loss_sum / denominator (token count), so
    micro-batches accumulate exactly.
  """
  check_array(hidden, "hidden", 3, floating=True)
  check_mask(mask, "mask", hidden.shape[:2], "hidden[:, :, 0]")
  check_manifold(manifold, hidden.shape[-1])
  check_finite_float(weight, "weight")
  check_finite_where(hidden, mask, "hidden")
  valid = jnp.asarray(mask) != 0
  if correct is not None:
    if not hasattr(correct, "shape") or tuple(correct.shape) != hidden.shape[:1]:
      raise ValueError(f"correct must have shape [N]=({hidden.shape[0]},), got {shape_of(correct)}")
    valid = valid & (jnp.asarray(correct) > 0)[:, None]
  return _orthogonal_penalty_core(hidden, valid, manifold.mean, manifold.basis, weight)


@jax.jit
def _orthogonal_penalty_core(
  hidden: jax.Array, valid: jax.Array, mean: jax.Array, basis: jax.Array, weight: Any
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
  u = jax.lax.stop_gradient(basis).astype(jnp.float32)
  mu = jax.lax.stop_gradient(mean).astype(jnp.float32)
  r = jnp.where(valid[..., None], hidden.astype(jnp.float32) - mu, 0.0)
  inside = jnp.sum(jnp.square(r @ u), axis=-1)
  norm2 = jnp.sum(jnp.square(r), axis=-1)
  ratio = inside / (norm2 + OMEGA_EPS)
  loss_sum = weight * jnp.sum(jnp.where(valid, ratio, 0.0))
  denominator = jnp.sum(valid).astype(jnp.float32)
  aux = {
    "orthogonal_penalty/mean_in_manifold_fraction": jnp.sum(jnp.where(valid, ratio, 0.0))
    / jnp.maximum(denominator, 1.0)
  }
  return loss_sum, denominator, aux
