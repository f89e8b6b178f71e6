"""Pallas chunk readout and assignment kernels for OVQ attention (arXiv:2602.03922) and the
exported reference."""

from pallas_kernels.ovq.kernel import (
  ovq_chunk_assign_pallas,
  ovq_chunk_pallas,
  ovq_chunk_readout_pallas,
  ovq_reference,
)

__all__ = [
  "ovq_chunk_assign_pallas",
  "ovq_chunk_pallas",
  "ovq_chunk_readout_pallas",
  "ovq_reference",
]
