"""Bit-plane packing: 32 consecutive input columns of one plane and one output row per int32 word.

Layout `[d_in / 32, k, d_out]` (the upstream BPDQ layout, arXiv:2602.04163; see
`reasoning_jax.ops.quant.format`): bit `j` of word `[w, i, r]` is plane `i` at row `r`, column
`32 w + j`. Pure jnp, so packing runs under `jit` and on sharded arrays (rows stay the minor,
shardable axis).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

WORD_BITS = 32


@jax.jit
def pack_bitplanes(planes: jax.Array) -> jax.Array:
  """0/1 planes `[k, d_out, d_in]` -> int32 words `[d_in / 32, k, d_out]` (jitted: shape
  errors are raised at trace time, before any compile)."""
  if planes.ndim != 3:
    raise ValueError(f"planes must be [k, d_out, d_in], got shape {tuple(planes.shape)}")
  k, d_out, d_in = planes.shape
  if d_in % WORD_BITS:
    raise ValueError(f"planes: d_in = {d_in} must be a multiple of {WORD_BITS} to pack")
  bits = planes.astype(jnp.uint32).reshape(k, d_out, d_in // WORD_BITS, WORD_BITS)
  shifts = jnp.arange(WORD_BITS, dtype=jnp.uint32)
  words = jnp.sum(bits << shifts, axis=-1, dtype=jnp.uint32)  # distinct bits: sum == or
  return jax.lax.bitcast_convert_type(words, jnp.int32).transpose(2, 0, 1)


def unpack_bitplanes(words: jax.Array) -> jax.Array:
  """int32 words `[d_in / 32, k, d_out]` -> 0/1 int32 bits `[d_in, k, d_out]` (column-major in).

  The inverse of `pack_bitplanes` up to the transpose: `unpack(pack(p)) == p.transpose(2, 0, 1)`.
  """
  if words.ndim != 3:
    raise ValueError(f"planes must be int32 [d_in / 32, k, d_out], got shape {tuple(words.shape)}")
  n_words, k, d_out = words.shape
  u = jax.lax.bitcast_convert_type(words.astype(jnp.int32), jnp.uint32)
  shifts = jnp.arange(WORD_BITS, dtype=jnp.uint32)[None, :, None, None]
  bits = (u[:, None] >> shifts) & jnp.uint32(1)  # [W, 32, k, d_out]
  return bits.reshape(n_words * WORD_BITS, k, d_out).astype(jnp.int32)
