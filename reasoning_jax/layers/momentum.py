"""Momentum Attention mixer: GQA attention whose post-RoPE q and k are sheared.

"Momentum Attention: The Physics of In-Context Learning and Spectral Forensics for
Mechanistic Interpretability" (Kingsuk Maitra, arXiv:2602.04902). The math lives in
`reasoning_jax.ops.momentum`; this module reuses `Attention`'s projections, q/k norms and
RoPE and only changes what happens after RoPE:

    q̂_t = (1 + gamma_q) q_t - gamma_q q_{t-1},   k̂_t = (1 + gamma_k) k_t - gamma_k k_{t-1}

Registered as mixer "momentum_attention" with the DESIGN CHOICE defaults
`gamma_q = gamma_k = optimal_gamma(config.num_layers)` (the paper's scaling law
4.17 * N^-0.74, shared, fixed) and `t0_rule="repeat"`. Other settings are registered as new
mixer names with `make_momentum_mixer` (the config names mixers, it has no per-mixer options):

  >>> make_momentum_mixer("momentum_key_only", gamma_q=0.0, gamma_k=1.0)
  >>> config = get_preset("tiny-qwen3").replace(mixer="momentum_key_only")

Cache (`MomentumKVCache`, a `KVCache` subclass, slot index == position): `k` holds the
SHEARED keys k̂ (what attention reads), `v` the values, and `k_raw` / `q_raw` the raw
post-RoPE keys / queries of every slot. A new token at position p reads its predecessor
from slot p - 1, so `generate`, which prefills right-padded prompts in one block and then
restarts each row at its own length (overwriting padding slots), gets exactly the
predecessor of the parallel form. (A single "last q/k per row" would hold the padding's
vectors after a ragged prefill.) Cost: `q_raw` adds N/K and `k_raw` one KV-sized buffer; a
buffer is omitted (None) when its gamma is fixed at 0. Like `Attention`, the cache path
ignores `attention_mask` and `segment_ids`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.layers.attention import Attention, KVCache, write_rows
from reasoning_jax.layers.projection import project
from reasoning_jax.layers.rope import apply_rope, attention_factor, inverse_frequencies, rope_tables
from reasoning_jax.ops.attention import attention as attention_op
from reasoning_jax.ops.momentum import T0_RULES, momentum_attention, momentum_shear, optimal_gamma

if TYPE_CHECKING:
  from reasoning_jax.models.config import ModelConfig

SCALING_LAW = "scaling_law"

GammaSpec = Any  # float | "scaling_law" | tuple of floats (one per head)


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class MomentumKVCache(KVCache):
  """`KVCache` of sheared keys plus raw post-RoPE keys/queries per slot.

  k: `[B, S, K, D]` sheared keys k̂; v: `[B, S, K, D]`; k_raw: `[B, S, K, D]` or None;
  q_raw: `[B, S, N, D]` or None (None when that gamma is fixed at 0).
  """

  k_raw: jax.Array | None = None
  q_raw: jax.Array | None = None


def _read_slot(buffer: jax.Array, slots: jax.Array) -> jax.Array:
  """`buffer[b, slots[b]]` for `buffer` `[B, S, ...]`, `slots` `[B]`."""
  return jax.vmap(lambda buf, i: jax.lax.dynamic_index_in_dim(buf, i, 0, keepdims=False))(
    buffer, slots
  )


def _resolve_gamma(spec: GammaSpec, num_layers: int, num_heads: int, argument: str):
  """A float or a per-head tuple of floats from a gamma spec."""
  if isinstance(spec, str):
    if spec != SCALING_LAW:
      raise ValueError(
        f"{argument}={spec!r}: expected a float, a per-head sequence or {SCALING_LAW!r}"
      )
    return optimal_gamma(num_layers)
  if isinstance(spec, (int, float)) and not isinstance(spec, bool):
    return float(spec)
  if isinstance(spec, (tuple, list)) and all(
    isinstance(x, (int, float)) and not isinstance(x, bool) for x in spec
  ):
    if len(spec) != num_heads:
      raise ValueError(
        f"{argument} has {len(spec)} per-head values but the layer has {num_heads} heads"
      )
    return tuple(float(x) for x in spec)
  raise TypeError(
    f"{argument} must be a float, a per-head sequence of floats or {SCALING_LAW!r}, got {spec!r}"
  )


def _is_zero(gamma) -> bool:
  return all(g == 0.0 for g in (gamma if isinstance(gamma, tuple) else (gamma,)))


@registry.MIXERS.register("momentum_attention")
class MomentumAttention(Attention):
  """Causal GQA attention with momentum-sheared post-RoPE queries and keys.

  Class attributes (set by `make_momentum_mixer`; DESIGN CHOICE defaults shown):
    gamma_q_spec, gamma_k_spec: "scaling_law" (4.17 * num_layers^-0.74), a float, or one
      float per head (N for q, K for k).
    t0_rule: "repeat" (q̂_0 = q_0) or "zero" (q̂_0 = (1 + gamma) q_0).
    learnable_gamma: False: fixed floats; True: `gamma_q`, `gamma_k` are float32
      `nnx.Param`s (shape `[]` or `[heads]`) initialised from the specs.
  """

  accepts_attention_context = False  # Its own attention math; no context hook.

  gamma_q_spec: GammaSpec = SCALING_LAW
  gamma_k_spec: GammaSpec = SCALING_LAW
  t0_rule: str = "repeat"
  learnable_gamma: bool = False

  def __init__(self, config: ModelConfig, layer_idx: int, *, rngs: nnx.Rngs):
    super().__init__(config, layer_idx, rngs=rngs)
    if self.t0_rule not in T0_RULES:
      raise ValueError(
        f"{type(self).__name__}.t0_rule must be one of {T0_RULES}, got {self.t0_rule!r}"
      )
    gq = _resolve_gamma(self.gamma_q_spec, config.num_layers, self.num_heads, "gamma_q")
    gk = _resolve_gamma(self.gamma_k_spec, config.num_layers, self.num_kv_heads, "gamma_k")
    if self.learnable_gamma:
      self.gamma_q = nnx.Param(jnp.asarray(gq, jnp.float32))
      self.gamma_k = nnx.Param(jnp.asarray(gk, jnp.float32))
      self._keep_q_raw = self._keep_k_raw = True
    else:
      self.gamma_q, self.gamma_k = gq, gk
      self._keep_q_raw, self._keep_k_raw = not _is_zero(gq), not _is_zero(gk)

  def gammas(self) -> tuple[Any, Any]:
    """`(gamma_q, gamma_k)` as arrays (scalar or per head); a fixed zero stays the float 0."""

    def value(g):
      if isinstance(g, nnx.Variable):
        return g[...]
      return 0.0 if _is_zero(g) else jnp.asarray(g, jnp.float32)  # Static 0: no shear at all.

    return value(self.gamma_q), value(self.gamma_k)

  def init_cache(self, batch_size: int, max_length: int, dtype=None) -> MomentumKVCache:
    dtype = self.dtype if dtype is None else dtype
    kv_shape = (batch_size, max_length, self.num_kv_heads, self.head_dim)
    q_shape = (batch_size, max_length, self.num_heads, self.head_dim)
    return MomentumKVCache(
      k=jnp.zeros(kv_shape, dtype),
      v=jnp.zeros(kv_shape, dtype),
      k_raw=jnp.zeros(kv_shape, dtype) if self._keep_k_raw else None,
      q_raw=jnp.zeros(q_shape, dtype) if self._keep_q_raw else None,
    )

  def _qkv(self, x, positions):
    """Projected q, k, v with q/k norms and RoPE applied (as in `Attention`)."""
    q = self._project(x, self.q_proj, self.q_bias)
    k = self._project(x, self.k_proj, self.k_bias)
    v = self._project(x, self.v_proj, self.v_bias)
    if self.q_norm is not None:
      q, k = self.q_norm(q), self.k_norm(k)
    inv_freq = inverse_frequencies(self.head_dim, self.rope_theta, self.rope_scaling)
    cos, sin = rope_tables(positions, inv_freq, attention_factor(self.rope_scaling))
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

  def __call__(
    self, x, *, positions, attention_mask=None, segment_ids=None, cache=None, implementation=None
  ):
    q, k, v = self._qkv(x, positions)
    gamma_q, gamma_k = self.gammas()
    if cache is None:
      out = momentum_attention(
        q,
        k,
        v,
        gamma_q=gamma_q,
        gamma_k=gamma_k,
        positions=positions,
        segment_ids=segment_ids,
        kv_mask=attention_mask,
        sliding_window=self.sliding_window,
        t0_rule=self.t0_rule,
        implementation=implementation,
        index_positions=True,
      )
    else:
      if not isinstance(cache, MomentumKVCache):
        raise TypeError(
          f"{type(self).__name__} needs a MomentumKVCache from its init_cache, "
          f"got {type(cache).__name__}"
        )
      starts = positions[:, 0]
      prev_slot = jnp.maximum(starts - 1, 0)  # Unused (reset) where starts == 0.
      q_hat, k_hat = q, k
      q_raw, k_raw = cache.q_raw, cache.k_raw
      if q_raw is not None:
        q_hat, _ = momentum_shear(
          q,
          gamma_q,
          positions=positions,
          prev=_read_slot(q_raw, prev_slot).astype(q.dtype),
          t0_rule=self.t0_rule,
        )
        q_raw = write_rows(q_raw, q, starts)
      if k_raw is not None:
        k_hat, _ = momentum_shear(
          k,
          gamma_k,
          positions=positions,
          prev=_read_slot(k_raw, prev_slot).astype(k.dtype),
          t0_rule=self.t0_rule,
        )
        k_raw = write_rows(k_raw, k, starts)
      cache = MomentumKVCache(
        k=write_rows(cache.k, k_hat, starts),
        v=write_rows(cache.v, v, starts),
        k_raw=k_raw,
        q_raw=q_raw,
      )
      b, s = cache.k.shape[:2]
      kv_positions = jnp.broadcast_to(jnp.arange(s, dtype=positions.dtype), (b, s))
      # Causality on positions hides both future slots and not-yet-written ones.
      out = attention_op(
        q_hat,
        cache.k.astype(q.dtype),
        cache.v.astype(q.dtype),
        q_positions=positions,
        kv_positions=kv_positions,
        sliding_window=self.sliding_window,
        implementation=implementation,
      )
    y = project(out, self.o_proj, self.dtype, in_dims=2)  # [B, T, N, D] x [N, D, H]
    if self.o_bias is not None:
      y = y + self.o_bias[...].astype(self.dtype)
    return y, cache


def make_momentum_mixer(
  name: str,
  *,
  gamma_q: GammaSpec = SCALING_LAW,
  gamma_k: GammaSpec = SCALING_LAW,
  t0_rule: str = "repeat",
  learnable_gamma: bool = False,
  sliding_window_from_config: bool = False,
  override: bool = False,
) -> type[MomentumAttention]:
  """Registers (in `registry.MIXERS`) and returns a `MomentumAttention` variant named `name`.

  Args:
    name: the mixer name a `ModelConfig` will use.
    gamma_q, gamma_k: "scaling_law", a float, or a sequence with one float per head
      (N query heads, K key heads); 0 disables that shear.
    t0_rule: "repeat" or "zero" (see `reasoning_jax.ops.momentum`).
    learnable_gamma: make both gammas trainable `nnx.Param`s (named `gamma_q`, `gamma_k`;
      a partition rule `layers\\.\\d+\\.mixer\\.gamma_(q|k)` -> `P()` is then needed).
    sliding_window_from_config: restrict to `config.sliding_window` keys (as
      "sliding_attention" does).
    override: replace an existing registration of `name`.
  """
  for argument, spec in (("gamma_q", gamma_q), ("gamma_k", gamma_k)):
    if isinstance(spec, str) and spec != SCALING_LAW:
      raise ValueError(
        f"{argument}={spec!r}: expected a float, a per-head sequence or {SCALING_LAW!r}"
      )
    if not isinstance(spec, str):
      _resolve_gamma(spec, 1, len(spec) if isinstance(spec, (tuple, list)) else 1, argument)
  if t0_rule not in T0_RULES:
    raise ValueError(f"t0_rule must be one of {T0_RULES}, got {t0_rule!r}")
  attrs = dict(
    gamma_q_spec=tuple(gamma_q) if isinstance(gamma_q, (list, tuple)) else gamma_q,
    gamma_k_spec=tuple(gamma_k) if isinstance(gamma_k, (list, tuple)) else gamma_k,
    t0_rule=t0_rule,
    learnable_gamma=bool(learnable_gamma),
    window_from_config=bool(sliding_window_from_config),
    __doc__=f"Momentum attention registered as mixer {name!r}.",
    __module__=__name__,
  )
  cls_name = "MomentumAttention_" + "".join(c if c.isalnum() else "_" for c in name)
  cls = type(cls_name, (MomentumAttention,), attrs)
  return registry.MIXERS.register(name, override=override)(cls)


def momentum_mixer_names() -> list[str]:
  """Registered mixer names whose class is a `MomentumAttention`."""
  return [
    n
    for n in registry.MIXERS.names()
    if isinstance(registry.MIXERS.get(n), type)
    and issubclass(registry.MIXERS.get(n), MomentumAttention)
  ]


__all__ = [
  "MomentumAttention",
  "MomentumKVCache",
  "make_momentum_mixer",
  "momentum_mixer_names",
  "SCALING_LAW",
]
