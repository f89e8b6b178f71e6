"""The decoder-only transformer: embed -> blocks(mixer, ffn by registry name) -> norm -> head.

One module reproduces Llama-3.x, Qwen2/2.5 and Qwen3 weight for weight (see
`reasoning_jax.models.config`). Blocks are pre-norm:
`h = x + mixer(norm1(x)); out = h + ffn(norm2(h))`.

Usage:
  >>> model = Transformer(get_preset("tiny-qwen3"), rngs=nnx.Rngs(0))
  >>> logits = model(input_ids)                      # [B, T, V] float32
  >>> hidden, cache = model.forward(ids, positions=pos, cache=cache)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reasoning_jax import layers as _layers  # noqa: F401  (registers mixers and FFNs)
from reasoning_jax import registry
from reasoning_jax.sharding import constrain_batch
from reasoning_jax.layers.ffn import dense_param
from reasoning_jax.layers.norms import RMSNorm
from reasoning_jax.models.config import ModelConfig
from reasoning_jax.validation import is_concrete  # Also imported from here by generate, logprobs.

# `ModelConfig.remat` names -> `jax.checkpoint` policies ("none": no rematerialisation).
REMAT_POLICIES = {
  "full": jax.checkpoint_policies.nothing_saveable,
  "dots_saveable": jax.checkpoint_policies.dots_saveable,
}


def validate_token_ids(input_ids: Any, vocab_size: int, *, argument: str = "input_ids") -> None:
  """Raises if `input_ids` is not an integer `[B, T]` array of ids in `[0, vocab_size)`."""
  if not hasattr(input_ids, "dtype") or not jnp.issubdtype(input_ids.dtype, jnp.integer):
    raise TypeError(
      f"{argument} must be an integer array [B, T], got dtype "
      f"{getattr(input_ids, 'dtype', type(input_ids).__name__)}"
    )
  if input_ids.ndim != 2:
    raise ValueError(f"{argument} must be [B, T], got shape {tuple(input_ids.shape)}")
  if is_concrete(input_ids) and input_ids.size:
    values = np.asarray(input_ids)
    lo, hi = int(values.min()), int(values.max())
    if lo < 0 or hi >= vocab_size:
      raise ValueError(
        f"{argument} has token ids in [{lo}, {hi}] but vocab_size={vocab_size}; "
        f"ids must be in [0, {vocab_size})"
      )


class Block(nnx.Module):
  """Pre-norm residual block with a registry-chosen mixer and FFN."""

  def __init__(self, config: ModelConfig, layer_idx: int, *, rngs: nnx.Rngs):
    mixer_name = registry.MIXERS.validate(
      config.layer_mixer(layer_idx), argument=f"mixer[{layer_idx}]"
    )
    ffn_name = registry.FFNS.validate(config.layer_ffn(layer_idx), argument=f"ffn[{layer_idx}]")
    norm_kw = dict(eps=config.rms_norm_eps, param_dtype=config.params_dtype)
    self.input_norm = RMSNorm(config.hidden_size, **norm_kw)
    self.mixer = registry.MIXERS.get(mixer_name)(config, layer_idx, rngs=rngs)
    self.post_mixer_norm = RMSNorm(config.hidden_size, **norm_kw)
    self.ffn = registry.FFNS.get(ffn_name)(config, layer_idx, rngs=rngs)

  def __call__(
    self, x, *, positions, attention_mask=None, segment_ids=None, cache=None, context=None
  ):
    extra = {} if context is None else {"context": context}
    y, cache = self.mixer(
      self.input_norm(x),
      positions=positions,
      attention_mask=attention_mask,
      segment_ids=segment_ids,
      cache=cache,
      **extra,
    )
    h = x + y
    return h + self.ffn(self.post_mixer_norm(h)), cache


def _block_apply(block, x, positions, attention_mask, segment_ids):
  return block(x, positions=positions, attention_mask=attention_mask, segment_ids=segment_ids)[0]


_REMAT_APPLY = {
  name: nnx.remat(_block_apply, policy=policy) for name, policy in REMAT_POLICIES.items()
}


class Transformer(nnx.Module):
  """Decoder-only language model (Llama 3 / Qwen2 / Qwen3 families)."""

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    self.config = config
    self.dtype = config.compute_dtype
    self.embed = nnx.Param(
      jax.random.normal(rngs.params(), (config.vocab_size, config.hidden_size), config.params_dtype)
      * config.initializer_range
    )
    self.layers = nnx.List([Block(config, i, rngs=rngs) for i in range(config.num_layers)])
    self.final_norm = RMSNorm(
      config.hidden_size, eps=config.rms_norm_eps, param_dtype=config.params_dtype
    )
    self.lm_head = (
      None
      if config.tie_word_embeddings
      else dense_param(rngs, (config.hidden_size, config.vocab_size), config)
    )

  # -- Pieces used by generation and chunked log-probs --------------------------------------

  def init_cache(self, batch_size: int, max_length: int, dtype=None) -> tuple[Any, ...]:
    """One cache entry per layer, built by that layer's mixer (generic over mixer kinds)."""
    return tuple(block.mixer.init_cache(batch_size, max_length, dtype) for block in self.layers)

  def embed_tokens(self, input_ids) -> jax.Array:
    """The tensor fed to the first block, `[B, T, H]` in the compute dtype (no scaling: the
    Llama / Qwen families feed the raw embedding rows)."""
    validate_token_ids(input_ids, self.config.vocab_size)
    return constrain_batch(jnp.take(self.embed[...], input_ids, axis=0).astype(self.dtype))

  def forward(
    self,
    input_ids,
    *,
    positions=None,
    attention_mask=None,
    segment_ids=None,
    cache=None,
    inputs_embeds=None,
    attention_context=None,
  ):
    """Final-normed hidden states `[B, T, H]` and the updated cache (None without one).

    Args:
      input_ids: `[B, T]` int token ids, or None when `inputs_embeds` is given.
      positions: `[B, T]` int positions (default `arange(T)`); with a cache they
        are also the cache slots written. Without a cache they must be
        `arange(T)` plus a per-row (per-segment when packing) constant: the
        causal/window mask is then taken on array indices, which is what lets the
        Pallas flash kernel serve this path.
      attention_mask: `[B, T]` bool/int, 0 for padding tokens. Attention masks those keys
        on the no-cache path and ignores it with a cache (causality on positions
        hides padding slots); recurrent mixers leave their state untouched by them.
      segment_ids: `[B, T]` ints; tokens attend only within their segment.
      cache: a tuple from `init_cache`, or None. Without a cache, blocks whose
        `config.layer_remat(i)` is not "none" run under `nnx.remat` with that policy.
      inputs_embeds: `[B, T, H]`, the first block's input in place of `embed_tokens(input_ids)`
        (pass exactly one of the two): input attributions such as Grad2Reward's
        differentiate with respect to it.
      attention_context: an object with `attend(layer_idx, q, k, v, q_positions)` that
        replaces every attention layer's attention (sparse decoding and head-role learning,
        `reasoning_jax.sparse`); every layer must be full attention. No rematerialisation.
    """
    if (input_ids is None) == (inputs_embeds is None):
      raise ValueError("pass exactly one of input_ids [B, T] or inputs_embeds [B, T, H]")
    if inputs_embeds is not None:
      if inputs_embeds.ndim != 3 or inputs_embeds.shape[-1] != self.config.hidden_size:
        raise ValueError(
          f"inputs_embeds must be [B, T, H={self.config.hidden_size}], "
          f"got {tuple(inputs_embeds.shape)}"
        )
      x = constrain_batch(inputs_embeds.astype(self.dtype))
    else:
      x = self.embed_tokens(input_ids)
    b, t = x.shape[:2]
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
    elif tuple(positions.shape) != (b, t):
      raise ValueError(f"positions must be [B, T] = {(b, t)}, got {tuple(positions.shape)}")
    if attention_mask is not None and tuple(attention_mask.shape) != (b, t):
      raise ValueError(
        f"attention_mask must be [B, T] = {(b, t)}, got {tuple(attention_mask.shape)}"
      )
    if cache is not None and len(cache) != len(self.layers):
      raise ValueError(f"cache has {len(cache)} layer entries, model has {len(self.layers)}")
    if attention_context is not None:
      for i, block in enumerate(self.layers):
        if not getattr(block.mixer, "accepts_attention_context", False):
          raise ValueError(
            f"attention_context (sparse decoding / head roles) needs attention in every layer; "
            f"layer {i} is {self.config.layer_mixer(i)!r}, a mixer without a KV cache to select "
            "from"
          )
    new_cache = []
    for i, block in enumerate(self.layers):
      remat = self.config.layer_remat(i)
      if (
        cache is None and remat != "none" and attention_context is None
      ):  # Training path: recompute in the backward pass.
        x, layer_cache = _REMAT_APPLY[remat](block, x, positions, attention_mask, segment_ids), None
      else:
        x, layer_cache = block(
          x,
          positions=positions,
          attention_mask=attention_mask,
          segment_ids=segment_ids,
          cache=None if cache is None else cache[i],
          context=attention_context,
        )
      x = constrain_batch(x)
      new_cache.append(layer_cache)
    return self.final_norm(x), (None if cache is None else tuple(new_cache))

  def unembed_kernel(self) -> jax.Array:
    """The `[H, V]` output projection (the transposed embedding when tied)."""
    return self.embed[...].T if self.lm_head is None else self.lm_head[...]

  def unembed(self, hidden: jax.Array) -> jax.Array:
    """Logits `[..., V]` in float32 from hidden states `[..., H]`."""
    return jnp.matmul(
      hidden, self.unembed_kernel().astype(hidden.dtype), preferred_element_type=jnp.float32
    )

  def __call__(self, input_ids, *, positions=None, attention_mask=None, segment_ids=None):
    """Logits `[B, T, V]` (float32) for `input_ids` `[B, T]`."""
    hidden, _ = self.forward(
      input_ids, positions=positions, attention_mask=attention_mask, segment_ids=segment_ids
    )
    return self.unembed(hidden)


def count_params(model: nnx.Module) -> int:
  """Number of parameters (works on abstract models from `nnx.eval_shape`)."""
  state = nnx.state(model, nnx.Param)
  return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(state)))
