"""Weight quantisation: RTN, GPTQ (Frantar et al., arXiv:2210.17323) and BPDQ (Chen et al.,
arXiv:2602.04163), all producing `reasoning_jax.ops.quant.QuantizedWeight`.

`quantize(weight, hessian, method=..., bits=..., group_size=...)` is the entry point; the flags
live in `QuantConfig`; the Hessian metric in `metric`.
"""

from reasoning_jax.quant.metric import (
  inverse_cholesky_upper,
  prepare_hessian,
  schur_complement,
  weighted_error,
)
from reasoning_jax.quant.options import QuantConfig
from reasoning_jax.quant.quantize import (
  QUANTIZERS,
  hessian_from_inputs,
  quantize,
  quantize_dequantize,
)

__all__ = [
  "QUANTIZERS",
  "QuantConfig",
  "hessian_from_inputs",
  "inverse_cholesky_upper",
  "prepare_hessian",
  "quantize",
  "quantize_dequantize",
  "schur_complement",
  "weighted_error",
]
