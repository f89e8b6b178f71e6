"""Group-wise round-to-nearest (RTN) on a min-max grid, the GPTQ convention.

"GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers" (Frantar
et al., arXiv:2210.17323), section 3.1 of `shared/methods/inference.md`. For each output row
and each group `w [g]` of consecutive input columns:

  xmin = min(min(w), 0), xmax = max(max(w), 0)    (the range always includes 0)
  xmin = -1, xmax = 1 if both are 0
  s = (xmax - xmin) / (2^b - 1), z = round(-xmin / s), q = clamp(round(w / s) + z, 0, 2^b - 1)
  w_hat = s (q - z)

Symmetric variant (`sym=True`): `xmax = max(|xmin|, xmax)`, `xmin = -xmax`, `z = 2^(b-1)`.
DESIGN CHOICE (spec 4.3 item 6, flag `round_to_storage`): `s` is rounded to the storage dtype
before `z` and `q` are computed, so `w_hat` is exactly what the stored weight dequantises to;
`z` is clamped to `[0, 2^b - 1]` (a no-op unless that rounding shrank `s`) to fit uint8.
`round` is round-half-to-even everywhere (as torch and numpy).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from reasoning_jax.ops.quant.format import QuantizedWeight, from_codes


def rtn_params(w_group: jax.Array, bits: int, *, sym: bool = False, round_dtype=None):
  """Min-max grid of each group along the last axis: `w_group [..., g] -> (scale, zero)`
  float32 `[...]` (the zero point is an integer value stored as float)."""
  w = w_group.astype(jnp.float32)
  maxq = float(2**bits - 1)
  xmin = jnp.minimum(jnp.min(w, axis=-1), 0.0)
  xmax = jnp.maximum(jnp.max(w, axis=-1), 0.0)
  if sym:
    xmax = jnp.maximum(-xmin, xmax)
    xmin = -xmax
  both_zero = (xmin == 0) & (xmax == 0)
  xmin = jnp.where(both_zero, -1.0, xmin)
  xmax = jnp.where(both_zero, 1.0, xmax)
  scale = (xmax - xmin) / maxq
  if round_dtype is not None:
    scale = scale.astype(round_dtype).astype(jnp.float32)
  if sym:
    zero = jnp.full_like(scale, (maxq + 1) / 2)
  else:
    zero = jnp.clip(jnp.round(-xmin / scale), 0.0, maxq)
  return scale, zero


def rtn_quantize(w: jax.Array, scale: jax.Array, zero: jax.Array, bits: int) -> jax.Array:
  """Integer codes `clamp(round(w / s) + z, 0, 2^b - 1)` as int32 (broadcasting `s`, `z`)."""
  maxq = float(2**bits - 1)
  q = jnp.clip(jnp.round(w.astype(jnp.float32) / scale) + zero, 0.0, maxq)
  return q.astype(jnp.int32)


def rtn_dequantize(codes: jax.Array, scale: jax.Array, zero: jax.Array) -> jax.Array:
  """`s (q - z)` in float32."""
  return scale * (codes.astype(jnp.float32) - zero)


@functools.partial(jax.jit, static_argnames=("bits", "group_size", "sym", "round_dtype"))
def rtn_codes(
  weight: jax.Array, *, bits: int, group_size: int, sym: bool = False, round_dtype=None
):
  """RTN of `W [d_out, d_in]` in groups of `group_size` columns.

  Returns `(codes int32 [d_out, d_in], scales [d_in / g, d_out], zeros [d_in / g, d_out])`,
  scales and zeros as float32 values.
  """
  d_out, d_in = weight.shape
  groups = weight.astype(jnp.float32).reshape(d_out, d_in // group_size, group_size)
  scale, zero = rtn_params(groups, bits, sym=sym, round_dtype=round_dtype)  # [d_out, G]
  codes = rtn_quantize(groups, scale[..., None], zero[..., None], bits)
  return codes.reshape(d_out, d_in), scale.T, zero.T


def quantize_rtn(
  weight: jax.Array,
  *,
  bits: int,
  group_size: int,
  sym: bool = False,
  storage_dtype=jnp.bfloat16,
  round_to_storage: bool = True,
) -> QuantizedWeight:
  """RTN as a `QuantizedWeight` (`kind="uniform"`, `method="rtn"`); inputs trusted (see
  `reasoning_jax.quant.quantize` for the validated entry point)."""
  round_dtype = jnp.dtype(storage_dtype) if round_to_storage else None
  codes, scales, zeros = rtn_codes(
    jnp.asarray(weight, jnp.float32),
    bits=bits,
    group_size=group_size,
    sym=sym,
    round_dtype=round_dtype,
  )
  return from_codes(
    codes,
    scales,
    zeros,
    bits=bits,
    group_size=group_size,
    method="rtn",
    storage_dtype=storage_dtype,
  )
