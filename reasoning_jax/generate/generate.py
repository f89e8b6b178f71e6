"""Batched autoregressive generation with a preallocated KV cache.

`generate(model, prompts, prompt_lengths, max_new_tokens=...)` samples up to
`max_new_tokens` tokens for every row of a right-padded prompt batch:

  1. the model is split once (`graphdef, state = nnx.split(model)`);
  2. a jitted *prefill* runs the whole `[B, P]` prompt block through the model,
     writing cache slots `0 .. P-1` of a fresh cache (allocated outside the jit and
     donated to it, see `_compiled_fns`), and samples each row's first token from
     the logits at its last real prompt position `prompt_lengths[b] - 1`;
  3. ONE jitted *decode* function runs a `jax.lax.while_loop` that feeds each
     row's latest token at position `prompt_lengths[b] + k - 1` (so row b's k-th
     new token lands at position `prompt_lengths[b] + k`, overwriting the
     padding slots of shorter prompts, which causal masking on positions keeps
     invisible), until every row has emitted EOS or the budget is used. The cache
     is donated, so decoding updates it in place.

Both jitted functions are cached per `(graphdef, static settings)`, so repeated
calls with the same shapes and settings never retrace or recompile.

`generate` runs eagerly (it calls its own jitted functions); do not wrap it in
`jax.jit`.

Example:
  >>> out = generate(model, prompts, prompt_lengths, max_new_tokens=32,
  ...                temperature=0.7, top_p=0.95, eos_id=tokenizer.eos_id,
  ...                key=jax.random.key(0))
  >>> out.tokens, out.lengths, out.logprobs
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reasoning_jax.generate.arguments import (
  GenerateSettings,
  as_int,
  check_generate_args,
  check_sampling,
  normalize_eos,
)
from reasoning_jax.generate.prefill import check_prefill_chunk, forward_last
from reasoning_jax.generate.sampling import sample_logits
from reasoning_jax.models.transformer import is_concrete, validate_token_ids
from reasoning_jax.sparse import (
  SparseDecodeConfig,
  SparseDecodeContext,
  init_state,
  prefill_config,
)

# Number of times each jitted function body was traced (tests use it to check caching).
TRACE_COUNTS: collections.Counter = collections.Counter()


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class GenerateOutput:
  """Result of `generate` (a pytree).

  Attributes:
    tokens: `[B, max_new_tokens]` int32 generated tokens; `pad_id` after a row
      finishes (after its EOS, or never when it used the whole budget).
    lengths: `[B]` int32 number of generated tokens, including the EOS token.
    logprobs: `[B, max_new_tokens]` float32 log-probabilities of the sampled
      tokens under the raw model (`log_softmax(logits)` at temperature 1, no
      truncation; what a trainer recomputes); 0 at padding.
    sampling_logprobs: `[B, max_new_tokens]` float32 log-probabilities under the
      tempered, top-k/top-p truncated distribution actually sampled from (0 for
      greedy decoding and at padding).
    done: `[B]` bool, True where the row stopped by emitting an EOS token (False
      where it was cut off by `max_new_tokens`, and everywhere when `eos_id` is None).
  """

  tokens: jax.Array
  lengths: jax.Array
  logprobs: jax.Array
  sampling_logprobs: jax.Array
  done: jax.Array


def _is_eos(tokens: jax.Array, eos_ids: tuple[int, ...]) -> jax.Array:
  if not eos_ids:
    return jnp.zeros(tokens.shape, dtype=bool)
  return jnp.any(tokens[..., None] == jnp.asarray(eos_ids, tokens.dtype), axis=-1)


@functools.lru_cache(maxsize=64)
def _compiled_fns(graphdef: Any, settings: GenerateSettings):
  """Jitted `(prefill, decode)` for one model structure and one set of static settings (the
  prefill shared by every sparse config with the same `sparse.prefill_config`)."""
  n = settings.max_new_tokens
  sample = functools.partial(
    sample_logits, temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p
  )

  def _cache_correction(model, cache, c, prompt_lengths, step):
    """Every `m = cache_correction` steps, re-encode the last m tokens densely and overwrite
    their KV (TidalDecode-style; inference.md 8.2): their deeper-layer keys and values were
    computed with sparse attention and drift from what dense decoding would have stored."""
    sparse = settings.sparse_decode
    m = sparse.cache_correction
    if not m:
      return cache, c["sparse"]

    def correct(operands):
      cache, _ = operands
      start = step - m  # Fed so far: token indices 0 .. step - 1, index i at position P + i.
      tokens = jax.lax.dynamic_slice_in_dim(c["tokens"], start, m, axis=1)
      positions = prompt_lengths[:, None] + start + jnp.arange(m, dtype=jnp.int32)[None, :]
      _, cache = model.forward(tokens, positions=positions, cache=cache)
      # Quest's page bounds must cover the rewritten keys: rebuild them from the cache.
      return cache, init_state(sparse, cache, prompt_lengths + step)

    due = (step % m == 0) & (step >= m)
    return jax.lax.cond(due, correct, lambda operands: operands, (cache, c["sparse"]))

  def step_key(key, step):
    return None if key is None else jax.random.fold_in(key, step)

  def prefill(state, cache, prompts, prompt_lengths, key, starts=None, budgets=None):
    """Feeds the `[B, P]` block at positions `starts[b] + 0 .. P-1` (`starts` None: a prompt
    from position 0) and samples each row's first token after position `prompt_lengths[b] - 1`
    (absolute). `budgets` `[B]` (None: `max_new_tokens` for every row) caps each row's new
    tokens; a row with budget 0 is not decoded (`generate_from_cache`)."""
    TRACE_COUNTS["prefill"] += 1
    model = nnx.merge(graphdef, state)
    b, p = prompts.shape
    if starts is None:
      starts = jnp.zeros((b,), jnp.int32)
    if budgets is None:
      budgets = jnp.full((b,), n, jnp.int32)
    positions = starts[:, None] + jnp.arange(p, dtype=jnp.int32)[None, :]
    # Padding slots are invisible (causal on positions) and later overwritten;
    # give them a valid id so the embedding lookup stays finite.
    valid = positions < prompt_lengths[:, None]
    prompts = jnp.where(valid, prompts, 0)
    # Attention mixers ignore the mask here (causality hides the padding); recurrent
    # mixers use it to leave their state untouched by the padding tokens.
    last_index = (prompt_lengths - 1 - starts)[:, None]
    last, cache = forward_last(
      model, cache, prompts, positions, valid, last_index[:, 0], settings.prefill_chunk
    )
    token, logprob, sampling_logprob = sample(model.unembed(last), step_key(key, 0))
    active = budgets > 0
    # A row that is not decoded keeps re-feeding its last context token at its own position
    # (idempotent), so its cache is left as it was.
    context_last = jnp.take_along_axis(prompts, last_index, axis=1)[:, 0]
    token = jnp.where(active, token, context_last)
    carry = dict(
      step=jnp.asarray(1, jnp.int32),
      last=token,
      tokens=jnp.full((b, n), settings.pad_id, jnp.int32)
      .at[:, 0]
      .set(jnp.where(active, token, settings.pad_id)),
      logprobs=jnp.zeros((b, n), jnp.float32).at[:, 0].set(jnp.where(active, logprob, 0.0)),
      sampling_logprobs=jnp.zeros((b, n), jnp.float32)
      .at[:, 0]
      .set(jnp.where(active, sampling_logprob, 0.0)),
      lengths=active.astype(jnp.int32),
      budgets=budgets,
      done=active & _is_eos(token, settings.eos_ids),
    )
    if settings.sparse_decode is not None:
      # Prefill stays dense; state the sparse decode carries between steps (Quest's page
      # bounds) starts from the prefilled cache.
      carry["sparse"] = init_state(settings.sparse_decode, cache, prompt_lengths)
    return cache, carry

  def decode(state, cache, carry, prompt_lengths, key):
    TRACE_COUNTS["decode"] += 1
    model = nnx.merge(graphdef, state)

    def running(c):
      return ~c["done"] & (c["lengths"] < c["budgets"])

    def cond(c):
      _, c = c
      return (c["step"] < n) & jnp.any(running(c))

    def body(loop):
      cache, c = loop
      step = c["step"]
      # A running row's newest token (index step - 1) sits at position prompt_length +
      # step - 1; a finished row keeps re-feeding its last token at its own position, so
      # it never writes past its budget (`generate_from_cache` relies on this).
      positions = (prompt_lengths + c["lengths"] - 1)[:, None]
      context = None
      if settings.sparse_decode is not None:
        context = SparseDecodeContext(settings.sparse_decode, state=c["sparse"])
      hidden, cache = model.forward(
        c["last"][:, None], positions=positions, cache=cache, attention_context=context
      )
      token, logprob, sampling_logprob = sample(model.unembed(hidden[:, 0]), step_key(key, step))
      active = running(c)

      def put(buffer, column):
        return jax.lax.dynamic_update_slice(buffer, column[:, None].astype(buffer.dtype), (0, step))

      c = dict(
        step=step + 1,
        last=jnp.where(active, token, c["last"]),
        tokens=put(c["tokens"], jnp.where(active, token, settings.pad_id)),
        logprobs=put(c["logprobs"], jnp.where(active, logprob, 0.0)),
        sampling_logprobs=put(c["sampling_logprobs"], jnp.where(active, sampling_logprob, 0.0)),
        lengths=c["lengths"] + active.astype(jnp.int32),
        budgets=c["budgets"],
        done=c["done"] | (active & _is_eos(token, settings.eos_ids)),
      )
      if context is not None:
        c["sparse"] = context.state_out()
        cache, c["sparse"] = _cache_correction(model, cache, c, prompt_lengths, step)
      return cache, c

    # Returning the cache and carry lets XLA alias them to the donated inputs, so
    # the loop updates the preallocated buffers in place.
    return jax.lax.while_loop(cond, body, (cache, carry))

  # The fresh cache is an argument of prefill, not built inside it: a zero recurrent state
  # that XLA sees as a compile-time constant (e.g. GLA's, in a GLA + attention hybrid) can
  # be miscompiled by XLA:CPU (jaxlib 0.10.2 / 0.12.0.1: a YNN fusion that broadcasts the
  # scalar constant into a dot reads garbage; see `reasoning_jax.ops.gla.chunk`). As an
  # input buffer it is opaque to the compiler; donating it keeps the update in place.
  # Prefill is dense whatever the sparse method: settings that differ only in the decode part
  # of `sparse_decode` share the prefill compiled for their canonical prefill config.
  shared = dataclasses.replace(settings, sparse_decode=prefill_config(settings.sparse_decode))
  if shared != settings:
    jitted_prefill = _compiled_fns(graphdef, shared)[0]
  else:
    jitted_prefill = jax.jit(prefill, donate_argnums=(1,))
  return jitted_prefill, jax.jit(decode, donate_argnums=(1, 2))


def generate(
  model: nnx.Module,
  prompts: Any,
  prompt_lengths: Any,
  *,
  max_new_tokens: int,
  temperature: float = 1.0,
  top_k: int | None = None,
  top_p: float = 1.0,
  eos_id: int | tuple[int, ...] | None = None,
  key: jax.Array | None = None,
  cache_size: int | None = None,
  pad_id: int = 0,
  timings: dict[str, float] | None = None,
  sparse_decode: SparseDecodeConfig | None = None,
  prefill_chunk: int | None = None,
) -> GenerateOutput:
  """Samples up to `max_new_tokens` tokens per row after right-padded prompts.

  Args:
    model: a `Transformer` (anything with `init_cache`, `forward`, `unembed`
      and `config.vocab_size`).
    prompts: `[B, P]` integer token ids, right-padded; entries at or beyond a
      row's `prompt_lengths[b]` are ignored.
    prompt_lengths: `[B]` integers, each in `[1, P]`.
    max_new_tokens: generation budget per row (>= 1).
    temperature: `>= 0`; 0 = greedy (argmax).
    top_k: `None`/0 (off) or the number of highest logits kept.
    top_p: nucleus mass kept, in `(0, 1]` (1 = off).
    eos_id: None, an int, or a tuple of ints; a row stops after emitting one.
    key: PRNG key, required when `temperature > 0` (ignored for greedy).
    cache_size: KV-cache slots (default `P + max_new_tokens`); must be
      `>= P + max_new_tokens`.
    pad_id: value written to `tokens` after a row finishes.
    timings: optional dict; when given, the call waits for each phase to finish and adds
      its wall-clock seconds under `"prefill_s"` and `"decode_s"` (profiling; the extra
      wait costs one host sync).
    sparse_decode: None (dense decoding) or a `reasoning_jax.sparse.SparseDecodeConfig`:
      LycheeDecode, Quest, DuoAttention or "full" on the decode steps (prefill stays
      dense). The default `cache_size` is rounded up to its block / page multiple.
    prefill_chunk: None (one prefill forward over the whole prompt block) or the prompt
      tokens per prefill forward (`generate.prefill`): bounds prefill attention memory to
      `B * heads * prefill_chunk * cache_size` scores for long prompts; same outputs.

  Returns:
    A `GenerateOutput`: `tokens`, `lengths`, `logprobs`, `sampling_logprobs`, `done`.

  Raises:
    TypeError: non-integer prompts/prompt_lengths, bad setting types, or a bad key.
    ValueError: wrong shapes, token ids outside the vocabulary, lengths out of
      range, a prompt plus budget that does not fit in the cache, bad sampling
      settings, or a missing key when sampling.
  """
  prompts, prompt_lengths, settings, key = check_generate_args(
    model,
    prompts,
    prompt_lengths,
    max_new_tokens=max_new_tokens,
    temperature=temperature,
    top_k=top_k,
    top_p=top_p,
    eos_id=eos_id,
    key=key,
    cache_size=cache_size,
    pad_id=pad_id,
    sparse_decode=sparse_decode,
    prefill_chunk=prefill_chunk,
  )
  b = prompts.shape[0]
  cache_size = settings.cache_size
  graphdef, state = nnx.split(model)
  prefill, decode = _compiled_fns(graphdef, settings)
  start = time.perf_counter()
  cache = model.init_cache(b, cache_size)  # Fresh zeros, filled in place by prefill.
  cache, carry = prefill(state, cache, prompts, prompt_lengths, key)
  if timings is not None:
    jax.block_until_ready(carry)
    middle = time.perf_counter()
    timings["prefill_s"] = timings.get("prefill_s", 0.0) + middle - start
  _, carry = decode(state, cache, carry, prompt_lengths, key)  # The final cache is dropped.
  if timings is not None:
    jax.block_until_ready(carry)
    timings["decode_s"] = timings.get("decode_s", 0.0) + time.perf_counter() - middle
  return GenerateOutput(
    tokens=carry["tokens"],
    lengths=carry["lengths"],
    logprobs=carry["logprobs"],
    sampling_logprobs=carry["sampling_logprobs"],
    done=carry["done"],
  )


def _cache_slots(cache: Any) -> int | None:
  """The fewest position slots of any layer's cache (None: no layer keeps slots)."""
  sizes = [entry.max_length for entry in cache if hasattr(entry, "max_length")]
  return min(sizes) if sizes else None


def _as_row_array(value: Any, b: int, argument: str, expected: str) -> np.ndarray:
  array = np.asarray(value)
  if not np.issubdtype(array.dtype, np.integer):
    raise TypeError(f"{argument} must be an integer array [B] = [{b}] ({expected})")
  if array.shape != (b,):
    raise ValueError(f"{argument} must be [B] = [{b}] ({expected}), got shape {array.shape}")
  return array.astype(np.int64)


def generate_from_cache(
  model: nnx.Module,
  cache: Any,
  block: Any,
  block_starts: Any,
  context_lengths: Any,
  *,
  max_new_tokens: int,
  budgets: Any = None,
  temperature: float = 1.0,
  top_k: int | None = None,
  top_p: float = 1.0,
  eos_id: int | tuple[int, ...] | None = None,
  key: jax.Array | None = None,
  pad_id: int = 0,
  model_split: tuple[Any, Any] | None = None,
  prefill_chunk: int | None = None,
) -> tuple[GenerateOutput, Any]:
  """Continues decoding on a KV cache that already holds each row's context up to a point.

  The extension point for decoders that interleave several models and keep their caches
  across calls (SemanticSpec): row b's cache holds valid keys/values for positions
  `< block_starts[b]`; `block[b, : context_lengths[b] - block_starts[b]]` are the tokens at
  positions `block_starts[b] ..  context_lengths[b] - 1` (re-feeding positions the cache
  already holds is allowed: same tokens, same keys). They are fed in one block, then up to
  `budgets[b]` tokens are sampled exactly as `generate` samples them (same sampling
  settings, same use of `key`).

  Args:
    model: a `Transformer` whose layers keep position-indexed caches (slot == position).
    cache: its cache (`model.init_cache(B, S)`), donated: do not reuse the argument.
    block: `[B, W]` int token ids; entries past each row's context are ignored.
    block_starts: `[B]` ints, the position of `block[:, 0]`; `block_starts + W <= S`.
    context_lengths: `[B]` ints in `[block_starts + 1, block_starts + W]`.
    max_new_tokens: the static budget (output width).
    budgets: `[B]` ints in `[0, max_new_tokens]` (None: `max_new_tokens` for every row);
      a row with budget 0 is only fed, not decoded (its output is empty).
    temperature, top_k, top_p, eos_id, key, pad_id: as in `generate`.
    model_split: optional `nnx.split(model)`, for host loops that call this many times with
      unchanged weights (splitting costs milliseconds a call).
    prefill_chunk: None (the block in one forward) or block tokens per forward, as in
      `generate`.

  Returns:
    `(GenerateOutput, cache)`. A decoded row's cache is valid for positions
    `< context_lengths + lengths - 1` (its last emitted token is not fed); a row with budget
    0 for positions `< context_lengths`. Slots past that hold garbage that causal masking on
    positions hides and later writes overwrite.

  Raises:
    TypeError / ValueError: naming the argument, for bad shapes or dtypes, ranges, token ids
      outside the vocabulary, a block or budget that does not fit in the cache, and the
      sampling settings `generate` checks.
  """
  if not hasattr(block, "dtype"):
    block = np.asarray(block)
  if not jnp.issubdtype(block.dtype, jnp.integer):
    raise TypeError(f"block must be an integer array [B, W] of token ids, got dtype {block.dtype}")
  if block.ndim != 2 or min(block.shape) < 1:
    raise ValueError(f"block must be [B, W] with B, W >= 1, got shape {tuple(block.shape)}")
  b, w = block.shape
  starts = _as_row_array(block_starts, b, "block_starts", "the position of block[:, 0]")
  ends = _as_row_array(context_lengths, b, "context_lengths", "each row's context length")
  fed = ends - starts
  if starts.min() < 0 or fed.min() < 1 or fed.max() > w:
    raise ValueError(
      f"context_lengths - block_starts must be in [1, W] = [1, {w}] and block_starts >= 0, "
      f"got block_starts in [{starts.min()}, {starts.max()}] and context_lengths - "
      f"block_starts in [{fed.min()}, {fed.max()}]"
    )
  real = np.arange(w)[None, :] < fed[:, None]
  if is_concrete(block):
    validate_token_ids(
      np.where(real, np.asarray(block), 0), model.config.vocab_size, argument="block"
    )
  max_new_tokens = as_int(max_new_tokens, "max_new_tokens", "an int >= 1")
  if max_new_tokens < 1:
    raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
  if budgets is None:
    budgets = np.full((b,), max_new_tokens, np.int64)
  budgets = _as_row_array(budgets, b, "budgets", "new tokens per row")
  if budgets.min() < 0 or budgets.max() > max_new_tokens:
    raise ValueError(
      f"budgets must be in [0, max_new_tokens] = [0, {max_new_tokens}], got values in "
      f"[{budgets.min()}, {budgets.max()}]"
    )
  slots = _cache_slots(cache)
  if slots is not None:
    if starts.max() + w > slots:
      raise ValueError(
        f"the block does not fit in the cache: max(block_starts) + W = {starts.max()} + {w} > "
        f"{slots} cache slots"
      )
    if (ends + budgets).max() > slots:
      raise ValueError(
        f"context plus budget does not fit in the cache: max(context_lengths + budgets) = "
        f"{(ends + budgets).max()} > {slots} cache slots"
      )
  temperature, top_k, top_p, key = check_sampling(temperature, top_k, top_p, key)
  settings = GenerateSettings(
    max_new_tokens=max_new_tokens,
    cache_size=slots or 0,
    temperature=temperature,
    top_k=top_k,
    top_p=top_p,
    eos_ids=normalize_eos(eos_id, model.config.vocab_size),
    pad_id=as_int(pad_id, "pad_id", "an int"),
    prefill_chunk=check_prefill_chunk(prefill_chunk),
  )
  graphdef, state = model_split if model_split is not None else nnx.split(model)
  prefill, decode = _compiled_fns(graphdef, settings)
  ends32 = jnp.asarray(ends, jnp.int32)
  cache, carry = prefill(
    state,
    cache,
    jnp.asarray(block, jnp.int32),
    ends32,
    key,
    jnp.asarray(starts, jnp.int32),
    jnp.asarray(budgets, jnp.int32),
  )
  cache, carry = decode(state, cache, carry, ends32, key)
  out = GenerateOutput(
    tokens=carry["tokens"],
    lengths=carry["lengths"],
    logprobs=carry["logprobs"],
    sampling_logprobs=carry["sampling_logprobs"],
    done=carry["done"],
  )
  return out, cache
