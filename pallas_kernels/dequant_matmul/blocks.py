"""Block sizes and argument checks of the fused dequant-matmul kernel.

"BPDQ: Bit-Plane Decomposition Quantization on a Variable Grid for Large Language Models"
(Chen et al., arXiv:2602.04163); the tiling of `shared/methods/inference.md` section 4.4.

Two schedules (`kernel.py`):
  * "grid" (TPU, and every interpret run): grid `(M / bm, N / bn, K / bk)` with K the
    sequential ("arbitrary") reduction axis; `bk` is the group size or a multiple of it, so
    one step reads whole groups' coefficients.
  * "loop" (GPU, Triton): grid `(M / bm, N / bn)`, each program walks the groups of K in a
    `fori_loop`; Triton needs power-of-two tiles and `bm >= 16` for its dot.
  * "mosaic" (GPU, Mosaic GPU, `kernel_mgpu.py`): grid `(N / 64, M / bm)`, 64 weight rows per
    program (wgmma M), x rows `bm` (wgmma N: a multiple of 8, at most 256), K in steps of 64.

DESIGN CHOICE (defaults): `bm` is the next power of two of M, at least the sublane tile of
the dtype (8 for 32-bit, 16 for 16-bit, 16 on GPU) and at most 256 (128 on GPU); decode
(M <= 16) takes the widest lane-aligned `bn` that divides d_out (1024..128 on TPU, it is
bandwidth-bound; 64 on GPU so that a 4096-wide layer spreads over 64 programs), prefill
512..128 (128..16 on GPU); `bk` is `max(g, 256)` groups-wide when that divides d_in. Mosaic
GPU: `bm` the next power of two of M, between 8 and 128; `bn = bk = 64` (fixed).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

WORD_BITS = 32
DECODE_ROWS = 16  # M at or below this is a decode-shaped (bandwidth-bound) call
MOSAIC_ROWS = 64  # Mosaic GPU: weight rows per program (one warpgroup's wgmma M)
MOSAIC_STEP = 64  # Mosaic GPU: input columns per pipeline step (two int32 words)
MOSAIC_DTYPES = ("bfloat16", "float16")  # wgmma's register operand
SCHEDULES = ("grid", "loop", "mosaic")


@dataclasses.dataclass(frozen=True)
class Blocks:
  """Tile sizes of one call: rows `bm`, output columns `bn`, input columns `bk` (grid only)."""

  bm: int
  bn: int
  bk: int


def _next_pow2(n: int) -> int:
  return 1 << max(0, int(n) - 1).bit_length()


def _check_block(value, name: str) -> None:
  if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
    raise ValueError(f"{name} must be a positive int or None, got {value!r}")


def check_group_size(group_size: int) -> None:
  """The kernel dequantises one 32-column word at a time, so a word must lie in one group."""
  if group_size % WORD_BITS:
    raise ValueError(
      f"qw.group_size={group_size} is not a multiple of {WORD_BITS}; the dequant-matmul kernel "
      "reads one int32 word (32 input columns) per group step"
    )


def mosaic_unsupported(d_in: int, d_out: int, group_size: int, dtype) -> str | None:
  """Why the Mosaic GPU kernel cannot take these shapes / this compute dtype, or None."""
  if jnp.dtype(dtype).name not in MOSAIC_DTYPES:
    return (
      f"the Mosaic GPU dequant-matmul kernel computes in {' or '.join(MOSAIC_DTYPES)} "
      f"(wgmma's register operand), got {jnp.dtype(dtype).name}"
    )
  if d_out % MOSAIC_ROWS or d_in % MOSAIC_STEP:
    return (
      f"the Mosaic GPU dequant-matmul kernel needs d_out and d_in multiples of {MOSAIC_ROWS}, "
      f"got d_out = {d_out}, d_in = {d_in}"
    )
  if group_size != WORD_BITS and group_size % MOSAIC_STEP:
    return (
      f"the Mosaic GPU dequant-matmul kernel needs group_size 32 or a multiple of "
      f"{MOSAIC_STEP}, got {group_size}"
    )
  return None


def _mosaic_blocks(m, d_in, d_out, group_size, dtype, block_m, block_n, block_k) -> Blocks:
  reason = mosaic_unsupported(d_in, d_out, group_size, dtype)
  if reason is not None:
    raise ValueError(reason)
  if block_m is None:
    bm = min(max(_next_pow2(m), 8), 128)
  else:
    bm = block_m
    if bm % 8 or bm > 256:
      raise ValueError(f"block_m must be a multiple of 8 up to 256 (wgmma N), got {bm}")
  for value, name, fixed in ((block_n, "block_n", MOSAIC_ROWS), (block_k, "block_k", MOSAIC_STEP)):
    if value is not None and value != fixed:
      raise ValueError(f"{name} is fixed at {fixed} in the Mosaic GPU kernel, got {value}")
  return Blocks(bm=bm, bn=MOSAIC_ROWS, bk=MOSAIC_STEP)


def choose_blocks(
  m: int,
  d_in: int,
  d_out: int,
  group_size: int,
  dtype,
  schedule: str,
  *,
  block_m: int | None = None,
  block_n: int | None = None,
  block_k: int | None = None,
) -> Blocks:
  """Tile sizes for `x [m, d_in] @ W^T`, `W [d_out, d_in]` with groups of `group_size`.

  `schedule` is "grid", "loop" or "mosaic" (see the module docstring); explicit blocks are
  checked (ValueError naming the argument) and used as given.
  """
  if schedule not in SCHEDULES:
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
  for value, name in ((block_m, "block_m"), (block_n, "block_n"), (block_k, "block_k")):
    _check_block(value, name)
  if schedule == "mosaic":
    return _mosaic_blocks(m, d_in, d_out, group_size, dtype, block_m, block_n, block_k)
  gpu = schedule == "loop"
  sublane = 16 if gpu or jnp.dtype(dtype).itemsize == 2 else 8

  if block_m is None:
    bm = min(max(_next_pow2(m), sublane), 128 if gpu else 256)
  else:
    bm = block_m
    if bm % 8:
      raise ValueError(f"block_m must be a multiple of 8, got {bm}")
    if gpu and (bm < 16 or bm != _next_pow2(bm)):
      raise ValueError(f"block_m must be a power of two >= 16 on GPU (Triton), got {bm}")

  if block_n is None:
    if gpu:
      options = (64, 32, 16) if m <= DECODE_ROWS else (128, 64, 32, 16)
    else:
      options = (1024, 512, 256, 128) if m <= DECODE_ROWS else (512, 256, 128)
    bn = next((b for b in options if d_out % b == 0), None)
    if bn is None:
      if gpu:
        raise ValueError(
          f"qw has d_out = {d_out} output rows; the GPU (Triton) kernel needs a multiple of 16"
        )
      bn = d_out  # one full-width tile (a full dimension is always a legal TPU block)
  else:
    bn = block_n
    if d_out % bn:
      raise ValueError(f"block_n={bn} does not divide d_out = {d_out} of qw")
    if gpu and bn != _next_pow2(bn):
      raise ValueError(f"block_n must be a power of two on GPU (Triton), got {bn}")

  if block_k is None:
    per_tile = max(1, 256 // group_size)  # groups per K step
    while per_tile > 1 and d_in % (per_tile * group_size):
      per_tile //= 2
    bk = per_tile * group_size
    if not gpu and bk % 128 and bk != d_in and d_in <= 4096:
      bk = d_in  # a TPU block needs 128 lanes or the full dimension
  else:
    bk = block_k
    if bk % group_size or d_in % bk:
      raise ValueError(
        f"block_k={bk} must be a multiple of the group size {group_size} that divides d_in = {d_in}"
      )
  return Blocks(bm=bm, bn=bn, bk=bk)
