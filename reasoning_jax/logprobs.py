"""Per-token log-probabilities and entropies without materialising `[B, T, V]` logits.

Policy-gradient and distillation losses need `log p(token_t | tokens_<t)` (and
often the entropy of the predictive distribution) for every position of a batch
of sequences. The obvious `log_softmax(model(tokens))` holds the full logits
`[B, T, V]` in float32, and its gradient holds at least one more array of that
size: for `B=8, T=8192, V=152k` that is ~40 GB per copy, far more than the model.

`chunked_token_logprobs` instead projects the hidden states onto the vocabulary
`chunk_size` positions at a time inside a `jax.lax.scan`, with the per-chunk
body under `jax.checkpoint`. Each step keeps only the `[B, chunk]` outputs, and
the backward pass recomputes one chunk's logits at a time, so peak memory for
the head is ~`B * chunk_size * V` floats instead of `B * T * V` (plus the
`[H, V]` kernel gradient, which both variants need). The price is one extra
`[B, T, H] x [H, V]` matmul in the backward pass.

Convention (`sequence_logprobs`):

* `logp[:, t] = log p(tokens[:, t] | tokens[:, :t])` for `t >= 1`, computed from
  the hidden state at `t - 1`; `logp[:, 0] = 0` (nothing predicts the first
  token). `entropy[:, t]` is the entropy of that same distribution (0 at t = 0).
  With `segment_ids` (packed sequences) the first token of every segment is
  likewise 0, since no hidden state of its own segment predicts it.
* Both outputs are multiplied by `mask` and are exactly 0 where `mask == 0`; a
  mask normally selects the completion tokens to score.
* Attention is causal only (no padding mask), so right padding never changes the
  values at valid positions. Left-padded batches must pass `segment_ids` (or
  `positions`) that isolate the padding.
* `temperature` divides the logits before the softmax: the outputs describe the
  distribution a sampler with that temperature draws from.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from reasoning_jax.models.transformer import is_concrete, validate_token_ids

__all__ = ["chunked_token_logprobs", "sequence_logprobs"]


def _validate_chunk_size(chunk_size: Any) -> None:
  if chunk_size is None:
    return
  if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size <= 0:
    raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")


def _validate_temperature(temperature: Any) -> None:
  if isinstance(temperature, bool):
    raise TypeError(f"temperature must be a positive float, got {temperature!r}")
  if isinstance(temperature, (int, float)):
    if not (math.isfinite(temperature) and temperature > 0):
      raise ValueError(f"temperature must be a positive finite float, got {temperature!r}")
    return
  if not hasattr(temperature, "shape") or tuple(temperature.shape) != ():
    raise ValueError(
      f"temperature must be a positive float or a scalar array, got "
      f"{getattr(temperature, 'shape', type(temperature).__name__)}"
    )
  if is_concrete(temperature) and not float(temperature) > 0:
    raise ValueError(f"temperature must be > 0, got {float(temperature)}")


def _head_stats(
  hidden: jax.Array, kernel: jax.Array, targets: jax.Array, temperature: Any
) -> tuple[jax.Array, jax.Array]:
  """Target log-prob and entropy `[B, C]` of `softmax(hidden @ kernel / temperature)`."""
  logits = jnp.matmul(hidden, kernel, preferred_element_type=jnp.float32)
  if not (isinstance(temperature, (int, float)) and temperature == 1):
    logits = logits / jnp.asarray(temperature, jnp.float32)
  lse = jax.nn.logsumexp(logits, axis=-1)
  target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  # -sum(p * log p) with log p = logits - lse: every term is >= 0, so no cancellation.
  neg_logprobs = lse[..., None] - logits
  entropy = jnp.sum(jnp.exp(-neg_logprobs) * neg_logprobs, axis=-1)
  return target_logit - lse, entropy


def chunked_token_logprobs(
  hidden: jax.Array,
  unembed_kernel: jax.Array,
  targets: jax.Array,
  *,
  chunk_size: int | None = None,
  temperature: float | jax.Array = 1.0,
) -> tuple[jax.Array, jax.Array]:
  """Log-probability of `targets` and entropy under `softmax(hidden @ W / temperature)`.

  A pure function of its inputs (differentiable in `hidden`, `unembed_kernel`
  and an array `temperature`). With `chunk_size`, the vocabulary projection runs
  `chunk_size` positions at a time in a `lax.scan` with a rematerialised body,
  so neither the forward nor the backward pass holds the `[B, T, V]` logits. A
  length not divisible by `chunk_size` is zero-padded; padded positions are
  dropped from the outputs and receive no gradient.

  Args:
    hidden: `[B, T, H]` floating hidden states (e.g. bfloat16).
    unembed_kernel: `[H, V]` output projection; cast to `hidden.dtype` like
      `Transformer.unembed`, and the logits accumulate in float32.
    targets: `[B, T]` integer ids in `[0, V)`.
    chunk_size: positions per chunk (a positive int), or None for one unchunked
      projection.
    temperature: positive scalar dividing the logits.

  Returns:
    `(logp, entropy)`, both `[B, T]` float32: `logp[b, t] =
    log_softmax(hidden[b, t] @ W / temperature)[targets[b, t]]` and `entropy`
    the entropy (in nats) of that distribution.

  Raises:
    TypeError / ValueError: naming the argument whose dtype, shape or value is
      wrong.
  """
  _validate_chunk_size(chunk_size)
  _validate_temperature(temperature)
  if not hasattr(hidden, "dtype") or not jnp.issubdtype(hidden.dtype, jnp.floating):
    raise TypeError(
      f"hidden must be a floating array [B, T, H], got dtype "
      f"{getattr(hidden, 'dtype', type(hidden).__name__)}"
    )
  if hidden.ndim != 3:
    raise ValueError(f"hidden must be [B, T, H], got shape {tuple(hidden.shape)}")
  b, t, h = hidden.shape
  if not hasattr(unembed_kernel, "dtype") or not jnp.issubdtype(unembed_kernel.dtype, jnp.floating):
    raise TypeError(
      f"unembed_kernel must be a floating array [H, V], got dtype "
      f"{getattr(unembed_kernel, 'dtype', type(unembed_kernel).__name__)}"
    )
  if unembed_kernel.ndim != 2 or unembed_kernel.shape[0] != h:
    raise ValueError(
      f"unembed_kernel must be [H, V] with H = {h} (from hidden), got shape "
      f"{tuple(unembed_kernel.shape)}"
    )
  vocab_size = unembed_kernel.shape[1]
  validate_token_ids(targets, vocab_size, argument="targets")
  if tuple(targets.shape) != (b, t):
    raise ValueError(
      f"targets must be [B, T] = {(b, t)} (from hidden), got shape {tuple(targets.shape)}"
    )

  kernel = unembed_kernel.astype(hidden.dtype)
  targets = targets.astype(jnp.int32)
  if chunk_size is None or t == 0:
    return _head_stats(hidden, kernel, targets, temperature)

  chunk = min(chunk_size, t)
  num_chunks = -(-t // chunk)
  pad = num_chunks * chunk - t
  if pad:
    hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
    targets = jnp.pad(targets, ((0, 0), (0, pad)))
  # [num_chunks, B, chunk, ...]: scan over the leading axis.
  hidden_chunks = hidden.reshape(b, num_chunks, chunk, h).swapaxes(0, 1)
  target_chunks = targets.reshape(b, num_chunks, chunk).swapaxes(0, 1)

  body = jax.checkpoint(functools.partial(_head_stats, temperature=temperature), prevent_cse=False)

  def step(carry, xs):
    hidden_chunk, target_chunk = xs
    return carry, body(hidden_chunk, kernel, target_chunk)

  _, (logp, entropy) = jax.lax.scan(step, None, (hidden_chunks, target_chunks))

  def unchunk(x):
    return x.swapaxes(0, 1).reshape(b, num_chunks * chunk)[:, :t]

  return unchunk(logp), unchunk(entropy)


def sequence_logprobs(
  model: Any,
  tokens: jax.Array,
  mask: jax.Array,
  *,
  chunk_size: int | None = None,
  temperature: float | jax.Array = 1.0,
  positions: jax.Array | None = None,
  segment_ids: jax.Array | None = None,
  window: int | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Next-token log-probabilities and entropies of `tokens` under a causal LM.

  Args:
    model: a `Transformer` (anything with `forward(ids, positions=...,
      segment_ids=...) -> (hidden, _)`, `unembed_kernel()` and `config.vocab_size`).
    tokens: `[B, T]` integer token ids.
    mask: `[B, T]` bool or numeric weights; outputs are multiplied by it and are
      exactly 0 where it is 0.
    chunk_size: positions per vocabulary-projection chunk (positive int), or
      None for unchunked. See `chunked_token_logprobs`.
    temperature: positive scalar dividing the logits.
    positions: optional `[B, T]` int positions passed to the model.
    segment_ids: optional `[B, T]` int segment ids (packed sequences); the first
      token of each segment gets 0 like position 0.
    window: None, or a static int W promising that each row's nonzero `mask` entries lie
      within W consecutive positions (an RL batch: the completion of row b occupies
      `[prompt_length_b, prompt_length_b + max_new_tokens)`). Only those W positions per
      row are projected onto the vocabulary: the same values, and the head (usually the
      largest matmul and the only `[., V]` arrays) does `W / T` of the work. Masked
      positions outside the window come out NaN, so a wrong promise fails loudly (a NaN
      loss) instead of silently dropping tokens.

  Returns:
    `(logp, entropy)`, both `[B, T]` float32: `logp[:, t] = log p(tokens[:, t] |
    tokens[:, :t])` for `t >= 1` (from the hidden state at `t - 1`), 0 at
    `t = 0`; `entropy[:, t]` the entropy of the same distribution. Both times
    `mask`.

  Raises:
    TypeError / ValueError: naming the argument whose dtype, shape or value is
      wrong.
  """
  _validate_chunk_size(chunk_size)
  _validate_temperature(temperature)
  validate_token_ids(tokens, model.config.vocab_size, argument="tokens")
  b, t = tokens.shape
  if not hasattr(mask, "dtype") or not (
    jnp.issubdtype(mask.dtype, jnp.bool_)
    or jnp.issubdtype(mask.dtype, jnp.integer)
    or jnp.issubdtype(mask.dtype, jnp.floating)
  ):
    raise TypeError(
      f"mask must be a bool, int or float array [B, T], got dtype "
      f"{getattr(mask, 'dtype', type(mask).__name__)}"
    )
  if tuple(mask.shape) != (b, t):
    raise ValueError(f"mask must be [B, T] = {(b, t)} (from tokens), got shape {tuple(mask.shape)}")
  for name, value in (("positions", positions), ("segment_ids", segment_ids)):
    if value is None:
      continue
    if not hasattr(value, "dtype") or not jnp.issubdtype(value.dtype, jnp.integer):
      raise TypeError(
        f"{name} must be an integer array [B, T], got dtype "
        f"{getattr(value, 'dtype', type(value).__name__)}"
      )
    if tuple(value.shape) != (b, t):
      raise ValueError(
        f"{name} must be [B, T] = {(b, t)} (from tokens), got shape {tuple(value.shape)}"
      )

  if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window < 1):
    raise ValueError(f"window must be None or a positive int, got {window!r}")

  hidden, _ = model.forward(tokens, positions=positions, segment_ids=segment_ids)
  if window is not None and window < t - 1:
    logp, entropy, in_window = _windowed_head(
      hidden, model.unembed_kernel(), tokens, mask, window, chunk_size, temperature
    )
  else:
    logp, entropy = _shifted_head(
      hidden, model.unembed_kernel(), tokens, chunk_size=chunk_size, temperature=temperature
    )
    in_window = None

  weights = mask.astype(jnp.float32)
  keep = mask != 0
  if segment_ids is not None:
    same_segment = jnp.concatenate(
      [jnp.zeros((b, 1), bool), segment_ids[:, 1:] == segment_ids[:, :-1]], axis=1
    )
    keep = keep & same_segment
  logp, entropy = jnp.where(keep, logp * weights, 0.0), jnp.where(keep, entropy * weights, 0.0)
  if in_window is not None:
    outside = keep & ~in_window
    logp, entropy = jnp.where(outside, jnp.nan, logp), jnp.where(outside, jnp.nan, entropy)
  return logp, entropy


def _shifted_head(hidden, kernel, tokens, *, chunk_size, temperature):
  """`(logp, entropy)` `[B, T]` for every position (0 at t = 0), hidden `t - 1` -> token t."""
  b = tokens.shape[0]
  # Position t predicts token t + 1. The last position's target is a dummy (its
  # outputs are discarded), which keeps the length T so chunking stays aligned.
  targets = jnp.concatenate([tokens[:, 1:], tokens[:, :1]], axis=1)
  logp, entropy = chunked_token_logprobs(
    hidden, kernel, targets, chunk_size=chunk_size, temperature=temperature
  )
  zeros = jnp.zeros((b, 1), jnp.float32)
  logp = jnp.concatenate([zeros, logp[:, :-1]], axis=1)
  entropy = jnp.concatenate([zeros, entropy[:, :-1]], axis=1)
  return logp, entropy


def _windowed_head(hidden, kernel, tokens, mask, window, chunk_size, temperature):
  """`(logp, entropy, in_window)` `[B, T]` computed only on W positions per row.

  Row b's window is target positions `[s_b, s_b + W)` with `s_b` its first nonzero mask
  entry, clamped to `[1, T - W]` so the window stays inside the row (position 0 is never
  predicted). Hidden states `s_b - 1 ...` are gathered, projected, and the results scattered
  back; everything outside the window is 0 (and flagged by `in_window`).
  """
  b, t = tokens.shape
  first = jnp.argmax(mask != 0, axis=1).astype(jnp.int32)  # 0 when the row has no mask.
  start = jnp.clip(first, 1, t - window)
  index = start[:, None] + jnp.arange(window, dtype=jnp.int32)[None, :]  # [B, W] in [1, T).
  hidden_w = jnp.take_along_axis(hidden, (index - 1)[:, :, None], axis=1)
  targets_w = jnp.take_along_axis(tokens, index, axis=1)
  logp_w, entropy_w = chunked_token_logprobs(
    hidden_w, kernel, targets_w, chunk_size=chunk_size, temperature=temperature
  )
  rows = jnp.arange(b)[:, None]
  scatter = lambda values: jnp.zeros((b, t), values.dtype).at[rows, index].set(values)  # noqa: E731
  in_window = jnp.zeros((b, t), bool).at[rows, index].set(True)
  return scatter(logp_w), scatter(entropy_w), in_window
