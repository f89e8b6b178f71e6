"""The per-tile math both sparse-decode schedules share (`kernel.py` grid, `kernel_gpu.py` loop).

LycheeDecode (Lin et al., arXiv:2602.04541), section 8.5 of `shared/methods/inference.md`: one
online-softmax update of a head's query rows over one K/V tile, with float32 statistics.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

f32 = jnp.float32
NT = (((1,), (1,)), ((), ()))  # a @ b^T
NN = (((1,), (0,)), ((), ()))  # a @ b
MASK_VALUE = -0.7 * float(jnp.finfo(f32).max)
SQUEEZED = getattr(pl, "squeezed", None)  # Squeezed block dim (None on older JAX).


def precision(dtype):
  """HIGHEST for float32 (the float32 check is tight; no TF32 on GPU), the default otherwise."""
  return jax.lax.Precision.HIGHEST if jnp.dtype(dtype) == jnp.float32 else None


def initial_stats(rows: int, d: int):
  """(row max, row sum, accumulator) before any tile: `[rows, 1]`, `[rows, 1]`, `[rows, d]`."""
  return (
    jnp.full((rows, 1), MASK_VALUE, f32),
    jnp.zeros((rows, 1), f32),
    jnp.zeros((rows, d), f32),
  )


def online_softmax_tile(q, k, v, visible, stats, *, scale, precision):
  """Updates `stats = (m [R, 1], l [R, 1], acc [R, D])` with one `[T, D]` K/V tile.

  `visible [1, T]` masks the tile's tokens. Returns `(new stats, raw logits [R, T] float32)`;
  the raw (unscaled) logits serve kernel A's block scores. Probabilities are rounded to the
  value dtype for the `p @ V` dot.
  """
  m, l, acc = stats
  raw = jax.lax.dot_general(q, k, NT, precision=precision, preferred_element_type=f32)
  logits = jnp.where(visible, raw * scale, MASK_VALUE)
  m_new = jnp.maximum(m, jnp.max(logits, axis=1, keepdims=True))
  alpha = jnp.exp(m - m_new)
  p = jnp.where(visible, jnp.exp(logits - m_new), 0.0)
  l_new = alpha * l + jnp.sum(p, axis=1, keepdims=True)
  pv = jax.lax.dot_general(
    p.astype(v.dtype), v, NN, precision=precision, preferred_element_type=f32
  )
  return (m_new, l_new, alpha * acc + pv), raw


def normalised(l, acc):
  """`acc / l`, zeros for rows that saw no token (`l = 0`)."""
  return acc / jnp.where(l > 0, l, 1.0)
