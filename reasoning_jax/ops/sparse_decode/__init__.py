"""Sparse long-context decoding ops: block selection, Quest bounds, decode attentions.

"LycheeDecode: Accelerating Long-Context LLM Inference via Hybrid-Head Sparse Decoding"
(Lin et al., arXiv:2602.04541) and its baselines Quest (arXiv:2406.10774) and DuoAttention
(arXiv:2410.10819); `shared/methods/inference.md` sections 7 and 8.

  * `reference.py`: the decode attentions of retrieval heads (dense + fused block scores,
    kernel A) and sparse heads (selected blocks only, kernel B), as readable references, and
    the gathered XLA path;
  * `xla.py`: the fast XLA path the context runs (static heads, one pass over the keys);
  * `selection.py`: top-k blocks / tokens under a budget with sinks and recent forced;
  * `quest.py`: Quest page bounds and scores;
  * `hardkuma.py`: the Hard-Kumaraswamy role gate (sampling, point masses, Kuma mean,
    expected density), the density constraint and the role-learning schedule, and
    DuoAttention's gate rounding.
"""

from reasoning_jax.ops.sparse_decode.hardkuma import (
  A_B_RANGE,
  EPS_U,
  STRETCH,
  DensityConstraintState,
  density_penalty,
  duo_gate_values,
  expected_density,
  hardkuma_from_uniform,
  hardkuma_sample,
  init_density_constraint,
  kuma_cdf,
  kuma_mean,
  kuma_sample,
  lr_schedule_factor,
  lycheedecode_schedule,
  prob_one,
  prob_zero,
  roles_from_duo,
  roles_from_kuma,
)
from reasoning_jax.ops.sparse_decode.quest import (
  page_bounds,
  page_upper_bounds,
  quest_page_scores,
  update_page_bounds,
)
from reasoning_jax.ops.sparse_decode.reference import (
  DecodeKernels,
  block_mask,
  block_max_scores,
  block_sparse_decode_reference,
  check_decode_args,
  gathered_block_sparse_decode,
  masked_decode_reference,
  per_query_block_scores,
  per_query_block_sparse_decode,
  retrieval_decode_reference,
)
from reasoning_jax.ops.sparse_decode.xla import (
  XLA_KERNELS,
  block_sparse_decode_xla,
  retrieval_decode_xla,
)
from reasoning_jax.ops.sparse_decode.selection import (
  check_budget,
  forced_blocks,
  min_blocks,
  select_blocks,
  select_tokens,
)

__all__ = [
  "A_B_RANGE",
  "DecodeKernels",
  "DensityConstraintState",
  "EPS_U",
  "STRETCH",
  "XLA_KERNELS",
  "block_mask",
  "block_max_scores",
  "block_sparse_decode_reference",
  "block_sparse_decode_xla",
  "check_budget",
  "check_decode_args",
  "density_penalty",
  "duo_gate_values",
  "expected_density",
  "forced_blocks",
  "gathered_block_sparse_decode",
  "hardkuma_from_uniform",
  "hardkuma_sample",
  "init_density_constraint",
  "kuma_cdf",
  "kuma_mean",
  "kuma_sample",
  "lr_schedule_factor",
  "lycheedecode_schedule",
  "masked_decode_reference",
  "min_blocks",
  "page_bounds",
  "per_query_block_scores",
  "per_query_block_sparse_decode",
  "page_upper_bounds",
  "prob_one",
  "prob_zero",
  "quest_page_scores",
  "retrieval_decode_reference",
  "retrieval_decode_xla",
  "roles_from_duo",
  "roles_from_kuma",
  "select_blocks",
  "select_tokens",
  "update_page_bounds",
]
