"""Pallas kernels for gated linear attention (arXiv:2312.06635) and their exported reference.

`kernel.py`: the chunk-parallel forward and the public `gla_chunk_pallas` (a custom VJP);
`backward.py`: the fused chunk-parallel backward; `common.py`: layout and call helpers;
`kernel_mgpu.py`, `backward_mgpu.py`: both chunk kernels as Mosaic GPU kernels
(`schedule="mosaic"`).
All take packed sequences (`segment_ids`).
"""

from reasoning_jax import registry
from pallas_kernels.gla.kernel import gla_chunk_pallas, gla_reference


# The "pallas" chunk kernel of reasoning_jax.ops.gla (looked up by name; see
# reasoning_jax.registry on kernel plugins).
registry.GLA_CHUNK_KERNELS.register("pallas")(gla_chunk_pallas)

__all__ = ["gla_chunk_pallas", "gla_reference"]
