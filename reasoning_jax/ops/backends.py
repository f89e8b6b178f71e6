"""The `implementation=` switch shared by the linear-recurrent ops (GLA, OVQ).

Each op has an always-working XLA path (its registered modes) and an optional kernel for its
chunk form, looked up by backend name in the op's kernel registry
(`reasoning_jax.registry.GLA_CHUNK_KERNELS`, `OVQ_CHUNK_KERNELS`). The kernel packages
register themselves there; the registry imports them on first lookup (kernel plugins), so the
ops never import a kernel package. An explicitly requested backend that cannot run raises.
"""

from __future__ import annotations

from typing import Any, Callable

from reasoning_jax import registry

IMPLEMENTATIONS = ("xla", "pallas")


def chunk_kernel(
  op: str, implementation: str | None, mode: str, *, kernels: registry.Registry[Any]
) -> Callable | None:
  """The chunk kernel to call, or None for the XLA path.

  Args:
    op: the op's name for messages ("GLA", "OVQ").
    implementation: None (XLA: the kernels are opt-in), "xla" or "pallas".
    mode: the requested form; the kernels implement "chunk" only.
    kernels: the op's kernel registry (backend name -> kernel).
  """
  if implementation is None:
    implementation = "xla"
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(
      f"implementation={implementation!r} is not a {op} implementation; choose "
      f"None or one of {list(IMPLEMENTATIONS)}"
    )
  if implementation == "xla":
    return None
  if mode != "chunk":
    raise ValueError(
      f'implementation="{implementation}" implements mode="chunk" only, got mode={mode!r}'
    )
  try:
    return kernels.get(implementation)
  except KeyError as e:
    raise RuntimeError(
      f'implementation="{implementation}" has no {op} chunk kernel: {e.args[0]}'
    ) from None
