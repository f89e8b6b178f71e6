"""`project(x, kernel, dtype, in_dims)`: the one entry point of every projection in the zoo.

`Attention`, `MomentumAttention` and the FFNs multiply by their kernels only through `project`,
which gives three things one place:

  * plain `nnx.Param` kernels: `contract(x, kernel)` (one 2-D GEMM between reshapes);
  * kernel modules compute their own product (`kernel.apply(x, dtype)`): the LoRA adapter
    (`layers.lora.LoRAKernel`) and the quantized kernel (`layers.quantized.QuantizedKernel`);
  * input capture for calibration (`capture_inputs()`): GPTQ / BPDQ need each projection's
    input to accumulate its Hessian `2 X X^T / N` (`reasoning_jax.quant.calibration`).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator

import jax
import jax.numpy as jnp
from flax import nnx

_CAPTURE: contextvars.ContextVar[list | None] = contextvars.ContextVar(
  "projection_capture", default=None
)


@contextlib.contextmanager
def capture_inputs() -> Iterator[list]:
  """Records `(kernel, x, in_dims)` for every `project` call inside the block, in call order.

  Used inside a traced function (the calibration pass): the recorded `x` are tracers that the
  function turns into Hessian sums and returns. Projections sharing one input (q/k/v,
  gate/up) record the same `x` object.
  """
  calls: list = []
  token = _CAPTURE.set(calls)
  try:
    yield calls
  finally:
    _CAPTURE.reset(token)


def contract(x: jax.Array, w: jax.Array, in_dims: int) -> jax.Array:
  """Contracts the last `in_dims` axes of `x` with the first `in_dims` axes of `w`.

  As one 2-D matmul `[rows, in] @ [in, out]` between reshapes (leading axes merged, the
  kernel's head axes merged): the same sums, and XLA:CPU runs it as a plain GEMM where a
  `dot_general` over 3-D operands took ~20% longer forward + backward (benchmarks/rl_step.py).
  The merges keep the major axis of each group, so batch / head shardings carry through.
  """
  lead, ins, outs = x.shape[: x.ndim - in_dims], x.shape[x.ndim - in_dims :], w.shape[in_dims:]
  k, n = math.prod(ins), math.prod(outs)
  y = jnp.matmul(x.reshape(-1, k), w.reshape(k, n))
  return y.reshape(*lead, *outs)


def project(x: jax.Array, kernel, dtype, in_dims: int = 1) -> jax.Array:
  """`x @ kernel` over the last `in_dims` axes of `x`; adapter- and quantization-aware.

  A plain `nnx.Param` kernel gives exactly `x . kernel.astype(dtype)`; a kernel module
  (`LoRAKernel`, `QuantizedKernel`) computes its own product. Shapes: `x` `[..., *in]`,
  kernel `[*in, *out]` -> `[..., *out]`.
  """
  calls = _CAPTURE.get()
  if calls is not None:
    calls.append((kernel, x, in_dims))
  if isinstance(kernel, nnx.Module):
    return kernel.apply(x, dtype)
  return contract(x, kernel[...].astype(dtype), in_dims)
