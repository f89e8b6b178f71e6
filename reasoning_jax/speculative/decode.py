"""Batched token-level speculative decoding with static shapes: `speculative_generate`.

Leviathan et al. (arXiv:2211.17192) / Chen et al. (arXiv:2302.01318), spec `inference.md`
section 1. A draft model proposes `num_draft` tokens per row, the target scores them in ONE
forward pass on its KV cache, `accept_drafts` keeps a prefix and draws one more token, and
every row advances by its own count (1 to num_draft + 1 tokens). The output is distributed
exactly as `generate(target, ...)`'s (greedy: identical tokens), and it is the same
`GenerateOutput`, with the target's raw log-probs of every emitted token, so RL rollouts can
use it in place of `generate` and importance ratios stay correct.

Layout, per row (slot index == position, as in `generate`): `gen` tokens have been emitted;
the newest one, `last`, sits at position `len - 1` with `len = prompt_length + gen`, and its
key/value are not yet in either cache. One iteration:

  1. draft: feeds `[prev, last]` at positions `[len - 2, len - 1]` (re-writing `prev`'s slot
     is idempotent; it makes the draft cache whole again after a step that accepted every
     draft, whose last draft the draft model never consumed), then its own drafts one at a
     time, sampling `d_1 .. d_k` from its warped distributions `q_i`;
  2. verify: the target runs `[last, d_1 .. d_K]` at positions `len - 1 .. len - 1 + K` (K the
     static maximum), giving `p_1 .. p_{K+1}`;
  3. accept (`accept_drafts`); the emitted block `d_1 .. d_n, x` is cut at the first EOS and
     at the budget, written at the row's offset, and the row's length moves on.

Rejected drafts' cache slots are not copied back: they lie beyond the row's new length, are
invisible to causal attention on positions and are overwritten by the next iteration. This
is why both models must keep position-indexed caches (`KVCache.rollback_by_length`):
recurrent mixers (GLA, OVQ, convolutions) fold every token into a state that cannot be
rolled back, and are rejected with a ValueError naming the layer.

`num_draft` is a traced argument below the static `max_draft`: one compiled program serves
every `k <= max_draft` (the verify block always has `max_draft + 1` positions; drafts past
`k` are never accepted). Compiled functions are cached per (models, settings, max_draft).
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

from reasoning_jax.generate.generate import (
  GenerateOutput,
  GenerateSettings,
  check_generate_args,
)
from reasoning_jax.generate.sampling import (
  categorical_sample,
  first_argmax,
  truncated_log_probs,
)
from reasoning_jax.speculative.acceptance import accept_drafts

# Number of times each jitted body was traced (tests check that k <= max_draft reuses one).
TRACE_COUNTS: collections.Counter = collections.Counter()


def check_pair(target: nnx.Module, draft: nnx.Module) -> None:
  """Raises ValueError unless `draft` can draft for `target` (vocabulary, caches)."""
  for name, model in (("target", target), ("draft", draft)):
    for attr in ("init_cache", "forward", "unembed", "config"):
      if not hasattr(model, attr):
        raise TypeError(f"{name} must be a zoo Transformer (missing {attr!r})")
  tv, dv = target.config.vocab_size, draft.config.vocab_size
  if tv != dv:
    raise ValueError(
      f"draft and target must share one vocabulary: draft.config.vocab_size={dv} != "
      f"target.config.vocab_size={tv} (speculative sampling compares their distributions "
      "token by token)"
    )
  for name, model in (("target", target), ("draft", draft)):
    check_rollback(model, name, "speculative decoding")


def check_rollback(model: nnx.Module, name: str, method: str) -> None:
  """Raises ValueError, naming `name`'s layer, unless every layer's cache rolls back by length."""
  found = _recurrent_layer(model)
  if found is not None:
    i, kind = found
    raise ValueError(
      f"{name} layer {i} (mixer {model.config.layer_mixer(i)!r}) keeps a {kind}, a recurrent "
      f"state that cannot be rolled back to a row's accepted length; {method} needs "
      "position-indexed caches in every layer (attention, sliding_attention, momentum)"
    )


# config -> the first layer whose cache cannot roll back (index, cache type name), or None.
# The cache layout is a function of the (frozen, hashable) config alone; checking it traces
# `init_cache`, about a millisecond a call, which a batch-1 decode loop should not pay each time.
_RECURRENT_LAYER: dict[Any, tuple[int, str] | None] = {}


def _recurrent_layer(model: nnx.Module) -> tuple[int, str] | None:
  config = model.config
  try:
    return _RECURRENT_LAYER[config]
  except KeyError:
    pass
  except TypeError:  # An unhashable config: check every time.
    config = None
  cache = jax.eval_shape(lambda: model.init_cache(1, 2))
  found = None
  for i, entry in enumerate(cache):
    if not getattr(type(entry), "rollback_by_length", False):
      found = (i, type(entry).__name__)
      break
  if config is not None:
    _RECURRENT_LAYER[config] = found
  return found


def check_tokenizers(target_tokenizer: Any, draft_tokenizer: Any) -> None:
  """Raises ValueError when two tokenizers would map text to different ids."""
  sizes = [getattr(t, "vocab_size", None) for t in (target_tokenizer, draft_tokenizer)]
  if sizes[0] != sizes[1]:
    raise ValueError(
      f"draft_tokenizer has vocab_size {sizes[1]}, target_tokenizer {sizes[0]}: "
      "speculative decoding needs one tokenizer for both models"
    )
  probe = "Speculative decoding: 12 + 30 = 42.\n"
  a, b = target_tokenizer.encode(probe), draft_tokenizer.encode(probe)
  if list(a) != list(b):
    raise ValueError(
      "draft_tokenizer and target_tokenizer encode the same text differently "
      f"({list(b)[:8]}... vs {list(a)[:8]}...): speculative decoding needs one tokenizer"
    )


@dataclasses.dataclass(frozen=True)
class _Spec:
  """Static settings of one compiled speculative decoder."""

  generate: GenerateSettings
  max_draft: int


def _is_eos(tokens: jax.Array, eos_ids: tuple[int, ...]) -> jax.Array:
  if not eos_ids:
    return jnp.zeros(tokens.shape, dtype=bool)
  return jnp.any(tokens[..., None] == jnp.asarray(eos_ids, tokens.dtype), axis=-1)


def _write_rows(buffer: jax.Array, block: jax.Array, starts: jax.Array) -> jax.Array:
  """`buffer[b, starts[b] : starts[b] + T] = block[b]` (the buffer has room: no clamping)."""
  return jax.vmap(lambda buf, upd, s: jax.lax.dynamic_update_slice(buf, upd, (s,)))(
    buffer, block.astype(buffer.dtype), starts
  )


@functools.lru_cache(maxsize=32)
def _compiled_fns(target_def: Any, draft_def: Any, spec: _Spec):
  """Jitted `(prefill, decode)` for one (target, draft) structure and static settings."""
  s = spec.generate
  n_max, kk = s.max_new_tokens, spec.max_draft
  greedy = s.temperature == 0.0
  warp = functools.partial(
    truncated_log_probs, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p
  )

  def draw(key, log_probs):
    return first_argmax(log_probs) if greedy else categorical_sample(key, log_probs)

  def prefill(t_state, d_state, t_cache, d_cache, prompts, prompt_lengths, key, rows):
    TRACE_COUNTS["prefill"] += 1
    target, draft = nnx.merge(target_def, t_state), nnx.merge(draft_def, d_state)
    b, p = prompts.shape
    positions = jnp.broadcast_to(jnp.arange(p, dtype=jnp.int32), (b, p))
    valid = positions < prompt_lengths[:, None]
    prompts = jnp.where(valid, prompts, 0)
    hidden, t_cache = target.forward(prompts, positions=positions, cache=t_cache)
    _, d_cache = draft.forward(prompts, positions=positions, cache=d_cache)
    last_hidden = jnp.take_along_axis(hidden, (prompt_lengths - 1)[:, None, None], axis=1)[:, 0]
    logits = target.unembed(last_hidden)
    log_p = warp(logits)
    token = draw(jax.random.fold_in(key, 0), log_p)
    raw = jax.nn.log_softmax(logits, axis=-1)
    pick = lambda lp: jnp.take_along_axis(lp, token[:, None], axis=-1)[:, 0]
    width = n_max + kk + 1  # Room for a whole block written at any offset < n_max.
    carry = dict(
      it=jnp.asarray(0, jnp.int32),
      prev=jnp.take_along_axis(prompts, (prompt_lengths - 1)[:, None], axis=1)[:, 0],
      last=token,
      gen=jnp.ones((b,), jnp.int32),
      # Rows from `rows` on are padding (e.g. to split the batch over a mesh): done at once,
      # so they neither hold up the loop nor count in the acceptance statistics.
      done=_is_eos(token, s.eos_ids) | (n_max <= 1) | (jnp.arange(b) >= rows),
      tokens=jnp.full((b, width), s.pad_id, jnp.int32).at[:, 0].set(token),
      logprobs=jnp.zeros((b, width), jnp.float32).at[:, 0].set(pick(raw)),
      sampling_logprobs=jnp.zeros((b, width), jnp.float32)
      .at[:, 0]
      .set(0.0 if greedy else pick(log_p)),
      accepted_hist=jnp.zeros((kk + 1,), jnp.int32),
      accept_prob_sum=jnp.zeros((kk,), jnp.float32),
      accept_prob_count=jnp.zeros((kk,), jnp.int32),
      row_steps=jnp.asarray(0, jnp.int32),
    )
    return t_cache, d_cache, carry

  def decode(t_state, d_state, t_cache, d_cache, carry, prompt_lengths, num_draft, key):
    TRACE_COUNTS["decode"] += 1
    target, draft = nnx.merge(target_def, t_state), nnx.merge(draft_def, d_state)
    b = prompt_lengths.shape[0]
    vocab = target.config.vocab_size
    offsets = jnp.arange(kk + 1, dtype=jnp.int32)

    def propose(d_cache, c, key):
      """Drafts `d_1 .. d_k` and their warped log `q_i`; unproposed slots stay 0."""
      length = prompt_lengths + c["gen"]
      pair = jnp.stack([c["prev"], c["last"]], axis=1)
      positions = jnp.stack([length - 2, length - 1], axis=1)
      hidden, d_cache = draft.forward(pair, positions=positions, cache=d_cache)
      log_q = warp(draft.unembed(hidden[:, -1]))
      token = draw(jax.random.fold_in(key, 0), log_q)
      drafts = jnp.zeros((b, kk), jnp.int32).at[:, 0].set(token)
      log_qs = jnp.zeros((b, kk, vocab), jnp.float32).at[:, 0].set(log_q)

      def body(i, loop):
        d_cache, drafts, log_qs = loop
        prev_token = jax.lax.dynamic_index_in_dim(drafts, i - 1, axis=1, keepdims=False)
        hidden, d_cache = draft.forward(
          prev_token[:, None], positions=(length - 1 + i)[:, None], cache=d_cache
        )
        log_q = warp(draft.unembed(hidden[:, 0]))
        token = draw(jax.random.fold_in(key, i), log_q)
        drafts = jax.lax.dynamic_update_index_in_dim(drafts, token, i, axis=1)
        log_qs = jax.lax.dynamic_update_index_in_dim(log_qs, log_q, i, axis=1)
        return d_cache, drafts, log_qs

      d_cache, drafts, log_qs = jax.lax.fori_loop(1, num_draft, body, (d_cache, drafts, log_qs))
      return d_cache, drafts, log_qs

    def cond(loop):
      return ~jnp.all(loop[2]["done"])

    def body(loop):
      t_cache, d_cache, c = loop
      key_it = jax.random.fold_in(key, c["it"] + 1)
      key_draft, key_accept = jax.random.split(key_it)
      d_cache, drafts, log_qs = propose(d_cache, c, key_draft)
      length = prompt_lengths + c["gen"]
      block = jnp.concatenate([c["last"][:, None], drafts], axis=1)  # [B, K + 1]
      positions = (length - 1)[:, None] + offsets
      hidden, t_cache = target.forward(block, positions=positions, cache=t_cache)
      logits = target.unembed(hidden)  # [B, K + 1, V] float32
      log_p = warp(logits)
      acc = accept_drafts(key_accept, drafts, log_qs, log_p, num_draft)
      n = acc.num_accepted
      # Emitted block: d_1 .. d_n then x at index n (entries past n are never kept).
      drafts_ext = jnp.concatenate([drafts, jnp.zeros((b, 1), jnp.int32)], axis=1)
      emitted = jnp.where(offsets < n[:, None], drafts_ext, acc.next_token[:, None])
      eos = _is_eos(emitted, s.eos_ids) & (offsets <= n[:, None])
      first_eos = jnp.min(jnp.where(eos, offsets, kk + 1), axis=1)
      active = ~c["done"]
      count = jnp.minimum(jnp.minimum(n, first_eos) + 1, n_max - c["gen"])
      count = jnp.where(active, count, 0)
      keep = offsets < count[:, None]
      raw = jax.nn.log_softmax(logits, axis=-1)
      pick = lambda lp: jnp.take_along_axis(lp, emitted[..., None], axis=-1)[..., 0]
      sampled_lp = jnp.zeros_like(n, jnp.float32)[:, None] if greedy else pick(log_p)

      def put(buffer, values, fill):
        # Entries past `count` are fill; a later block or the final mask covers them.
        return _write_rows(buffer, jnp.where(keep, values, fill), c["gen"])

      gen = c["gen"] + count
      stopped = jnp.any(eos & keep, axis=1) | (gen >= n_max)
      new_prev = jnp.where(
        n > 0, jnp.take_along_axis(drafts_ext, (n - 1)[:, None], 1)[:, 0], c["last"]
      )
      proposed = (jnp.arange(kk) < num_draft)[None, :] & active[:, None]
      c = dict(
        it=c["it"] + 1,
        prev=jnp.where(active, new_prev, c["prev"]),
        last=jnp.where(active, acc.next_token, c["last"]),
        gen=gen,
        done=c["done"] | stopped,
        tokens=put(c["tokens"], emitted, s.pad_id),
        logprobs=put(c["logprobs"], pick(raw), 0.0),
        sampling_logprobs=put(
          c["sampling_logprobs"], jnp.broadcast_to(sampled_lp, emitted.shape), 0.0
        ),
        accepted_hist=c["accepted_hist"]
        + jnp.sum(jax.nn.one_hot(n, kk + 1, dtype=jnp.int32) * active[:, None], axis=0),
        accept_prob_sum=c["accept_prob_sum"]
        + jnp.sum(jnp.where(proposed, acc.accept_prob, 0.0), axis=0),
        accept_prob_count=c["accept_prob_count"] + jnp.sum(proposed, axis=0, dtype=jnp.int32),
        row_steps=c["row_steps"] + jnp.sum(active, dtype=jnp.int32),
      )
      return t_cache, d_cache, c

    t_cache, d_cache, carry = jax.lax.while_loop(cond, body, (t_cache, d_cache, carry))
    width = carry["tokens"].shape[1]
    real = jnp.arange(width)[None, :] < carry["gen"][:, None]
    tokens = jnp.where(real, carry["tokens"], s.pad_id)[:, :n_max]
    logprobs = jnp.where(real, carry["logprobs"], 0.0)[:, :n_max]
    sampling = jnp.where(real, carry["sampling_logprobs"], 0.0)[:, :n_max]
    # Returning the caches lets XLA alias them to the donated inputs (updated in place).
    return (t_cache, d_cache), carry, tokens, logprobs, sampling

  return (
    jax.jit(prefill, donate_argnums=(2, 3)),
    jax.jit(decode, donate_argnums=(2, 3, 4)),
  )


def _as_num_draft(num_draft: Any, max_draft: Any) -> tuple[int, int]:
  if isinstance(num_draft, bool) or not isinstance(num_draft, (int, np.integer)):
    raise TypeError(f"num_draft must be an int >= 1, got {type(num_draft).__name__}")
  num_draft = int(num_draft)
  if num_draft < 1:
    raise ValueError(f"num_draft must be >= 1 (drafts proposed per target call), got {num_draft}")
  if max_draft is None:
    max_draft = num_draft
  if isinstance(max_draft, bool) or not isinstance(max_draft, (int, np.integer)):
    raise TypeError(f"max_draft must be None or an int, got {type(max_draft).__name__}")
  max_draft = int(max_draft)
  if not 1 <= num_draft <= max_draft:
    raise ValueError(
      f"num_draft must be in [1, max_draft] = [1, {max_draft}] (max_draft fixes the compiled "
      f"verify block), got {num_draft}"
    )
  return num_draft, max_draft


def speculative_generate(
  target: nnx.Module,
  draft: nnx.Module,
  prompts: Any,
  prompt_lengths: Any,
  *,
  max_new_tokens: int,
  num_draft: int = 4,
  max_draft: int | None = None,
  temperature: float = 1.0,
  top_k: int | None = None,
  top_p: float = 1.0,
  eos_id: int | tuple[int, ...] | None = None,
  key: jax.Array | None = None,
  cache_size: int | None = None,
  pad_id: int = 0,
  stats: dict[str, Any] | None = None,
  rows: int | None = None,
) -> GenerateOutput:
  """Samples like `generate(target, ...)`, with `draft` proposing `num_draft` tokens a step.

  Args:
    target: the model whose distribution the output follows (a zoo `Transformer`).
    draft: a cheaper zoo `Transformer` with the same vocabulary (and tokenizer).
    prompts: `[B, P]` right-padded token ids, as in `generate`; so are `prompt_lengths`,
      `max_new_tokens`, `temperature`, `top_k`, `top_p`, `eos_id`, `key` and `pad_id`
      (temperature / top-k / top-p warp both models alike).
    num_draft: drafts per target call, k >= 1 (spec gamma).
    max_draft: the compiled verify block's draft capacity (default `num_draft`); any
      `num_draft <= max_draft` reuses the same compiled program.
    cache_size: slots of both KV caches; must be `>= P + max_new_tokens + max_draft`
      (the default): a verify block may write `max_draft` slots past the budget's end.
    stats: optional dict; receives `target_calls` and `draft_calls` (batched forward
      passes, prefill included), `emitted` (tokens over all rows), `row_target_calls`
      (target passes summed over the rows still decoding, prefill included),
      `tokens_per_target_call` (`emitted / row_target_calls`), `acceptance_histogram`
      (`[max_draft + 1]`: how many row-steps accepted 0..max_draft drafts),
      `acceptance_rate_by_position` (`[max_draft]` mean `min(1, p/q)` per draft index),
      `acceptance_rate` (over all proposed drafts) and `prefill_s` / `decode_s`.
    rows: only the first `rows` rows are real (default: all B); the rest are padding, e.g.
      copies that make B a multiple of a mesh's batch shards when the prompts arrive split
      over it. Padding rows stop after their first token and count in no statistic (their
      outputs are the caller's to drop). A traced input: any `rows` reuses the program.

  Returns:
    A `GenerateOutput` (tokens, lengths, raw target logprobs, sampling logprobs, done).

  Raises:
    TypeError / ValueError: as `generate`, plus a draft whose vocabulary differs from the
      target's, a model with a recurrent layer, or `num_draft` outside `[1, max_draft]`.
  """
  check_pair(target, draft)
  num_draft, max_draft = _as_num_draft(num_draft, max_draft)
  prompts, prompt_lengths, settings, key = check_generate_args(
    target,
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
    extra_slots=max_draft,
    extra_reason=f"max_draft (a verify block of {max_draft} drafts may pass the budget's end)",
  )
  if key is None:  # Greedy: the acceptance test is deterministic; any key will do.
    key = jax.random.key(0)
  b = prompts.shape[0]
  if rows is None:
    rows = b
  if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or not 1 <= rows <= b:
    raise ValueError(f"rows must be an int in [1, B] = [1, {b}] (the real rows), got {rows!r}")
  rows = int(rows)
  t_def, t_state = nnx.split(target)
  d_def, d_state = nnx.split(draft)
  prefill, decode = _compiled_fns(t_def, d_def, _Spec(settings, max_draft))
  start = time.perf_counter()
  t_cache = target.init_cache(b, settings.cache_size)
  d_cache = draft.init_cache(b, settings.cache_size)
  t_cache, d_cache, carry = prefill(
    t_state, d_state, t_cache, d_cache, prompts, prompt_lengths, key, jnp.int32(rows)
  )
  if stats is not None:
    jax.block_until_ready(carry)
    middle = time.perf_counter()
  _, carry, tokens, logprobs, sampling = decode(
    t_state, d_state, t_cache, d_cache, carry, prompt_lengths, jnp.int32(num_draft), key
  )
  lengths = carry["gen"]
  # Stopped by an EOS (not by the budget): the row's last emitted token is one.
  last = jnp.take_along_axis(tokens, (lengths - 1)[:, None], axis=1)[:, 0]
  done = _is_eos(last, settings.eos_ids)
  if stats is not None:
    jax.block_until_ready(tokens)
    stats["prefill_s"] = middle - start
    stats["decode_s"] = time.perf_counter() - middle
    iterations = int(carry["it"])
    hist = np.asarray(carry["accepted_hist"])
    prob_sum = np.asarray(carry["accept_prob_sum"])
    prob_count = np.asarray(carry["accept_prob_count"])
    emitted = int(np.asarray(lengths)[:rows].sum())
    row_calls = int(carry["row_steps"]) + rows  # Each row's verify passes plus its prefill.
    stats.update(
      target_calls=iterations + 1,
      draft_calls=iterations * num_draft + 1,
      emitted=emitted,
      row_target_calls=row_calls,
      tokens_per_target_call=emitted / row_calls,
      acceptance_histogram=hist,
      acceptance_rate_by_position=np.where(
        prob_count > 0, prob_sum / np.maximum(prob_count, 1), np.nan
      ),
      acceptance_rate=float(prob_sum.sum() / max(int(prob_count.sum()), 1)),
    )
  return GenerateOutput(
    tokens=tokens, lengths=lengths, logprobs=logprobs, sampling_logprobs=sampling, done=done
  )
