"""`generate`'s arguments: the static settings of one compiled prefill/decode pair, and the
validation every decoder built on `generate` shares (`check_generate_args`, the extension
point of the speculative decoders).

Every check raises a TypeError / ValueError that names the argument and the expected type,
shape or range.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reasoning_jax.generate.prefill import check_prefill_chunk
from reasoning_jax.generate.sampling import validate_sampling_params
from reasoning_jax.models.transformer import is_concrete, validate_token_ids
from reasoning_jax.sparse import SparseDecodeConfig
from reasoning_jax.sparse.config import round_cache_size


@dataclasses.dataclass(frozen=True)
class GenerateSettings:
  """Static (hashable) generation settings: one compiled prefill/decode pair each."""

  max_new_tokens: int
  cache_size: int
  temperature: float
  top_k: int
  top_p: float
  eos_ids: tuple[int, ...]
  pad_id: int
  sparse_decode: SparseDecodeConfig | None = None
  # Prompt tokens fed per prefill forward (0: the whole block in one forward).
  prefill_chunk: int = 0


def as_int(value: Any, argument: str, expected: str) -> int:
  """`value` as a Python int (ints, NumPy integers and concrete 0-d integer arrays)."""
  if not isinstance(value, bool):
    try:
      return operator.index(value)
    except TypeError:
      pass
  raise TypeError(f"{argument} must be {expected}, got {type(value).__name__} {value!r}")


def normalize_eos(eos_id: Any, vocab_size: int) -> tuple[int, ...]:
  if eos_id is None:
    return ()
  ids = tuple(eos_id) if isinstance(eos_id, (tuple, list)) else (eos_id,)
  out = []
  for value in ids:
    value = as_int(value, "eos_id", "None, an int or a tuple of ints")
    if not 0 <= value < vocab_size:
      raise ValueError(f"eos_id {value} is outside the vocabulary [0, {vocab_size})")
    out.append(value)
  return tuple(dict.fromkeys(out))


def _check_key(key: Any) -> None:
  dtype = getattr(key, "dtype", None)
  if dtype is None:
    raise TypeError(f"key must be a PRNG key (jax.random.key or PRNGKey), got {type(key).__name__}")
  if not (jnp.issubdtype(dtype, jax.dtypes.prng_key) or dtype == jnp.uint32):
    raise TypeError(f"key must be a PRNG key (jax.random.key or PRNGKey), got dtype {dtype}")


def check_sampling(temperature: Any, top_k: Any, top_p: Any, key: Any) -> tuple:
  """Validated `(temperature, top_k, top_p, key)`; `key` None for greedy decoding."""
  temperature, top_k, top_p = validate_sampling_params(temperature, top_k, top_p)
  if temperature == 0:
    return temperature, top_k, top_p, None
  if key is None:
    raise ValueError(
      f"key is required when sampling with temperature={temperature} > 0 "
      "(pass key=jax.random.key(seed), or temperature=0 for greedy)"
    )
  _check_key(key)
  return temperature, top_k, top_p, key


def check_generate_args(
  model: nnx.Module,
  prompts: Any,
  prompt_lengths: Any,
  *,
  max_new_tokens: Any,
  temperature: Any,
  top_k: Any,
  top_p: Any,
  eos_id: Any,
  key: Any,
  cache_size: Any,
  pad_id: Any,
  extra_slots: int = 0,
  extra_reason: str = "",
  sparse_decode: SparseDecodeConfig | None = None,
  prefill_chunk: Any = None,
) -> tuple[jax.Array, jax.Array, GenerateSettings, jax.Array | None]:
  """Validates `generate`'s arguments; the extension point other decoders share.

  Returns `(prompts int32 [B, P], prompt_lengths int32 [B], settings, key)`, `key` None for
  greedy decoding. `extra_slots` cache slots beyond `P + max_new_tokens` are required (and
  added to the default `cache_size`); `extra_reason` names them in the error, e.g. the
  speculative decoder's verify block.

  Raises the TypeError / ValueError documented in `generate`.
  """
  vocab_size = model.config.vocab_size
  if not hasattr(prompts, "dtype"):
    prompts = np.asarray(prompts)
  if not jnp.issubdtype(prompts.dtype, jnp.integer):
    raise TypeError(
      f"prompts must be an integer array [B, P] of token ids, got dtype {prompts.dtype}"
    )
  if prompts.ndim != 2 or prompts.shape[0] < 1 or prompts.shape[1] < 1:
    raise ValueError(f"prompts must be [B, P] with B, P >= 1, got shape {tuple(prompts.shape)}")
  b, p = prompts.shape

  if not hasattr(prompt_lengths, "dtype"):
    prompt_lengths = np.asarray(prompt_lengths)
  if not jnp.issubdtype(prompt_lengths.dtype, jnp.integer):
    raise TypeError(
      f"prompt_lengths must be an integer array [B] = [{b}], got dtype {prompt_lengths.dtype}"
    )
  if tuple(prompt_lengths.shape) != (b,):
    raise ValueError(
      f"prompt_lengths must be [B] = [{b}] (one length per prompt row), got "
      f"shape {tuple(prompt_lengths.shape)}"
    )
  if is_concrete(prompt_lengths):
    lengths_np = np.asarray(prompt_lengths)
    if lengths_np.min() < 1 or lengths_np.max() > p:
      raise ValueError(
        f"prompt_lengths must be in [1, P] = [1, {p}], got values in "
        f"[{lengths_np.min()}, {lengths_np.max()}]"
      )
    if is_concrete(prompts):
      real = np.arange(p)[None, :] < lengths_np[:, None]
      validate_token_ids(np.where(real, np.asarray(prompts), 0), vocab_size, argument="prompts")

  max_new_tokens = as_int(max_new_tokens, "max_new_tokens", "an int >= 1")
  if max_new_tokens < 1:
    raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
  needed = p + max_new_tokens + extra_slots
  if sparse_decode is not None and not isinstance(sparse_decode, SparseDecodeConfig):
    raise TypeError(
      f"sparse_decode must be None or a reasoning_jax.sparse.SparseDecodeConfig, got "
      f"{type(sparse_decode).__name__}"
    )
  if cache_size is None:
    cache_size = round_cache_size(needed, sparse_decode)
  cache_size = as_int(cache_size, "cache_size", "None or an int >= 1")
  if sparse_decode is not None:
    sparse_decode.validate_for(model.config, cache_size)
  if needed > cache_size:
    extra = f" + {extra_slots} {extra_reason}" if extra_slots else ""
    raise ValueError(
      f"the prompt plus budget does not fit in the cache: P={p} prompt slots + "
      f"max_new_tokens={max_new_tokens}{extra} = {needed} > cache_size={cache_size}"
    )
  temperature, top_k, top_p, key = check_sampling(temperature, top_k, top_p, key)
  eos_ids = normalize_eos(eos_id, vocab_size)
  pad_id = as_int(pad_id, "pad_id", "an int")

  settings = GenerateSettings(
    max_new_tokens=max_new_tokens,
    cache_size=cache_size,
    temperature=temperature,
    top_k=top_k,
    top_p=top_p,
    eos_ids=eos_ids,
    pad_id=pad_id,
    sparse_decode=sparse_decode,
    prefill_chunk=check_prefill_chunk(prefill_chunk),
  )
  prompts = jnp.asarray(prompts, jnp.int32)
  prompt_lengths = jnp.asarray(prompt_lengths, jnp.int32)
  return prompts, prompt_lengths, settings, key
