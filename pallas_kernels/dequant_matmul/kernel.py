"""Fused dequant-matmul `y = x W^T` for bit-plane quantised weights, as a Pallas kernel.

"BPDQ: Bit-Plane Decomposition Quantization on a Variable Grid for Large Language Models"
(Chen et al., arXiv:2602.04163); `shared/methods/inference.md` sections 4.1 and 4.4. The
weight is a `reasoning_jax.ops.quant.QuantizedWeight`: int32 bit-planes `[d_in / 32, k, d_out]`
(bit `j` of word `[w, i, r]` is plane `i` of row `r` at input column `32 w + j`) and per-group
coefficients `[d_in / g, k + 1, d_out]` (index 0 the bias), so that within group `j`

  W[r, c] = C[j, 0, r] + sum_i C[j, i + 1, r] b_i[r, c].

BPDQ stores the coefficients; RTN / GPTQ (`kind="uniform"`) derive them from scales and zeros
(`QuantizedWeight.coefficients`), so one kernel serves every method. The weight never exists in
HBM in full precision: each program reads the packed planes of its tile and rebuilds the
weight tile in fast memory.

Per word row `w` of a tile the kernel loads, for each plane `i`, the int32 row
`[1, bn]`, unpacks it against a sublane iota, `bits = (word >> iota_32) & 1` `[32, bn]`, and
forms the 32 weight rows `C_0 + sum_i C_{i+1} bits_i` in float32 (the coefficients of the word's
group, `[1, bn]` rows), rounded to the compute dtype (as `dequant_matmul_reference` rounds its
float32 weight). Two schedules (`blocks.py`):

  * "grid" (TPU; also every interpret run): grid `(M / bm, N / bn, K / bk)`, K "arbitrary".
    Each step reads the planes tile `[bk / 32, k, bn]`, the coefficient tile
    `[bk / g, k + 1, bn]` and `x [bm, bk]`, writes the `[bk, bn]` weight tile into a VMEM
    scratch one 32-row slice at a time, and accumulates one `[bm, bk] @ [bk, bn]` dot into a
    float32 VMEM accumulator, stored at the last K step. The pipeline double-buffers the
    planes tiles across K steps.
  * "loop" (GPU, Pallas' Triton backend): grid `(M / bm, N / bn)`; each program walks the
    groups in a `fori_loop` and accumulates one `[bm, 32] @ [32, bn]` dot per word row (Triton
    cannot concatenate tiles or allocate scratch; 32 is a common Triton K step). The planes
    and coefficients are read through free 2-D views (`[d_in / 32 * k, d_out]`,
    `[d_in / g * (k + 1), d_out]`) so each load is one power-of-two row.

DESIGN CHOICE / limits:
  * coefficients reach the kernel as float32 (`qw.coefficients(float32)`, computed by XLA
    outside the kernel: `(k + 1) / g` of the weight count). Passing BPDQ's stored bf16
    coefficients instead would read half the bytes; not done;
  * the unpack costs about five vector ops per plane per weight (shift, and, convert, multiply,
    add), so at decode the TPU kernel may be bound by the VPU rather than by HBM bandwidth
    (unmeasured: benchmarks/dequant_matmul.py). A form with the same bytes and no per-weight
    float math, `y = sum_j [rowsum(x_j) C_0 + sum_i (x_j @ b_i) C_i]` per group `j` (k exact 0/1
    matmuls, coefficients applied per output column), is not implemented;
  * the planes keep the upstream `[d_in / 32, k, d_out]` layout, whose second-minor dim k < 8
    XLA's TPU layout might pad to 8 sublanes in HBM (k = 2: 4x the bytes); not yet checked on a
    TPU. A 2-D `[d_in / 32 * k, d_out]` storage (the GPU path's view) would avoid it;
  * the group size must be a multiple of 32 (a word never straddles two groups);
  * the GPU path has no split-K, so a decode call with a narrow d_out uses few SMs;
  * the Triton backend is deprecated in JAX 0.11+: on a Hopper (sm_90) GPU with a 16-bit
    compute dtype the CUDA branch uses the Mosaic GPU form instead (`kernel_mgpu.py`,
    `gpu_kernel="auto"`); "triton" / "mosaic" force one.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels import gpu_backend
from pallas_kernels.dequant_matmul import blocks as blocks_lib
from pallas_kernels.dequant_matmul import kernel_mgpu
from reasoning_jax.ops.quant import KINDS, QuantizedWeight

NN = (((1,), (0,)), ((), ()))  # a @ b
WORD_BITS = blocks_lib.WORD_BITS
f32 = jnp.float32


def _precision(dtype):
  """HIGHEST for float32 (the float32 check is tight), the backend default otherwise."""
  return jax.lax.Precision.HIGHEST if jnp.dtype(dtype) == jnp.float32 else None


def _shifts(bn):
  """The bit index of each of a word's 32 weight rows, `[32, bn]` int32 (a sublane iota)."""
  return jax.lax.broadcasted_iota(jnp.int32, (WORD_BITS, bn), 0)


def _word_rows(plane_rows, coef_rows, shifts, dtype):
  """32 weight rows `[32, bn]` of one int32 word row.

  plane_rows: k int32 rows `[1, bn]` (plane i of 32 consecutive input columns);
  coef_rows: k + 1 float32 rows `[1, bn]` of the word's group (index 0 the bias);
  shifts: `_shifts(bn)`.
  """
  bn = plane_rows[0].shape[-1]
  w = jnp.broadcast_to(coef_rows[0], (WORD_BITS, bn))
  for i, word in enumerate(plane_rows):
    bit = jax.lax.shift_right_logical(jnp.broadcast_to(word, (WORD_BITS, bn)), shifts) & 1
    w = w + coef_rows[i + 1] * bit.astype(f32)
  return w.astype(dtype)


def _grid_kernel(x_ref, planes_ref, coef_ref, o_ref, acc_ref, w_ref, *, group_size, precision):
  """One (row tile, column tile, K step): x `[bm, bk]`, planes `[bk / 32, k, bn]`,
  coefficients `[bk / g, k + 1, bn]` float32, out `[bm, bn]`; scratch: the float32
  accumulator `[bm, bn]` and the weight tile `[bk, bn]` in the compute dtype."""
  n_words, k, _ = planes_ref.shape
  step = pl.program_id(2)

  @pl.when(step == 0)
  def _():
    acc_ref[...] = jnp.zeros_like(acc_ref)

  words_per_group = group_size // WORD_BITS
  shifts = _shifts(planes_ref.shape[-1])
  for w in range(n_words):  # static: bk / 32 word rows
    grp = w // words_per_group
    if w % words_per_group == 0:
      coef = [coef_ref[grp, pl.ds(i, 1), :] for i in range(k + 1)]
    planes = [planes_ref[w, pl.ds(i, 1), :] for i in range(k)]
    w_ref[pl.ds(w * WORD_BITS, WORD_BITS), :] = _word_rows(planes, coef, shifts, w_ref.dtype)
  acc_ref[...] += jax.lax.dot_general(
    x_ref[...], w_ref[...], NN, precision=precision, preferred_element_type=f32
  )

  @pl.when(step == pl.num_programs(2) - 1)
  def _():
    o_ref[...] = acc_ref[...].astype(o_ref.dtype)


def _loop_kernel(x_ref, planes_ref, coef_ref, o_ref, *, bits, group_size, precision):
  """One (row tile, column tile), all of K: x `[bm, d_in]`, planes `[d_in / 32 * k, bn]`,
  coefficients `[d_in / g * (k + 1), bn]` float32, out `[bm, bn]`."""
  k = bits
  bm, d_in = x_ref.shape
  bn = o_ref.shape[-1]
  words_per_group = group_size // WORD_BITS
  dtype = x_ref.dtype
  shifts = _shifts(bn)

  def group(j, acc):
    coef = [coef_ref[pl.ds(j * (k + 1) + i, 1), :] for i in range(k + 1)]
    for u in range(words_per_group):  # static
      w = j * words_per_group + u
      planes = [planes_ref[pl.ds(w * k + i, 1), :] for i in range(k)]
      x = x_ref[:, pl.ds(w * WORD_BITS, WORD_BITS)]
      acc += jax.lax.dot_general(
        x,
        _word_rows(planes, coef, shifts, dtype),
        NN,
        precision=precision,
        preferred_element_type=f32,
      )
    return acc

  acc = jax.lax.fori_loop(0, d_in // group_size, group, jnp.zeros((bm, bn), f32))
  o_ref[...] = acc.astype(o_ref.dtype)


def _cost(m, d_in, d_out, bits, group_size, itemsize, out_itemsize):
  weights = d_in * d_out
  return pl.CostEstimate(
    flops=2 * m * weights + 3 * bits * weights,
    transcendentals=0,
    bytes_accessed=weights * bits // 8
    + 4 * (d_in // group_size) * (bits + 1) * d_out
    + itemsize * m * d_in
    + out_itemsize * m * d_out,
  )


def _pad_rows(x, bm):
  m = x.shape[0]
  pad = -m % bm
  return x if pad == 0 else jnp.pad(x, ((0, pad), (0, 0)))


def grid_call(x, planes, coef, *, group_size, out_dtype, blk, interpret, compiler_params=None):
  """The "grid" schedule: `x [M, d_in]` (compute dtype), planes `[d_in / 32, k, d_out]`,
  coefficients `[d_in / g, k + 1, d_out]` float32 -> `[M, d_out]` in `out_dtype`."""
  from jax.experimental.pallas import tpu as pltpu  # pylint: disable=g-import-not-at-top

  m, d_in = x.shape
  _, k, d_out = planes.shape
  bm, bn, bk = blk.bm, blk.bn, blk.bk
  xp = _pad_rows(x, bm)
  mp = xp.shape[0]
  kernel = functools.partial(_grid_kernel, group_size=group_size, precision=_precision(x.dtype))
  out = pl.pallas_call(
    kernel,
    out_shape=jax.ShapeDtypeStruct((mp, d_out), out_dtype),
    grid=(mp // bm, d_out // bn, d_in // bk),
    in_specs=[
      pl.BlockSpec((bm, bk), lambda i, j, s: (i, s)),
      pl.BlockSpec((bk // WORD_BITS, k, bn), lambda i, j, s: (s, 0, j)),
      pl.BlockSpec((bk // group_size, k + 1, bn), lambda i, j, s: (s, 0, j)),
    ],
    out_specs=pl.BlockSpec((bm, bn), lambda i, j, s: (i, j)),
    scratch_shapes=[pltpu.VMEM((bm, bn), f32), pltpu.VMEM((bk, bn), x.dtype)],
    compiler_params=compiler_params,
    cost_estimate=_cost(
      mp, d_in, d_out, k, group_size, x.dtype.itemsize, jnp.dtype(out_dtype).itemsize
    ),
    interpret=interpret,
    name="dequant_matmul",
  )(xp, planes, coef)
  return out[:m]


def loop_call(x, planes, coef, *, group_size, out_dtype, blk, interpret, compiler_params=None):
  """The "loop" schedule (GPU); same arguments and result as `grid_call`."""
  m, d_in = x.shape
  n_words, k, d_out = planes.shape
  n_groups = coef.shape[0]
  bm, bn = blk.bm, blk.bn
  xp = _pad_rows(x, bm)
  mp = xp.shape[0]
  kernel = functools.partial(
    _loop_kernel, bits=k, group_size=group_size, precision=_precision(x.dtype)
  )
  out = pl.pallas_call(
    kernel,
    out_shape=jax.ShapeDtypeStruct((mp, d_out), out_dtype),
    grid=(mp // bm, d_out // bn),
    in_specs=[
      pl.BlockSpec((bm, d_in), lambda i, j: (i, 0)),
      pl.BlockSpec((n_words * k, bn), lambda i, j: (0, j)),
      pl.BlockSpec((n_groups * (k + 1), bn), lambda i, j: (0, j)),
    ],
    out_specs=pl.BlockSpec((bm, bn), lambda i, j: (i, j)),
    compiler_params=compiler_params,
    cost_estimate=_cost(
      mp, d_in, d_out, k, group_size, x.dtype.itemsize, jnp.dtype(out_dtype).itemsize
    ),
    interpret=interpret,
    name="dequant_matmul_loop",
  )(xp, planes.reshape(n_words * k, d_out), coef.reshape(n_groups * (k + 1), d_out))
  return out[:m]


GPU_KERNELS = ("auto", "mosaic", "triton")


def _mosaic_choice(gpu_kernel, shape, sizes):
  """The Mosaic GPU kernel's blocks when the CUDA branch should use it, else None.

  "mosaic" raises ValueError when it cannot take the call; "auto" uses it when it can and the
  attached GPU (if any) is a Hopper (`gpu_backend.wgmma_unavailable`)."""
  if gpu_kernel == "triton":
    return None
  m, d_in, d_out, group_size, dtype = shape
  reason = gpu_backend.mosaic_gpu_missing() or blocks_lib.mosaic_unsupported(
    d_in, d_out, group_size, dtype
  )
  reason = reason or gpu_backend.wgmma_unavailable()
  if reason is not None:
    if gpu_kernel == "mosaic":
      raise ValueError(f"gpu_kernel='mosaic': {reason}")
    return None
  try:
    return blocks_lib.choose_blocks(*shape, "mosaic", **sizes)
  except ValueError:
    if gpu_kernel == "mosaic":
      raise
    return None  # block overrides meant for the Triton form


def _check_inputs(x, qw: QuantizedWeight, dtype):
  if not isinstance(qw, QuantizedWeight):
    raise ValueError(f"qw must be a reasoning_jax.ops.quant.QuantizedWeight, got {type(qw)}")
  if qw.kind not in KINDS:
    raise ValueError(f"qw.kind must be one of {KINDS}, got {qw.kind!r}")
  if x.ndim < 1 or x.shape[-1] != qw.d_in:
    raise ValueError(
      f"x must be [..., d_in] with d_in = {qw.d_in} (the quantized weight's input features), "
      f"got shape {tuple(x.shape)}"
    )
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"x must be floating point, got {x.dtype}")
  if dtype is not None and not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
    raise ValueError(f"dtype must be a floating dtype or None, got {dtype!r}")
  want = (qw.d_in // WORD_BITS, qw.bits, qw.d_out)
  if tuple(qw.planes.shape) != want or qw.planes.dtype != jnp.int32:
    raise ValueError(
      f"qw.planes must be int32 [d_in / 32, k, d_out] = {want}, got "
      f"{qw.planes.dtype} {tuple(qw.planes.shape)}"
    )
  blocks_lib.check_group_size(qw.group_size)


def _prepare(x, qw, dtype):
  """x `[..., d_in]` -> (rows `[M, d_in]` in the compute dtype, perm applied; lead dims; dtype)."""
  _check_inputs(x, qw, dtype)
  dtype = jnp.dtype(x.dtype if dtype is None else dtype)
  x2 = x.reshape(-1, qw.d_in)
  if qw.perm is not None:
    x2 = jnp.take(x2, qw.perm, axis=-1)
  return x2.astype(dtype), x.shape[:-1], dtype


def dequant_matmul_pallas(
  x: jax.Array,
  qw: QuantizedWeight,
  *,
  dtype=None,
  interpret: Any = None,
  block_m: int | None = None,
  block_n: int | None = None,
  block_k: int | None = None,
  gpu_kernel: str = "auto",
) -> jax.Array:
  """`x [..., d_in] @ W^T -> [..., d_out]` with `W` dequantised inside the kernel.

  "BPDQ: Bit-Plane Decomposition Quantization on a Variable Grid for Large Language Models"
  (Chen et al., arXiv:2602.04163). Matches `dequant_matmul_reference` (same signature, plus
  kernel-only arguments): the weight is rebuilt in float32 and rounded to the compute dtype,
  products accumulate in float32.

  Args:
    x: activations `[..., d_in]` (leading dims are flattened into M rows; M is padded to the
      row block inside).
    qw: the quantised weight `W [d_out, d_in]` (either kind; an act-order `perm` is applied
      to x's columns first).
    dtype: compute and output dtype; defaults to x's.
    interpret: None interprets unless the default backend is TPU or GPU; True/False force it;
      a `pltpu.InterpretParams` selects the TPU interpreter. Interpret mode runs the "grid"
      (TPU) schedule.
    block_m, block_n, block_k: tile overrides (rows, output columns, input columns; `block_k`
      is used by the grid schedule only). Defaults: `blocks.choose_blocks`.
    gpu_kernel: the CUDA form: "mosaic" (Mosaic GPU, `kernel_mgpu.py`: Hopper (wgmma),
      bfloat16 / float16), "triton" (the "loop" schedule on Pallas' deprecated Triton
      backend), or "auto" (DESIGN CHOICE, the default): Mosaic GPU where it can take the call
      (`blocks.mosaic_unsupported`, and the attached GPU, if any, is a Hopper), else
      Triton. ROCm always uses Triton.

  Returns:
    `[..., d_out]` in `dtype`.

  Raises:
    ValueError naming the argument for shapes or blocks the kernel cannot take; shapes only
    the TPU schedule takes (d_out not a multiple of 16) raise when the default backend is GPU
    and lower for TPU only.
  """
  x2, lead, dtype = _prepare(x, qw, dtype)
  if gpu_kernel not in GPU_KERNELS:
    raise ValueError(f"gpu_kernel must be one of {GPU_KERNELS}, got {gpu_kernel!r}")
  if interpret is None:
    interpret = jax.default_backend() not in ("tpu", "gpu")
  sizes = dict(block_m=block_m, block_n=block_n, block_k=block_k)
  shape = (x2.shape[0], qw.d_in, qw.d_out, qw.group_size, dtype)
  common = dict(group_size=qw.group_size, out_dtype=dtype)
  # Checked before tracing any branch, so bad sizes raise here rather than at lowering.
  grid_blocks = blocks_lib.choose_blocks(*shape, "grid", **sizes)
  if x2.shape[0] == 0:
    return jnp.zeros((*lead, qw.d_out), dtype)
  coef = qw.coefficients(f32)  # [d_in / g, k + 1, d_out], small

  if interpret:
    y = grid_call(x2, qw.planes, coef, blk=grid_blocks, interpret=interpret, **common)
    return y.reshape(*lead, qw.d_out)

  from jax.experimental.pallas import tpu as pltpu  # pylint: disable=g-import-not-at-top

  def tpu(x2, planes, coef):
    params = pltpu.CompilerParams(dimension_semantics=("parallel", "parallel", "arbitrary"))
    return grid_call(
      x2, planes, coef, blk=grid_blocks, interpret=False, compiler_params=params, **common
    )

  branches = dict(tpu=tpu)
  mosaic_blocks = _mosaic_choice(gpu_kernel, shape, sizes)
  if gpu_kernel != "mosaic":
    try:  # Every branch is traced, whichever platform runs: drop GPU for shapes it cannot take.
      loop_blocks = blocks_lib.choose_blocks(*shape, "loop", **sizes)
    except ValueError:
      if jax.default_backend() == "gpu" and mosaic_blocks is None:
        raise
    else:
      try:
        branches.update(
          gpu_backend.gpu_branches(
            lambda params: (
              lambda x2, planes, coef: loop_call(
                x2, planes, coef, blk=loop_blocks, interpret=False, compiler_params=params, **common
              )
            ),
            num_warps=4,
            num_stages=2,
            kernel="the Pallas dequant-matmul kernel",
            instead='implementation="xla" (the default) on the quantized linears',
          )
        )
      except RuntimeError:  # no Triton backend on this GPU host: fine if Mosaic GPU serves CUDA
        if mosaic_blocks is None:
          raise
  if mosaic_blocks is not None:
    branches["cuda"] = lambda x2, planes, coef: kernel_mgpu.mosaic_call(
      x2, planes, coef, blk=mosaic_blocks, interpret=False, **common
    )
  y = jax.lax.platform_dependent(x2, qw.planes, coef, **branches)
  return y.reshape(*lead, qw.d_out)


def _interpreted(x, qw, dtype, schedule, call, **block_sizes):
  """One GPU schedule's kernel body in interpret mode, with `dequant_matmul_pallas`'s wrapper
  steps (checks, act-order perm, leading dims)."""
  x2, lead, dtype = _prepare(x, qw, dtype)
  blk = blocks_lib.choose_blocks(
    x2.shape[0], qw.d_in, qw.d_out, qw.group_size, dtype, schedule, **block_sizes
  )
  y = call(
    x2,
    qw.planes,
    qw.coefficients(f32),
    group_size=qw.group_size,
    out_dtype=dtype,
    blk=blk,
    interpret=True,
  )
  return y.reshape(*lead, qw.d_out)


def dequant_matmul_loop_interpret(
  x: jax.Array, qw: QuantizedWeight, *, dtype=None, block_m=None, block_n=None
) -> jax.Array:
  """The GPU ("loop") schedule in interpret mode (for CPU tests of that kernel body); same
  wrapper steps and result as `dequant_matmul_pallas`."""
  return _interpreted(x, qw, dtype, "loop", loop_call, block_m=block_m, block_n=block_n)


def dequant_matmul_mosaic_interpret(
  x: jax.Array, qw: QuantizedWeight, *, dtype=None, block_m=None
) -> jax.Array:
  """The Mosaic GPU kernel (`kernel_mgpu.py`) in JAX's GPU interpreter (CPU tests of that
  kernel body); same wrapper steps and result as `dequant_matmul_pallas`. Needs JAX >= 0.12
  (`gpu_backend.mosaic_interpret_missing`)."""
  return _interpreted(x, qw, dtype, "mosaic", kernel_mgpu.mosaic_call, block_m=block_m)
