"""The flags of InfMem's protocol (memory_attention.md section 1.1), released-code defaults.

"InfMem: Learning System-2 Memory Control for Long-Context Agent", Wang et al., arXiv
2602.02704. Every default below is the evaluation default of the authors' released code
(`taskutils/memory_eval/utils/infmem.py`, `envs.py`); `InfMemConfig.memagent()` is the
passive-reader baseline on the same code ("MemAgent: Reshaping Long-Context LLM with
Multi-Conv RL-based Memory Agent", arXiv 2507.02259).
"""

from __future__ import annotations

import dataclasses

CONTROLLERS = ("infmem", "memagent")
TOOL_FORMATS = ("qwen_agent", "hermes")
BM25_METHODS = ("robertson", "lucene", "atire", "bm25l", "bm25+")
NO_MEMORY = "No previous memory"


@dataclasses.dataclass(frozen=True, kw_only=True)
class InfMemConfig:
  """How a document is read, searched and remembered.

  Attributes:
    controller: "infmem" (PreThink -> Retrieve -> Write with adaptive early stop) or
      "memagent" (the passive reader: Write every chunk in order, no retrieval, no stop).
    chunk_tokens: L_c, recurrent chunk size in model tokens (5000).
    unit_tokens: retrieval unit size (500), cut inside each recurrent chunk.
    unit_overlap: overlap of consecutive units of one chunk (100; stride 400).
    top_k: the default when a tool call omits top_k or gives a non-integer (8).
    min_top_k, max_top_k: the clamp of top_k ([3, 20]).
    patience: E, consecutive STOP decisions that end the episode (3). The released RL
      rollouts deactivate a sample at its first STOP: use 1 for training.
    memory_tokens: the memory budget, max_new_tokens of every Write (1024 at evaluation;
      the released RL script uses 1536).
    prethink_tokens: max_new_tokens of PreThink (the released code uses one budget, 1024,
      for every call).
    answer_tokens: max_new_tokens of the final Answer (1024).
    max_document_tokens: documents longer than this keep their first and last halves
      ("center" truncation, 120000 in the released evaluation; raise it for 256K-1M).
    max_question_tokens: a longer question is refused before any call (DESIGN CHOICE, 2048).
    dedup_jaccard: a candidate whose term-set Jaccard with an already chosen unit exceeds this
      is skipped (0.8).
    max_per_chunk: at most this many units from one recurrent chunk (2).
    candidate_pool: the candidates considered are the max(candidate_pool, candidate_multiplier
      x top_k) best-scoring units (40, 6).
    top_up: True (released): when the diverse selection finds fewer than top_k units, fill up
      from the full ranking (still excluding the current chunk) ignoring the cap and Jaccard.
    bm25_method, k1, b: the BM25 variant of `bm25s` and its parameters. "robertson" with
      k1 = 1.5, b = 0.75 is rank_bm25's BM25Okapi of the released code, except that terms in
      more than half of the units get idf 0 rather than BM25Okapi's small epsilon idf.
    tool_format: how PreThink is told to call `retrievesearch`: "qwen_agent" (the released
      code's Qwen-Agent markers) or "hermes" (`<tool_call>{json}</tool_call>`, Qwen3's own).
      The parser accepts both whatever the instruction says.
    enable_thinking: passed to the chat template when not None. The released evaluation
      reads `ENABLE_THINK` as `bool(os.getenv(...))`, which is True for any set value, so its
      runs thought; `<think>...</think>` is stripped from every output before it is used.
    max_history: None (released: every past search is listed in PreThink's prompt, which then
      grows with the episode until the context forces the oldest lines out), or the number of
      most recent searches listed (bounds PreThink's prompt like the memory bounds Write's).
    think_tokens: 0 (off), or the thinking budget of every call (the released code: 1024 when
      thinking): each call is generated in two stages, first up to `think_tokens` tokens; if
      that has not closed `</think>`, `think_close` is appended; then the prompt plus that
      thinking is continued for the call's own budget (which still bounds the memory).
    think_close: the text that force-closes an unfinished thought.
    no_memory: the memory before the first write.
  """

  controller: str = "infmem"
  chunk_tokens: int = 5000
  unit_tokens: int = 500
  unit_overlap: int = 100
  top_k: int = 8
  min_top_k: int = 3
  max_top_k: int = 20
  patience: int = 3
  memory_tokens: int = 1024
  prethink_tokens: int = 1024
  answer_tokens: int = 1024
  max_document_tokens: int = 120_000
  max_question_tokens: int = 2048
  dedup_jaccard: float = 0.8
  max_per_chunk: int = 2
  candidate_pool: int = 40
  candidate_multiplier: int = 6
  top_up: bool = True
  bm25_method: str = "robertson"
  k1: float = 1.5
  b: float = 0.75
  tool_format: str = "qwen_agent"
  enable_thinking: bool | None = None
  max_history: int | None = None
  think_tokens: int = 0
  think_close: str = "\n\nTime is up; I stop thinking here.\n</think>\n\n"
  no_memory: str = NO_MEMORY

  def __post_init__(self):
    if self.controller not in CONTROLLERS:
      raise ValueError(f"controller must be one of {CONTROLLERS}, got {self.controller!r}")
    if self.tool_format not in TOOL_FORMATS:
      raise ValueError(f"tool_format must be one of {TOOL_FORMATS}, got {self.tool_format!r}")
    if self.bm25_method not in BM25_METHODS:
      raise ValueError(f"bm25_method must be one of {BM25_METHODS}, got {self.bm25_method!r}")
    positive = (
      "chunk_tokens",
      "unit_tokens",
      "patience",
      "memory_tokens",
      "prethink_tokens",
      "answer_tokens",
      "max_document_tokens",
      "max_question_tokens",
      "max_per_chunk",
      "min_top_k",
    )
    for name in positive:
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not 0 <= self.unit_overlap < self.unit_tokens:
      raise ValueError(
        f"unit_overlap must be in [0, unit_tokens={self.unit_tokens}), got {self.unit_overlap}"
      )
    if not self.min_top_k <= self.top_k <= self.max_top_k:
      raise ValueError(
        f"need min_top_k <= top_k <= max_top_k, got {self.min_top_k}, {self.top_k}, "
        f"{self.max_top_k}"
      )
    if not 0.0 <= self.dedup_jaccard <= 1.0:
      raise ValueError(f"dedup_jaccard must be in [0, 1], got {self.dedup_jaccard}")
    if self.max_history is not None and (
      not isinstance(self.max_history, int) or self.max_history < 0
    ):
      raise ValueError(f"max_history must be None or an int >= 0, got {self.max_history!r}")
    if not isinstance(self.think_tokens, int) or self.think_tokens < 0:
      raise ValueError(f"think_tokens must be an int >= 0, got {self.think_tokens!r}")
    if self.candidate_pool < 1 or self.candidate_multiplier < 1:
      raise ValueError("candidate_pool and candidate_multiplier must be >= 1")

  @property
  def unit_stride(self) -> int:
    return self.unit_tokens - self.unit_overlap

  @classmethod
  def memagent(cls, **overrides) -> InfMemConfig:
    """The MemAgent baseline: the same reader with retrieval and early stop off."""
    return cls(**{"controller": "memagent", **overrides})

  def replace(self, **overrides) -> InfMemConfig:
    return dataclasses.replace(self, **overrides)
