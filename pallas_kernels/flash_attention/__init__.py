"""Pallas flash attention (forward + backward) with causal, sliding-window and GQA masks.

"FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness" (arXiv:2205.14135)
and "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning"
(arXiv:2307.08691): online softmax over key blocks, logsumexp saved for the backward pass.

  * `flash_attention(q, k, v, *, ...)`: the kernel (see `kernel.py`).
  * `flash_attention_reference`: the dense reference with the same signature.
  * `pallas_attention`: the "pallas" backend of `reasoning_jax.ops.attention`, registered in
    `reasoning_jax.registry.ATTENTION_IMPLEMENTATIONS` when this package is imported (the
    registry imports it on the first lookup of "pallas"; see its docstring).
  * `register(target)`: registers the backend into another registry (tests).

The registry calls backends as `fn(q, k, v, mask, *, scale, **mask_info)`. A
dense `[B, 1, T, S]` mask cannot be turned back into the causal / window /
segment structure the kernel builds blockwise, so the adapter needs the mask
described by keyword (`causal`, `sliding_window`, segment ids, `kv_mask` and a
static promise `index_positions`), which `ops/attention.py` passes once wired.
Calls the kernel cannot express (decode or prefill against a cache, arbitrary
positions, padding masks) raise a ValueError naming `implementation='pallas'`.
"""

from __future__ import annotations

from typing import Any

import jax

from reasoning_jax import registry
from pallas_kernels.flash_attention import backward_mgpu, blocks, common
from pallas_kernels.flash_attention.blocks import BlockSizes
from pallas_kernels.flash_attention.kernel import flash_attention, flash_attention_reference

__all__ = [
  "BlockSizes",
  "flash_attention",
  "flash_attention_reference",
  "pallas_attention",
  "register",
  "unsupported_reason",
]

_MISSING = object()


def unsupported_reason(
  q: jax.Array,
  k: jax.Array,
  *,
  causal: Any = _MISSING,
  index_positions: bool = False,
  kv_mask: jax.Array | None = None,
  **unused_mask_info: Any,
) -> str | None:
  """Why the "pallas" backend cannot run this call, or None if it can.

  Static checks only (shapes, flags and, on a GPU, whether this JAX still has the Pallas
  Triton backend or the call can run through Mosaic GPU end to end), so `ops.attention` can use it to pick the backend when
  `implementation=None`.
  """
  del unused_mask_info
  if causal is _MISSING:
    return (
      "the registry passed only a dense mask; the kernel needs the mask structure "
      "(causal=, sliding_window=, q_segment_ids=, kv_segment_ids=, kv_mask=, "
      "index_positions=) from reasoning_jax.ops.attention"
    )
  if getattr(k, "ndim", 0) != 4 or k.shape[1] != q.shape[1]:
    return (
      f"keys have length S={k.shape[1]} != T={q.shape[1]} (prefill or decode against "
      "a KV cache); the kernel is self-attention only"
    )
  if not index_positions:
    return (
      "positions are not promised to be arange(T) (within each segment); the kernel "
      "masks on array indices, not on arbitrary positions"
    )
  if kv_mask is not None:
    return "kv_mask (padding keys) is not supported; give padding its own segment id instead"
  if jax.default_backend() == "gpu":
    return _gpu_unavailable(q)
  return None


def _gpu_unavailable(q: jax.Array) -> str | None:
  """None when a compiled GPU call can run: through Mosaic GPU end to end (forward and
  backward, `schedule="mosaic"` with head dims up to 128) or through the Triton kernels."""
  triton = common.gpu_lowering_unavailable()
  if triton is None:
    return None
  d = q.shape[-1]
  if (
    blocks.gpu_schedule(d, q.dtype) == "mosaic"
    and blocks.padded_head_dim(d, schedule="mosaic", compiled=True) <= backward_mgpu.MAX_HEAD_DIM
  ):
    return None
  return (
    f"{triton}; the Mosaic GPU form needs a Hopper GPU, bfloat16 / float16 and head dim up to "
    f"{backward_mgpu.MAX_HEAD_DIM} (got {q.dtype}, D={d})"
  )


def pallas_attention(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  mask: jax.Array | None,
  *,
  scale: float,
  causal: Any = _MISSING,
  sliding_window: int | None = None,
  q_segment_ids: jax.Array | None = None,
  kv_segment_ids: jax.Array | None = None,
  kv_mask: jax.Array | None = None,
  index_positions: bool = False,
  **kernel_options: Any,
) -> jax.Array:
  """The "pallas" entry of `registry.ATTENTION_IMPLEMENTATIONS`.

  Args:
    q: `[B, T, N, D]`; k, v: `[B, S, K, D]` with S == T.
    mask: the dense `[B, 1, T, S]` mask built by `ops.attention`; unused (the
      kernel rebuilds it blockwise from the keywords below).
    scale: logit multiplier.
    causal, sliding_window, q_segment_ids, kv_segment_ids, kv_mask: the mask
      description given to `ops.attention.make_attention_mask`.
    index_positions: static promise that q and kv positions are `arange(T)`
      (or restart per segment, contiguous, when segment ids are given).
    **kernel_options: forwarded to `flash_attention` (block_q, block_k,
      interpret, schedule).

  Raises:
    ValueError: mentioning implementation='pallas' when the call cannot be
      expressed (see `unsupported_reason`).
  """
  del mask
  reason = unsupported_reason(q, k, causal=causal, index_positions=index_positions, kv_mask=kv_mask)
  if reason is not None:
    raise ValueError(
      f"implementation='pallas' cannot run this call: {reason}; use implementation='xla'"
    )
  return flash_attention(
    q,
    k,
    v,
    q_segment_ids=q_segment_ids,
    kv_segment_ids=kv_segment_ids,
    causal=causal,
    sliding_window=sliding_window,
    scale=scale,
    **kernel_options,
  )


pallas_attention.unsupported_reason = unsupported_reason


def register(target: Any = None) -> Any:
  """Registers `pallas_attention` as "pallas" (idempotent) and returns it.

  Args:
    target: a `reasoning_jax.registry.Registry`; default
      `registry.ATTENTION_IMPLEMENTATIONS`.
  """
  if target is None:
    target = registry.ATTENTION_IMPLEMENTATIONS
  return target.register("pallas")(pallas_attention)


register()
