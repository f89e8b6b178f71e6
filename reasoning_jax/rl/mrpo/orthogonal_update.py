"""NOT IN THE PAPER (spec 2.5): an optax transform projecting updates off the bias manifold.

The literal "orthogonal update" reading of MRPO, which the paper does not do; off unless
used explicitly. Paper:
"Beyond Alignment: Expanding Reasoning Capacity via Manifold-Reshaping Policy
Optimization", Dayu Wang, Jiaye Yang, Weikang Li, Jiahui Liang, Yang Li,
arXiv 2602.02545 (2026).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from reasoning_jax.rl.mrpo.manifold import BiasManifold
from reasoning_jax.validation import check_array, is_concrete


def _check_basis(basis: Any, name: str) -> jax.Array:
  if isinstance(basis, BiasManifold):
    basis = basis.basis
  check_array(basis, name, 2, floating=True)
  if is_concrete(basis) and basis.size:
    u = np.asarray(basis, np.float64)
    gram = u.T @ u
    diag = np.diag(gram)
    off = gram - np.diag(diag)
    if np.abs(off).max() > 1e-3 or np.min(np.minimum(np.abs(diag), np.abs(diag - 1))) > 1e-3:
      raise ValueError(
        f"{name} must have orthonormal (or all-zero) columns; got U^T U far from a 0/1 diagonal"
      )
  return basis


@functools.partial(jax.jit, static_argnames=("axis",))
def _project_core(u: jax.Array, basis: jax.Array, axis: int) -> jax.Array:
  """`u - (u U) U^T` along `axis` of `u`, in float32."""
  moved = jnp.moveaxis(u, axis, -1).astype(jnp.float32)
  b = basis.astype(jnp.float32)
  moved = moved - (moved @ b) @ b.T
  return jnp.moveaxis(moved, -1, axis).astype(u.dtype)


def orthogonal_update_not_in_paper(
  basis: Any = None, *, axis: int = -1, mask: Any = None
) -> optax.GradientTransformationExtraArgs:
  """NOT IN THE PAPER (spec 2.5): project updates off the bias manifold.

  The literal "orthogonal update" reading of MRPO (arXiv 2602.02545), which the paper
  does not do: every selected update leaf `u` is projected along `axis` onto the
  orthogonal complement of `span(U)`, `u <- u - (u U) U^T` (contracting `axis` with
  U's rows). For a kernel whose `axis` indexes the hidden space (outputs of a
  `[d_in, d]` projection with `axis=-1`) the resulting weight change never moves
  hidden states along the manifold. Unvalidated; use only deliberately.

  Composes with `optax.chain`; the projection applies to whatever reaches it, so place
  it after transforms that rescale per coordinate (e.g. after `scale_by_adam`) when
  the final step must be orthogonal.

  Args:
    basis: `[d, k]` orthonormal columns (zero columns allowed) or a `BiasManifold`;
      may be None if every `update` call passes `orthogonal_basis=`.
    axis: the axis of each leaf that indexes the hidden space (size d).
    mask: None (every leaf whose `shape[axis] == d`), a pytree of Python bools
      matching the updates, or a callable `updates -> pytree of Python bools`. Pass
      one whenever other axes could have size d (e.g. square kernels whose input
      side is hidden space).

  Returns:
    An `optax.GradientTransformationExtraArgs`; `update(updates, state, params=None,
    *, orthogonal_basis=None)` uses `orthogonal_basis` (re-estimated each step from
    recent rollouts, say) over the construction-time `basis`.
  """
  if basis is not None:
    basis = _check_basis(basis, "basis")
  if not isinstance(axis, int) or isinstance(axis, bool):
    raise ValueError(f"axis must be an int, got {axis!r}")

  def init_fn(params):
    del params
    return optax.EmptyState()

  def project(u: jax.Array, selected: bool, path: str, dim: int, basis: jax.Array):
    if not selected:
      return u
    if u.ndim == 0 or not -u.ndim <= axis < u.ndim or u.shape[axis] != dim:
      raise ValueError(
        f"mask selects update {path} of shape {tuple(u.shape)}, but its axis {axis} does "
        f"not have the basis size d={dim}"
      )
    return _project_core(u, basis, axis)

  def update_fn(updates, state, params=None, *, orthogonal_basis=None, **extra_args):
    del params, extra_args
    current = basis
    if orthogonal_basis is not None:
      current = _check_basis(orthogonal_basis, "orthogonal_basis")
    if current is None:
      raise ValueError(
        "orthogonal_update_not_in_paper needs a basis: pass basis= at "
        "construction or orthogonal_basis= to update"
      )
    dim = current.shape[0]
    if mask is None:
      selection = jax.tree.map(
        lambda u: u.ndim > 0 and -u.ndim <= axis < u.ndim and u.shape[axis] == dim, updates
      )
    elif callable(mask):
      selection = mask(updates)
    else:
      selection = mask
    try:
      paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(updates)
      flat_selection = treedef.flatten_up_to(selection)
    except (ValueError, TypeError) as e:
      raise ValueError(f"mask must be a pytree of bools matching the updates: {e}") from None
    out = [
      project(u, bool(sel), jax.tree_util.keystr(path), dim, current)
      for (path, u), sel in zip(paths_leaves, flat_selection)
    ]
    return jax.tree_util.tree_unflatten(treedef, out), state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
