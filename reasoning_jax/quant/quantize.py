"""`quantize`: one validated entry point for RTN, GPTQ and BPDQ weight quantisation.

RTN and GPTQ from "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
Transformers" (Frantar et al., arXiv:2210.17323); BPDQ from "BPDQ: Bit-Plane Decomposition
Quantization on a Variable Grid for Large Language Models" (Chen et al., arXiv:2602.04163).
Sections 3 and 4 of `shared/methods/inference.md`. Weights are `W [d_out, d_in]` (rows = output
channels); Hessians `H = 2 X X^T / N [d_in, d_in]` in float32. Every method returns the same
storage format, `reasoning_jax.ops.quant.QuantizedWeight`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from reasoning_jax.ops.quant.format import check_layout
from reasoning_jax.quant.bpdq import bpdq
from reasoning_jax.quant.gptq import gptq
from reasoning_jax.quant.metric import check_hessian
from reasoning_jax.quant.options import QuantConfig
from reasoning_jax.quant.rtn import quantize_rtn


def _rtn(weight, hessian, config: QuantConfig, *, return_info: bool = False):
  del hessian  # RTN ignores the calibration statistics
  qw = quantize_rtn(
    weight,
    bits=config.bits,
    group_size=config.group_size,
    sym=config.sym,
    storage_dtype=config.storage,
    round_to_storage=config.round_to_storage,
  )
  return (qw, {}) if return_info else qw


# Method name -> quantiser(weight, hessian, config); the names are QuantConfig's METHODS.
QUANTIZERS = {"rtn": _rtn, "gptq": gptq, "bpdq": bpdq}


def resolve_config(
  config: QuantConfig | None = None,
  *,
  method: str | None = None,
  bits: int | None = None,
  group_size: int | None = None,
  **overrides,
) -> QuantConfig:
  """`config` (default `QuantConfig()`: bpdq, 2 bits, g128) with the given flags replaced,
  validated."""
  config = QuantConfig() if config is None else config
  named = dict(method=method, bits=bits, group_size=group_size)
  changes = {k: v for k, v in named.items() if v is not None}
  return config.replace(**changes, **overrides).validate()


def check_weight(weight) -> jax.Array:
  """`W` as float32 `[d_out, d_in]`; ValueError naming `weight` unless 2-D, float and finite."""
  w = jnp.asarray(weight)
  if w.ndim != 2:
    raise ValueError(f"weight must be a 2-D [d_out, d_in] matrix, got shape {tuple(w.shape)}")
  if not jnp.issubdtype(w.dtype, jnp.floating):
    raise ValueError(f"weight must be a floating-point array, got dtype {w.dtype}")
  w = w.astype(jnp.float32)
  if not bool(jnp.all(jnp.isfinite(w))):
    raise ValueError("weight has non-finite entries (NaN or inf)")
  return w


def quantize(
  weight,
  hessian=None,
  *,
  method: str | None = None,
  bits: int | None = None,
  group_size: int | None = None,
  config: QuantConfig | None = None,
  return_info: bool = False,
  **overrides,
):
  """Quantises `W [d_out, d_in]` with `method` ("rtn", "gptq" or "bpdq"; default "bpdq").

  `method`, `bits` (default 2) and `group_size` (default 128) and any other `QuantConfig` flag
  given as a keyword override `config` (default `QuantConfig()`); unset ones keep the config's
  value. `hessian` `H [d_in, d_in]` is required for gptq and bpdq (RTN ignores it). Raises
  ValueError naming the argument: `weight` not 2-D float finite; `group_size` not dividing
  `d_in` (or `d_in` not a multiple of 32, the packing word); unsupported `bits`; `hessian`
  missing, misshaped, non-finite or not positive definite after damping escalation.
  Returns a `QuantizedWeight`, plus the method's info dict when `return_info=True`
  (gptq / bpdq; RTN returns `{}`).
  """
  config = resolve_config(config, method=method, bits=bits, group_size=group_size, **overrides)
  w = check_weight(weight)
  check_layout(tuple(w.shape), config.bits, config.group_size, argument="weight")
  if config.method == "rtn":
    return _rtn(w, None, config, return_info=return_info)
  if hessian is None:
    raise ValueError(
      f"hessian is required for method={config.method!r}: pass H = 2 X X^T / N of shape "
      f"[d_in, d_in] = [{w.shape[1]}, {w.shape[1]}] (only rtn runs without one)"
    )
  h = check_hessian(hessian, w.shape[1])
  return QUANTIZERS[config.method](w, h, config, return_info=return_info)


def quantize_dequantize(weight, hessian=None, **kwargs) -> jax.Array:
  """`quantize(...)` dequantised back to float32 `[d_out, d_in]` (original column order)."""
  return quantize(weight, hessian, **kwargs).dequantize(jnp.float32)


def hessian_from_inputs(inputs) -> jax.Array:
  """`H = 2 X X^T / N` in float32 from calibration inputs `[N, d_in]` (rows = tokens)."""
  x = jnp.asarray(inputs, jnp.float32)
  if x.ndim != 2:
    raise ValueError(f"inputs must be [N, d_in] calibration activations, got shape {x.shape}")
  return 2.0 * jnp.matmul(x.T, x, precision="highest") / x.shape[0]
