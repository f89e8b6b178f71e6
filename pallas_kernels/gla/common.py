"""What the GLA forward and backward kernels share: layout, tile helpers, the pallas_call.

Gated Linear Attention Transformers with Hardware-Efficient Training
(Yang et al., arXiv:2312.06635), Sec. 4. Both kernels run one program per
(batch * head, chunk) on `[C, D]` tiles of the time-padded sequence; the chunk
quantities that need a pass over all chunks (states, state gradients) are computed
in XLA around them (`kernel.py`, `backward.py`).

Packed sequences reach the kernels as the in-chunk sequence index of
`reasoning_jax.ops.gla.chunk.chunk_segment_index`, stored as float32 tiles shaped
like the gate tiles (`[B, T_pad, Dk]`, per batch row, shared by its heads): every
mask is then an elementwise comparison on `[rows, Dk]` tiles, like the causal masks,
with no lane broadcast or transpose inside the kernel. The index is a small integer,
exact in float32.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels import gpu_backend
from reasoning_jax.ops.gla import chunk as gla_chunk_lib

NT = (((1,), (1,)), ((), ()))  # contract the last dims: a @ b.T
NN = (((1,), (0,)), ((), ()))  # a @ b


def kernel_sub_chunk_size(chunk_size: int) -> int:
  """Rows per sub-chunk R: 16 or 8 when they divide C (aligned tiles), else the
  secondary chunk of the XLA form (interpret mode allows any C)."""
  for r in (16, 8):
    if chunk_size % r == 0:
      return r
  return gla_chunk_lib.sub_chunk_size(chunk_size)


def row(x, row_ids, i):
  """Row i of a 2-D tile as `[1, D]`, without a dynamic single-row load (packed dtypes)."""
  return jnp.sum(jnp.where(row_ids == i, x, 0.0), axis=0, keepdims=True)


def check_compiled_sizes(dtype, chunk_size: int) -> None:
  """Raises ValueError unless C is a multiple of the sublane tile of `dtype` (8, 16 for 16-bit)."""
  multiple = 16 if jnp.dtype(dtype).itemsize == 2 else 8
  if chunk_size % multiple:
    raise ValueError(
      f"chunk_size must be a multiple of {multiple} for a compiled Pallas GLA kernel with "
      f"{jnp.dtype(dtype).name} inputs, got {chunk_size}"
    )


def matmul_precision(dtype):
  """HIGHEST for float32 inputs (an fp32 reference), the backend default otherwise."""
  return jax.lax.Precision.HIGHEST if jnp.dtype(dtype) == jnp.float32 else None


@dataclasses.dataclass(frozen=True)
class Layout:
  """Shapes of one call: `[B, T, H, D]` inputs cut into N chunks of C (T padded to N * C)."""

  b: int
  t: int
  h: int
  dk: int
  dv: int
  c: int

  @classmethod
  def of(cls, q: jax.Array, v: jax.Array, chunk_size: int) -> Layout:
    b, t, h, dk = q.shape
    return cls(b, t, h, dk, v.shape[-1], chunk_size)

  @property
  def n(self) -> int:
    return -(-self.t // self.c)

  def chunks(self, x: jax.Array, dtype=None) -> jax.Array:
    """`[B, T, H, D]` -> `[B, H, N, C, D]` in `dtype` (default x's), zero-padded in time."""
    x = x if dtype is None else x.astype(dtype)
    x = jnp.pad(x, ((0, 0), (0, self.n * self.c - self.t), (0, 0), (0, 0)))
    return x.reshape(self.b, self.n, self.c, self.h, x.shape[-1]).transpose(0, 3, 1, 2, 4)

  def flat(self, x: jax.Array) -> jax.Array:
    """`[B, H, N, C, D]` -> `[B*H, N*C, D]` (the kernels' layout)."""
    return x.reshape(self.b * self.h, self.n * self.c, x.shape[-1])

  def flat_states(self, x: jax.Array) -> jax.Array:
    """`[B, H, N, Dk, Dv]` -> `[B*H, N, Dk, Dv]`."""
    return x.reshape(self.b * self.h, self.n, self.dk, self.dv)

  def unflat(self, x: jax.Array) -> jax.Array:
    """`[B*H, N*C, D]` -> `[B, T, H, D]` (padding sliced off)."""
    return x.reshape(self.b, self.h, self.n * self.c, x.shape[-1]).transpose(0, 2, 1, 3)[
      :, : self.t
    ]

  def segment_tiles(self, seg: jax.Array) -> jax.Array:
    """In-chunk sequence index `[B, N, C]` int -> float32 `[B, N*C, Dk]` (gate-tile layout)."""
    seg = seg.reshape(self.b, self.n * self.c, 1).astype(jnp.float32)
    return jnp.broadcast_to(seg, (self.b, self.n * self.c, self.dk))

  def tile(self, d: int) -> pl.BlockSpec:
    """One chunk's `[C, d]` tile of a `[B*H, N*C, d]` array, program (i, j) = (b*h, chunk)."""
    return pl.BlockSpec((pl.squeezed, self.c, d), lambda i, j: (i, j, 0))

  def segment_tile(self) -> pl.BlockSpec:
    """One chunk's `[C, Dk]` tile of the per-row `[B, N*C, Dk]` segment index."""
    h = self.h
    return pl.BlockSpec((pl.squeezed, self.c, self.dk), lambda i, j: (jax.lax.div(i, h), j, 0))

  def state(self) -> pl.BlockSpec:
    """One chunk's `[Dk, Dv]` state of a `[B*H, N, Dk, Dv]` array."""
    return pl.BlockSpec((pl.squeezed, pl.squeezed, self.dk, self.dv), lambda i, j: (i, j, 0, 0))


def chunk_call(
  kernel, layout: Layout, *, arrays, in_specs, out_shape, out_specs, cost, name, interpret
):
  """`pallas_call` over the (batch * head, chunk) grid, both axes parallel.

  Interpret mode runs the kernel as is; otherwise the backend compiler parameters are
  chosen per lowering platform (`lax.platform_dependent`), so ahead-of-time lowering for
  another platform takes the same path as a run there.
  """

  def call(compiler_params, *arrays):
    return pl.pallas_call(
      kernel,
      out_shape=out_shape,
      grid=(layout.b * layout.h, layout.n),
      in_specs=in_specs,
      out_specs=out_specs,
      compiler_params=compiler_params,
      cost_estimate=cost,
      interpret=interpret,
      name=name,
    )(*arrays)

  if interpret:
    return call(None, *arrays)
  from jax.experimental.pallas import tpu as pltpu  # pylint: disable=g-import-not-at-top

  tpu_params = pltpu.CompilerParams(dimension_semantics=("parallel", "parallel"))
  gpu = gpu_backend.gpu_branches(
    lambda params: functools.partial(call, params),
    num_warps=4,
    num_stages=2,
    kernel="the Pallas GLA kernel",
    instead='implementation="xla" (the default)',
  )
  return jax.lax.platform_dependent(*arrays, tpu=functools.partial(call, tpu_params), **gpu)
