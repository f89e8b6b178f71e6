"""MRPO hyper-parameters (`MRPOConfig`), its choice tuples and the spec's numeric floors.

Paper: "Beyond Alignment: Expanding Reasoning Capacity via Manifold-Reshaping Policy
Optimization", Dayu Wang, Jiaye Yang, Weikang Li, Jiahui Liang, Yang Li,
arXiv 2602.02545 (2026). The defaults are the project spec's DESIGN CHOICE flags (listed in
`reasoning_jax.rl.mrpo`'s docstring).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from reasoning_jax.validation import (
  check_choice,
  check_finite_float,
  check_float_in,
  check_positive_int,
)

RANK_REDUCTIONS = ("min", "mean")
NORM_SCOPES = ("batch", "group")
PROBE_POOLINGS = ("mean", "last")

SINGULAR_VALUE_FLOOR = 1e-10  # Singular values below this are dropped (spec).
NORM_RANGE_FLOOR = 1e-8  # NormRank is 0 when max - min rank is below this (spec).
OMEGA_EPS = 1e-8  # Denominator guard of the orthogonality score (spec).


@dataclasses.dataclass(frozen=True, kw_only=True)
class MRPOConfig:
  """MRPO hyper-parameters; defaults are the spec's (see the module docstring).

  Attributes:
    alpha: weight of the effective-rank bonus in the reward.
    window: sliding-window size in valid tokens.
    stride: window stride; None means `window // 2` (see `window_stride`).
    rank_reduction: "min" or "mean" over a response's windows.
    norm_scope: "batch" or "group" (min/max of NormRank).
    eps_var: the bias manifold keeps the smallest k with energy >= 1 - eps_var.
    num_probes: SOE student probes per step (M).
    sampling_budget: SOE teacher attempts per problem used to find its failures.
    max_steps: SOE probe/teacher steps per trace before giving up.
    max_probe_tokens: passed to the student generator: one reasoning step, <= 64 tokens.
    probe_pooling: "mean" or "last" teacher hidden state over a probe's tokens.
    omega_threshold: keep a verified trace when its mean chosen Omega >= this.
    target_traces: SOE stops once this many traces are kept.
    rank_row_batch_size: memory knob for `trajectory_rank` (None: all rows at once).
  """

  alpha: float = 0.5
  window: int = 64
  stride: int | None = None
  rank_reduction: str = "min"
  norm_scope: str = "batch"
  eps_var: float = 0.05
  num_probes: int = 8
  sampling_budget: int = 16
  max_steps: int = 16
  max_probe_tokens: int = 64
  probe_pooling: str = "mean"
  omega_threshold: float = 0.8
  target_traces: int = 10_000
  rank_row_batch_size: int | None = None

  def __post_init__(self):
    check_finite_float(self.alpha, "MRPOConfig.alpha")
    for name in (
      "window",
      "num_probes",
      "sampling_budget",
      "max_steps",
      "max_probe_tokens",
      "target_traces",
    ):
      check_positive_int(getattr(self, name), f"MRPOConfig.{name}")
    for name in ("stride", "rank_row_batch_size"):
      if getattr(self, name) is not None:
        check_positive_int(getattr(self, name), f"MRPOConfig.{name}")
    if self.window < 2 and self.stride is None:
      raise ValueError("MRPOConfig.stride must be given when window < 2 (window // 2 == 0)")
    check_choice(self.rank_reduction, RANK_REDUCTIONS, "MRPOConfig.rank_reduction")
    check_choice(self.norm_scope, NORM_SCOPES, "MRPOConfig.norm_scope")
    check_choice(self.probe_pooling, PROBE_POOLINGS, "MRPOConfig.probe_pooling")
    check_float_in(self.eps_var, "MRPOConfig.eps_var", 0.0, 1.0, high_inclusive=False)
    check_finite_float(self.omega_threshold, "MRPOConfig.omega_threshold")

  @property
  def window_stride(self) -> int:
    return self.window // 2 if self.stride is None else self.stride


def check_config(config: Any) -> None:
  """Raises TypeError unless `config` is an `MRPOConfig`."""
  if not isinstance(config, MRPOConfig):
    raise TypeError(f"config must be an MRPOConfig, got {type(config).__name__}")


DEFAULT_CONFIG = MRPOConfig()  # The spec defaults: the `config=` default of MRPO functions.
