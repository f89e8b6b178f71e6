"""`QuantConfig`: the per-weight flags of RTN, GPTQ and BPDQ, with their defaults and sources.

"GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers" (Frantar
et al., arXiv:2210.17323) and "BPDQ: Bit-Plane Decomposition Quantization on a Variable Grid for
Large Language Models" (Chen et al., arXiv:2602.04163); sections 3 and 4 of
`shared/methods/inference.md`. Every default below says where it comes from; DESIGN CHOICE marks
our own decisions.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

METHODS = ("rtn", "gptq", "bpdq")
# Uniform codes are stored with uint8 zero points, so 8 bits is the widest uniform grid; BPDQ's
# authors release k in {2, 3, 4} bit-planes (spec 4.2).
SUPPORTED_BITS = {"rtn": (2, 3, 4, 8), "gptq": (2, 3, 4, 8), "bpdq": (2, 3, 4)}
# BPDQ group sizes of the authors' workflow (spec 4.2).
BPDQ_GROUP_SIZES = (32, 64, 128, 256)
# Damping fraction of mean(diag(H)): 0.01 in the GPTQ paper (spec 3.2); BPDQ runs inside
# GPTQModel, whose default is 0.05 (spec 4.2). RTN needs no Hessian.
DEFAULT_DAMP = {"rtn": 0.0, "gptq": 0.01, "bpdq": 0.05}
# Lazy-batch width of GPTQ (spec 3.2: blocks of 128 columns).
GPTQ_BLOCK_SIZE = 128
STORAGE_DTYPES = ("bfloat16", "float16", "float32")


@dataclasses.dataclass(frozen=True)
class QuantConfig:
  """Flags for quantising one weight `W [d_out, d_in]`; `validate()` checks them.

  Fields (default; source):
    method: "rtn" | "gptq" | "bpdq" ("bpdq", the method of this issue).
    bits: bits per weight / bit-planes k (2; BPDQ's headline 2-bit setting). Supported:
      {2, 3, 4, 8} for rtn/gptq, {2, 3, 4} for bpdq.
    group_size: input columns per group (128; GPTQ's common g128, BPDQ allows 32/64/128/256).
    damp: Hessian damping fraction, `lambda = damp * mean(diag(H))` (None: 0.01 for GPTQ, the
      paper; 0.05 for BPDQ, GPTQModel's default used by the BPDQ authors).
    block_size: lazy-update block width (None: 128 for GPTQ, spec 3.2; max(128, g) for BPDQ,
      spec 4.2). BPDQ needs a multiple of group_size.
    act_order: GPTQ's column order by diag(H) descending (False; GPTQ "desc_act"). Not for
      BPDQ, which reorders with `gar` instead (spec 4.2: desc_act is off).
    static_groups: GPTQ group parameters from the original (not error-updated) weights, stored
      in the original column order so no `perm` is needed (False; GPTQ reference option).
    sym: symmetric RTN/GPTQ grid, `z = 2^(b-1)` (False; spec 3.1 asymmetric min-max).
    n_iters: BPDQ alternating B-step / C-step iterations (10; the authors' workflow, spec 4.2;
      their library default is 5).
    alpha: BPDQ ridge strength in the whitened FIT (1e-4; spec 4.2).
    init_bits: BPDQ initial RTN width whose k most-significant planes start B (8; spec 4.2).
    gar: BPDQ group-aware reordering (True; spec 4.2, on unless a rotation is used).
    storage_dtype: dtype of scales / coefficients ("bfloat16"; spec 4.3 item 6, model dtype).
    round_to_storage: DESIGN CHOICE (spec 4.3 item 6): round BPDQ's C' and the uniform scales
      to `storage_dtype` before computing Qn / quantising, so the error propagated is the error
      of the stored weight (True). Upstream BPDQ propagates f32 Q and stores bf16 C: a
      deliberate deviation.
  """

  method: str = "bpdq"
  bits: int = 2
  group_size: int = 128
  damp: float | None = None
  block_size: int | None = None
  act_order: bool = False
  static_groups: bool = False
  sym: bool = False
  n_iters: int = 10
  alpha: float = 1e-4
  init_bits: int = 8
  gar: bool = True
  storage_dtype: str = "bfloat16"
  round_to_storage: bool = True

  def replace(self, **changes) -> QuantConfig:
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
    if unknown:
      raise ValueError(f"unknown QuantConfig flag(s) {unknown}")
    return dataclasses.replace(self, **changes)

  @property
  def damp_value(self) -> float:
    """`damp`, or the method's default when None."""
    return DEFAULT_DAMP[self.method] if self.damp is None else float(self.damp)

  @property
  def block_value(self) -> int:
    """`block_size`, or the method's default when None."""
    if self.block_size is not None:
      return int(self.block_size)
    if self.method == "bpdq":
      return max(128, self.group_size)
    return GPTQ_BLOCK_SIZE

  @property
  def storage(self):
    """The storage dtype as a jnp dtype."""
    return jnp.dtype(self.storage_dtype)

  @property
  def round_dtype(self):
    """The dtype group parameters are rounded to before use, or None (no rounding)."""
    return self.storage if self.round_to_storage else None

  def validate(self) -> QuantConfig:
    """Raises ValueError naming the offending flag; returns self."""

    def _int(name, value, low):
      if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")

    if self.method not in METHODS:
      raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
    if isinstance(self.bits, bool) or self.bits not in SUPPORTED_BITS[self.method]:
      raise ValueError(
        f"bits={self.bits!r} is not supported by {self.method}; "
        f"choose one of {SUPPORTED_BITS[self.method]}"
      )
    _int("group_size", self.group_size, 1)
    if self.method == "bpdq" and self.group_size not in BPDQ_GROUP_SIZES:
      raise ValueError(
        f"group_size for bpdq must be one of {BPDQ_GROUP_SIZES}, got {self.group_size}"
      )
    if self.damp is not None and not (0.0 <= float(self.damp) < float("inf")):
      raise ValueError(f"damp must be a finite number >= 0, got {self.damp!r}")
    if self.block_size is not None:
      _int("block_size", self.block_size, 1)
    if self.method == "bpdq" and self.block_value % self.group_size:
      raise ValueError(
        f"block_size={self.block_value} must be a multiple of group_size={self.group_size} for bpdq"
      )
    if self.act_order and self.method != "gptq":
      raise ValueError(
        f"act_order is a GPTQ flag (bpdq reorders with gar); got method={self.method!r}"
      )
    if self.static_groups and self.method != "gptq":
      raise ValueError(f"static_groups is a GPTQ flag; got method={self.method!r}")
    if self.sym and self.method == "bpdq":
      raise ValueError("sym is an RTN/GPTQ flag; bpdq fits its own grid per row-group")
    _int("n_iters", self.n_iters, 1)
    if not (0.0 <= float(self.alpha) < float("inf")):
      raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
    _int("init_bits", self.init_bits, 1)
    if self.method == "bpdq" and not self.bits <= self.init_bits <= 8:
      raise ValueError(f"init_bits must be in [bits={self.bits}, 8], got {self.init_bits}")
    if self.storage_dtype not in STORAGE_DTYPES:
      raise ValueError(f"storage_dtype must be one of {STORAGE_DTYPES}, got {self.storage_dtype!r}")
    return self
