"""A quantized projection kernel: a `QuantizedWeight` in place of a layer's `nnx.Param` kernel.

"BPDQ: Bit-Plane Decomposition Quantization on a Variable Grid for Large Language Models"
(Chen et al., arXiv:2602.04163) and "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers" (Frantar et al., arXiv:2210.17323) produce the weights
(`reasoning_jax.quant`); this module is what the decoder runs.

A zoo kernel is `[*in_shape, *out_shape]` (`q_proj` `[H, N, D]`, `o_proj` `[N, D, H]`, `gate`
`[H, I]`); the quantization algorithms see it as the spec's `W [d_out, d_in] =
kernel.reshape(d_in, d_out).T`. `QuantizedKernel` stores the packed arrays as
`QuantizedArray` variables (not `nnx.Param`: the trainers' parameter filters never see integer
codes) and computes

  * `apply(x, dtype)` (what `layers.projection.project` calls): `x [..., *in] -> [..., *out]`, the
    weight dequantized on the fly. `implementation="xla"` (default) is the jnp reference
    (`reasoning_jax.ops.quant.dequant_matmul_reference`); `"pallas"` the fused kernel of
    `pallas_kernels.dequant_matmul` (looked up in `registry.DEQUANT_MATMUL_KERNELS`; interpret
    mode on CPU); `"pallas_mosaic"` / `"pallas_triton"` the same with its CUDA form forced
    (Mosaic GPU or the deprecated Triton backend; "pallas" picks per call).
  * `kernel[...]`: the dequantized kernel in its original shape and dtype, so any layer that
    indexes its kernel keeps working (unfused).

Nothing falls back to full precision silently: the float kernel is gone from the model.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.ops.quant import QuantizedWeight, dequant_matmul_reference

IMPLEMENTATIONS = ("xla", "pallas", "pallas_mosaic", "pallas_triton")
# The fused kernel's CUDA form per implementation ("pallas": the kernel's own choice, Mosaic GPU
# for 16-bit calls on a Hopper GPU, else Triton; see pallas_kernels/dequant_matmul/kernel.py).
_GPU_KERNEL = {"pallas": "auto", "pallas_mosaic": "mosaic", "pallas_triton": "triton"}
_ARRAYS = ("planes", "coeffs", "scales", "zeros", "perm")


class QuantizedArray(nnx.Variable):
  """Packed codes, planes, scales or coefficients of a quantized kernel (never trained)."""


class QuantizedKernel(nnx.Module):
  """A quantized `[*in_shape, *out_shape]` kernel (see the module docstring).

  Args:
    weight: the `QuantizedWeight` of `W [d_out, d_in]` with `d_in = prod(in_shape)`,
      `d_out = prod(out_shape)`.
    kernel_shape: the float kernel's shape.
    in_dims: how many leading axes of the kernel are contracted with the input.
    dtype: the float kernel's dtype (what `kernel[...]` returns).
    implementation: "xla" (reference), "pallas" (fused kernel), or "pallas_mosaic" /
      "pallas_triton" (fused kernel, CUDA form forced).
  """

  def __init__(
    self,
    weight: QuantizedWeight,
    *,
    kernel_shape: tuple[int, ...],
    in_dims: int,
    dtype=jnp.float32,
    implementation: str = "xla",
  ):
    kernel_shape = tuple(int(s) for s in kernel_shape)
    if not 0 < in_dims < len(kernel_shape):
      raise ValueError(f"in_dims={in_dims} must split kernel shape {kernel_shape}")
    d_in, d_out = math.prod(kernel_shape[:in_dims]), math.prod(kernel_shape[in_dims:])
    if tuple(weight.shape) != (d_out, d_in):
      raise ValueError(
        f"quantized weight has shape {weight.shape}; kernel {kernel_shape} with in_dims="
        f"{in_dims} needs [d_out, d_in] = {(d_out, d_in)}"
      )
    check_implementation(implementation)
    self.kernel_shape, self.in_dims = kernel_shape, in_dims
    self.dtype = jnp.dtype(dtype).name
    self.implementation = implementation
    self.kind, self.bits, self.group_size = weight.kind, weight.bits, weight.group_size
    self.method, self.shape_2d = weight.method, tuple(weight.shape)
    for name in _ARRAYS:
      value = getattr(weight, name)
      setattr(self, name, None if value is None else QuantizedArray(value))

  @property
  def shape(self) -> tuple[int, ...]:
    return self.kernel_shape

  def weight(self) -> QuantizedWeight:
    """The stored `QuantizedWeight` (arrays read from the variables)."""
    arrays = {n: (None if getattr(self, n) is None else getattr(self, n)[...]) for n in _ARRAYS}
    return QuantizedWeight(
      **arrays,
      kind=self.kind,
      bits=self.bits,
      group_size=self.group_size,
      shape=self.shape_2d,
      method=self.method,
    )

  def __getitem__(self, index):
    """The dequantized kernel `[*in_shape, *out_shape]` in the original dtype."""
    w = self.weight().dequantize(jnp.float32)  # [d_out, d_in]
    return w.T.reshape(self.kernel_shape).astype(self.dtype)[index]

  def apply(self, x: jax.Array, dtype) -> jax.Array:
    """`x [..., *in_shape] -> [..., *out_shape]` in `dtype`, dequantizing on the fly."""
    k = self.kernel_shape[: self.in_dims]
    if tuple(x.shape[x.ndim - self.in_dims :]) != k:
      raise ValueError(f"input trailing shape {x.shape[x.ndim - self.in_dims :]} != kernel's {k}")
    lead = x.shape[: x.ndim - self.in_dims]
    x2 = x.reshape(-1, self.shape_2d[1]).astype(dtype)
    if self.implementation in _GPU_KERNEL:
      y = registry.DEQUANT_MATMUL_KERNELS.get("pallas")(
        x2, self.weight(), dtype=dtype, gpu_kernel=_GPU_KERNEL[self.implementation]
      )
    else:
      y = dequant_matmul_reference(x2, self.weight(), dtype=dtype)
    return y.reshape(*lead, *self.kernel_shape[self.in_dims :])


def check_implementation(implementation) -> str:
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
  return implementation


def quantized_kernels(model: nnx.Module) -> list[tuple[str, QuantizedKernel]]:
  """`(dotted path, kernel)` for every `QuantizedKernel` in `model`, in graph order."""
  return [
    (".".join(map(str, path)), node)
    for path, node in nnx.iter_graph(model)
    if isinstance(node, QuantizedKernel)
  ]


def set_implementation(model: nnx.Module, implementation: str) -> nnx.Module:
  """Switches every quantized kernel of `model` to "xla" or "pallas", in place."""
  check_implementation(implementation)
  for _, kernel in quantized_kernels(model):
    kernel.implementation = implementation
  return model
