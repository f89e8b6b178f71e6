"""One sparse decode step through a zoo model: the attention context the layers call.

`Transformer.forward(..., attention_context=ctx)` hands each attention layer's new-token query
and full cache to `ctx.attend(layer, q, k, v, q_positions)` in place of dense attention (the
extension point in `reasoning_jax.layers.attention`). The context lives for one forward call
and carries what flows *across layers within a step*: LycheeDecode's per-KV-head block
selection (`shared/methods/inference.md` section 8.2, "Decode-time algorithm"):

  for layer l:
    retrieval heads R_l: dense attention over all visible slots (kernel A), whose fused block
      scores (GQA-mean query, raw logits, block max-pool) re-select the head index's blocks:
      sinks + recent + top blocks up to the budget;
    sparse heads S_l: attention over the blocks the nearest earlier retrieval head of the same
      KV-head index selected (kernel B).

Layer 0 is all-retrieval, so the selection needs no state between steps. Quest keeps page
bounds *across* steps: `init_state` builds them from the prefilled cache and `state_out`
returns them updated with the step's new keys, for the decode loop to carry.

The context is a trace-time Python object: layers run in order inside one trace, each reading
and replacing `self.selection`. Not thread-safe and not reusable across calls.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from reasoning_jax import registry
from reasoning_jax.ops.attention import attention as attention_op
from reasoning_jax.ops.sparse_decode import (
  XLA_KERNELS,
  block_max_scores,
  masked_decode_reference,
  page_bounds,
  per_query_block_scores,
  per_query_block_sparse_decode,
  quest_page_scores,
  select_blocks,
  select_tokens,
  update_page_bounds,
)
from reasoning_jax.sparse.config import SparseDecodeConfig


def decode_kernels(config: SparseDecodeConfig):
  """The `DecodeKernels` pair of `config.implementation` (interpret flag and, when set, the
  kernel schedule bound for Pallas)."""
  if config.implementation == "xla":
    return XLA_KERNELS
  kernels = registry.SPARSE_DECODE_KERNELS.get(config.implementation)
  bound = {"interpret": config.interpret}
  if config.kernel_schedule is not None:
    bound["schedule"] = config.kernel_schedule
  return type(kernels)(
    functools.partial(kernels.retrieval_decode, **bound),
    functools.partial(kernels.block_sparse_decode, **bound),
  )


def init_state(config: SparseDecodeConfig, cache: tuple[Any, ...], lengths: jax.Array):
  """Per-layer state carried between decode steps: Quest's `(kmin, kmax)` page bounds of the
  prefilled cache (slots `< lengths`), None elsewhere."""
  if config.method != "quest":
    return tuple(None for _ in cache)
  return tuple(
    None if i < config.quest_dense_layers else page_bounds(c.k, lengths, page_size=config.page_size)
    for i, c in enumerate(cache)
  )


def prefill_config(config: SparseDecodeConfig | None) -> SparseDecodeConfig | None:
  """The part of `config` a prefill depends on, canonical: prefill is dense, and only Quest
  builds decode state from it (`init_state`: page bounds of `page_size` for the layers from
  `quest_dense_layers` on). Every config with the same prefill part maps to one config, so
  `generate` compiles one prefill for a whole sweep of budgets, roles and methods."""
  if config is None:
    return None
  if config.method != "quest":
    return SparseDecodeConfig(method="full")
  return SparseDecodeConfig(
    method="quest",
    page_size=config.page_size,
    quest_dense_layers=config.quest_dense_layers,
    budget=2 * config.page_size,
  )


class SparseDecodeContext:
  """The attention context of one decode step (see the module docstring).

  Args:
    config: the method and its settings.
    state: the per-layer state from `init_state` or the previous step's `state_out`.
    record: keep, per layer, the heads and the selection after the layer (tests inspect the
      inheritance pattern through it; eager use only).
  """

  def __init__(self, config: SparseDecodeConfig, *, state=None, record: bool = False):
    self.config = config
    self.kernels = decode_kernels(config)
    self.state_in = state
    self._state_out: dict[int, Any] = {}
    self.selection: jax.Array | None = None  # [B, K, n_sel] int32, or [B, K, S] bool (token).
    self.records: list[dict[str, Any]] | None = [] if record else None

  def state_out(self):
    """The state for the next step (same structure as `state_in`)."""
    if self.state_in is None:
      return None
    return tuple(self._state_out.get(i, s) for i, s in enumerate(self.state_in))

  # -- The layer hook ---------------------------------------------------------------------

  def attend(self, layer: int, q, k, v, q_positions):
    """Decode attention of layer `layer`: `q [B, 1, N, D]` over the cache `k, v [B, S, K, D]`
    (the new token already written at `q_positions [B, 1]`). Returns `[B, 1, N, D]`."""
    if k is None or q.shape[1] != 1:
      raise ValueError(
        "sparse decoding runs one new token per row against a KV cache (prefill stays dense); "
        f"got q of shape {tuple(q.shape)} {'without a cache' if k is None else ''}".rstrip()
      )
    b, _, n, d = q.shape
    kh = k.shape[2]
    qg = q[:, 0].reshape(b, kh, n // kh, d)
    lengths = q_positions[:, 0] + 1
    dense, sparse = self.config.head_roles(layer, kh)
    out = jnp.zeros_like(qg)
    if self.config.method == "quest" and sparse:
      out = self._quest(layer, qg, k, v, lengths, q_positions[:, 0])
    elif not sparse and self.config.implementation == "xla" and self.config.method != "lychee":
      # Every head dense, nothing to select: the standard decode attention.
      out = self._all_dense(q, qg, k, v, q_positions)
    else:
      if dense:
        out = out.at[:, jnp.asarray(dense)].set(self._dense(qg, k, v, lengths, dense))
      if sparse:
        out = out.at[:, jnp.asarray(sparse)].set(self._sparse(qg, k, v, lengths, sparse))
    if self.records is not None:
      self.records.append(dict(layer=layer, dense=dense, sparse=sparse, selection=self.selection))
    return out.reshape(b, 1, n, d)

  # -- Pieces -----------------------------------------------------------------------------

  def _kernel_heads(self, heads: tuple[int, ...]):
    """Static head ids for the XLA path (read per head, no cache copy); an int32 array for
    the Pallas kernels (scalar-prefetched)."""
    return heads if self.config.implementation == "xla" else jnp.asarray(heads, jnp.int32)

  def _all_dense(self, q, qg, k, v, q_positions):
    b, s = k.shape[:2]
    kv_positions = jnp.broadcast_to(jnp.arange(s, dtype=q_positions.dtype), (b, s))
    out = attention_op(
      q, k, v, q_positions=q_positions, kv_positions=kv_positions, implementation="xla"
    )
    return out.reshape(qg.shape)

  def _dense(self, qg, k, v, lengths, heads):
    cfg = self.config
    ids = jnp.asarray(heads, jnp.int32)
    block = cfg.block_size if k.shape[1] % cfg.block_size == 0 else 1
    out, scores = self.kernels.retrieval_decode(
      qg, k, v, lengths, self._kernel_heads(heads), block_size=block
    )
    if cfg.method != "lychee":
      return out
    if cfg.per_query_head:
      scores = per_query_block_scores(qg, k, lengths, ids, block_size=cfg.block_size)
      b, r, g, nb = scores.shape
      chosen = select_blocks(
        scores.reshape(b, r * g, nb),
        lengths,
        n_select=cfg.n_select,
        block_size=cfg.block_size,
        sink_tokens=cfg.sink_tokens,
        recent_tokens=cfg.recent_tokens,
      ).reshape(b, r, g, cfg.n_select)
    elif cfg.selection == "token":
      qbar = jnp.mean(jnp.take(qg, ids, axis=1).astype(jnp.float32), axis=2).astype(qg.dtype)
      token_scores = block_max_scores(qbar, jnp.take(k, ids, axis=2), lengths, block_size=1)
      chosen = select_tokens(
        token_scores,
        lengths,
        budget=cfg.budget,
        sink_tokens=cfg.sink_tokens,
        recent_tokens=cfg.recent_tokens,
      )
    else:
      chosen = select_blocks(
        scores,
        lengths,
        n_select=cfg.n_select,
        block_size=cfg.block_size,
        sink_tokens=cfg.sink_tokens,
        recent_tokens=cfg.recent_tokens,
      )
    self._write_selection(chosen, ids, k.shape)
    return out

  def _write_selection(self, chosen, ids, cache_shape):
    if self.selection is None:
      b, s, kh, _ = cache_shape
      if self.config.selection == "token":
        self.selection = jnp.zeros((b, kh, s), bool)
      elif self.config.per_query_head:
        shape = (b, kh, chosen.shape[2], self.config.n_select)
        self.selection = jnp.full(shape, -1, jnp.int32)
      else:
        self.selection = jnp.full((b, kh, self.config.n_select), -1, jnp.int32)
    self.selection = self.selection.at[:, ids].set(chosen)

  def _streaming_selection(self, lengths, num_heads, s):
    """DuoAttention's streaming heads: the sink and recent blocks (or tokens) only."""
    cfg = self.config
    sink, recent = cfg.streaming_window()
    b = lengths.shape[0]
    if cfg.selection == "token":
      pos = jnp.arange(s)[None, :]
      keep = (pos < sink) | (pos >= lengths[:, None] - recent)
      keep &= pos < lengths[:, None]
      return jnp.broadcast_to(keep[:, None], (b, num_heads, s))
    empty = jnp.full((b, num_heads, s // cfg.block_size), -jnp.inf, jnp.float32)
    return select_blocks(
      empty,
      lengths,
      n_select=cfg.n_select,
      block_size=cfg.block_size,
      sink_tokens=sink,
      recent_tokens=recent,
    )

  def _sparse(self, qg, k, v, lengths, heads):
    cfg = self.config
    ids = jnp.asarray(heads, jnp.int32)
    if cfg.method == "duo":
      chosen = self._streaming_selection(lengths, len(heads), k.shape[1])
    else:
      if self.selection is None:
        raise ValueError(f"sparse heads {heads} have no earlier retrieval head to inherit from")
      chosen = jnp.take(self.selection, ids, axis=1)
    if cfg.selection == "token":
      return masked_decode_reference(qg, k, v, ids, chosen)
    if cfg.per_query_head:
      return per_query_block_sparse_decode(
        qg, k, v, lengths, ids, chosen, block_size=cfg.block_size
      )
    return self.kernels.block_sparse_decode(
      qg, k, v, lengths, ids, chosen, block_size=cfg.block_size
    )

  def _quest(self, layer, qg, k, v, lengths, positions):
    cfg = self.config
    if self.state_in is None or self.state_in[layer] is None:
      raise ValueError("method='quest' needs the page bounds state (sparse.context.init_state)")
    kmin, kmax = self.state_in[layer]
    rows = jnp.arange(k.shape[0])
    kmin, kmax = update_page_bounds(
      kmin, kmax, k[rows, positions], positions, page_size=cfg.page_size
    )
    self._state_out[layer] = (kmin, kmax)
    scores = quest_page_scores(qg, kmin, kmax)  # [B, K, n_pages]
    chosen = select_blocks(
      scores,
      lengths,
      n_select=cfg.n_select,
      block_size=cfg.page_size,
      sink_tokens=0,
      recent_tokens=1 if cfg.quest_keep_last_page else 0,
    )
    self.selection = chosen
    ids = jnp.arange(k.shape[2], dtype=jnp.int32)
    return self.kernels.block_sparse_decode(
      qg, k, v, lengths, ids, chosen, block_size=cfg.page_size
    )
