"""`RouterConfig`: every setting of the R2-Router reproduction, with the paper's default.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue, Lou, Xing, Huang,
arXiv:2602.02823, ICML 2026), `shared/methods/inference.md` section 6: a router picks, for each
query, an LLM *and* an output budget `b` (enforced by a length instruction) by
`argmax_{M, b} (1 - lam) Q(x, M, b) - lam C_M(b)`. Quality is predicted by one head per
(model, budget anchor) on a frozen query embedding.

The paper and its released code differ; each difference is a flag here:

  * `head`: "mlp" (paper: 1024 -> 256 -> 128 -> 64 -> 1, ReLU, sigmoid output, MSE, Adam 1e-4,
    100 epochs) or "ridge" (released code: ridge regression with alpha = 10 per head, clipped to
    [0, 1]);
  * `unlimited`: the released code's extra "unlimited" option per LLM (the response without a
    length instruction, R2-Bench's "default" column, capped at `default_cap` tokens), costed at
    a ridge prediction of its output length. DESIGN CHOICE: off by default (the paper's method
    routes over the anchors only);
  * `lambda_mode`: the lambda scaling pitfall of section 6.4. "normalized" (DESIGN CHOICE,
    default): costs are divided by the pool's maximum cost before the trade-off and lambda is
    swept uniformly on [0, 1]; "log_ratio": raw costs, `lam / (1 - lam)` swept on a log grid
    (the released code's single default is lam = 0.99999 on dollar costs).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

__all__ = [
  "DEFAULT_BUDGETS",
  "HEAD_KINDS",
  "LAMBDA_MODES",
  "RouterConfig",
  "check_budgets",
  "check_lambda",
]

# R2-Bench's anchor budgets (output tokens); "default" (no instruction, capped at 4000 tokens)
# is the `unlimited` option, not an anchor.
DEFAULT_BUDGETS = (10, 20, 30, 40, 50, 80, 100, 150, 200, 300, 500, 800, 1200, 2000, 4000)
HEAD_KINDS = ("mlp", "ridge")
LAMBDA_MODES = ("normalized", "log_ratio")


def check_budgets(budgets: Any, name: str = "budgets") -> tuple[int, ...]:
  """`budgets` as a tuple of positive ints, strictly increasing; the message names `name`."""
  try:
    values = tuple(budgets)
  except TypeError:
    raise TypeError(f"{name} must be a sequence of positive ints, got {budgets!r}") from None
  if not values:
    raise ValueError(f"{name} must hold at least one budget, got an empty sequence")
  for b in values:
    if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
      raise ValueError(f"{name} must hold positive ints (output tokens), got {b!r} in {values}")
  values = tuple(int(b) for b in values)
  if len(set(values)) != len(values):
    dup = sorted({b for b in values if values.count(b) > 1})
    raise ValueError(f"{name} must not repeat a budget, got duplicates {dup} in {values}")
  if any(a > b for a, b in zip(values, values[1:])):
    raise ValueError(f"{name} must be sorted in increasing order, got {values}")
  return values


def check_lambda(lam: Any, name: str = "lam") -> float:
  """`lam` as a float in [0, 1]; the message names `name`."""
  if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)):
    raise TypeError(f"{name} must be a float in [0, 1], got {lam!r}")
  value = float(lam)
  if not math.isfinite(value) or not 0.0 <= value <= 1.0:
    raise ValueError(f"{name} must be a float in [0, 1], got {lam!r}")
  return value


def _positive(name: str, value: Any, *, integer: bool = False, zero: bool = False) -> None:
  kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
  ok = not isinstance(value, bool) and isinstance(value, kinds) and math.isfinite(value)
  if not ok or value < 0 or (value == 0 and not zero):
    what = "an int" if integer else "a float"
    raise ValueError(f"{name} must be {what} {'>= 0' if zero else '> 0'}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class RouterConfig:
  """Static settings of one router (hashable).

  Attributes:
    head: "mlp" (paper, default) or "ridge" (released code).
    hidden_sizes: the MLP heads' hidden widths (paper: [256, 128, 64], ReLU, sigmoid output).
    learning_rate: Adam's step size for the MLP heads (paper: 1e-4).
    epochs: passes over the training queries (paper: 100).
    batch_size: queries per Adam step. DESIGN CHOICE: 64 (the paper does not state it).
    ridge_alpha: the ridge penalty (released code: 10); also used by the output-length
      predictor of the `unlimited` option.
    budgets: the anchor budgets in output tokens, strictly increasing (R2-Bench's 15).
    unlimited: add the no-instruction option per LLM (released code), costed at the predicted
      output length capped at `default_cap`. DESIGN CHOICE: False.
    default_cap: the token cap of the no-instruction response (R2-Bench: 4000).
    lambda_mode: "normalized" (DESIGN CHOICE, default: cost / the pool's max cost, lambda
      uniform on [0, 1]) or "log_ratio" (raw cost, `lam / (1 - lam)` on a log grid).
    num_lambdas: points of the lambda sweep of a deferral curve.
    log_ratio_range: `(lo, hi)` of `log10(lam / (1 - lam))` for "log_ratio".
    tokens_per_word: input tokens per whitespace word when the count is estimated (released
      code: 1.3).
    seed: initialisation and shuffling seed of the MLP heads.
  """

  head: str = "mlp"
  hidden_sizes: tuple[int, ...] = (256, 128, 64)
  learning_rate: float = 1e-4
  epochs: int = 100
  batch_size: int = 64
  ridge_alpha: float = 10.0
  budgets: tuple[int, ...] = DEFAULT_BUDGETS
  unlimited: bool = False
  default_cap: int = 4000
  lambda_mode: str = "normalized"
  num_lambdas: int = 201
  log_ratio_range: tuple[float, float] = (-8.0, 4.0)
  tokens_per_word: float = 1.3
  seed: int = 0

  def __post_init__(self):
    for name, allowed in (("head", HEAD_KINDS), ("lambda_mode", LAMBDA_MODES)):
      if getattr(self, name) not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
    object.__setattr__(self, "budgets", check_budgets(self.budgets))
    sizes = tuple(self.hidden_sizes)
    for h in sizes:
      _positive("hidden_sizes", h, integer=True)
    object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in sizes))
    _positive("learning_rate", self.learning_rate)
    _positive("epochs", self.epochs, integer=True)
    _positive("batch_size", self.batch_size, integer=True)
    _positive("ridge_alpha", self.ridge_alpha, zero=True)
    _positive("default_cap", self.default_cap, integer=True)
    _positive("num_lambdas", self.num_lambdas, integer=True)
    _positive("tokens_per_word", self.tokens_per_word)
    if not isinstance(self.unlimited, bool):
      raise ValueError(f"unlimited must be a bool, got {self.unlimited!r}")
    lo_hi = tuple(self.log_ratio_range)
    if len(lo_hi) != 2 or not all(math.isfinite(float(v)) for v in lo_hi) or lo_hi[0] >= lo_hi[1]:
      raise ValueError(
        f"log_ratio_range must be (lo, hi) with lo < hi, got {self.log_ratio_range!r}"
      )
    object.__setattr__(self, "log_ratio_range", (float(lo_hi[0]), float(lo_hi[1])))

  @property
  def num_options(self) -> int:
    """Options per LLM: the anchors, plus the no-instruction one when `unlimited`."""
    return len(self.budgets) + int(self.unlimited)

  @property
  def option_labels(self) -> tuple[int | str, ...]:
    """The option axis of `Q_hat` / `C`: the budgets, then "default" when `unlimited`."""
    return self.budgets + (("default",) if self.unlimited else ())
