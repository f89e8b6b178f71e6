"""The `implementation=` switch shared by the linear-recurrent ops (GLA, OVQ).

Each op has an always-working XLA path (its registered modes) and an optional Pallas kernel
for its chunk form; an explicitly requested backend that cannot run raises.
"""

from __future__ import annotations

import importlib
from typing import Callable

IMPLEMENTATIONS = ("xla", "pallas")


def chunk_kernel(
  op: str, implementation: str | None, mode: str, *, module: str, name: str
) -> Callable | None:
  """The Pallas chunk kernel to call, or None for the XLA path.

  Args:
    op: the op's name for messages ("GLA", "OVQ").
    implementation: None (XLA: the kernels are opt-in), "xla" or "pallas".
    mode: the requested form; the kernels implement "chunk" only.
    module, name: where the kernel lives (imported only when requested).
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
    raise ValueError(f'implementation="pallas" implements mode="chunk" only, got mode={mode!r}')
  try:
    return getattr(importlib.import_module(module), name)
  except ImportError as e:
    raise RuntimeError(
      f'implementation="pallas" needs the {module} package, which failed to import: {e}'
    ) from e
