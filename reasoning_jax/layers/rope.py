"""Rotary position embeddings (RoFormer, arXiv:2104.09864) with HF-compatible scaling.

The rotation uses the "rotate half" layout of Hugging Face Llama/Qwen (the first
and second halves of the head dimension form the complex pairs), so imported
weights need no permutation. Frequencies are computed in float32 and the
cos/sin tables are cast to the activation dtype before use, as transformers does.

Each frequency schedule is a `registry.ROPE_TYPES` entry returning the inverse
frequencies; a schedule that also rescales the tables (YaRN) says by how much
through `attention_factor`.
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


@registry.ROPE_TYPES.register("yarn")
def _yarn(head_dim: int, theta: float, scaling: RopeScaling) -> jax.Array:
  """YaRN ("YaRN: Efficient Context Window Extension of Large Language Models", arXiv:2309.00071).

  Dimension pair i turns `r_i = L / wavelength_i` times over the pre-training
  context L. Pairs with r_i > beta_fast keep their frequency, pairs with
  r_i < beta_slow are divided by `factor` (position interpolation), and a ramp
  linear in the pair index joins the two (the paper's Eq. 17-18, with the
  correction range computed and rounded exactly as Hugging Face does, so
  imported Qwen2.5/Qwen3 long-context configs give the same logits).
  """
  inv_freq = _base_inv_freq(head_dim, theta)
  context = scaling.original_max_position_embeddings

  def correction_dim(rotations: float) -> float:  # The pair index turning `rotations` times.
    return head_dim * math.log(context / (rotations * 2 * math.pi)) / (2 * math.log(theta))

  low, high = correction_dim(scaling.beta_fast), correction_dim(scaling.beta_slow)
  if scaling.truncate:
    low, high = math.floor(low), math.ceil(high)
  low, high = max(low, 0), min(high, head_dim - 1)
  if low == high:
    high += 0.001  # A one-point ramp: avoid dividing by zero.
  ramp = jnp.clip((jnp.arange(head_dim // 2, dtype=jnp.float32) - low) / (high - low), 0.0, 1.0)
  keep = 1.0 - ramp  # 1: extrapolate (keep the frequency), 0: interpolate.
  return inv_freq / scaling.factor * (1.0 - keep) + inv_freq * keep


def _yarn_mscale(factor: float, mscale: float = 1.0) -> float:
  return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def attention_factor(scaling: RopeScaling | None) -> float:
  """The multiplier of the cos/sin tables: 1 except for YaRN (its Eq. 21, or the config's)."""
  if scaling is None or scaling.rope_type != "yarn":
    return 1.0
  if scaling.attention_factor is not None:
    return float(scaling.attention_factor)
  if scaling.mscale and scaling.mscale_all_dim:
    return _yarn_mscale(scaling.factor, scaling.mscale) / _yarn_mscale(
      scaling.factor, scaling.mscale_all_dim
    )
  return _yarn_mscale(scaling.factor)


def inverse_frequencies(head_dim: int, theta: float, scaling: RopeScaling | None) -> jax.Array:
  """`[D / 2]` float32 inverse frequencies for the configured rope type."""
  rope_type = "default" if scaling is None else scaling.rope_type
  return registry.ROPE_TYPES.get(rope_type)(head_dim, theta, scaling)


def rope_tables(
  positions: jax.Array, inv_freq: jax.Array, scale: float = 1.0
) -> tuple[jax.Array, jax.Array]:
  """cos, sin tables `[B, T, D]` (float32) for integer `positions` `[B, T]`.

  `scale` multiplies both tables (`attention_factor` of the rope scaling).
  """
  freqs = positions.astype(jnp.float32)[..., None] * inv_freq
  emb = jnp.concatenate([freqs, freqs], axis=-1)
  if scale == 1.0:
    return jnp.cos(emb), jnp.sin(emb)
  return jnp.cos(emb) * scale, jnp.sin(emb) * scale


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """Rotates `x` `[B, T, heads, D]` by the tables `[B, T, D]` (rotate-half layout)."""
  cos = cos[:, :, None, :].astype(x.dtype)
  sin = sin[:, :, None, :].astype(x.dtype)
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  return x * cos + rotated * sin
