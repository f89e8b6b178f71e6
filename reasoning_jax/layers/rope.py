"""Rotary position embeddings (RoFormer, arXiv:2104.09864) with HF-compatible scaling.

The rotation uses the "rotate half" layout of Hugging Face Llama/Qwen (the first
and second halves of the head dimension form the complex pairs), so imported
weights need no permutation. Frequencies are computed in float32 and the
cos/sin tables are cast to the activation dtype before use, as transformers does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import math

import jax
import jax.numpy as jnp

from reasoning_jax import registry

if TYPE_CHECKING:
  from reasoning_jax.models.config import RopeScaling


def _base_inv_freq(head_dim: int, theta: float) -> jax.Array:
  return 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))


@registry.ROPE_TYPES.register("default")
def _default(head_dim: int, theta: float, scaling: RopeScaling | None) -> jax.Array:
  del scaling
  return _base_inv_freq(head_dim, theta)


@registry.ROPE_TYPES.register("linear")
def _linear(head_dim: int, theta: float, scaling: RopeScaling) -> jax.Array:
  return _base_inv_freq(head_dim, theta) / scaling.factor


@registry.ROPE_TYPES.register("llama3")
def _llama3(head_dim: int, theta: float, scaling: RopeScaling) -> jax.Array:
  """Llama 3.1 frequency smoothing ("The Llama 3 Herd of Models", arXiv:2407.21783).

  Long wavelengths (beyond original_context / low_freq_factor) are divided by
  `factor`, short ones (below original_context / high_freq_factor) kept, and
  the band between interpolated linearly in 1 / wavelength.
  """
  inv_freq = _base_inv_freq(head_dim, theta)
  old_context = scaling.original_max_position_embeddings
  low_wavelen = old_context / scaling.low_freq_factor
  high_wavelen = old_context / scaling.high_freq_factor
  wavelen = 2 * math.pi / inv_freq
  scaled = jnp.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
  smooth = (old_context / wavelen - scaling.low_freq_factor) / (
    scaling.high_freq_factor - scaling.low_freq_factor
  )
  smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
  is_medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
  return jnp.where(is_medium, smoothed, scaled)


def inverse_frequencies(head_dim: int, theta: float, scaling: RopeScaling | None) -> jax.Array:
  """`[D / 2]` float32 inverse frequencies for the configured rope type."""
  rope_type = "default" if scaling is None else scaling.rope_type
  return registry.ROPE_TYPES.get(rope_type)(head_dim, theta, scaling)


def rope_tables(positions: jax.Array, inv_freq: jax.Array) -> tuple[jax.Array, jax.Array]:
  """cos, sin tables `[B, T, D]` (float32) for integer `positions` `[B, T]`."""
  freqs = positions.astype(jnp.float32)[..., None] * inv_freq
  emb = jnp.concatenate([freqs, freqs], axis=-1)
  return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """Rotates `x` `[B, T, heads, D]` by the tables `[B, T, D]` (rotate-half layout)."""
  cos = cos[:, :, None, :].astype(x.dtype)
  sin = sin[:, :, None, :].astype(x.dtype)
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  return x * cos + rotated * sin
