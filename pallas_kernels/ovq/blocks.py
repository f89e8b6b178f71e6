"""Layout pieces the OVQ kernels share: dictionary blocking, BlockSpecs, per-platform launch.

Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922). Every
OVQ kernel runs one program per (batch, head) with whole blocks (the chunk and the padded
dictionary of that head), the dictionary stored as `[N_pad / bn, bn, *]` so that loops
over dictionary blocks only index the leading, untiled axis (TPU's (8, 128) rule holds
because every block's last two dims equal the array's).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl

from pallas_kernels import gpu_backend

HIGHEST = jax.lax.Precision.HIGHEST
NT = (((1,), (1,)), ((), ()))  # contract the last dims: a @ b.T
NN = (((1,), (0,)), ((), ()))
# Initial running max: large, finite (no inf - inf when a whole block is masked).
MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)


def dot(a, b, dims=NN):
  """fp32 matmul at HIGHEST precision (NN by default, `NT` for `a @ b.T`)."""
  return jax.lax.dot_general(a, b, dims, precision=HIGHEST, preferred_element_type=jnp.float32)


def round_up(x: int, m: int) -> int:
  return -(-x // m) * m


def dictionary_blocking(num_slots: int, block_n: int, power_of_two: bool) -> tuple[int, int]:
  """(bn, N_pad): block rows and padded slots; bn <= block_n, a multiple of 128 (or of
  N_pad's power of two on GPU), N_pad a multiple of bn."""
  n = round_up(num_slots, 128)
  if power_of_two:
    n = 1 << (n - 1).bit_length()
  bn = min(block_n, n)
  return bn, round_up(n, bn)


def pad_slots(x, n_pad: int, value=0.0):
  """Pads axis 1 (slots) of `[BH, N, ...]` to N_pad with `value`."""
  pad = ((0, 0), (0, n_pad - x.shape[1])) + ((0, 0),) * (x.ndim - 2)
  return jnp.pad(x, pad, constant_values=value)


def whole(*shape):
  """The whole `shape` of one (batch, head) program of a `[BH, *shape]` array."""
  return pl.BlockSpec((pl.squeezed, *shape), lambda i: (i,) + (0,) * len(shape))


def per_row(heads: int, *shape):
  """The whole `shape` of program i's batch row of a `[B, *shape]` array (shared by heads).

  `lax.div` (truncating; i >= 0) rather than `//`, whose sign fix-up Mosaic can only lower
  knowing the TPU generation (ahead-of-time lowering on a host without one would fail)."""
  return pl.BlockSpec((pl.squeezed, *shape), lambda i: (jax.lax.div(i, heads),) + (0,) * len(shape))


def run_per_platform(call, arrays, interpret):
  """`call(compiler_params, power_of_two, *arrays)` in interpret mode, or with the compiler
  parameters of the platform it is lowered for (chosen per lowering platform, so ahead-of-time
  lowering for another platform takes the same path as a run there; GPU dictionaries are
  padded to a power of two for Triton)."""
  if interpret:
    return call(None, False, *arrays)
  from jax.experimental.pallas import tpu as pltpu  # pylint: disable=g-import-not-at-top

  tpu = functools.partial(call, pltpu.CompilerParams(dimension_semantics=("parallel",)), False)
  gpu = gpu_backend.gpu_branches(
    lambda params: functools.partial(call, params, True),
    num_warps=4,
    num_stages=1,
    kernel="the Pallas OVQ kernels",
    instead='implementation="xla" (the default)',
  )
  return jax.lax.platform_dependent(*arrays, tpu=tpu, **gpu)
