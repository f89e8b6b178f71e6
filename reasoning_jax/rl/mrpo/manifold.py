"""MRPO bias manifold (`bias_manifold`) and the orthogonality score Omega of a probe.

Paper: "Beyond Alignment: Expanding Reasoning Capacity via Manifold-Reshaping Policy
Optimization", Dayu Wang, Jiaye Yang, Weikang Li, Jiahui Liang, Yang Li,
arXiv 2602.02545 (2026).

The bias manifold of a pool of hidden states (the teacher's failed attempts in Stage I)
is the span of the top-k centred principal directions keeping `>= 1 - eps_var` of the
energy; `Omega(z)` is the fraction of `z - mu` outside it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from reasoning_jax.rl.mrpo.config import OMEGA_EPS
from reasoning_jax.validation import (
  check_array,
  check_finite_where,
  check_float_in,
  check_mask,
)


class BiasManifold(NamedTuple):
  """A bias manifold: `mean [d]` and an orthonormal `basis [d, r]` (r = min(n, d)).

  Only the first `rank` columns are non-zero (the rest are zero so the shape is
  static under jit); `basis @ basis.T` is the projector onto the manifold.
  """

  mean: jax.Array
  basis: jax.Array
  rank: jax.Array


def check_manifold(manifold: Any, d: int, name: str = "manifold") -> None:
  """Raises unless `manifold` is a `BiasManifold` with `mean [d]` and `basis [d, r]`."""
  if not isinstance(manifold, BiasManifold):
    raise TypeError(
      f"{name} must be a BiasManifold (see bias_manifold), got {type(manifold).__name__}"
    )
  if tuple(manifold.mean.shape) != (d,) or manifold.basis.ndim != 2 or manifold.basis.shape[0] != d:
    raise ValueError(
      f"{name} has mean {tuple(manifold.mean.shape)} and basis "
      f"{tuple(manifold.basis.shape)}; expected [d]=({d},) and [d, r] with d={d}"
    )


def bias_manifold(
  states: jax.Array, mask: jax.Array | None = None, *, eps_var: float = 0.05
) -> BiasManifold:
  """Bias manifold of a pool of hidden states `states [n, d]` (MRPO Stage I).

  `mu = mean(X)`; thin SVD of `X - mu` (the singular values are those of the
  "micro-SVD" of the n x n Gram matrix); keep the top-k right singular vectors with
  the smallest k such that `sum_{i<=k} s_i^2 / sum_i s_i^2 >= 1 - eps_var`.
  A pool with zero centred energy gives k = 0 (every direction is orthogonal).

  Args:
    states: `[n, d]` hidden states (float32 inside).
    mask: optional `[n]` 1 on rows of the pool (padding rows are ignored).
    eps_var: DESIGN CHOICE default 0.05.

  Returns:
    `BiasManifold(mean [d], basis [d, min(n, d)] with columns >= k zeroed, rank k)`.
  """
  check_array(states, "states", 2, floating=True)
  check_float_in(eps_var, "eps_var", 0.0, 1.0, high_inclusive=False)
  n, d = states.shape
  if mask is None:
    mask = jnp.ones((n,), bool)
  check_mask(mask, "mask", (n,), "states[:, 0]")
  check_finite_where(states, mask, "states")
  return _bias_manifold_core(states, jnp.asarray(mask) != 0, eps_var)


@jax.jit
def _bias_manifold_core(states: jax.Array, mask: jax.Array, eps_var: Any) -> BiasManifold:
  valid = mask[:, None]
  x = jnp.where(valid, jax.lax.stop_gradient(states).astype(jnp.float32), 0.0)
  count = jnp.maximum(jnp.sum(valid), 1).astype(jnp.float32)
  mu = jnp.sum(x, axis=0) / count
  centred = jnp.where(valid, x - mu, 0.0)
  _, s, vt = jnp.linalg.svd(centred, full_matrices=False)
  energy = s * s
  total = jnp.sum(energy)
  explained = jnp.cumsum(energy) / jnp.where(total > 0, total, 1.0)
  # Smallest k with explained[k-1] >= 1 - eps_var (tiny slack for float32 rounding).
  k = jnp.sum(explained < (1.0 - eps_var) - 1e-6) + 1
  k = jnp.where(total > 0, jnp.minimum(k, s.shape[0]), 0).astype(jnp.int32)
  keep = jnp.arange(s.shape[0]) < k
  basis = jnp.where(keep[None, :], vt.T, 0.0)
  return BiasManifold(mu, basis, k)


def orthogonality_score(z: jax.Array, manifold: BiasManifold) -> jax.Array:
  """`Omega(z) = ||(I - U U^T)(z - mu)|| / (||z - mu|| + 1e-8)` in [0, 1].

  1 means `z - mu` lies entirely in the null space of the bias manifold.

  Args:
    z: `[..., d]` probe embeddings.
    manifold: `BiasManifold` from `bias_manifold`.

  Returns:
    `[...]` float32 scores.
  """
  check_array(z, "z", tuple(range(1, 8)), floating=True)
  check_manifold(manifold, z.shape[-1])
  check_finite_where(z, None, "z")
  return _orthogonality_core(z, manifold.mean, manifold.basis)


@jax.jit
def _orthogonality_core(z: jax.Array, mean: jax.Array, basis: jax.Array) -> jax.Array:
  u = basis.astype(jnp.float32)
  r = z.astype(jnp.float32) - mean.astype(jnp.float32)
  perp = r - (r @ u) @ u.T
  score = jnp.linalg.norm(perp, axis=-1) / (jnp.linalg.norm(r, axis=-1) + OMEGA_EPS)
  return jnp.clip(score, 0.0, 1.0)
