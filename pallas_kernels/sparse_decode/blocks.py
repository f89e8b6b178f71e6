"""Tile sizes of the sparse-decode kernels (`kernel.py`)."""

from __future__ import annotations

DEFAULT_KERNEL_BLOCK = 512  # tokens per kernel-A grid step (inference.md section 8.5)


def choose_kernel_block(s: int, block_size: int, kernel_block: int | None = None) -> int:
  """Tokens per kernel-A step: a multiple of `block_size` dividing S.

  Default: the largest multiple of `block_size` that divides S and is at most
  `max(block_size, 512)` (S itself when S <= 512).

  Raises:
    ValueError naming `kernel_block` when an explicit value is not a positive multiple of
    `block_size` dividing S.
  """
  if kernel_block is not None:
    if (
      not isinstance(kernel_block, int)
      or kernel_block < 1
      or kernel_block % block_size
      or s % kernel_block
    ):
      raise ValueError(
        f"kernel_block={kernel_block!r} must be a positive multiple of block_size={block_size} "
        f"dividing the cache length S={s}"
      )
    return kernel_block
  cap = min(s, max(block_size, DEFAULT_KERNEL_BLOCK))
  n = cap // block_size
  while n > 1 and s % (n * block_size):
    n -= 1
  return n * block_size
