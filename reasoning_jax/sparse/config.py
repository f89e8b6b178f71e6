"""`SparseDecodeConfig`: which sparse decoding method `generate` runs, with every flag's default.

Methods (`method=`), all on the same decode path (`reasoning_jax.sparse.context`); prefill is
always dense and every new token's K/V is appended to the full cache (selection, not eviction):

  * "full": dense decode attention (the baseline every method is compared with);
  * "lychee": "LycheeDecode: Accelerating Long-Context LLM Inference via Hybrid-Head Sparse
    Decoding" (Lin et al., arXiv:2602.04541), `shared/methods/inference.md` section 8.2:
    per-(layer, KV head) roles; retrieval heads attend densely and re-select blocks for their
    head index, sparse heads attend only to the blocks the nearest earlier retrieval head of
    the same index selected;
  * "quest": "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference" (Tang et al.,
    arXiv:2406.10774), section 7.1: top pages by the upper bound of q . k;
  * "duo": "DuoAttention: Efficient Long-Context LLM Inference with Retrieval and Streaming
    Heads" (Xiao et al., arXiv:2410.10819), section 7.2: retrieval heads dense, streaming heads
    sinks + recent only.

Budgets count tokens and include the sinks and the recent window (section 9, equal-resource
comparisons).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from reasoning_jax.ops.sparse_decode import check_budget

METHODS = ("full", "lychee", "quest", "duo")
SELECTIONS = ("block", "token")
IMPLEMENTATIONS = ("xla", "pallas")
# The Pallas kernels' schedules (`pallas_kernels.sparse_decode.blocks.SCHEDULES`; a test keeps
# them equal: this package does not import the kernels).
KERNEL_SCHEDULES = ("grid", "loop", "mosaic")
DUO_STREAMING = ("budget", "paper")


def _int(name: str, value: Any, low: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
  return int(value)


def _roles_tuple(roles: Any) -> tuple[tuple[bool, ...], ...] | None:
  if roles is None:
    return None
  array = np.asarray(roles)
  if array.ndim != 2 or array.size == 0:
    raise ValueError(
      f"roles must be a [num_layers, num_kv_heads] bool map (True = retrieval head), got shape "
      f"{array.shape}"
    )
  if array.dtype != bool:
    if not np.all((array == 0) | (array == 1)):
      raise ValueError("roles must hold booleans (True = retrieval head, False = sparse head)")
    array = array.astype(bool)
  return tuple(tuple(bool(x) for x in row) for row in array)


@dataclasses.dataclass(frozen=True)
class SparseDecodeConfig:
  """Static settings of one sparse decoding method (hashable: one compiled decode each).

  Attributes:
    method: "full" | "lychee" | "quest" | "duo".
    budget: tokens a sparse head reads per step, sinks and recent included (paper: 4096).
    block_size: tokens per selection block (paper's block mode: 64).
    sink_tokens: first positions always kept (paper: 128).
    recent_tokens: last visible positions always kept (paper: 256).
    selection: "block" (the decode path, kernels) or "token" (the token-mode accuracy
      reference: exact sinks + recent + top tokens, jnp only).
    roles: `[L, K]` booleans, True = retrieval head (lychee and duo). LycheeDecode forces
      layer 0 to retrieval: its row must be all True.
    page_size: Quest's page (paper: 16).
    quest_dense_layers: Quest's leading dense layers (paper: 2).
    quest_keep_last_page: Quest always reads the page being filled, whose bound is partial
      (DESIGN CHOICE, as Quest's kernels do).
    duo_streaming: "budget" (DESIGN CHOICE, default: streaming heads keep the sinks and fill
      the rest of the token budget with recent tokens, so methods compare at equal budget) or
      "paper" (sink_tokens + recent_tokens, DuoAttention's 128 + 256).
    per_query_head: the ablation of section 8.3's DESIGN CHOICE (default False, the released
      inference semantics): selection per QUERY head from its own logits instead of per KV
      head from the GQA-mean query (block mode, "xla" only).
    cache_correction: every this many decode steps, re-encode the tokens decoded since the
      last correction densely and overwrite their KV (TidalDecode-style, used by LycheeDecode
      for long reasoning generations at 32 [2nd]); 0 = off (DESIGN CHOICE default: the
      LongBench setting and the released decode path have it off).
    implementation: "xla" (gather + dense jnp) or "pallas" (kernels A and B).
    interpret: Pallas interpret mode (None: on CPU only).
    kernel_schedule: "pallas" only: the kernels' schedule, "grid" (TPU, Mosaic), "loop" (GPU,
      Triton, split-K) or "mosaic" (GPU, Mosaic GPU wgmma, split-K); None takes the backend's
      (`pallas_kernels.sparse_decode.blocks`: on a GPU "mosaic" where it can take the call).
  """

  method: str = "lychee"
  budget: int = 4096
  block_size: int = 64
  sink_tokens: int = 128
  recent_tokens: int = 256
  selection: str = "block"
  roles: tuple[tuple[bool, ...], ...] | None = None
  page_size: int = 16
  quest_dense_layers: int = 2
  quest_keep_last_page: bool = True
  duo_streaming: str = "budget"
  per_query_head: bool = False
  cache_correction: int = 0
  implementation: str = "xla"
  interpret: bool | None = None
  kernel_schedule: str | None = None

  def __post_init__(self):
    for name, allowed in (
      ("method", METHODS),
      ("selection", SELECTIONS),
      ("implementation", IMPLEMENTATIONS),
      ("duo_streaming", DUO_STREAMING),
    ):
      if getattr(self, name) not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
    if self.kernel_schedule is not None:
      if self.kernel_schedule not in KERNEL_SCHEDULES:
        raise ValueError(
          f"kernel_schedule must be None or one of {KERNEL_SCHEDULES}, got {self.kernel_schedule!r}"
        )
      if self.implementation != "pallas":
        raise ValueError(
          "kernel_schedule picks the Pallas kernels' schedule: it needs implementation='pallas'"
        )
    object.__setattr__(self, "roles", _roles_tuple(self.roles))
    _int("quest_dense_layers", self.quest_dense_layers, 0)
    _int("page_size", self.page_size, 1)
    _int("cache_correction", self.cache_correction, 0)
    if self.method == "full":
      return
    if self.method in ("lychee", "duo") and self.roles is None:
      raise ValueError(
        f"method={self.method!r} needs roles: a [num_layers, num_kv_heads] bool map "
        "(train one with reasoning_jax.sparse.train_roles, or load one with load_roles)"
      )
    if self.method == "lychee" and not all(self.roles[0]):
      raise ValueError(
        "roles[0] must be all retrieval (True): LycheeDecode forces layer 0 to retrieval so "
        f"that every head index has a selection to inherit; got roles[0]={self.roles[0]}"
      )
    if self.per_query_head and (
      self.method != "lychee" or self.selection != "block" or self.implementation != "xla"
    ):
      raise ValueError(
        "per_query_head is an ablation of LycheeDecode's block selection on the jnp path: "
        "use method='lychee', selection='block', implementation='xla'"
      )
    if self.selection == "token":
      if self.implementation == "pallas":
        raise ValueError(
          "selection='token' is the jnp accuracy reference; use implementation='xla'"
        )
      if self.budget < self.sink_tokens + self.recent_tokens:
        raise ValueError(
          f"budget={self.budget} is below sinks + recent "
          f"({self.sink_tokens} + {self.recent_tokens} tokens)"
        )
    elif self.method == "quest":
      if self.budget % self.page_size or self.budget < 2 * self.page_size:
        raise ValueError(
          f"budget={self.budget} must be a multiple of page_size={self.page_size} covering at "
          "least two pages"
        )
    else:
      check_budget(
        self.budget,
        sink_tokens=self.sink_tokens,
        recent_tokens=self.recent_tokens,
        block_size=self.block_size,
      )

  # -- Derived settings -----------------------------------------------------------------------

  @property
  def granule(self) -> int:
    """The block size selection and the kernels work in (Quest: its page)."""
    return self.page_size if self.method == "quest" else self.block_size

  @property
  def n_select(self) -> int:
    return self.budget // self.granule

  def streaming_window(self) -> tuple[int, int]:
    """`(sink, recent)` tokens a DuoAttention streaming head reads."""
    if self.duo_streaming == "paper":
      return self.sink_tokens, self.recent_tokens
    # Leave one block of slack: the recent window may straddle a block boundary.
    recent = self.budget - self.sink_tokens - self.block_size
    return self.sink_tokens, max(recent, 1)

  def head_roles(self, layer: int, num_kv_heads: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """`(dense_heads, sparse_heads)` of a layer as KV head ids (static)."""
    heads = tuple(range(num_kv_heads))
    if self.method == "full":
      return heads, ()
    if self.method == "quest":
      return (heads, ()) if layer < self.quest_dense_layers else ((), heads)
    row = self.roles[layer]
    return tuple(h for h in heads if row[h]), tuple(h for h in heads if not row[h])

  def validate_for(self, model_config: Any, cache_size: int) -> None:
    """Raises if this config cannot decode `model_config` with `cache_size` slots."""
    num_layers, num_kv = model_config.num_layers, model_config.num_kv_heads
    for i in range(num_layers):
      mixer = model_config.layer_mixer(i)
      if mixer != "attention":
        kind = (
          "a recurrent mixer keeps no KV cache to select from"
          if "attention" not in (mixer)
          else "a windowed mixer already reads a bounded cache"
        )
        raise ValueError(
          f"sparse_decode (method={self.method!r}) needs full attention in every layer; layer "
          f"{i} is {mixer!r} ({kind})"
        )
    if self.roles is not None and (len(self.roles), len(self.roles[0])) != (num_layers, num_kv):
      raise ValueError(
        f"roles has shape [{len(self.roles)}, {len(self.roles[0])}] but the model has "
        f"[num_layers, num_kv_heads] = [{num_layers}, {num_kv}]"
      )
    if self.method != "full" and self.selection == "block" and cache_size % self.granule:
      raise ValueError(
        f"{'page_size' if self.method == 'quest' else 'block_size'}={self.granule} must divide "
        f"the cache length cache_size={cache_size} (round cache_size up to a multiple of it)"
      )


def round_cache_size(cache_size: int, config: SparseDecodeConfig | None) -> int:
  """`cache_size` rounded up to a multiple of the config's blocks and pages (unchanged without
  a config), so every selection granule and kernel tile divides the cache."""
  if config is None:
    return cache_size
  unit = math.lcm(config.block_size, config.page_size)
  return int(math.ceil(cache_size / unit) * unit)


def kv_tokens_read(config: SparseDecodeConfig, num_layers: int, num_kv_heads: int, length: int):
  """KV slots each decode step reads, summed over layers and KV heads, at `length` visible
  slots (the analytic count the benchmark reports; Quest adds its page bounds as slots)."""
  total = 0.0
  for layer in range(num_layers):
    dense, sparse = config.head_roles(layer, num_kv_heads)
    total += len(dense) * length
    if not sparse:
      continue
    if config.method == "duo":
      sink, recent = config.streaming_window()
      per_head = min(length, sink + recent)
    else:
      per_head = min(length, config.budget)
    if config.method == "quest":
      per_head += math.ceil(length / config.page_size)  # kmin + kmax = one slot's K and V bytes.
    total += len(sparse) * per_head
  return total
