"""Block sizes, schedules and layout constants of the flash-attention kernel, as data.

Two schedules share the same per-block math (see `common.py`):

  * "grid" (TPU, Mosaic): the key-block loop is the innermost, sequential grid
    axis; K/V blocks arrive through BlockSpec index maps (clamped to the visible
    range, so skipped blocks are neither fetched nor computed) and the online
    softmax state lives in VMEM scratch. VMEM use is O(block), any T fits.
  * "loop" (GPU, Triton): one program per query block; K/V for the whole
    (padded) sequence are passed as one block (Triton only takes pointers) and
    the kernel loops over the visible key blocks with `lax.fori_loop`.

  * "mosaic" (GPU, Mosaic GPU on Hopper; `kernel_mgpu.py`): the forward pass as a
    `plgpu.kernel` with wgmma and a TMA pipeline over the visible key blocks; 64 query rows
    per program, bfloat16 / float16 only; its backward pass is Mosaic GPU too
    (`backward_mgpu.py`) up to head dim 128, the "loop" kernels above. Opt-in while this JAX
    has the Triton backend, the GPU default without it (`gpu_schedule`).

All run in interpret mode on CPU ("mosaic" in JAX >= 0.12's GPU interpreter). Defaults are untuned starting points:
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

SCHEDULES = ("grid", "loop", "mosaic")
MOSAIC_BLOCK_Q = 64  # Mosaic GPU: query rows per program (one warpgroup's wgmma M)
MOSAIC_BLOCK_K = (64, 128, 256)  # key rows per pipeline step (wgmma N / K)
MOSAIC_DTYPES = ("bfloat16", "float16")
MOSAIC_MAX_HEAD_DIM = 256
MOSAIC_SMEM_BYTES = 227 * 1024  # shared memory one Hopper (sm_90) thread block can take


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
MOSAIC_BLOCK_SIZES = BlockSizes(block_q=64, block_k=128)  # the "mosaic" schedule's defaults
MOSAIC_PIPELINE_STAGES = 2  # K/V tiles in flight in its TMA pipeline


def default_schedule(backend: str) -> str:
  return DEFAULT_SCHEDULE.get(backend, "grid")


def default_block_sizes(backend: str) -> BlockSizes:
  return DEFAULT_BLOCK_SIZES.get(backend, DEFAULT_BLOCK_SIZES["cpu"])


def mosaic_unsupported(head_dim: int, dtype) -> str | None:
  """Why the Mosaic GPU forward cannot take this head dim / dtype, or None."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  if jnp.dtype(dtype).name not in MOSAIC_DTYPES:
    return (
      f"the Mosaic GPU flash-attention kernel computes in {' or '.join(MOSAIC_DTYPES)} "
      f"(wgmma), got {jnp.dtype(dtype).name}"
    )
  if head_dim > MOSAIC_MAX_HEAD_DIM:
    return (
      f"the Mosaic GPU flash-attention kernel takes head dim D up to {MOSAIC_MAX_HEAD_DIM}, "
      f"got {head_dim}"
    )
  return None


def mosaic_smem_bytes(
  block_k: int, head_dim: int, itemsize: int, *, fixed_rows: int = 64, stages: int = 2
) -> int:
  """Shared memory of a Mosaic GPU flash-attention program: `fixed_rows` resident rows (the
  query tile; dQ: query and dO) and `stages` K and V tiles of `block_k` rows in flight, plus
  1 KiB for the row statistics and barriers."""
  return (fixed_rows + 2 * stages * block_k) * head_dim * itemsize + 1024


def mosaic_block_k(block_k: int, head_dim: int, itemsize: int, *, fixed_rows: int = 64) -> int:
  """The largest key tile of `MOSAIC_BLOCK_K` up to `block_k` whose pipeline fits in shared
  memory (`MOSAIC_SMEM_BYTES`); the smallest tile when none does."""
  fits = [
    b
    for b in MOSAIC_BLOCK_K
    if b <= block_k
    and mosaic_smem_bytes(
      b, head_dim, itemsize, fixed_rows=fixed_rows, stages=MOSAIC_PIPELINE_STAGES
    )
    <= MOSAIC_SMEM_BYTES
  ]
  return max(fits) if fits else MOSAIC_BLOCK_K[0]


def mosaic_possible(head_dim: int, dtype) -> bool:
  """Whether this JAX has Mosaic GPU, the GPU (if attached) has wgmma (Hopper) and the Mosaic
  GPU kernel takes this head dim and dtype."""
  from pallas_kernels import gpu_backend  # pylint: disable=g-import-not-at-top

  return (
    gpu_backend.mosaic_gpu_missing() is None
    and gpu_backend.wgmma_unavailable() is None
    and mosaic_unsupported(head_dim, dtype) is None
  )


def gpu_schedule(head_dim: int, dtype) -> str:
  """The schedule a GPU runs by default.

  DESIGN CHOICE: "loop" (Triton, the form whose speed was measured on an H100) while this JAX
  has the Pallas Triton backend; without it "mosaic" where that kernel can take the call (else
  "loop", which then stops naming the XLA path). The Mosaic GPU form is opt-in
  (`schedule="mosaic"`) until a GPU session (`benchmarks/device_session.sh`) shows that it
  compiles and matches or beats Triton; then this function is the one place to change.
  """
  from pallas_kernels import gpu_backend  # pylint: disable=g-import-not-at-top

  if gpu_backend.triton_missing() is None:
    return "loop"
  return "mosaic" if mosaic_possible(head_dim, dtype) else "loop"


def stat_layout(schedule: str) -> tuple[int, int]:
  """(lanes, sublanes) of the broadcast row-statistic / segment-id layouts."""
  return (TPU_LANES, TPU_SUBLANES) if schedule == "grid" else (1, 1)


def _round_up(x: int, m: int) -> int:
  return -(-x // m) * m


def _next_pow2(x: int) -> int:
  return 1 << max(x - 1, 0).bit_length()


def fit_block_sizes(
  seq_len: int,
  block_q: int,
  block_k: int,
  *,
  schedule: str,
  compiled: bool,
  head_dim: int | None = None,
  itemsize: int = 2,
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
    head_dim, itemsize: the (padded) head dim and bytes per element; with "mosaic" they
      check that the key tile's pipeline fits in shared memory.

  Raises:
    ValueError: naming the block argument and the constraint it breaks.
  """
  for name, b in (("block_q", block_q), ("block_k", block_k)):
    if not isinstance(b, int) or isinstance(b, bool) or b <= 0 or b % 8:
      raise ValueError(f"{name} must be a positive multiple of 8, got {b!r}")
  if schedule == "mosaic":
    # Fixed 64-row query tiles; key tiles of 64, 128 or 256 rows, clamped to the sequence.
    if block_k not in MOSAIC_BLOCK_K:
      raise ValueError(
        f"block_k must be one of {MOSAIC_BLOCK_K} for the Mosaic GPU kernel, got {block_k!r}"
      )
    if block_q != MOSAIC_BLOCK_Q:
      raise ValueError(f"block_q must be {MOSAIC_BLOCK_Q} for the Mosaic GPU kernel, got {block_q}")
    fits = [b for b in MOSAIC_BLOCK_K if b <= block_k and b >= seq_len]
    bk = fits[0] if fits else block_k
    if head_dim is not None:
      need = mosaic_smem_bytes(bk, head_dim, itemsize, stages=MOSAIC_PIPELINE_STAGES)
      if need > MOSAIC_SMEM_BYTES:
        raise ValueError(
          f"block_k={bk} with head dim {head_dim} needs {need} bytes of shared memory for the "
          f"Mosaic GPU kernel's pipeline, more than the {MOSAIC_SMEM_BYTES} of a Hopper GPU; "
          f"use block_k={mosaic_block_k(bk, head_dim, itemsize)} (or leave it None)"
        )
    return MOSAIC_BLOCK_Q, bk, _round_up(seq_len, bk)
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
  """Triton needs power-of-two tiles >= 16; Mosaic TPU takes the full head_dim; Mosaic GPU
  pads to 64, 128 or 256 (whole 128-byte swizzled rows, and a power of two for the Triton
  backward that it shares), compiled or interpreted."""
  if schedule == "mosaic":
    return max(64, _next_pow2(head_dim))
  if schedule == "loop" and compiled:
    return max(16, _next_pow2(head_dim))
  return head_dim
