"""Pallas chunk readout (with its fused backward, `backward.py`) and assignment kernels for OVQ
attention (arXiv:2602.03922), and the exported reference."""

from reasoning_jax import registry
from pallas_kernels.ovq.kernel import (
  ovq_chunk_assign_pallas,
  ovq_chunk_pallas,
  ovq_chunk_readout_pallas,
  ovq_reference,
)


# The "pallas" chunk kernel of reasoning_jax.ops.ovq (looked up by name; see
# reasoning_jax.registry on kernel plugins).
registry.OVQ_CHUNK_KERNELS.register("pallas")(ovq_chunk_pallas)

__all__ = [
  "ovq_chunk_assign_pallas",
  "ovq_chunk_pallas",
  "ovq_chunk_readout_pallas",
  "ovq_reference",
]
