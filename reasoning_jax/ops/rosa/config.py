"""The DESIGN CHOICE flags of the ROSA branch (memory_attention.md sections 2.1-2.3).

Defaults are the spec's canonical ROSA_match and the released code's training signal;
`RosaConfig.released_code()` flips the four matcher flags to what the authors' latest script
(`2025.12.29 qkv_update.py`) does.
"""

from __future__ import annotations

import dataclasses

UNSEEN_MODES = ("reset", "keep")
VALUE_FIELDS = ("prob", "bits")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RosaConfig:
  """How symbols are formed, matched on the host and credited in the backward pass.

  Attributes:
    bits_per_route: M, bits per route (4, "Bo's bit-based discretization"; R = width / M
      routes, alphabet 2^M). 1 gives BlinkDL's 1-bit ROSA.
    rle_k: False (canonical: the key text is k[0..t-1]). True: runs of identical key symbols
      are collapsed; tau is the start of the run after the match, -1 if it has not started.
    q_runs: False. True: the matcher advances only on the first step of each run of identical
      query symbols; later steps re-query from the advanced state.
    unseen: "reset" (canonical: a query symbol absent from the key text empties the match) or
      "keep" (the state is left unchanged; the released code).
    track_length: True (the spec: the match length is tracked and the state relocated after
      the automaton grows). False: the reached state's endpos is used as is (released code).
    max_link_walk: None (exact rightmost ends). An int bounds each maxend suffix-link walk,
      capping the O(n) per-symbol cost on periodic streams; states above the cap keep an
      older, still valid, end.
    temp_q, temp_k, temp_v: 1.0; the soft bit surrogate p = sigmoid(x / temp) of the backward.
    cf_value_q, cf_value_k: "prob" (released code: value bits at the counterfactual destinations
      are read as p^V) or "bits" (hard value bits) in the query / key gradients.
    num_threads: host threads for the matcher (None: numba's default, all cores).
  """

  bits_per_route: int = 4
  rle_k: bool = False
  q_runs: bool = False
  unseen: str = "reset"
  track_length: bool = True
  max_link_walk: int | None = None
  temp_q: float = 1.0
  temp_k: float = 1.0
  temp_v: float = 1.0
  cf_value_q: str = "prob"
  cf_value_k: str = "prob"
  num_threads: int | None = None

  def __post_init__(self):
    if not isinstance(self.bits_per_route, int) or not 1 <= self.bits_per_route <= 8:
      raise ValueError(f"bits_per_route must be an int in [1, 8], got {self.bits_per_route!r}")
    if self.unseen not in UNSEEN_MODES:
      raise ValueError(f"unseen must be one of {UNSEEN_MODES}, got {self.unseen!r}")
    for name in ("cf_value_q", "cf_value_k"):
      if getattr(self, name) not in VALUE_FIELDS:
        raise ValueError(f"{name} must be one of {VALUE_FIELDS}, got {getattr(self, name)!r}")
    for name in ("temp_q", "temp_k", "temp_v"):
      if not getattr(self, name) > 0:
        raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
    if self.max_link_walk is not None and self.max_link_walk < 1:
      raise ValueError(f"max_link_walk must be None or >= 1, got {self.max_link_walk!r}")
    if self.num_threads is not None and self.num_threads < 1:
      raise ValueError(f"num_threads must be None or >= 1, got {self.num_threads!r}")

  @property
  def alphabet(self) -> int:
    return 1 << self.bits_per_route

  @classmethod
  def released_code(cls, **overrides) -> RosaConfig:
    """The matcher of the authors' released training script (section 2.2, three differences)."""
    flags = dict(rle_k=True, q_runs=True, unseen="keep", track_length=False)
    return cls(**{**flags, **overrides})

  def matcher_flags(self) -> tuple[int, int, int, int, int]:
    """(rle_k, q_runs, unseen_keeps_state, track_length, max_link_walk) as the compiled
    matcher takes them (-1: unbounded walk)."""
    walk = -1 if self.max_link_walk is None else int(self.max_link_walk)
    return (
      int(self.rle_k),
      int(self.q_runs),
      int(self.unseen == "keep"),
      int(self.track_length),
      walk,
    )
