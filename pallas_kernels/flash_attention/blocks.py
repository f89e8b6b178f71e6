"""Block sizes, schedules and layout constants of the flash-attention kernel, as data.

Two schedules share the same per-block math (see `common.py`):

  * "grid" (TPU, Mosaic): the key-block loop is the innermost, sequential grid
    axis; K/V blocks arrive through BlockSpec index maps (clamped to the visible
    range, so skipped blocks are neither fetched nor computed) and the online
    softmax state lives in VMEM scratch. VMEM use is O(block), any T fits.
  * "loop" (GPU, Triton): one program per query block; K/V for the whole
    (padded) sequence are passed as one block (Triton only takes pointers) and
    the kernel loops over the visible key blocks with `lax.fori_loop`.

Both run in Pallas interpret mode on CPU. Defaults are untuned starting points:
measure with `benchmarks/attention.py` and edit the tables, not the kernel.
"""

from __future__ import annotations

import dataclasses

# Mosaic TPU tiling: the last two block dims must be multiples of
# (TPU_SUBLANES, TPU_LANES) or equal the array dims. Row statistics (logsumexp,
# delta) and segment ids are therefore stored lane-broadcast as [..., T, 128]
# ("column" form) or sublane-broadcast as [..., 8, T] ("row" form), as the TPU
# kernels shipped with JAX do.
TPU_LANES = 128
TPU_SUBLANES = 8

SCHEDULES = ("grid", "loop")


@dataclasses.dataclass(frozen=True)
class BlockSizes:
  """Query/key block sizes (rows of Q and rows of K/V per kernel step)."""

  block_q: int
  block_k: int


@dataclasses.dataclass(frozen=True)
class TritonParams:
  """Triton launch parameters for the "loop" schedule on GPU."""

  num_warps: int = 4
  num_stages: int = 2


# Per-backend defaults (jax.default_backend() names). "cpu" means interpret mode.
DEFAULT_SCHEDULE: dict[str, str] = {"tpu": "grid", "gpu": "loop", "cpu": "grid"}
DEFAULT_BLOCK_SIZES: dict[str, BlockSizes] = {
  "tpu": BlockSizes(block_q=128, block_k=128),  # Multiples of 128 lanes.
  "gpu": BlockSizes(block_q=64, block_k=64),  # Powers of two >= 16 (tl.dot).
  "cpu": BlockSizes(block_q=128, block_k=128),
}
TRITON_PARAMS = TritonParams(num_warps=4, num_stages=2)


def default_schedule(backend: str) -> str:
  return DEFAULT_SCHEDULE.get(backend, "grid")


def default_block_sizes(backend: str) -> BlockSizes:
  return DEFAULT_BLOCK_SIZES.get(backend, DEFAULT_BLOCK_SIZES["cpu"])


def stat_layout(schedule: str) -> tuple[int, int]:
  """(lanes, sublanes) of the broadcast row-statistic / segment-id layouts."""
  return (TPU_LANES, TPU_SUBLANES) if schedule == "grid" else (1, 1)


def _round_up(x: int, m: int) -> int:
  return -(-x // m) * m


def _next_pow2(x: int) -> int:
  return 1 << max(x - 1, 0).bit_length()


def fit_block_sizes(
  seq_len: int, block_q: int, block_k: int, *, schedule: str, compiled: bool
) -> tuple[int, int, int]:
  """Clamps block sizes to the sequence and returns `(block_q, block_k, padded_len)`.

  Blocks larger than the (aligned) sequence shrink to it, so tiny inputs run as
  one block; the sequence is then padded to a multiple of the larger block.

  Args:
    seq_len: T.
    block_q, block_k: requested sizes, positive multiples of 8.
    schedule: "grid" or "loop".
    compiled: whether the kernel is compiled (not interpreted): adds the
      Mosaic/Triton constraints.

  Raises:
    ValueError: naming the block argument and the constraint it breaks.
  """
  for name, b in (("block_q", block_q), ("block_k", block_k)):
    if not isinstance(b, int) or isinstance(b, bool) or b <= 0 or b % 8:
      raise ValueError(f"{name} must be a positive multiple of 8, got {b!r}")
  if schedule == "loop" and compiled:
    cap = _next_pow2(max(seq_len, 16))
  else:
    cap = _round_up(seq_len, 8)
  bq, bk = min(block_q, cap), min(block_k, cap)
  if max(bq, bk) % min(bq, bk):
    bq = bk = max(bq, bk)  # Only reachable after clamping: run one block each.
  padded = _round_up(seq_len, max(bq, bk))
  if compiled and schedule == "grid":
    for name, b in (("block_q", bq), ("block_k", bk)):
      if b % TPU_LANES and b != padded:
        raise ValueError(
          f"{name}={b} must be a multiple of {TPU_LANES} (or cover the whole padded "
          f"sequence, {padded}) for the TPU (Mosaic) kernel"
        )
  if compiled and schedule == "loop":
    for name, b in (("block_q", bq), ("block_k", bk)):
      if b < 16 or b & (b - 1):
        raise ValueError(f"{name}={b} must be a power of two >= 16 for the GPU (Triton) kernel")
  return bq, bk, padded


def padded_head_dim(head_dim: int, *, schedule: str, compiled: bool) -> int:
  """Triton needs power-of-two tiles >= 16; Mosaic takes the full head_dim."""
  if schedule == "loop" and compiled:
    return max(16, _next_pow2(head_dim))
  return head_dim
