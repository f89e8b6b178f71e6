"""The Hessian-induced metric of layer-wise quantisation: error, damping, inverse Cholesky.

"GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers" (Frantar
et al., arXiv:2210.17323), section 3.2 of `shared/methods/inference.md`. For `W [d_out, d_in]`
and calibration inputs `X [d_in, N]`, `||W X - Q X||_F^2` is measured with
`H = 2 X X^T / N [d_in, d_in]` (float32): `weighted_error(W, Q, H) = tr((W - Q) H (W - Q)^T)`.
GPTQ and BPDQ ("BPDQ: Bit-Plane Decomposition Quantization on a Variable Grid for Large Language
Models", Chen et al., arXiv:2602.04163) both walk the columns with `U = chol(H^-1, upper)`
(`H^-1 = U^T U`); the leading block of a trailing `U[g0:, g0:]` gives the Schur complement of the
later columns (`schur_complement`), the metric BPDQ fits in.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Damping escalation when the Cholesky fails: damp, 10 damp, 100 damp, ... while <= this cap
# (a ridge of mean(diag(H)) already distorts the metric as much as we tolerate). DESIGN CHOICE.
MAX_DAMP = 1.0
ESCALATION = 10.0
FIRST_ESCALATION = 0.01  # where escalation starts when damp == 0


def weighted_error(weight: jax.Array, quantized: jax.Array, hessian: jax.Array) -> jax.Array:
  """`tr((W - Q) H (W - Q)^T)` in float32 for `W, Q [d_out, d_in]`, `H [d_in, d_in]`."""
  diff = jnp.asarray(weight, jnp.float32) - jnp.asarray(quantized, jnp.float32)
  hd = jnp.matmul(diff, jnp.asarray(hessian, jnp.float32), precision="highest")
  return jnp.sum(hd * diff)


def check_hessian(hessian, d_in: int) -> jax.Array:
  """Returns `H` as float32 `[d_in, d_in]`; ValueError naming `hessian` if shaped wrong or
  not finite."""
  h = jnp.asarray(hessian)
  if h.ndim != 2 or h.shape != (d_in, d_in):
    raise ValueError(
      f"hessian must be [d_in, d_in] = [{d_in}, {d_in}] for a weight with d_in = {d_in}, "
      f"got shape {tuple(h.shape)}"
    )
  h = h.astype(jnp.float32)
  if not bool(jnp.all(jnp.isfinite(h))):
    raise ValueError("hessian has non-finite entries (NaN or inf)")
  return h


def dead_columns(hessian: jax.Array) -> jax.Array:
  """bool `[d_in]`: inputs never active in calibration (`diag(H) == 0`)."""
  return jnp.diagonal(hessian) == 0


@jax.jit
def inverse_cholesky_upper(hessian: jax.Array) -> jax.Array:
  """Upper-triangular `U` with `H^-1 = U^T U` (NaN where `H` is not positive definite).

  `L = chol(H)`, `H^-1` by two triangular solves, then `U = chol(H^-1)^T`, as in the GPTQ
  reference; all float32.
  """
  h = hessian.astype(jnp.float32)
  lower = jnp.linalg.cholesky(h)
  eye = jnp.eye(h.shape[0], dtype=jnp.float32)
  inv = jax.scipy.linalg.cho_solve((lower, True), eye)
  inv = 0.5 * (inv + inv.T)
  return jnp.linalg.cholesky(inv).T


class PreparedHessian(NamedTuple):
  """What GPTQ and BPDQ walk with, all in the processing column order.

  hessian: damped `H [d_in, d_in]`; weight: `W [d_out, d_in]` with dead columns zeroed;
  inv_chol: `U [d_in, d_in]` upper, `H^-1 = U^T U`; damp: the damping fraction finally used
  (larger than asked when the Cholesky needed escalation); dead: bool `[d_in]`.
  """

  hessian: jax.Array
  weight: jax.Array
  inv_chol: jax.Array
  damp: float
  dead: jax.Array


def prepare_hessian(hessian, weight, damp: float, *, perm=None) -> PreparedHessian:
  """Dead-column rule, damping and `U = chol(H^-1, upper)` (spec 3.2), at the boundary.

  `diag(H) == 0` columns get `H[d, d] = 1` and `W[:, d] = 0`; then
  `H += lambda I`, `lambda = damp * mean(diag(H))`. `perm` (optional int `[d_in]`) reorders the
  columns (`H[perm][:, perm]`, `W[:, perm]`) before the Cholesky, as act-order and GAR need.
  If the Cholesky fails (NaN), damping escalates x10 while `damp <= MAX_DAMP`; if it still
  fails, ValueError naming `hessian`. Not jittable (it inspects values).
  """
  w = jnp.asarray(weight, jnp.float32)
  h = check_hessian(hessian, w.shape[1])
  dead = dead_columns(h)
  if bool(jnp.any(jnp.diagonal(h) < 0)):
    raise ValueError("hessian has negative diagonal entries; it is not positive semi-definite")
  idx = jnp.arange(h.shape[0])
  h = h.at[idx, idx].set(jnp.where(dead, 1.0, jnp.diagonal(h)))
  w = jnp.where(dead[None, :], 0.0, w)
  if perm is not None:
    perm = jnp.asarray(perm)
    h = h[perm][:, perm]
    w = w[:, perm]
    dead = dead[perm]
  mean_diag = float(jnp.mean(jnp.diagonal(h)))
  tried = []
  current = float(damp)
  while True:
    damped = h.at[idx, idx].add(current * mean_diag)
    upper = inverse_cholesky_upper(damped)
    tried.append(current)
    if bool(jnp.all(jnp.isfinite(upper))) and bool(jnp.all(jnp.diagonal(upper) > 0)):
      return PreparedHessian(damped, w, upper, current, dead)
    current = FIRST_ESCALATION if current == 0 else current * ESCALATION
    if current > MAX_DAMP * (1 + 1e-6):
      raise ValueError(
        "hessian is not positive definite (singular or indefinite): the Cholesky of "
        f"H + damp * mean(diag(H)) I failed for damp in {tried}"
      )


def schur_complement(hessian, start: int, stop: int) -> np.ndarray:
  """`S_g = H_gg - H_g,rest H_rest,rest^-1 H_rest,g` in float64 for the group `[start, stop)`
  against the later columns `rest = [stop, d_in)` (the earlier ones are already fixed).

  Equals `inv(U_loc^T U_loc)` with `U_loc = U[start:stop, start:stop]`: the effective Hessian of
  the group once all later columns compensate optimally (spec 4.2).
  """
  h = np.asarray(hessian, np.float64)
  hgg = h[start:stop, start:stop]
  if stop == h.shape[0]:
    return hgg
  hgr = h[start:stop, stop:]
  return hgg - hgr @ np.linalg.solve(h[stop:, stop:], hgr.T)
