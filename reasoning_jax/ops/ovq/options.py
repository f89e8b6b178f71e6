"""OVQ attention: the DESIGN CHOICE flags of every form, validated once (`make_options`).

Online Vector Quantized Attention (Alonso, Figliolia, Millidge; arXiv:2602.03922). The spec
(/shared/methods/memory_attention.md section 3.2) marks the mechanism's unconfirmed choices as
DESIGN CHOICES; each is a flag here, with the spec's default first:

  schedule        growth schedule, `OVQ_SCHEDULES`: "saturating" | "every_token" | "linear" |
                  "dirichlet"
  linear_tokens   tokens after which "linear" has opened every slot (None: 4 * num_slots)
  dirichlet_alpha concentration of "dirichlet" (None: num_slots / 4)
  seeding         new-slot initialisation, `OVQ_SEEDINGS`: "farthest" | "kmeans++" | "random"
  seed            int folded into the stochastic seeding rules' noise (default 0)
  update          dictionary update, `OVQ_UPDATES`: "adaptive" (running mean, lr 1/count) |
                  "constant" (lr `update_lr`)
  update_lr       the constant rule's learning rate (default 0.1; unused by "adaptive")
  readout         chunk readout, `OVQ_READOUTS`: "exact" (joint softmax with the chunk's exact
                  keys) | "vq" (the chunk's keys quantised against the previous dictionary)
  renormalize     re-normalise updated key slots (default False)
"""

from __future__ import annotations

import dataclasses
import math
import numbers

from reasoning_jax.ops.ovq import common, write


@dataclasses.dataclass(frozen=True)
class OVQOptions:
  """The validated flags (hashable: a static argument under jit). Build with `make_options`."""

  schedule: str = "saturating"
  renormalize: bool = False
  seeding: str = "farthest"
  seed: int = 0
  update: str = "adaptive"
  update_lr: float = 0.1
  readout: str = "exact"
  linear_tokens: int = 4096
  dirichlet_alpha: float = 256.0

  def schedule_params(self) -> dict:
    """The keyword arguments of this schedule's function in `OVQ_SCHEDULES`."""
    if self.schedule == "linear":
      return {"tokens": self.linear_tokens}
    if self.schedule == "dirichlet":
      return {"alpha": self.dirichlet_alpha}
    return {}


# The flags and their defaults, as the forms, the dispatcher and the layer take them.
DEFAULT_FLAGS = dict(
  schedule="saturating",
  renormalize=False,
  seeding="farthest",
  seed=0,
  update="adaptive",
  update_lr=0.1,
  readout="exact",
  linear_tokens=None,
  dirichlet_alpha=None,
)


def make_options(
  num_slots: int,
  *,
  schedule: str = "saturating",
  renormalize: bool = False,
  seeding: str = "farthest",
  seed: int = 0,
  update: str = "adaptive",
  update_lr: float = 0.1,
  readout: str = "exact",
  linear_tokens: int | None = None,
  dirichlet_alpha: float | None = None,
) -> OVQOptions:
  """Validates the flags (ValueError naming the flag) and resolves the relative defaults.

  Args:
    num_slots: N (a positive int, already checked): `linear_tokens` None becomes 4 N and
      `dirichlet_alpha` None becomes N / 4.
    the rest: see the module docstring.
  """
  write.OVQ_SCHEDULES.validate(schedule, argument="schedule")
  write.OVQ_SEEDINGS.validate(seeding, argument="seeding")
  write.OVQ_UPDATES.validate(update, argument="update")
  common.OVQ_READOUTS.validate(readout, argument="readout")
  if not isinstance(renormalize, bool):
    raise ValueError(f"renormalize must be a bool, got {renormalize!r}")
  if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**31:
    raise ValueError(f"seed must be an int in [0, 2^31), got {seed!r}")
  if (
    isinstance(update_lr, bool) or not isinstance(update_lr, numbers.Real) or not 0 < update_lr <= 1
  ):
    raise ValueError(f"update_lr must be a number in (0, 1], got {update_lr!r}")
  if linear_tokens is None:
    linear_tokens = 4 * num_slots
  common.check_positive_int(linear_tokens, "linear_tokens")
  if num_slots * linear_tokens >= 2**31:
    raise ValueError(
      f"linear_tokens * num_slots must be < 2^31 (int32 schedule), got {linear_tokens} * "
      f"{num_slots}"
    )
  if dirichlet_alpha is None:
    dirichlet_alpha = num_slots / 4
  if (
    isinstance(dirichlet_alpha, bool)
    or not isinstance(dirichlet_alpha, numbers.Real)
    or not (math.isfinite(dirichlet_alpha) and dirichlet_alpha > 0)
  ):
    raise ValueError(f"dirichlet_alpha must be a positive finite number, got {dirichlet_alpha!r}")
  return OVQOptions(
    schedule=schedule,
    renormalize=renormalize,
    seeding=seeding,
    seed=int(seed),
    update=update,
    update_lr=float(update_lr),
    readout=readout,
    linear_tokens=int(linear_tokens),
    dirichlet_alpha=float(dirichlet_alpha),
  )
