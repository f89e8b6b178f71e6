"""Calibration capture: the input Hessian `H = 2 X X^T / N` of every projection of one block.

"GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers" (Frantar
et al., arXiv:2210.17323), section 3.2 of `shared/methods/inference.md`: the per-layer objective
`||W X - Q X||_F^2` is `sum_r (w_r - q_r)^T H (w_r - q_r) / 2` with `H = 2 X X^T`, accumulated
as `(2 / N) sum_n x_n x_n^T` over the calibration tokens (padding tokens excluded).

The capture runs one `Block` under `layers.projection.capture_inputs()` inside `jax.jit`: every
projection the block calls records its input, and the traced function returns the float32
sums `X^T X` per kernel path with the token count, streaming over calibration batches (one
batch's activations at a time). Kernels that share an input (q/k/v, gate/up) form one *input
group*; `call_groups` returns them in call order, which is what GPTQ's true-sequential order
is made of.

Compiles are shared across layers: the capture and the propagation are module-level jitted
functions keyed by the block's graph definition, and each block is traced as a standalone
block (`standalone_block`: its `layer_idx` read as 0, which only names layers in errors and
addresses caches and attention contexts, none of which calibration uses). Blocks of one
structure then have one graph definition, so an L-layer model compiles one capture per input
group and one propagation in all, not L of each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from reasoning_jax.layers.projection import capture_inputs


@dataclasses.dataclass
class CalibrationBatch:
  """One calibration batch at some block's input: hidden states `x [B, T, H]`, positions
  `[B, T]` and the token mask `[B, T]` (1 = real token, 0 = padding)."""

  x: jax.Array
  positions: jax.Array
  mask: jax.Array


@dataclasses.dataclass(frozen=True)
class KernelCall:
  """A projection a block calls: its path inside the block, its contracted axes and `d_in`."""

  path: str
  in_dims: int
  d_in: int


def _kernel_paths(block: nnx.Module) -> dict[int, str]:
  """`id(node) -> dotted path` for the block's parameters and kernel modules."""
  out = {}
  for path, node in nnx.iter_graph(block):
    if isinstance(node, (nnx.Variable, nnx.Module)) and path:
      out.setdefault(id(node), ".".join(map(str, path)))
  return out


def _run(block: nnx.Module, batch: CalibrationBatch) -> jax.Array:
  out, _ = block(batch.x, positions=batch.positions, attention_mask=batch.mask, cache=None)
  return out


def call_groups(block: nnx.Module, batch: CalibrationBatch) -> list[list[KernelCall]]:
  """The block's projections in call order, grouped by shared input (abstract trace only)."""
  groups: list[list[KernelCall]] = []

  def trace(graphdef, state, x, positions, mask):
    b = nnx.merge(graphdef, state)
    paths = _kernel_paths(b)
    seen: dict[int, int] = {}
    with capture_inputs() as calls:
      _run(b, CalibrationBatch(x, positions, mask))
    for kernel, xin, in_dims in calls:
      path = paths.get(id(kernel))
      if path is None:
        continue
      call = KernelCall(path, in_dims, math.prod(xin.shape[xin.ndim - in_dims :]))
      if id(xin) in seen:
        groups[seen[id(xin)]].append(call)
      else:
        seen[id(xin)] = len(groups)
        groups.append([call])
    return jnp.zeros(())

  graphdef, state = nnx.split(block)
  jax.eval_shape(trace, graphdef, state, batch.x, batch.positions, batch.mask)
  return groups


def _hessian_shardings(block: nnx.Module, paths) -> dict[str, jax.sharding.NamedSharding]:
  """`H [d_in, d_in]` sharded the way its weight's input axis is: rows over the mesh axis of
  the kernel's first (major input) dimension, for kernels placed with a `NamedSharding`."""
  out = {}
  for path, node in nnx.iter_graph(block):
    name = ".".join(map(str, path))
    if name not in paths or not isinstance(node, nnx.Variable):
      continue
    sharding = getattr(node[...], "sharding", None)
    if isinstance(sharding, jax.sharding.NamedSharding) and len(sharding.spec):
      spec = jax.sharding.PartitionSpec(sharding.spec[0], None)
      out[name] = jax.sharding.NamedSharding(sharding.mesh, spec)
  return out


@jax.jit
def _sum_xxt(x2: jax.Array, m: jax.Array) -> jax.Array:
  x2 = x2.astype(jnp.float32)
  return jnp.matmul((x2 * m[:, None]).T, x2, precision=jax.lax.Precision.HIGHEST)


@contextlib.contextmanager
def standalone_block(block: nnx.Module) -> Iterator[nnx.Module]:
  """`block` with every submodule's `layer_idx` set to 0 inside the context (restored on exit,
  also on error), so that blocks of one structure share a graph definition and a compile."""
  saved = []
  for _, node in nnx.iter_graph(block):
    if isinstance(node, nnx.Module) and isinstance(getattr(node, "layer_idx", None), int):
      saved.append((node, node.layer_idx))
  try:
    for node, _ in saved:
      node.layer_idx = 0
    yield block
  finally:
    for node, index in saved:
      node.layer_idx = index


@functools.partial(jax.jit, static_argnames=("graphdef", "wanted", "placement"))
def _capture(graphdef, state, x, positions, mask, *, wanted, placement):
  """`({path: X^T X}, token count)` of one batch through one block (`wanted`: the paths,
  `placement`: `((path, sharding), ...)` for the sums)."""
  b = nnx.merge(graphdef, state)
  ids = _kernel_paths(b)
  placement = dict(placement)
  with capture_inputs() as calls:
    _run(b, CalibrationBatch(x, positions, mask))
  sums, done = {}, {}
  flat_mask = mask.reshape(-1).astype(jnp.float32)
  for kernel, xin, in_dims in calls:
    path = ids.get(id(kernel))
    if path not in wanted or path in sums:
      continue
    d_in = math.prod(xin.shape[xin.ndim - in_dims :])
    key = id(xin)
    if key not in done:
      x2 = xin.reshape(-1, d_in)
      if x2.shape[0] != flat_mask.shape[0]:
        raise ValueError(f"{path}: input rows {x2.shape[0]} do not match the token mask")
      done[key] = _sum_xxt(x2, flat_mask)
    sums[path] = done[key]
    if path in placement:
      sums[path] = jax.lax.with_sharding_constraint(sums[path], placement[path])
  return sums, jnp.sum(flat_mask)


def capture_hessians(
  block: nnx.Module,
  batches: Sequence[CalibrationBatch],
  paths: Sequence[str],
) -> dict[str, jax.Array]:
  """`H = 2 X X^T / N` (float32 `[d_in, d_in]`) for each kernel path in `paths` of `block`.

  Streams over `batches` (one jit-compiled capture pass per batch, shared by every block of
  the same structure; padding tokens have zero weight). On a mesh, each `H` is sharded the way
  its weight's input axis is (rows over the mesh axis of the kernel's first dimension), so no
  device holds a whole Hessian of a sharded layer. Raises ValueError when a path is never
  called through `project` (such a kernel cannot be calibrated, and it is not silently
  skipped).
  """
  wanted = frozenset(paths)
  with standalone_block(block):
    graphdef, state = nnx.split(block)
    placement = tuple(sorted(_hessian_shardings(block, wanted).items()))
  totals: dict[str, jax.Array] = {}
  count = 0.0
  for batch in batches:
    sums, n = _capture(
      graphdef,
      state,
      batch.x,
      batch.positions,
      batch.mask,
      wanted=wanted,
      placement=placement,
    )
    missing = wanted - set(sums)
    if missing:
      raise ValueError(
        f"calibration: kernels {sorted(missing)} are never multiplied through "
        "layers.projection.project in this block, so their inputs cannot be captured"
      )
    for path, s in sums.items():
      totals[path] = s if path not in totals else totals[path] + s
    count += float(n)
  if count <= 0:
    raise ValueError("calibration batches hold no real tokens (every mask is 0)")
  return {path: (2.0 / count) * s for path, s in totals.items()}


def embed_batches(model: nnx.Module, batches: Sequence[dict[str, Any]]) -> list[CalibrationBatch]:
  """The first block's inputs for token batches `{"input_ids": [B, T], "attention_mask"?}`.

  Positions are `arange(T)` per row (left-aligned rows, padding at the end), as in training.
  """
  out = []
  if not batches:
    raise ValueError("calibration needs at least one batch")
  for i, batch in enumerate(batches):
    ids = jnp.asarray(batch["input_ids"])
    if ids.ndim != 2:
      raise ValueError(f"calibration batch {i}: input_ids must be [B, T], got {ids.shape}")
    if not jnp.issubdtype(ids.dtype, jnp.integer):
      raise ValueError(f"calibration batch {i}: input_ids must be integer, got {ids.dtype}")
    if int(ids.min()) < 0 or int(ids.max()) >= model.config.vocab_size:
      raise ValueError(
        f"calibration batch {i}: token ids must lie in [0, {model.config.vocab_size}), got "
        f"[{int(ids.min())}, {int(ids.max())}]"
      )
    mask = jnp.asarray(batch.get("attention_mask", jnp.ones_like(ids))).astype(jnp.int32)
    if mask.shape != ids.shape:
      raise ValueError(f"calibration batch {i}: attention_mask {mask.shape} != ids {ids.shape}")
    b, t = ids.shape
    x = jnp.take(model.embed[...], ids, axis=0).astype(model.dtype)
    positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
    out.append(CalibrationBatch(x, positions, mask))
  return out


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _propagate(graphdef, state, x, positions, mask):
  return _run(nnx.merge(graphdef, state), CalibrationBatch(x, positions, mask))


def propagate(block: nnx.Module, batches: Sequence[CalibrationBatch]) -> list[CalibrationBatch]:
  """The next block's inputs: `block` applied to every batch (one compiled pass, shared by
  every block of the same structure)."""
  with standalone_block(block):
    graphdef, state = nnx.split(block)
  return [
    CalibrationBatch(_propagate(graphdef, state, b.x, b.positions, b.mask), b.positions, b.mask)
    for b in batches
  ]


def match_targets(names: Sequence[str], targets: str) -> list[str]:
  """The names that `targets` (a regex, `re.fullmatch`) selects."""
  return [n for n in names if re.fullmatch(targets, n)]
