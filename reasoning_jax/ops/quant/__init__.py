"""Quantised-weight storage (bit-planes + group coefficients) and its reference dequantisation.

The algorithms that produce these weights (RTN, GPTQ, BPDQ) live in `reasoning_jax.quant`; the
fused dequant-matmul kernel in `pallas_kernels.dequant_matmul`.
"""

from reasoning_jax.ops.quant.format import (
  KINDS,
  QuantizedWeight,
  check_layout,
  from_bitplanes,
  from_codes,
)
from reasoning_jax.ops.quant.matmul import dequant_matmul_reference
from reasoning_jax.ops.quant.packing import pack_bitplanes, unpack_bitplanes

__all__ = [
  "KINDS",
  "QuantizedWeight",
  "check_layout",
  "dequant_matmul_reference",
  "from_bitplanes",
  "from_codes",
  "pack_bitplanes",
  "unpack_bitplanes",
]
