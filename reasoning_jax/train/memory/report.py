"""A memory plan: the abstract estimate, the compiled peak, and whether it fits a device.

  >>> spec = PlanSpec(model=get_preset("qwen3-8b"), mesh={"fsdp": 8}, batch_size=8,
  ...                 seq_len=2048, policy=MemoryPolicy(compute_dtype="bfloat16", remat="full"))
  >>> result = plan(spec, device_memory_gib=80)
  >>> print(format_table({"qwen3-8b full": result}))

Rows are GiB (2**30 bytes) or MiB (2**20) per device.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from reasoning_jax.train.memory.compiled import CompiledMemory, compiled_memory
from reasoning_jax.train.memory.estimate import MemoryEstimate, PlanSpec, estimate
from reasoning_jax.validation import check_float_in

GIB = 2**30
MIB = 2**20


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
  """The estimate, the compiled analysis (None when not compiled) and the device budget."""

  spec: PlanSpec
  estimate: MemoryEstimate
  compiled: CompiledMemory | None
  device_memory_bytes: int | None

  @property
  def peak(self) -> int:
    """The compiled peak when available, else the estimated train-step total."""
    return self.compiled.peak if self.compiled is not None else self.estimate.train_total

  @property
  def fits(self) -> bool | None:
    """Whether the peak fits the device memory (None without a budget)."""
    if self.device_memory_bytes is None:
      return None
    return self.peak <= self.device_memory_bytes

  def fits_with_kv_cache(self) -> bool | None:
    """Whether a generation cache fits beside the parameters (rollouts: no grads/optimizer
    temporaries assumed freed; params + optimizer state + cache)."""
    if self.device_memory_bytes is None:
      return None
    e = self.estimate
    return e.params + e.opt_state + e.kv_cache <= self.device_memory_bytes


def plan(
  spec: PlanSpec, *, compile: bool = True, device_memory_gib: float | None = None
) -> MemoryPlan:
  """Estimates `spec` and (with `compile`) compiles its step on abstract inputs."""
  if device_memory_gib is not None:
    check_float_in(device_memory_gib, "device_memory_gib", 0.0, low_inclusive=False)
  return MemoryPlan(
    spec=spec,
    estimate=estimate(spec),
    compiled=compiled_memory(spec) if compile else None,
    device_memory_bytes=None if device_memory_gib is None else int(device_memory_gib * GIB),
  )


def _rows(p: MemoryPlan, unit: int) -> dict[str, str]:
  e, c = p.estimate, p.compiled

  def _gib(x: int | None) -> str:
    return "-" if x is None else f"{x / unit:.2f}"

  fits = {None: "-", True: "yes", False: "NO"}
  return {
    "parameters (M)": f"{e.num_params / 1e6:.1f}",
    "trainable (M)": f"{e.trainable_params / 1e6:.1f}",
    "params": _gib(e.params),
    "grads": _gib(e.grads),
    "optimizer": _gib(e.opt_state),
    "fsdp gathered": _gib(e.gathered),
    "activations": _gib(e.activations),
    "update temps": _gib(e.update),
    "estimate (train)": _gib(e.train_total),
    "kv cache": _gib(e.kv_cache),
    "compiled args": _gib(None if c is None else c.arguments),
    "compiled temps": _gib(None if c is None else c.temporaries),
    "compiled peak": _gib(None if c is None else c.peak),
    "device memory": _gib(p.device_memory_bytes),
    "fits (train)": fits[p.fits],
    "fits (params+opt+kv)": fits[p.fits_with_kv_cache()],
  }


def format_table(plans: Mapping[str, MemoryPlan]) -> str:
  """A text table: one column per plan, one row per term (GiB per device, MiB when every
  plan's peak is below 1 GiB)."""
  unit, unit_name = (GIB, "GiB") if max(p.peak for p in plans.values()) >= GIB else (MIB, "MiB")
  rows = {name: _rows(p, unit) for name, p in plans.items()}
  labels = list(next(iter(rows.values())))
  width = max(len(label) for label in labels)
  cols = [max(len(name), 8) for name in rows]
  lines = [
    f"{unit_name + ' per device':<{width}}  " + "  ".join(f"{n:>{w}}" for n, w in zip(rows, cols))
  ]
  for label in labels:
    cells = "  ".join(f"{rows[n][label]:>{w}}" for n, w in zip(rows, cols))
    lines.append(f"{label:<{width}}  {cells}")
  return "\n".join(lines)


def plan_summary(p: MemoryPlan) -> dict[str, float | int | bool | None]:
  """The plan as a flat dict of bytes (for JSON output)."""
  e, c = p.estimate, p.compiled
  out = {f"estimate_{k}": v for k, v in dataclasses.asdict(e).items()}
  out["estimate_train_total"] = e.train_total
  if c is not None:
    out.update({f"compiled_{k}": v for k, v in dataclasses.asdict(c).items()})
    out["compiled_peak"] = c.peak
  out["device_memory_bytes"] = p.device_memory_bytes
  out["fits"] = p.fits
  out["fits_with_kv_cache"] = p.fits_with_kv_cache()
  return out
