"""Pallas kernel for gated linear attention (arXiv:2312.06635) and its exported reference."""

from pallas_kernels.gla.kernel import gla_chunk_pallas, gla_reference

__all__ = ["gla_chunk_pallas", "gla_reference"]
