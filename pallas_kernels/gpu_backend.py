"""The Pallas Triton backend that the kernels' GPU forms lower through, and life without it.

JAX deprecated Pallas' Triton backend in 0.11 in favour of Mosaic GPU (0.12 still ships it).
No kernel's TPU form or interpret mode needs it, so every kernel imports it only here, inside
its GPU branch: on a JAX that has dropped it the kernels still run on TPU and in interpret
mode, and a GPU run fails at trace time with a message naming the XLA path to use instead
(flash attention goes further: `ops.attention` picks XLA by itself, via
`flash_attention.unsupported_reason`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax

__all__ = ["gpu_branches", "triton_compiler_params", "triton_missing"]


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
