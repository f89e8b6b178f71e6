"""`QuantizedWeight`: one storage format for RTN, GPTQ and BPDQ weights (bit-planes + per-group
coefficients), its exact byte count, and the reference dequantisation.

"BPDQ: Bit-Plane Decomposition Quantization on a Variable Grid for Large Language Models"
(Chen et al., arXiv:2602.04163), section 4.1 of `shared/methods/inference.md`. A weight
`W [d_out, d_in]` (rows = output channels, the spec's convention) with `k` bit-planes and group
size `g` is stored as

  planes  int32 `[d_in / 32, k, d_out]`: bit `j` of word `[w, i, r]` is plane `i` of row `r`,
          column `32 w + j` (the upstream BPDQ packing, so checkpoints stay compatible);
          plane 0 is the least significant plane.
  and, per row-group, either
  coeffs  `[d_in / g, k + 1, d_out]` (BPDQ, `kind="bitplane"`):
          `W[r, c] = C[j, 0, r] + sum_i C[j, i + 1, r] b_i[r, c]` for the group `j = c // g`
          (a non-uniform grid of 2^k levels per row-group);
  or      scales `[d_in / g, d_out]` + zeros uint8 `[d_in / g, d_out]` (RTN / GPTQ,
          `kind="uniform"`): `W = s (q - z)` with the k-bit code `q = sum_i 2^i b_i`. This is
          the bit-plane form with `C_0 = -s z`, `C_{i+1} = s 2^i` (`coefficients()`), so one
          dequant-matmul kernel serves every method.

  perm    optional int32 `[d_in]`: GPTQ's act-order without static groups quantises the
          columns in the order `perm` and keeps them in that order (groups stay contiguous);
          `W_original[:, perm] = W_stored`, and a matmul reads `x[..., perm]`.

Bits per weight are the real bytes of these arrays: BPDQ `k + 16 (k + 1) / g` with bf16
coefficients (2-bit g = 256: 2.1875, the spec's count), uniform `b + (16 + 8) / g` with bf16
scales and uint8 zeros (2-bit g = 128: 2.1875, so GPTQ g128 and BPDQ g256 match exactly).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from reasoning_jax.ops.quant.packing import pack_bitplanes, unpack_bitplanes

KINDS = ("uniform", "bitplane")
WORD_BITS = 32


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class QuantizedWeight:
  """A quantised `W [d_out, d_in]` (see the module docstring for the layout).

  Array fields (pytree leaves; `None` where the kind has none): `planes`, `coeffs`, `scales`,
  `zeros`, `perm`. Static fields: `kind`, `bits`, `group_size`, `shape` (`(d_out, d_in)`),
  `method` (who made it: "rtn", "gptq", "bpdq"; for reports only).
  """

  planes: jax.Array
  coeffs: jax.Array | None = None
  scales: jax.Array | None = None
  zeros: jax.Array | None = None
  perm: jax.Array | None = None
  kind: str = dataclasses.field(default="uniform", metadata=dict(static=True))
  bits: int = dataclasses.field(default=4, metadata=dict(static=True))
  group_size: int = dataclasses.field(default=128, metadata=dict(static=True))
  shape: tuple[int, int] = dataclasses.field(default=(0, 0), metadata=dict(static=True))
  method: str = dataclasses.field(default="", metadata=dict(static=True))

  @property
  def d_out(self) -> int:
    return self.shape[0]

  @property
  def d_in(self) -> int:
    return self.shape[1]

  @property
  def num_groups(self) -> int:
    return self.d_in // self.group_size

  def arrays(self) -> dict[str, jax.Array]:
    """The stored arrays by name (the ones that count towards the bytes)."""
    names = ("planes", "coeffs", "scales", "zeros", "perm")
    return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

  @property
  def nbytes(self) -> int:
    """Real bytes of every stored array."""
    return sum(
      int(math.prod(a.shape)) * jnp.dtype(a.dtype).itemsize for a in self.arrays().values()
    )

  @property
  def bits_per_weight(self) -> float:
    """`8 nbytes / (d_out d_in)`: codes plus group parameters (plus `perm` when present)."""
    return 8.0 * self.nbytes / (self.d_out * self.d_in)

  def coefficients(self, dtype=jnp.float32) -> jax.Array:
    """Per-group grid coefficients `[d_in / g, k + 1, d_out]` in `dtype` (index 0 = bias)."""
    if self.kind == "bitplane":
      return self.coeffs.astype(dtype)
    s = self.scales.astype(dtype)
    z = self.zeros.astype(dtype)
    steps = [s * (2.0**i) for i in range(self.bits)]
    return jnp.stack([-s * z] + steps, axis=1)

  def codes(self) -> jax.Array:
    """The integer codes `sum_i 2^i b_i` as int32 `[d_out, d_in]` in stored column order."""
    bits = unpack_bitplanes(self.planes).astype(jnp.int32)  # [d_in, k, d_out]
    weights = (2 ** jnp.arange(self.bits, dtype=jnp.int32))[None, :, None]
    return jnp.sum(bits * weights, axis=1).T

  def dequantize_stored(self, dtype=jnp.float32) -> jax.Array:
    """`W [d_out, d_in]` in stored column order (`perm` not undone), computed in float32."""
    bits = unpack_bitplanes(self.planes).astype(jnp.float32)  # [d_in, k, d_out]
    g, k = self.group_size, self.bits
    bits = bits.reshape(self.num_groups, g, k, self.d_out)
    c = self.coefficients(jnp.float32)  # [G, k + 1, d_out]
    w = c[:, None, 0, :] + jnp.einsum("agkn,akn->agn", bits, c[:, 1:, :])
    return w.reshape(self.d_in, self.d_out).T.astype(dtype)

  def dequantize(self, dtype=jnp.float32) -> jax.Array:
    """`W [d_out, d_in]` in the original column order (one compiled function per layout and
    dtype; eager op-by-op dispatch compiled every op of it for each new shape)."""
    return _dequantize(self, dtype=jnp.dtype(dtype))

  def describe(self) -> str:
    extra = "" if self.perm is None else ", act-order perm"
    return (
      f"{self.method or self.kind} {self.bits}-bit g{self.group_size} {self.shape} "
      f"({self.bits_per_weight:.4f} bits/weight{extra})"
    )


@functools.partial(jax.jit, static_argnames=("dtype",))
def _dequantize(weight: QuantizedWeight, *, dtype) -> jax.Array:
  w = weight.dequantize_stored(dtype)
  if weight.perm is None:
    return w
  return w[:, jnp.argsort(weight.perm)]


@functools.partial(jax.jit, static_argnames=("bits",))
def _code_planes(codes: jax.Array, *, bits: int) -> jax.Array:
  """Uniform codes `[d_out, d_in]` -> packed words `[d_in / 32, k, d_out]`."""
  codes = codes.astype(jnp.int32)
  return pack_bitplanes(jnp.stack([(codes >> i) & 1 for i in range(bits)], axis=0))


def check_layout(shape: tuple[int, int], bits: int, group_size: int, *, argument: str = "weight"):
  """Raises ValueError naming the argument when `W [d_out, d_in]` cannot take this layout."""
  if len(shape) != 2:
    raise ValueError(f"{argument} must be a 2-D [d_out, d_in] matrix, got shape {tuple(shape)}")
  d_out, d_in = shape
  if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
    raise ValueError(f"bits must be an int in [1, 8], got {bits!r}")
  if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size <= 0:
    raise ValueError(f"group_size must be a positive int, got {group_size!r}")
  if d_in % WORD_BITS:
    raise ValueError(
      f"{argument} has d_in = {d_in} input columns; the bit-plane packing needs a multiple of "
      f"{WORD_BITS}"
    )
  if d_in % group_size:
    raise ValueError(
      f"group_size={group_size} does not divide the input dimension d_in = {d_in} of {argument}"
    )


def from_codes(
  codes: jax.Array,
  scales: jax.Array,
  zeros: jax.Array,
  *,
  bits: int,
  group_size: int,
  perm: jax.Array | None = None,
  method: str = "rtn",
  storage_dtype=jnp.bfloat16,
) -> QuantizedWeight:
  """Packs uniform codes `[d_out, d_in]` with `scales`, `zeros` `[d_in / g, d_out]`."""
  d_out, d_in = codes.shape
  check_layout((d_out, d_in), bits, group_size, argument="codes")
  return QuantizedWeight(
    planes=_code_planes(jnp.asarray(codes), bits=bits),
    scales=jnp.asarray(scales).astype(storage_dtype),
    zeros=jnp.asarray(zeros).astype(jnp.uint8),
    perm=None if perm is None else jnp.asarray(perm, jnp.int32),
    kind="uniform",
    bits=bits,
    group_size=group_size,
    shape=(d_out, d_in),
    method=method,
  )


def from_bitplanes(
  planes: jax.Array,
  coeffs: jax.Array,
  *,
  group_size: int,
  method: str = "bpdq",
  storage_dtype=jnp.bfloat16,
) -> QuantizedWeight:
  """Packs BPDQ bit-planes `[k, d_out, d_in]` (0/1) with `coeffs` `[d_in / g, k + 1, d_out]`."""
  k, d_out, d_in = planes.shape
  check_layout((d_out, d_in), k, group_size, argument="planes")
  want = (d_in // group_size, k + 1, d_out)
  if tuple(coeffs.shape) != want:
    raise ValueError(f"coeffs must be [d_in / g, k + 1, d_out] = {want}, got {tuple(coeffs.shape)}")
  return QuantizedWeight(
    planes=pack_bitplanes(planes),
    coeffs=jnp.asarray(coeffs).astype(storage_dtype),
    kind="bitplane",
    bits=k,
    group_size=group_size,
    shape=(d_out, d_in),
    method=method,
  )
