"""`quantize_model`: RTN / GPTQ / BPDQ on every projection of a zoo model, block by block.

"GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers" (Frantar
et al., arXiv:2210.17323) and "BPDQ: Bit-Plane Decomposition Quantization on a Variable Grid for
Large Language Models" (Chen et al., arXiv:2602.04163); `shared/methods/inference.md` sections
3-4.

  >>> report = quantize_model(model, batches, method="bpdq", bits=2, group_size=256)
  >>> generate(model, ...)       # every q/k/v/o and MLP projection is a QuantizedKernel now

The model is changed in place (like `lora.apply_lora`) and then runs unchanged through
`generate`, `logprobs` and the RL rollouts: each target `nnx.Param` kernel becomes a
`layers.quantized.QuantizedKernel`. Embeddings, norms and the LM head stay in full precision
(the GPTQ / BPDQ convention).

Calibration order (`sequential`, the GPTQ convention; flag):
  * "true" (default; GPTQModel's `true_sequential`, which BPDQ runs in): inside each block the
    projections are quantized input group by input group in call order (q/k/v, then o, then
    gate/up, then down), each group's Hessian captured with the groups before it already
    quantized; the next block's inputs come from the quantized block.
  * "layer": one capture per block with the block in full precision, then all its projections
    are quantized; the next block sees the quantized block's outputs.
  * "parallel": every Hessian comes from the full-precision model (inputs propagate through
    the unquantized blocks).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from absl import logging
from flax import nnx

from reasoning_jax.layers.quantized import QuantizedKernel, check_implementation, quantized_kernels
from reasoning_jax.quant import calibration
from reasoning_jax.quant.metric import weighted_error
from reasoning_jax.quant.options import QuantConfig
from reasoning_jax.quant.quantize import quantize

# Every attention and MLP projection of the Llama / Qwen decoder, as paths inside a block
# (the same kernels LoRA targets by default).
DEFAULT_TARGETS = r"(mixer\.(q|k|v|o)_proj|ffn\.(gate|up|down))"
SEQUENTIAL = ("true", "layer", "parallel")


@dataclasses.dataclass
class KernelReport:
  """What quantizing one kernel did: `error = tr((W - Q) H (W - Q)^T)` in the calibration
  Hessian, its value relative to `tr(W H W^T)`, bits per weight, bytes, seconds."""

  path: str
  shape: tuple[int, int]
  error: float
  relative_error: float
  bits_per_weight: float
  nbytes: int
  seconds: float


def _parent(root: nnx.Module, parts: Sequence[str]):
  node = root
  for key in parts[:-1]:
    node = node[int(key)] if key.isdigit() else getattr(node, key)
  return node


def get_at(root: nnx.Module, dotted: str):
  """The node at a dotted graph path (`layers.0.mixer.q_proj`) of `root`."""
  parts = dotted.split(".")
  parent, last = _parent(root, parts), parts[-1]
  return parent[int(last)] if last.isdigit() else getattr(parent, last)


def set_at(root: nnx.Module, dotted: str, value) -> None:
  """Replaces the attribute at a dotted graph path of `root` (a kernel by its module)."""
  parts = dotted.split(".")
  setattr(_parent(root, parts), parts[-1], value)


def _quantize_kernel(
  block: nnx.Module,
  call: calibration.KernelCall,
  hessian: jax.Array,
  config: QuantConfig,
  implementation: str,
  name: str,
) -> KernelReport:
  param = get_at(block, call.path)
  if isinstance(param, QuantizedKernel) or not isinstance(param, nnx.Param):
    raise ValueError(f"{name} is not a float nnx.Param kernel (got {type(param).__name__})")
  kernel = param[...]
  shape = tuple(kernel.shape)
  d_in = call.d_in
  w = kernel.astype(jnp.float32).reshape(d_in, -1).T  # the spec's W [d_out, d_in]
  start = time.perf_counter()
  try:
    qw = quantize(w, hessian, config=config)
  except ValueError as e:
    raise ValueError(f"quantizing {name} {tuple(w.shape)}: {e}") from e
  q = qw.dequantize(jnp.float32)
  jax.block_until_ready(q)
  seconds = time.perf_counter() - start
  err = float(weighted_error(w, q, hessian))
  rel = err / max(float(weighted_error(w, jnp.zeros_like(w), hessian)), 1e-30)
  set_at(
    block,
    call.path,
    QuantizedKernel(
      qw,
      kernel_shape=shape,
      in_dims=call.in_dims,
      dtype=kernel.dtype,
      implementation=implementation,
    ),
  )
  return KernelReport(name, tuple(w.shape), err, rel, qw.bits_per_weight, qw.nbytes, seconds)


def quantize_model(
  model: nnx.Module,
  batches: Sequence[dict[str, Any]],
  *,
  config: QuantConfig | None = None,
  targets: str = DEFAULT_TARGETS,
  sequential: str = "true",
  implementation: str = "xla",
  **overrides,
) -> list[KernelReport]:
  """Quantizes `model`'s projections in place with calibration `batches`; returns the reports.

  Args:
    model: a zoo `Transformer` (from a preset or `from_hf`), float weights.
    batches: calibration token batches `{"input_ids": [B, T], "attention_mask": [B, T]}`
      (e.g. from the grain pipelines; RTN ignores them beyond checking the kernels exist).
    config: the per-weight flags (`QuantConfig`: method, bits, group_size, damping, ...);
      keyword `overrides` replace its fields (`method="gptq", bits=3`).
    targets: regex fullmatched against each kernel's path inside its block
      (`mixer.q_proj`, `ffn.down`; default: every attention and MLP projection).
    sequential: "true" | "layer" | "parallel" (see the module docstring).
    implementation: "xla" or "pallas" for the quantized kernels' matmul ("pallas_mosaic" /
      "pallas_triton": the fused kernel with its CUDA form forced; `layers.quantized`).

  Raises:
    ValueError: bad flags (naming them), a model that is already quantized, targets matching
      no kernel, a target kernel that is never multiplied through `project`, or a Hessian
      that stays singular after damping escalation (naming the kernel).
  """
  config = (config or QuantConfig()).replace(**overrides).validate()
  check_implementation(implementation)
  if sequential not in SEQUENTIAL:
    raise ValueError(f"sequential must be one of {SEQUENTIAL}, got {sequential!r}")
  if quantized_kernels(model):
    raise ValueError("quantize_model: the model is already quantized")
  inputs = calibration.embed_batches(model, batches)
  reports: list[KernelReport] = []
  chosen_any = False
  for index, block in enumerate(model.layers):
    groups = calibration.call_groups(block, inputs[0])
    groups = [
      [c for c in group if calibration.match_targets([c.path], targets)] for group in groups
    ]
    groups = [g for g in groups if g]
    chosen_any = chosen_any or bool(groups)
    float_outputs = calibration.propagate(block, inputs) if sequential == "parallel" else None
    if sequential == "true":
      plan = groups
    else:
      plan = [[c for g in groups for c in g]] if groups else []
    for group in plan:
      hessians = calibration.capture_hessians(block, inputs, [c.path for c in group])
      for call in group:
        name = f"layers.{index}.{call.path}"
        reports.append(
          _quantize_kernel(block, call, hessians[call.path], config, implementation, name)
        )
        r = reports[-1]
        logging.info(
          "%s %s: rel. error %.4g, %.4f bits/weight, %.2fs",
          name,
          config.method,
          r.relative_error,
          r.bits_per_weight,
          r.seconds,
        )
    inputs = float_outputs if float_outputs is not None else calibration.propagate(block, inputs)
  if not chosen_any:
    raise ValueError(f"targets={targets!r} matches no projection of the model's blocks")
  return reports


def model_bytes(model: nnx.Module) -> int:
  """Bytes of every array in the model's state (quantized codes and float parameters)."""
  leaves = jax.tree_util.tree_leaves(nnx.state(model))
  return sum(int(x.size) * jnp.dtype(x.dtype).itemsize for x in leaves)


def quantized_bytes(model: nnx.Module) -> tuple[int, int]:
  """`(bytes of the quantized kernels' arrays, their weights' count)`."""
  kernels = [n for _, n in nnx.iter_graph(model) if isinstance(n, QuantizedKernel)]
  return sum(k.weight().nbytes for k in kernels), sum(
    k.shape_2d[0] * k.shape_2d[1] for k in kernels
  )


def float_bytes(model: nnx.Module, dtype=jnp.bfloat16) -> int:
  """Bytes the same model takes with every weight (quantized ones dequantized) in `dtype`."""
  total = 0
  for _, node in nnx.iter_graph(model):
    if isinstance(node, QuantizedKernel):
      total += node.shape_2d[0] * node.shape_2d[1] * jnp.dtype(dtype).itemsize
  leaves = jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))
  return total + sum(int(x.size) * jnp.dtype(dtype).itemsize for x in leaves)
