"""The GPU backends the kernels lower through: Pallas' Triton backend, and Mosaic GPU.

JAX deprecated Pallas' Triton backend in 0.11 in favour of Mosaic GPU (0.12 still ships it).
No kernel's TPU form or interpret mode needs it, so every kernel imports it only here, inside
its GPU branch: on a JAX that has dropped it the kernels still run on TPU and in interpret
mode, and a GPU run fails at trace time with a message naming the XLA path to use instead
(flash attention goes further: `ops.attention` picks XLA by itself, via
`flash_attention.unsupported_reason`).

Mosaic GPU (`jax.experimental.pallas.mosaic_gpu`, Hopper and newer) is the successor; the
kernels ported to it (the dequant matmul so far) use the helpers below, which also paper over
the API differences between the JAX versions we support (0.10: `plgpu.load(ref, idx)`,
`plgpu.transpose_ref`, a private interpreter; 0.12: `plgpu.load(ref.at[idx])`,
`ref.transpose`, `plgpu.InterpretGPUParams`).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

import jax

__all__ = [
  "gpu_branches",
  "gpu_compute_capability",
  "mosaic_gpu_missing",
  "wgmma_unavailable",
  "mosaic_interpret",
  "mosaic_interpret_missing",
  "mosaic_interpret_params",
  "mosaic_kernel_name",
  "mosaic_load",
  "mosaic_tile_transforms",
  "mosaic_transpose",
  "triton_compiler_params",
  "triton_missing",
]


def triton_missing() -> str | None:
  """Why this JAX cannot lower the kernels for GPU (no Pallas Triton backend), or None."""
  try:
    from jax.experimental.pallas import triton  # noqa: F401
  except ImportError as e:
    return (
      f"this JAX ({jax.__version__}) has no Pallas Triton backend, which the kernels' GPU "
      f"forms use (deprecated in JAX 0.11 for Mosaic GPU): {e}"
    )
  return None


def triton_compiler_params(*, num_warps: int, num_stages: int, kernel: str, instead: str) -> Any:
  """`pltriton.CompilerParams(num_warps, num_stages)`; RuntimeError naming `kernel` and the
  path to use `instead` when this JAX lacks the Triton backend."""
  reason = triton_missing()
  if reason is not None:
    raise RuntimeError(f"{kernel} cannot run on a GPU: {reason}; use {instead}")
  from jax.experimental.pallas import triton as pltriton

  return pltriton.CompilerParams(num_warps=num_warps, num_stages=num_stages)


def gpu_branches(
  make: Callable[[Any], Callable], *, num_warps: int, num_stages: int, kernel: str, instead: str
) -> dict[str, Callable]:
  """The `cuda` / `rocm` branches of a `jax.lax.platform_dependent` call: `make(params)` with
  the Triton compiler parameters. Without the Triton backend: no branches (lowering for TPU
  or running in interpret mode is unaffected), or, when this process runs on a GPU, the
  RuntimeError of `triton_compiler_params`."""
  if triton_missing() is not None and jax.default_backend() != "gpu":
    return {}
  params = triton_compiler_params(
    num_warps=num_warps, num_stages=num_stages, kernel=kernel, instead=instead
  )
  branch = make(params)
  return {"cuda": branch, "rocm": branch}


def gpu_compute_capability() -> float | None:
  """The compute capability of the first attached GPU (9.0 for an H100), or None when this
  process has no GPU (e.g. lowering for CUDA ahead of time on a CPU host)."""
  if jax.default_backend() != "gpu":
    return None
  try:
    return float(jax.devices()[0].compute_capability)
  except (AttributeError, TypeError, ValueError):
    return None


def wgmma_unavailable() -> str | None:
  """Why the attached GPU cannot run the wgmma-based Mosaic GPU kernels, or None.

  wgmma is Hopper's (sm_90) warpgroup MMA: Ampere and older lack it and Blackwell (sm_100,
  sm_120) replaced it (tcgen05), so only 9.x qualifies. With no GPU attached (lowering for
  CUDA ahead of time) the kernels are not refused."""
  capability = gpu_compute_capability()
  if capability is None or 9.0 <= capability < 10.0:
    return None
  return f"the Mosaic GPU kernels use wgmma, which needs a Hopper GPU (sm_90), this GPU is sm_{capability}"


def mosaic_gpu_missing() -> str | None:
  """Why this JAX cannot build Mosaic GPU kernels (`plgpu.kernel`), or None."""
  try:
    from jax.experimental.pallas import mosaic_gpu as plgpu
  except ImportError as e:
    return f"this JAX ({jax.__version__}) has no Pallas Mosaic GPU backend: {e}"
  if not hasattr(plgpu, "kernel"):
    return f"this JAX ({jax.__version__}) has no jax.experimental.pallas.mosaic_gpu.kernel"
  return None


def _interpret_params_class():
  from jax.experimental.pallas import mosaic_gpu as plgpu

  return getattr(plgpu, "InterpretGPUParams", None)


def mosaic_interpret_missing() -> str | None:
  """Why JAX's GPU interpreter cannot run the Mosaic GPU kernels here, or None.

  JAX 0.12 exports `plgpu.InterpretGPUParams`; 0.10's private interpreter cannot evaluate
  `plgpu.load` (an assertion in its abstract evaluation), so the kernels are only lowered there.
  """
  reason = mosaic_gpu_missing()
  if reason is None and _interpret_params_class() is None:
    reason = (
      f"this JAX ({jax.__version__}) has no public GPU interpreter for Mosaic GPU kernels "
      "(jax.experimental.pallas.mosaic_gpu.InterpretGPUParams, JAX >= 0.12)"
    )
  return reason


def mosaic_interpret_params() -> Any:
  """`plgpu.InterpretGPUParams()`: runs a Mosaic GPU kernel on the CPU; RuntimeError with
  `mosaic_interpret_missing`'s reason when this JAX has none."""
  reason = mosaic_interpret_missing()
  if reason is not None:
    raise RuntimeError(reason)
  return _interpret_params_class()()


def mosaic_interpret(interpret: Any) -> Any:
  """The `interpret=` of `plgpu.kernel` for a kernel's `interpret` argument: None when false,
  the given `plgpu.InterpretGPUParams` (e.g. with `detect_races=True`), else the defaults."""
  if not interpret:
    return None
  cls = _interpret_params_class()
  if cls is not None and isinstance(interpret, cls):
    return interpret
  return mosaic_interpret_params()


def mosaic_load(ref, idx: tuple, layout, *, optimized: bool = True) -> jax.Array:
  """`ref[idx]` loaded into registers with `layout` (`plgpu.load`, whose signature changed).

  `optimized=False` allows a global-memory load that has no vectorised plan (JAX 0.10 refuses
  a tiled-layout load from GMEM otherwise, e.g. a `[64]` int32 vector in `WGMMA.reduce(1)`)."""
  from jax.experimental.pallas import mosaic_gpu as plgpu

  if "idx" in inspect.signature(plgpu.load).parameters:
    return plgpu.load(ref, idx, layout=layout, optimized=optimized)
  return plgpu.load(ref.at[idx] if idx else ref, layout=layout, optimized=optimized)


def mosaic_tile_transforms(dtype, minor: int) -> tuple:
  """Shared-memory tiling + swizzle for a 2-D tile whose minor dimension has `minor` elements
  of `dtype` (what TMA copies and wgmma operands of such tiles expect)."""
  import jax.numpy as jnp
  from jax.experimental.pallas import mosaic_gpu as plgpu

  bits = jnp.dtype(dtype).itemsize * 8
  swizzle = plgpu.find_swizzle(minor * bits, "minor dimension")
  return (plgpu.TilingTransform((8, swizzle * 8 // bits)), plgpu.SwizzleTransform(swizzle))


def mosaic_transpose(ref):
  """A 2-D shared-memory ref read transposed (wgmma's transposed operand)."""
  if hasattr(ref, "transpose"):
    return ref.transpose((1, 0))
  from jax.experimental.pallas import mosaic_gpu as plgpu

  return plgpu.transpose_ref(ref, (1, 0))


def mosaic_kernel_name(name: str) -> dict[str, str]:
  """`plgpu.kernel` keyword naming the kernel in profiles and HLO, where this JAX takes one."""
  from jax.experimental.pallas import mosaic_gpu as plgpu

  fields = {f.name for f in dataclasses.fields(plgpu.Mesh)}
  return {"kernel_name": name} if "kernel_name" in fields else {}
