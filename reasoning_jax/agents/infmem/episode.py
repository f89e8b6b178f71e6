"""One question's episode as a state machine: it asks for a call, it is fed the output.

InfMem (memory_attention.md 1.1), for chunk i = 0 .. N-1:

  PreThink(question, memory, history)  -> STOP | retrievesearch(query, top_k)
    STOP (or no usable call): stops += 1; at `patience` consecutive stops -> Answer.
    a call: stops = 0; R = BM25 top-k units outside chunk i (diverse, capped per chunk)
  Write(question, R, chunk i, memory)  -> the new memory (overwritten, <= memory_tokens)
Answer(question, memory) after the last chunk or at the early stop.

MemAgent: Write(question, chunk i, memory) for every chunk, then Answer.

The episode never calls a model: `pending` is the next `Call` (kind, rendered prompt, budget
and the structured fields a scripted controller reads), `feed` consumes its output. The
batched runner (`runner.py`) advances many episodes in lock-step this way. The step counter
of the reward terms is the number of writes done, so the PreThink of chunk i runs at step i.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from reasoning_jax.agents.infmem import prompts as prompts_lib
from reasoning_jax.agents.infmem.config import InfMemConfig
from reasoning_jax.agents.infmem.document import Document
from reasoning_jax.agents.infmem.toolcall import parse_prethink, strip_thinking

KINDS = ("prethink", "write", "answer")


@dataclasses.dataclass(frozen=True)
class Completion:
  """A model's output for one call.

  Attributes:
    text: the decoded output (special tokens dropped).
    ids: the generated token ids, EOS included when the model emitted it.
    finished: True when the model ended the output itself (EOS) within the budget.
    prompt_ids: the prompt's token ids as the model saw them (empty for scripted models).
    logprobs: the sampler's log-probability of each generated token (raw model
      distribution; empty for scripted models), for RL on the episode's calls.
  """

  text: str
  ids: tuple[int, ...] = ()
  finished: bool = True
  prompt_ids: tuple[int, ...] = ()
  logprobs: tuple[float, ...] = ()


@dataclasses.dataclass
class Call:
  """One model call of an episode: what to send, and (after `feed`) what came back."""

  kind: str
  step: int
  prompt: str
  max_new_tokens: int
  fields: dict[str, Any]
  episode: int = 0
  completion: Completion | None = None


@dataclasses.dataclass
class EpisodeStats:
  """Counted recoveries and costs of one episode."""

  stops: int = 0
  searches: int = 0
  malformed_calls: int = 0
  unknown_tools: int = 0
  bad_top_k: int = 0
  truncated_writes: int = 0
  history_trimmed: int = 0
  generated_tokens: int = 0
  prompt_tokens: int = 0
  bm25_seconds: float = 0.0


class Episode:
  """The protocol for one (question, document) pair; see the module docstring."""

  def __init__(
    self,
    question: str,
    document: Document,
    config: InfMemConfig,
    *,
    tokenizer: Any,
    prompt_set: prompts_lib.PromptSet | None = None,
    max_prompt_tokens: int | None = None,
    index: int = 0,
    count_tokens: Callable[[str], int] | None = None,
  ):
    """Args:
    question: the question text.
    document: `document.prepare_document(...)`.
    config: the protocol flags.
    tokenizer: renders prompts (its chat template) and counts prompt tokens.
    prompt_set: the templates.
    max_prompt_tokens: the longest prompt the model takes for a PreThink; the oldest
      retrieval-history lines are dropped (counted) to fit. None: no trimming.
    index: the episode's position in its batch (carried on each `Call`).
    count_tokens: prompt text -> token count (default: `len(tokenizer.encode(text))`).
    """
    self.question = question
    self.document = document
    self.config = config
    self.tokenizer = tokenizer
    self.prompt_set = prompt_set or prompts_lib.PromptSet()
    self.max_prompt_tokens = max_prompt_tokens
    self.index = index
    self._count = count_tokens or (lambda text: len(tokenizer.encode(text)))
    self.memory = config.no_memory
    self.history: list[tuple[str, int]] = []
    self.writes: list[tuple[int, str]] = []  # (step, memory after that write)
    self.calls: list[Call] = []
    self.stats = EpisodeStats()
    self.consecutive_stops = 0
    self.stop_step: int | None = None
    self.output: str | None = None
    self._step = 0
    self.pending: Call | None = None
    self._advance()

  # ----------------------------------------------------------------------------------------
  @property
  def done(self) -> bool:
    return self.output is not None

  @property
  def num_chunks(self) -> int:
    return self.document.num_chunks

  @property
  def steps_read(self) -> int:
    """Chunks written into memory (N for MemAgent; fewer after an early stop)."""
    return len(self.writes)

  def count(self, kind: str) -> int:
    return sum(c.kind == kind for c in self.calls)

  # ----------------------------------------------------------------------------------------
  def _render(self, user: str, *, system: str = "") -> str:
    return prompts_lib.render(
      self.tokenizer, user, system=system, enable_thinking=self.config.enable_thinking
    )

  def _call(self, kind: str, user: str, budget: int, fields: dict, system: str = "") -> Call:
    fields = {"question": self.question, "step": self._step, **fields}
    return Call(kind, self._step, self._render(user, system=system), budget, fields, self.index)

  def _prethink(self) -> Call:
    system = self.prompt_set.tool_instructions[self.config.tool_format]
    cap = self.config.max_history
    while True:
      shown = self.history if cap is None else self.history[len(self.history) - cap :]
      history = prompts_lib.history_text(shown, self._step, self.num_chunks)
      user = self.prompt_set.prethink.format(
        question=self.question, history=history, memory=self.memory
      )
      call = self._call(
        "prethink",
        user,
        self.config.prethink_tokens,
        {"memory": self.memory, "history": list(self.history), "max_steps": self.num_chunks},
        system=system,
      )
      if (
        self.max_prompt_tokens is None
        or not self.history
        or self._count(call.prompt) <= self.max_prompt_tokens
      ):
        return call
      self.history.pop(0)
      self.stats.history_trimmed += 1

  def _write(self, retrieved: list[str]) -> Call:
    chunk = self.document.chunk_texts[self._step]
    if self.config.controller == "memagent":
      template = self.prompt_set.memagent_write
    else:
      template = self.prompt_set.write
    user = template.format(
      question=self.question,
      retrieved=prompts_lib.retrieved_text(retrieved),
      chunk=chunk,
      memory=self.memory,
    )
    fields = {"memory": self.memory, "chunk": chunk, "retrieved": list(retrieved)}
    return self._call("write", user, self.config.memory_tokens, fields)

  def _answer(self) -> Call:
    user = self.prompt_set.answer.format(question=self.question, memory=self.memory)
    return self._call("answer", user, self.config.answer_tokens, {"memory": self.memory})

  def _advance(self) -> None:
    if self._step >= self.num_chunks:
      self.pending = self._answer()
    elif self.config.controller == "infmem":
      self.pending = self._prethink()
    else:
      self.pending = self._write([])

  # ----------------------------------------------------------------------------------------
  def feed(self, completion: Completion) -> None:
    """Consumes the output of `pending` and moves to the next call (or finishes)."""
    call = self.pending
    if call is None:
      raise RuntimeError(f"episode {self.index} is done; it has no pending call")
    if not isinstance(completion, Completion):
      raise TypeError(f"feed expects a Completion, got {type(completion).__name__}")
    call.completion = completion
    self.calls.append(call)
    self.stats.generated_tokens += len(completion.ids)
    self.stats.prompt_tokens += len(completion.prompt_ids)
    self.pending = None
    if call.kind == "prethink":
      self._after_prethink(completion.text)
    elif call.kind == "write":
      self._after_write(completion)
    else:
      self.output = strip_thinking(completion.text)

  def _after_prethink(self, text: str) -> None:
    decision = parse_prethink(text, question=self.question, config=self.config)
    self.stats.malformed_calls += decision.malformed
    self.stats.unknown_tools += decision.unknown_tool
    self.stats.bad_top_k += decision.bad_top_k
    retrieved: list[str] = []
    if decision.stop:
      self.stats.stops += 1
      self.consecutive_stops += 1
      if self.consecutive_stops >= self.config.patience:
        self.stop_step = self._step
        self.pending = self._answer()
        return
    else:
      self.consecutive_stops = 0
      self.history.extend(decision.calls)
      self.stats.searches += 1
      start = time.perf_counter()
      hits = self.document.index.search(decision.query, decision.top_k, exclude_chunk=self._step)
      self.stats.bm25_seconds += time.perf_counter() - start
      retrieved = [h.text for h in hits]
    self.pending = self._write(retrieved)

  def _after_write(self, completion: Completion) -> None:
    if not completion.finished:
      self.stats.truncated_writes += 1
    self.memory = strip_thinking(completion.text) or self.config.no_memory
    self.writes.append((self._step, self.memory))
    self._step += 1
    self._advance()
