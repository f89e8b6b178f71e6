"""Weight quantisation: RTN, GPTQ (Frantar et al., arXiv:2210.17323) and BPDQ (Chen et al.,
arXiv:2602.04163), all producing `reasoning_jax.ops.quant.QuantizedWeight`.

`quantize(weight, hessian, method=..., bits=..., group_size=...)` is the entry point; the flags
live in `QuantConfig`; the Hessian metric in `metric`. A whole model: `quantize_model` (block by
block calibration, `calibration`), then `save_quantized` / `load_quantized` (`io`).
"""

from reasoning_jax.quant.io import load_quantized, quant_rules, save_quantized
from reasoning_jax.quant.metric import (
  inverse_cholesky_upper,
  prepare_hessian,
  schur_complement,
  weighted_error,
)
from reasoning_jax.quant.model import (
  DEFAULT_TARGETS,
  KernelReport,
  float_bytes,
  model_bytes,
  quantize_model,
  quantized_bytes,
)
from reasoning_jax.quant.options import QuantConfig
from reasoning_jax.quant.quantize import (
  QUANTIZERS,
  hessian_from_inputs,
  quantize,
  quantize_dequantize,
)

__all__ = [
  "DEFAULT_TARGETS",
  "KernelReport",
  "QUANTIZERS",
  "QuantConfig",
  "float_bytes",
  "hessian_from_inputs",
  "inverse_cholesky_upper",
  "load_quantized",
  "model_bytes",
  "prepare_hessian",
  "quantize",
  "quant_rules",
  "quantize_dequantize",
  "quantize_model",
  "quantized_bytes",
  "save_quantized",
  "schur_complement",
  "weighted_error",
]
