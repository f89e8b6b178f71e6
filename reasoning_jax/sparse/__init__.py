"""Sparse long-context decoding: LycheeDecode hybrid heads and the Quest / DuoAttention baselines.

A room between `models` (whose attention layers call the context it provides) and `generate`
(whose `sparse_decode=` switch runs it):

  * `config`: `SparseDecodeConfig`, the method and every flag with the paper's default;
  * `context`: `SparseDecodeContext`, one decode step's attention through a zoo model;
  * `roles`: head-role maps (from gates, saved beside a checkpoint, validated against a model).

  >>> cfg = SparseDecodeConfig(method="lychee", budget=4096, roles=roles)
  >>> out = generate(model, prompts, lengths, max_new_tokens=64, sparse_decode=cfg)
"""

from reasoning_jax.sparse.config import SparseDecodeConfig, kv_tokens_read, round_cache_size
from reasoning_jax.sparse.context import (
  SparseDecodeContext,
  decode_kernels,
  init_state,
  prefill_config,
)

__all__ = [
  "SparseDecodeConfig",
  "SparseDecodeContext",
  "decode_kernels",
  "init_state",
  "kv_tokens_read",
  "prefill_config",
  "round_cache_size",
]
