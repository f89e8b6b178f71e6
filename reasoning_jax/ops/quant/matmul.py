"""The reference `y = x W^T` for a `QuantizedWeight` (what the Pallas kernel must match).

Dequantises in float32 (`W = C_0 + sum_i C_i b_i` per group), casts the weight to the compute
dtype, and multiplies with float32 accumulation; act-order weights read `x[..., perm]`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from reasoning_jax.ops.quant.format import QuantizedWeight


def dequant_matmul_reference(x: jax.Array, qw: QuantizedWeight, dtype=None) -> jax.Array:
  """`x [..., d_in] @ W^T -> [..., d_out]` in `dtype` (default `x.dtype`)."""
  dtype = x.dtype if dtype is None else dtype
  if x.shape[-1] != qw.d_in:
    raise ValueError(f"x has {x.shape[-1]} input features; the quantized weight takes {qw.d_in}")
  if qw.perm is not None:
    x = jnp.take(x, qw.perm, axis=-1)
  w = qw.dequantize_stored(jnp.float32).astype(dtype)  # [d_out, d_in]
  y = jnp.matmul(x.astype(dtype), w.T, preferred_element_type=jnp.float32)
  return y.astype(dtype)
