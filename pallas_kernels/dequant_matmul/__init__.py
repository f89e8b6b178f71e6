"""Pallas fused dequant-matmul for bit-plane quantised linears (BPDQ, RTN, GPTQ weights) and its
exported reference.

"BPDQ: Bit-Plane Decomposition Quantization on a Variable Grid for Large Language Models"
(Chen et al., arXiv:2602.04163). `kernel.py`: the kernels (a TPU "grid" schedule with K as the
sequential reduction axis, a GPU "loop" schedule on Pallas' Triton backend) and the public
`dequant_matmul_pallas`; `kernel_mgpu.py`: the Mosaic GPU (Hopper wgmma) form the CUDA branch
prefers; `blocks.py`: tile sizes. The reference is `reasoning_jax.ops.quant.dequant_matmul_reference`,
re-exported here.
"""

from reasoning_jax import registry
from reasoning_jax.ops.quant import dequant_matmul_reference
from pallas_kernels.dequant_matmul.kernel import dequant_matmul_pallas


# The "pallas" dequant-matmul kernel of the quantized linears (looked up by name; see
# reasoning_jax.registry on kernel plugins).
registry.DEQUANT_MATMUL_KERNELS.register("pallas")(dequant_matmul_pallas)

__all__ = ["dequant_matmul_pallas", "dequant_matmul_reference"]
