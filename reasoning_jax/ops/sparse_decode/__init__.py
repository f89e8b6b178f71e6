"""Sparse long-context decoding ops: block selection, Quest bounds, decode attentions.

"LycheeDecode: Accelerating Long-Context LLM Inference via Hybrid-Head Sparse Decoding"
(Lin et al., arXiv:2602.04541) and its baselines Quest (arXiv:2406.10774) and DuoAttention
(arXiv:2410.10819); `shared/methods/inference.md` sections 7 and 8.

  * `reference.py`: the decode attentions of retrieval heads (dense + fused block scores,
    kernel A) and sparse heads (selected blocks only, kernel B), as readable references, and
    the gathered XLA path;
  * `selection.py`: top-k blocks / tokens under a budget with sinks and recent forced;
  * `quest.py`: Quest page bounds and scores.
"""

from reasoning_jax.ops.sparse_decode.quest import (
  page_bounds,
  page_upper_bounds,
  quest_page_scores,
  update_page_bounds,
)
from reasoning_jax.ops.sparse_decode.reference import (
  XLA_KERNELS,
  DecodeKernels,
  block_mask,
  block_max_scores,
  block_sparse_decode_reference,
  check_decode_args,
  gathered_block_sparse_decode,
  masked_decode_reference,
  retrieval_decode_reference,
)
from reasoning_jax.ops.sparse_decode.selection import (
  check_budget,
  forced_blocks,
  min_blocks,
  select_blocks,
  select_tokens,
)

__all__ = [
  "XLA_KERNELS",
  "DecodeKernels",
  "block_mask",
  "block_max_scores",
  "block_sparse_decode_reference",
  "check_budget",
  "check_decode_args",
  "forced_blocks",
  "gathered_block_sparse_decode",
  "masked_decode_reference",
  "min_blocks",
  "page_bounds",
  "page_upper_bounds",
  "quest_page_scores",
  "retrieval_decode_reference",
  "select_blocks",
  "select_tokens",
  "update_page_bounds",
]
