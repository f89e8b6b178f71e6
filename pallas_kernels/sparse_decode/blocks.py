"""Tile sizes and schedules of the sparse-decode kernels (`kernel.py`, `kernel_gpu.py`), as data.

Two schedules compute the same attention and scores:

  * "grid" (TPU, Mosaic; `kernel.py`): the token tiles (kernel A) or selected blocks (kernel B)
    are the sequential last grid axis; the processed heads and block ids are scalar-prefetched
    into the K/V index maps.
  * "loop" (GPU, Triton; `kernel_gpu.py`): one program per (row, head, split); the kernel reads
    heads and ids from refs and loops over its tiles with `lax.fori_loop`; split-K partials are
    merged in the wrapper.
  * "mosaic" (GPU, Mosaic GPU; `kernel_mgpu.py`): the loop schedule's split-K layout with
    TMA-pipelined K/V tiles and wgmma; 64 query rows per program. On a GPU the default when it
    can take the call (a Hopper GPU, 16-bit dtypes, `mosaic_unsupported`), else "loop".

"grid" and "loop" run in Pallas interpret mode on CPU, "mosaic" in JAX's GPU interpreter
(JAX >= 0.12). The GPU split sizes are untuned starting points:
measure with `benchmarks/sparse_decode.py --section gpu` and edit the constants, not the kernels.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

DEFAULT_KERNEL_BLOCK = 512  # tokens per kernel-A grid step (inference.md section 8.5)
# Split-K sizes of the loop schedule. A decode step has B x R (row, head) pairs, e.g. 8 at
# batch 1 with 8 KV heads, against an H100's 132 SMs: the splits supply the parallelism.
# Kernel A at 32k: 32 parts per pair; kernel B at budget 4096 (64 blocks of 64): 16 parts.
GPU_SPLIT_TOKENS = 1024  # tokens per kernel-A program in the loop schedule
GPU_SPLIT_BLOCKS = 4  # selected blocks per kernel-B program in the loop schedule
GPU_MIN_ROWS = 16  # Triton's tl.dot needs >= 16 rows: query rows are padded to this
LANES = 128  # TPU lane width: the grid schedule's D must be a multiple
MOSAIC_ROWS = 64  # Mosaic GPU: query rows per program (one warpgroup's wgmma M)
MOSAIC_DTYPES = ("bfloat16", "float16")

SCHEDULES = ("grid", "loop", "mosaic")
DEFAULT_SCHEDULE: dict[str, str] = {"tpu": "grid", "gpu": "loop", "cpu": "grid"}


@dataclasses.dataclass(frozen=True)
class TritonParams:
  """Triton launch parameters of the loop schedule."""

  num_warps: int = 4
  num_stages: int = 2


TRITON_PARAMS = TritonParams()


def default_schedule(backend: str) -> str:
  """The schedule a backend runs compiled ("cpu" means interpret mode: the grid schedule)."""
  return DEFAULT_SCHEDULE.get(backend, "grid")


def padded_rows(group: int) -> int:
  """Query rows per head in the loop schedule: a power of two >= max(16, G + 1) (room for
  kernel A's qbar row)."""
  n = GPU_MIN_ROWS
  while n < group + 1:
    n *= 2
  return n


def _is_pow2(x: int) -> bool:
  return x > 0 and not x & (x - 1)


def mosaic_unsupported(head_dim: int, block_size: int, group: int, dtype) -> str | None:
  """Why the Mosaic GPU kernels cannot take these sizes / this dtype compiled, or None."""
  if jnp.dtype(dtype).name not in MOSAIC_DTYPES:
    return (
      f"the Mosaic GPU sparse-decode kernels compute in {' or '.join(MOSAIC_DTYPES)} (wgmma), "
      f"got {jnp.dtype(dtype).name}"
    )
  if head_dim % 64 or head_dim > 256:
    return f"the Mosaic GPU sparse-decode kernels need head dim D a multiple of 64 up to 256, got {head_dim}"
  if block_size % 16 or block_size > 256:
    return f"the Mosaic GPU sparse-decode kernels need block_size a multiple of 16 up to 256, got {block_size}"
  if group > MOSAIC_ROWS - 1:
    return f"the Mosaic GPU sparse-decode kernels take at most {MOSAIC_ROWS - 1} query heads per KV head, got G={group}"
  return None


def check_schedule(
  schedule: str | None,
  *,
  backend: str,
  head_dim: int,
  block_size: int,
  interpret: bool,
  group: int = 1,
  dtype=None,
  gpu_default: str = "loop",
) -> str:
  """Resolves `schedule` (None: `default_schedule(backend)`) and checks what a compiled call
  needs; raises ValueError naming the argument. Interpreted calls take any sizes.

  Lowering for another platform from this host (as the tests do) is not checked: `backend` is
  the default backend a compiled call would run on. `gpu_default` is what None means on a GPU
  (the caller's "mosaic" or "loop" choice).
  """
  if schedule is not None and schedule not in SCHEDULES:
    raise ValueError(f"schedule must be None or one of {SCHEDULES}, got {schedule!r}")
  if schedule is None and backend == "gpu":
    schedule = gpu_default
  schedule = schedule or default_schedule(backend)
  if interpret:
    return schedule
  if backend == "gpu" and schedule == "grid":
    raise ValueError(
      "schedule='grid' is the TPU schedule (scalar prefetch lowers for TPU only); on GPU use "
      "schedule='loop' (the default there), interpret=True, or the XLA kernels"
    )
  if backend == "tpu" and schedule in ("loop", "mosaic"):
    raise ValueError(
      f"schedule={schedule!r} is a GPU schedule; on TPU use schedule='grid' (the default there)"
    )
  if schedule == "mosaic" and dtype is not None:
    reason = mosaic_unsupported(head_dim, block_size, group, dtype)
    if reason is not None:
      raise ValueError(f"schedule='mosaic': {reason} (use schedule='loop' or the XLA kernels)")
  if schedule == "grid" and backend == "tpu" and (head_dim % LANES or block_size % 8):
    raise ValueError(
      f"on TPU the sparse-decode kernels need D % 128 == 0 and block_size % 8 == 0, got "
      f"D={head_dim}, block_size={block_size} (use interpret=True or the XLA path)"
    )
  if schedule == "loop":
    for name, x in (("head dim D", head_dim), ("block_size", block_size)):
      if x < 16 or not _is_pow2(x):
        raise ValueError(
          f"the GPU (Triton) sparse-decode kernels need {name} to be a power of two >= 16, "
          f"got {x} (use interpret=True or the XLA kernels)"
        )
  return schedule


def _largest_multiple(s: int, block_size: int, cap: int) -> int:
  n = max(cap, block_size) // block_size
  while n > 1 and s % (n * block_size):
    n -= 1
  return n * block_size


def _check_token_tile(name: str, value, s: int, block_size: int) -> int:
  if not isinstance(value, int) or value < 1 or value % block_size or s % value:
    raise ValueError(
      f"{name}={value!r} must be a positive multiple of block_size={block_size} "
      f"dividing the cache length S={s}"
    )
  return value


def choose_kernel_block(s: int, block_size: int, kernel_block: int | None = None) -> int:
  """Tokens per kernel-A step of the grid schedule: a multiple of `block_size` dividing S.

  Default: the largest multiple of `block_size` that divides S and is at most
  `max(block_size, 512)` (S itself when S <= 512).

  Raises:
    ValueError naming `kernel_block` when an explicit value is not a positive multiple of
    `block_size` dividing S.
  """
  if kernel_block is not None:
    return _check_token_tile("kernel_block", kernel_block, s, block_size)
  return _largest_multiple(s, block_size, min(s, DEFAULT_KERNEL_BLOCK))


def choose_split_tokens(s: int, block_size: int, kernel_block: int | None = None) -> int:
  """Tokens per kernel-A program of the loop schedule (one split-K part): as
  `choose_kernel_block` with the cap `GPU_SPLIT_TOKENS`."""
  if kernel_block is not None:
    return _check_token_tile("kernel_block", kernel_block, s, block_size)
  return _largest_multiple(s, block_size, min(s, GPU_SPLIT_TOKENS))


def choose_split_blocks(n_sel: int, blocks_per_split: int | None = None) -> int:
  """Selected blocks per kernel-B program of the loop schedule (default `GPU_SPLIT_BLOCKS`,
  at most n_sel).

  Raises:
    ValueError naming `blocks_per_split` when an explicit value is not a positive int.
  """
  if blocks_per_split is None:
    return min(n_sel, GPU_SPLIT_BLOCKS)
  if not isinstance(blocks_per_split, int) or isinstance(blocks_per_split, bool):
    raise ValueError(f"blocks_per_split must be a positive int, got {blocks_per_split!r}")
  if blocks_per_split < 1:
    raise ValueError(f"blocks_per_split must be a positive int, got {blocks_per_split!r}")
  return min(n_sel, blocks_per_split)
