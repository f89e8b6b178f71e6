"""Gated linear attention mixer with a constant-size recurrent generation cache.

"Gated Linear Attention Transformers with Hardware-Efficient Training" (Songlin Yang, Bailin
Wang, Yikang Shen, Rameswar Panda, Yoon Kim; arXiv:2312.06635), Sec. 4.4. Per token, with
N heads of key/value width D (no RoPE: position comes from the decay):

    q, k, v = x W_q, x W_k, x W_v                        (each [N, D])
    g       = log_sigmoid(x W_a W_b + b) / gate_normalizer    (low-rank data-dependent gate)
    o       = GLA(q, k, v, g)                            (`reasoning_jax.ops.gla`)
    y       = (RMSNorm_head(o) * silu(x W_r)) W_o        (per-head norm, output gate)

Registered as mixer "gla" with the paper's DESIGN CHOICE defaults: gate low rank 16,
gate normaliser 16 (alpha = sigmoid(.)^(1/16), i.e. slow decay at init), chunk 64. Other
settings register under new names with `make_gla_mixer` (the config names mixers; it has no
per-mixer options). GLA uses `config.num_heads` heads for q, k and v (`num_kv_heads` is an
attention concept and is ignored) and `config.head_dim` for both key and value width.

Cache (`GLACache`): the fp32 state `[B, N, D, D]` only, so decode memory is constant in the
sequence length. Slot positions are not used: a call with a cache continues every row from
its state. Padding is a no-op on the state: tokens where `attention_mask` is 0 get k = 0 and
g = 0 (alpha = 1), so a right-padded prompt block prefilled in one call leaves each row's
state exactly at the end of its own prompt (`generate` passes that mask in its prefill).
Packed sequences (`segment_ids` `[B, T]`, training and cache-free prefill): the state restarts
from zero wherever the id changes, so each packed sequence is mixed exactly as if it ran alone
(`reasoning_jax.ops.gla`); combined with a generation cache they raise ValueError (a cache
carries one state per row).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.layers.ffn import bias_param, dense_param
from reasoning_jax.layers.norms import RMSNorm
from reasoning_jax.ops.gla import GLA_MODES, gated_linear_attention, gla_step

if TYPE_CHECKING:
  from reasoning_jax.models.config import ModelConfig


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class GLACache:
  """Recurrent state of one GLA layer: `state` `[B, N, D, D]` float32."""

  state: jax.Array


@registry.MIXERS.register("gla")
class GatedLinearAttention(nnx.Module):
  """GLA token mixer (paper Sec. 4.4). Kernels: q/k/v/r `[H, N, D]`, o `[N, D, H]`.

  Class attributes (set by `make_gla_mixer`; DESIGN CHOICE defaults shown):
    gate_rank: 16, rank of the gate projection `W_a [H, r]`, `W_b [r, N, D]`.
    gate_normalizer: 16.0, g = log_sigmoid(.) / gate_normalizer.
    chunk_size: 64, chunk of the parallel training form.
    mode: "chunk" (training form used without a cache and for multi-token cache calls).
  """

  gate_rank: int = 16
  gate_normalizer: float = 16.0
  chunk_size: int = 64
  mode: str = "chunk"

  def __init__(self, config: ModelConfig, layer_idx: int, *, rngs: nnx.Rngs):
    self.layer_idx = layer_idx
    h, n, d = config.hidden_size, config.num_heads, config.head_dim
    self.num_heads, self.head_dim = n, d
    self.dtype = config.compute_dtype
    GLA_MODES.validate(self.mode, argument="mode")
    if self.gate_rank <= 0 or self.gate_normalizer <= 0 or self.chunk_size <= 0:
      raise ValueError(
        f"{type(self).__name__}: gate_rank, gate_normalizer and chunk_size must "
        f"be positive, got {self.gate_rank}, {self.gate_normalizer}, "
        f"{self.chunk_size}"
      )
    self.q_proj = dense_param(rngs, (h, n, d), config)
    self.k_proj = dense_param(rngs, (h, n, d), config)
    self.v_proj = dense_param(rngs, (h, n, d), config)
    self.r_proj = dense_param(rngs, (h, n, d), config)
    self.gate_a = dense_param(rngs, (h, self.gate_rank), config)
    self.gate_b = dense_param(rngs, (self.gate_rank, n, d), config)
    self.gate_bias = bias_param((n, d), config)
    self.o_proj = dense_param(rngs, (n, d, h), config)
    self.head_norm = RMSNorm(d, eps=config.rms_norm_eps, param_dtype=config.params_dtype)

  def init_cache(self, batch_size: int, max_length: int, dtype=None) -> GLACache:
    del max_length, dtype  # Constant size; the state is always float32.
    shape = (batch_size, self.num_heads, self.head_dim, self.head_dim)
    return GLACache(state=jnp.zeros(shape, jnp.float32))

  def _inputs(self, x, attention_mask):
    proj = lambda w: jnp.einsum("bth,hnd->btnd", x, w[...].astype(self.dtype))
    q, k, v = proj(self.q_proj), proj(self.k_proj), proj(self.v_proj)
    low = jnp.einsum("bth,hr->btr", x, self.gate_a[...].astype(self.dtype))
    logits = jnp.einsum("btr,rnd->btnd", low, self.gate_b[...].astype(self.dtype))
    logits = logits.astype(jnp.float32) + self.gate_bias[...].astype(jnp.float32)
    g = jax.nn.log_sigmoid(logits) / self.gate_normalizer
    if attention_mask is not None:
      keep = (attention_mask != 0)[:, :, None, None]
      k = jnp.where(keep, k, 0)
      g = jnp.where(keep, g, 0.0)
    return q, k, v, g

  def __call__(
    self, x, *, positions, attention_mask=None, segment_ids=None, cache=None, implementation=None
  ):
    del positions  # No RoPE; the decay carries position.
    if cache is not None and segment_ids is not None:
      raise ValueError(
        "gla: segment_ids (packed sequences) cannot be combined with a generation cache"
      )
    q, k, v, g = self._inputs(x, attention_mask)
    state = None
    if cache is not None:
      if not isinstance(cache, GLACache):
        raise TypeError(
          f"{type(self).__name__} needs a GLACache from its init_cache, got {type(cache).__name__}"
        )
      state = cache.state
    if cache is not None and x.shape[1] == 1:
      o, state = gla_step(q[:, 0], k[:, 0], v[:, 0], g[:, 0], state)
      o = o[:, None]
    else:
      o, state = gated_linear_attention(
        q,
        k,
        v,
        g,
        initial_state=state,
        segment_ids=segment_ids,
        mode=self.mode,
        chunk_size=self.chunk_size,
        implementation=implementation,
      )
    o = self.head_norm(o)
    r = jnp.einsum("bth,hnd->btnd", x, self.r_proj[...].astype(self.dtype))
    y = jnp.einsum("btnd,ndh->bth", o * jax.nn.silu(r), self.o_proj[...].astype(self.dtype))
    return y, (None if cache is None else GLACache(state=state))


def make_gla_mixer(
  name: str,
  *,
  gate_rank: int = 16,
  gate_normalizer: float = 16.0,
  chunk_size: int = 64,
  mode: str = "chunk",
  override: bool = False,
) -> type[GatedLinearAttention]:
  """Registers (in `registry.MIXERS`) and returns a GLA variant named `name`."""
  GLA_MODES.validate(mode, argument="mode")
  for arg, value in (
    ("gate_rank", gate_rank),
    ("gate_normalizer", gate_normalizer),
    ("chunk_size", chunk_size),
  ):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
      raise ValueError(f"{arg} must be positive, got {value!r}")
  attrs = dict(
    gate_rank=int(gate_rank),
    gate_normalizer=float(gate_normalizer),
    chunk_size=int(chunk_size),
    mode=mode,
    __doc__=f"Gated linear attention registered as mixer {name!r}.",
    __module__=__name__,
  )
  cls = type(
    "GatedLinearAttention_" + "".join(c if c.isalnum() else "_" for c in name),
    (GatedLinearAttention,),
    attrs,
  )
  return registry.MIXERS.register(name, override=override)(cls)


__all__ = ["GLACache", "GatedLinearAttention", "make_gla_mixer"]
