"""ROSA mixer: sliding-window attention plus a suffix-automaton retrieval branch.

"ROSA-Tuning: Enhancing Long-Context Modeling via Suffix Matching" (Yunao Zheng, Xiaojie
Wang, Lei Ren, Wei Chen; arXiv:2602.02499), the released "QKV binary multi-route" variant
(../shared/methods/memory_attention.md section 2.1). For the layer's normed input u `[B, T, C]`:

    q~, k~, v~ = u W_q^R, u W_k^R, u W_v^R          (C x C each, no bias, Xavier-uniform)
    y          = rosa_branch(q~, k~, v~, e0, e1)     (`reasoning_jax.ops.rosa.branch`)
    out        = WindowAttn(u) + y W_out             ("post_attn", the default)

e0 = e1 = 0 and W_out = I at init, so a fresh branch adds exactly zero: a window model becomes
a ROSA model with unchanged outputs, and the tables must move before q~ / k~ / v~ receive any
gradient (the counterfactual backward scales by e1 - e0). The attention half is this zoo's
`SlidingWindowAttention` with the same parameter names, so a window model's weights (trained
here or imported with `from_hf`) load into it unchanged; the paper keeps layer 0 global:
`mixer=("attention",) + ("rosa",) * (num_layers - 1)` with `sliding_window=W`.

"pre_attn" (flag) mixes the branch in before the attention, as the released code's
alternative: mix = (1 - sigmoid(alpha)) u + sigmoid(alpha) y W_out (alpha init 0), then
WindowAttn(RMSNorm(mix)). Difference from the released code: there the mix is taken on the
residual stream h and re-normalised with the layer's input norm; a zoo mixer sees only u =
norm(h), so the mix is taken on u and normalised by a norm of its own.

Cache (`RosaCache`): the window attention's `KVCache`, the value symbols `[B, S, R]` uint8 on
device, and a handle to host automata (`reasoning_jax.ops.rosa.stream`) that each prefill and
decode call extends by the new symbols. It cannot be rolled back by length, so speculative
decoding refuses it. Padding: right padding only (the prefill feeds each row's first
sum(attention_mask) symbols). Packed sequences (`segment_ids`) restart the automata where the
id changes; with a cache they raise ValueError.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.layers.attention import Attention, KVCache, write_rows
from reasoning_jax.layers.norms import RMSNorm
from reasoning_jax.ops.rosa.branch import read_values, rosa_branch, to_symbols
from reasoning_jax.ops.rosa.config import RosaConfig
from reasoning_jax.ops.rosa.overlap import overlapped_branch
from reasoning_jax.ops.rosa.stream import open_streams, stream_match

if TYPE_CHECKING:
  from reasoning_jax.models.config import ModelConfig

INJECT_MODES = ("post_attn", "pre_attn")
SCHEDULES = ("overlap", "serial")
QK_INITS = ("independent", "shared")


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class RosaCache:
  """Window KV cache + value symbols `[B, S, R]` + `handle` (int32 scalar) of the host
  automata. Not rollback-able: the automata only grow."""

  rollback_by_length: ClassVar[bool] = False

  kv: KVCache
  v_symbols: jax.Array
  handle: jax.Array


def symbol_bits(symbols: jax.Array, bits_per_route: int) -> jax.Array:
  """uint8 symbols `[..., R]` -> bits `[..., R, M]` float32 (bit m = (symbol >> m) & 1)."""
  shifts = jnp.arange(bits_per_route, dtype=jnp.int32)
  return ((symbols.astype(jnp.int32)[..., None] >> shifts) & 1).astype(jnp.float32)


@registry.MIXERS.register("rosa")
class RosaAttention(Attention):
  """Sliding-window attention + ROSA branch. Class attributes (set by `make_rosa_mixer`):

  rosa: `RosaConfig()` (canonical matcher, M = 4 bits per route, released-code gradients).
  inject: "post_attn" (default) or "pre_attn".
  schedule: "overlap" (default; cache-free post_attn calls: the host matching is submitted
    before the window attention and awaited after it, `ops.rosa.overlap`) or "serial" (the
    branch completes before the attention starts; the reference and the benchmark baseline).
    Values and gradients are identical; pre_attn is always serial (its attention reads y).
  qk_init: "independent" (default, the released code: W_q^R and W_k^R drawn separately) or
    "shared" (ours, an ablation: W_k^R starts as a copy of W_q^R, so a token's query and key
    symbols agree at init and the automaton matches repeated text from step 0).
  """

  accepts_attention_context = False  # Its own attention math; no context hook.

  window_from_config = True
  rosa: ClassVar[RosaConfig] = RosaConfig()
  inject: ClassVar[str] = "post_attn"
  schedule: ClassVar[str] = "overlap"
  qk_init: ClassVar[str] = "independent"

  def __init__(self, config: ModelConfig, layer_idx: int, *, rngs: nnx.Rngs):
    super().__init__(config, layer_idx, rngs=rngs)
    c, m = config.hidden_size, self.rosa.bits_per_route
    if c % m:
      raise ValueError(
        f"layer {layer_idx}: mixer 'rosa' needs hidden_size={c} divisible by "
        f"bits_per_route={m} (routes = width / bits_per_route)"
      )
    if self.inject not in INJECT_MODES:
      raise ValueError(f"inject must be one of {INJECT_MODES}, got {self.inject!r}")
    if self.schedule not in SCHEDULES:
      raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
    if self.qk_init not in QK_INITS:
      raise ValueError(f"qk_init must be one of {QK_INITS}, got {self.qk_init!r}")
    self.num_routes = c // m
    xavier = jax.nn.initializers.xavier_uniform()
    dtype = config.params_dtype
    self.rosa_q = nnx.Param(xavier(rngs.params(), (c, c), dtype))
    self.rosa_k = nnx.Param(xavier(rngs.params(), (c, c), dtype))
    if self.qk_init == "shared":
      self.rosa_k = nnx.Param(jnp.array(self.rosa_q[...]))
    self.rosa_v = nnx.Param(xavier(rngs.params(), (c, c), dtype))
    self.rosa_e0 = nnx.Param(jnp.zeros((c,), dtype))
    self.rosa_e1 = nnx.Param(jnp.zeros((c,), dtype))
    self.rosa_out = nnx.Param(jnp.eye(c, dtype=dtype))
    if self.inject == "pre_attn":
      self.rosa_alpha = nnx.Param(jnp.zeros((c,), dtype))
      self.rosa_norm = RMSNorm(c, eps=config.rms_norm_eps, param_dtype=dtype)

  def init_cache(self, batch_size: int, max_length: int, dtype=None) -> RosaCache:
    kv = super().init_cache(batch_size, max_length, dtype)
    handle = open_streams(batch_size, self.num_routes, max_length, self.rosa)
    return RosaCache(
      kv=kv,
      v_symbols=jnp.zeros((batch_size, max_length, self.num_routes), jnp.uint8),
      handle=jnp.asarray(handle, jnp.int32),
    )

  def rosa_projections(self, u: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """q~, k~, v~ `[B, T, C]` in the compute dtype."""
    proj = lambda w: jnp.einsum("btc,cd->btd", u, w[...].astype(self.dtype))
    return proj(self.rosa_q), proj(self.rosa_k), proj(self.rosa_v)

  def _branch_cached(self, q, k, v, positions, attention_mask, cache: RosaCache):
    m = self.rosa.bits_per_route
    b, t = q.shape[:2]
    starts = positions[:, 0]
    counts = (
      jnp.full((b,), t, jnp.int32)
      if attention_mask is None
      else jnp.sum(attention_mask != 0, axis=1).astype(jnp.int32)
    )
    v_symbols = write_rows(cache.v_symbols, to_symbols(v, m), starts)
    dest = stream_match(cache.handle, to_symbols(q, m), to_symbols(k, m), starts, counts)
    y = read_values(symbol_bits(v_symbols, m), dest, self.rosa_e0[...], self.rosa_e1[...])
    return y.astype(self.dtype), v_symbols

  def __call__(
    self, x, *, positions, attention_mask=None, segment_ids=None, cache=None, implementation=None
  ):
    q, k, v = self.rosa_projections(x)
    e0, e1 = self.rosa_e0[...], self.rosa_e1[...]
    attend = functools.partial(
      super().__call__,
      positions=positions,
      attention_mask=attention_mask,
      segment_ids=segment_ids,
      implementation=implementation,
    )
    if cache is None and self.inject == "post_attn" and self.schedule == "overlap":
      y, (out, _) = overlapped_branch(
        q, k, v, e0, e1, attend, x, config=self.rosa, segment_ids=segment_ids
      )
      return out + self._inject(y), None
    if cache is None:
      y = rosa_branch(q, k, v, e0, e1, config=self.rosa, segment_ids=segment_ids)
      kv = None
    else:
      if not isinstance(cache, RosaCache):
        raise TypeError(
          f"{type(self).__name__} needs a RosaCache from its init_cache, got {type(cache).__name__}"
        )
      if segment_ids is not None:
        raise ValueError(
          "rosa: segment_ids (packed sequences) cannot be combined with a generation cache"
        )
      y, v_symbols = self._branch_cached(q, k, v, positions, attention_mask, cache)
      kv = cache.kv
    inj = self._inject(y)
    attn_in = x
    if self.inject == "pre_attn":
      alpha = jax.nn.sigmoid(self.rosa_alpha[...].astype(self.dtype))
      attn_in = self.rosa_norm((1 - alpha) * x + alpha * inj)
    else:  # Serial: the attention starts only once the branch is done.
      attn_in, inj = jax.lax.optimization_barrier((attn_in, inj))
    out, kv = attend(attn_in, cache=kv)
    if self.inject == "post_attn":
      out = out + inj
    new_cache = (
      None if cache is None else RosaCache(kv=kv, v_symbols=v_symbols, handle=cache.handle)
    )
    return out, new_cache

  def _inject(self, y: jax.Array) -> jax.Array:
    """y W_out `[B, T, C]`."""
    return jnp.einsum("btc,cd->btd", y.astype(self.dtype), self.rosa_out[...].astype(self.dtype))


def make_rosa_mixer(
  name: str,
  *,
  inject: str = "post_attn",
  schedule: str = "overlap",
  qk_init: str = "independent",
  override: bool = False,
  **flags,
) -> type[RosaAttention]:
  """Registers (in `registry.MIXERS`) and returns a ROSA mixer named `name` whose matcher and
  gradient flags are `RosaConfig(**flags)` (e.g. `bits_per_route=1`, `rle_k=True`)."""
  if inject not in INJECT_MODES:
    raise ValueError(f"inject must be one of {INJECT_MODES}, got {inject!r}")
  if schedule not in SCHEDULES:
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
  if qk_init not in QK_INITS:
    raise ValueError(f"qk_init must be one of {QK_INITS}, got {qk_init!r}")
  attrs = dict(
    rosa=RosaConfig(**flags),
    inject=inject,
    schedule=schedule,
    qk_init=qk_init,
    __doc__=f"ROSA mixer registered as {name!r}.",
    __module__=__name__,
  )
  cls = type(
    "RosaAttention_" + "".join(c if c.isalnum() else "_" for c in name), (RosaAttention,), attrs
  )
  return registry.MIXERS.register(name, override=override)(cls)


# The authors' released matcher (run-length keys, q-runs, unseen symbols keep the state, no
# length tracking), a flag away from the canonical default.
make_rosa_mixer("rosa_released", **dataclasses.asdict(RosaConfig.released_code()))
make_rosa_mixer("rosa_serial", schedule="serial")
make_rosa_mixer("rosa_shared_qk", qk_init="shared")

__all__ = ["RosaAttention", "RosaCache", "make_rosa_mixer", "symbol_bits"]
