"""Pallas decode kernels of LycheeDecode's hybrid heads and their exported references.

"LycheeDecode: Accelerating Long-Context LLM Inference via Hybrid-Head Sparse Decoding"
(Lin et al., arXiv:2602.04541); `shared/methods/inference.md` sections 8.2 and 8.5.
`kernel.py`: kernel A (`retrieval_decode_pallas`: dense decode attention of the retrieval
heads fused with max-pooled block scores for the selection) and kernel B
(`block_sparse_decode_pallas`: decode attention of the sparse heads over their inherited
blocks), each with two schedules: the TPU grid schedule with the processed heads (and kernel
B's block ids) scalar-prefetched into the K/V index maps (`kernel.py`, the public entry
points) and the GPU Triton loop schedule with split-K (`kernel_gpu.py`); `common.py`: the
online-softmax tile both share; `blocks.py`: tile sizes, schedules and their checks. The references
are `reasoning_jax.ops.sparse_decode.reference.retrieval_decode_reference` and
`block_sparse_decode_reference`, re-exported here.
"""

from reasoning_jax import registry
from reasoning_jax.ops.sparse_decode.reference import (
  DecodeKernels,
  block_sparse_decode_reference,
  retrieval_decode_reference,
)
from pallas_kernels.sparse_decode.kernel import block_sparse_decode_pallas, retrieval_decode_pallas

KERNELS = DecodeKernels(retrieval_decode_pallas, block_sparse_decode_pallas)

# The "pallas" decode kernels of the sparse heads (looked up by name; see reasoning_jax.registry
# on kernel plugins).
registry.SPARSE_DECODE_KERNELS.register("pallas")(KERNELS)

__all__ = [
  "KERNELS",
  "block_sparse_decode_pallas",
  "block_sparse_decode_reference",
  "retrieval_decode_pallas",
  "retrieval_decode_reference",
]
