"""OVQ attention mixer: an online vector-quantized memory with a constant-size cache.

"Online Vector Quantized Attention" (Nick Alonso, Tomas Figliolia, Beren Millidge;
arXiv:2602.03922). The math lives in `reasoning_jax.ops.ovq`; this module holds the
projections and the per-head inverse temperature:

    q, k, v = x W_q, x W_k, x W_v          (each [N, D]; no RoPE, as in the paper's OVQ layers)
    beta    = exp(b)                        (b per head, initialised at log sqrt(D))
    o       = OVQ(q, k, v; beta)            (joint softmax over the dictionary and the chunk)
    y       = o W_o

Registered as mixer "ovq" with the spec's DESIGN CHOICE defaults: 1024 slots per head,
chunk 64, the saturating growth schedule, farthest-first seeding, the running-mean update,
the exact chunk readout, no re-normalisation (every flag of `reasoning_jax.ops.ovq.options`
is a class attribute set by `make_ovq_mixer`). The paper uses OVQ layers
alternating with sliding-window attention layers (which carry position through RoPE); build
that as a per-layer mixer tuple, e.g.
`config.replace(mixer=("sliding_attention", "ovq") * (num_layers // 2), sliding_window=256)`.
Other OVQ settings register under new names with `make_ovq_mixer`. OVQ uses `config.num_heads`
heads for q, k and v (`num_kv_heads` is ignored) and `config.head_dim` for both widths.

Cache: the `OVQState` of the op (dictionary, counts, the current chunk's buffer), constant in
the sequence length. A call with a cache continues every row from its state; slot positions
are not used. Padding: the mask must be right padding (valid tokens first); padding tokens
are neither read nor absorbed, so a right-padded prompt block prefilled in one call leaves
each row's state at the end of its own prompt (`generate` passes that mask).

Packed sequences: with `segment_ids` (packed SFT rows) the whole OVQ state restarts at every
token whose segment id differs from the previous token's, so each packed sequence gives what
it gives alone (its chunks and growth schedule count its own tokens; see
`reasoning_jax.ops.ovq.segments`). `segment_ids` with a generation cache raises ValueError
(a cache continues one sequence per row).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import jax.numpy as jnp
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.layers.ffn import dense_param
from reasoning_jax.ops.ovq import (
  DEFAULT_FLAGS,
  OVQ_MODES,
  OVQState,
  init_state,
  make_options,
  ovq_attention,
  ovq_step,
)

if TYPE_CHECKING:
  from reasoning_jax.models.config import ModelConfig


@registry.MIXERS.register("ovq")
class OVQAttention(nnx.Module):
  """OVQ attention token mixer. Kernels: q/k/v `[H, N, D]`, o `[N, D, H]`; `log_beta` `[N]`.

  Class attributes (set by `make_ovq_mixer`; DESIGN CHOICE defaults shown):
    num_slots: 1024 dictionary slots per head (N_max).
    chunk_size: 64 tokens per chunk (L).
    schedule: "saturating" growth schedule (a name in `OVQ_SCHEDULES`).
    renormalize: False (keep running means and the -(beta/2)||D_k||^2 term).
    seeding: "farthest" new-slot initialisation (a name in `OVQ_SEEDINGS`); seed: 0.
    update: "adaptive" (running mean; `OVQ_UPDATES`); update_lr: 0.1 (the "constant" rule's).
    readout: "exact" chunk keys (a name in `OVQ_READOUTS`; "vq" quantises them).
    linear_tokens, dirichlet_alpha: None (4 num_slots and num_slots / 4).
    mode: "chunk" (the training form used without a cache and for multi-token calls).
  """

  num_slots: int = 1024
  chunk_size: int = 64
  schedule: str = "saturating"
  renormalize: bool = False
  seeding: str = "farthest"
  seed: int = 0
  update: str = "adaptive"
  update_lr: float = 0.1
  readout: str = "exact"
  linear_tokens: int | None = None
  dirichlet_alpha: float | None = None
  mode: str = "chunk"

  def __init__(self, config: ModelConfig, layer_idx: int, *, rngs: nnx.Rngs):
    self.layer_idx = layer_idx
    h, n, d = config.hidden_size, config.num_heads, config.head_dim
    self.num_heads, self.head_dim = n, d
    self.dtype = config.compute_dtype
    OVQ_MODES.validate(self.mode, argument="mode")
    make_options(self.num_slots, **self._options())
    self.q_proj = dense_param(rngs, (h, n, d), config)
    self.k_proj = dense_param(rngs, (h, n, d), config)
    self.v_proj = dense_param(rngs, (h, n, d), config)
    self.o_proj = dense_param(rngs, (n, d, h), config)
    self.log_beta = nnx.Param(jnp.full((n,), math.log(math.sqrt(d)), jnp.float32))

  def init_cache(self, batch_size: int, max_length: int, dtype=None) -> OVQState:
    del max_length, dtype  # Constant size; the state is float32.
    return init_state(
      batch_size, self.num_heads, self.num_slots, self.chunk_size, self.head_dim, self.head_dim
    )

  def _options(self):
    """The op's DESIGN CHOICE flags (`reasoning_jax.ops.ovq.options.DEFAULT_FLAGS` keys)."""
    return {name: getattr(self, name) for name in DEFAULT_FLAGS}

  def __call__(
    self, x, *, positions, attention_mask=None, segment_ids=None, cache=None, implementation=None
  ):
    del positions  # No RoPE in OVQ layers.
    proj = lambda w: jnp.einsum("bth,hnd->btnd", x, w[...].astype(self.dtype))
    q, k, v = proj(self.q_proj), proj(self.k_proj), proj(self.v_proj)
    beta = jnp.exp(self.log_beta[...])
    if cache is not None and not isinstance(cache, OVQState):
      raise TypeError(
        f"{type(self).__name__} needs an OVQState from its init_cache, got {type(cache).__name__}"
      )
    if cache is not None and segment_ids is not None:
      raise ValueError(
        "ovq: segment_ids (packed sequences) cannot be combined with a generation cache"
      )
    if cache is not None and x.shape[1] == 1:
      valid = None if attention_mask is None else attention_mask[:, 0] != 0
      o, cache = ovq_step(
        cache, q[:, 0], k[:, 0], v[:, 0], beta=beta, valid=valid, **self._options()
      )
      o = o[:, None]
    else:
      lengths = (
        None if attention_mask is None else jnp.sum(attention_mask != 0, axis=1).astype(jnp.int32)
      )
      o, state = ovq_attention(
        q,
        k,
        v,
        beta=beta,
        initial_state=cache,
        lengths=lengths,
        mode=self.mode,
        chunk_size=self.chunk_size,
        num_slots=self.num_slots,
        implementation=implementation,
        segment_ids=segment_ids,
        **self._options(),
      )
      cache = None if cache is None else state
    y = jnp.einsum("btnd,ndh->bth", o, self.o_proj[...].astype(self.dtype))
    return y, cache


def make_ovq_mixer(
  name: str,
  *,
  num_slots: int = 1024,
  chunk_size: int = 64,
  schedule: str = "saturating",
  renormalize: bool = False,
  seeding: str = "farthest",
  seed: int = 0,
  update: str = "adaptive",
  update_lr: float = 0.1,
  readout: str = "exact",
  linear_tokens: int | None = None,
  dirichlet_alpha: float | None = None,
  mode: str = "chunk",
  override: bool = False,
) -> type[OVQAttention]:
  """Registers (in `registry.MIXERS`) and returns an `OVQAttention` variant named `name`.

  The flags are those of `reasoning_jax.ops.ovq.ovq_attention` (DESIGN CHOICE defaults shown),
  validated here (ValueError naming the flag); a config's `mixer_variants` entry
  `{"kind": "ovq", **these kwargs}` reaches them (`reasoning_jax.train.recall`).
  """
  OVQ_MODES.validate(mode, argument="mode")
  for arg, value in (("num_slots", num_slots), ("chunk_size", chunk_size)):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
      raise ValueError(f"{arg} must be a positive int, got {value!r}")
  flags = dict(
    schedule=schedule,
    renormalize=bool(renormalize),
    seeding=seeding,
    seed=seed,
    update=update,
    update_lr=update_lr,
    readout=readout,
    linear_tokens=linear_tokens,
    dirichlet_alpha=dirichlet_alpha,
  )
  make_options(num_slots, **flags)
  attrs = dict(
    num_slots=num_slots,
    chunk_size=chunk_size,
    mode=mode,
    **flags,
    __doc__=f"OVQ attention registered as mixer {name!r}.",
    __module__=__name__,
  )
  cls = type(
    "OVQAttention_" + "".join(c if c.isalnum() else "_" for c in name), (OVQAttention,), attrs
  )
  return registry.MIXERS.register(name, override=override)(cls)


__all__ = ["OVQAttention", "make_ovq_mixer"]
