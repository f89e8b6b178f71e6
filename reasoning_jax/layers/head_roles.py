"""Learnable per-(layer, KV head) role gates for hybrid-head sparse decoding.

* `HardKumaRoleGates`: "LycheeDecode: Accelerating Long-Context LLM Inference via Hybrid-Head
  Sparse Decoding" (Lin et al., arXiv:2602.04541), one HardKuma gate per KV head ("Interpretable
  Neural Predictions with Differentiable Binary Variables", Bastings, Aziz, Titov, ACL 2019,
  arXiv:1905.08160). Train (a, b) only, the LLM frozen; mix
  `O = z Attn_full + (1 - z) Attn_sparse` with `z = sample(key)`.
* `DuoAttentionGates`: "DuoAttention: Efficient Long-Context LLM Inference with Retrieval and
  Streaming Heads" (Xiao et al., arXiv:2410.10819), one continuous gate alpha per KV head,
  `attn = alpha full + (1 - alpha) streaming`, regularised by `l1()`.

The modules only hold the `[L, K]` parameters; the math is in
`reasoning_jax.ops.sparse_decode.hardkuma`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reasoning_jax.ops.sparse_decode.hardkuma import (
  duo_gate_values,
  expected_density,
  hardkuma_sample,
  kuma_mean,
  roles_from_duo,
  roles_from_kuma,
)
from reasoning_jax.validation import check_finite_float, check_positive_int


def _gate_param(num_layers: int, num_kv_heads: int, init: float) -> nnx.Param:
  check_positive_int(num_layers, "num_layers")
  check_positive_int(num_kv_heads, "num_kv_heads")
  check_finite_float(init, "init")
  return nnx.Param(jnp.full((num_layers, num_kv_heads), init, jnp.float32))


class HardKumaRoleGates(nnx.Module):
  """HardKuma role gates: parameters a, b `[L, K]` float32, both initialised to `init` (1.0,
  the uniform Kuma).

  Args:
    num_layers: L.
    num_kv_heads: K.
    init: initial value of a and b (1.0).
    force_first_layer: layer 0 is always retrieval (True, as LycheeDecode): `sample` returns
      z = 1 there (its a, b get no gradient) and `roles` sets it True. Needs L >= 2.
  """

  def __init__(
    self, num_layers: int, num_kv_heads: int, *, init: float = 1.0, force_first_layer: bool = True
  ):
    if force_first_layer and num_layers < 2:
      raise ValueError(
        f"num_layers must be >= 2 with force_first_layer=True (layer 0 is forced, nothing would "
        f"be learned), got {num_layers!r}"
      )
    self.a = _gate_param(num_layers, num_kv_heads, init)
    self.b = _gate_param(num_layers, num_kv_heads, init)
    self.force_first_layer = force_first_layer

  def sample(self, key: jax.Array) -> jax.Array:
    """z ~ HardKuma(a, b), float32 `[L, K]` in [0, 1]; layer 0 is 1 when forced."""
    z = hardkuma_sample(key, self.a[...], self.b[...])
    return z.at[0].set(1.0) if self.force_first_layer else z

  def expected_density(self, *, include_forced_layer: bool = False) -> jax.Array:
    """Expected L0 density `mean(1 - P(z = 0))`, a scalar.

    DESIGN CHOICE: with `force_first_layer`, the mean runs over the learnable layers 1..L-1
    only (default), since the budget rho* excludes layer 0's forced heads ("24 retrieval heads
    + layer 0's 8 forced = 32"). The LycheeDecode spec writes rho* = 24/256 over all 256 KV
    heads of Llama-3-8B; to reproduce that mean exactly pass `include_forced_layer=True`
    (or use target 24/248 over the 248 learnable gates).
    """
    a, b = self.a[...], self.b[...]
    if self.force_first_layer and not include_forced_layer:
      a, b = a[1:], b[1:]
    return expected_density(a, b)

  def kuma_mean(self) -> jax.Array:
    """Unstretched Kuma mean `E[s]`, float32 `[L, K]` (the role score)."""
    return kuma_mean(self.a[...], self.b[...])

  def roles(self) -> np.ndarray:
    """Final roles, numpy bool `[L, K]`: retrieval iff the Kuma mean > 0.5 (layer 0 forced)."""
    roles = roles_from_kuma(self.a[...], self.b[...], force_first_layer=self.force_first_layer)
    return np.asarray(roles)


class DuoAttentionGates(nnx.Module):
  """DuoAttention gates: parameter alpha `[L, K]` float32, initialised to `init` (1.0, all heads
  full attention at the start).

  Args:
    num_layers: L.
    num_kv_heads: K.
    init: initial alpha (1.0).
  """

  def __init__(self, num_layers: int, num_kv_heads: int, *, init: float = 1.0):
    self.alpha = _gate_param(num_layers, num_kv_heads, init)

  def values(self) -> jax.Array:
    """Gate values `clip(alpha, 0, 1)`, float32 `[L, K]`."""
    return duo_gate_values(self.alpha[...])

  def l1(self) -> jax.Array:
    """`sum |alpha|`, the sparsity regulariser (weight lambda_reg = 0.05 in DuoAttention)."""
    return jnp.sum(jnp.abs(self.alpha[...]))

  def roles(self, threshold: float | None = None, fraction: float | None = None) -> np.ndarray:
    """Deployment roles, numpy bool `[L, K]` (see `roles_from_duo`; exactly one argument)."""
    return np.asarray(roles_from_duo(self.alpha[...], threshold=threshold, fraction=fraction))
