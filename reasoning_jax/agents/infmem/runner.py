"""Batched episodes: many questions advance in lock-step, one model call per round.

Each round takes the pending call of every unfinished episode, groups the calls by budget
(`max_new_tokens`) and sends each group to the model as one batch; a finished episode leaves
the batch. Everything that can be refused is refused before the first call: an empty
document, a question over `max_question_tokens`, and a model whose context cannot hold the
largest call (`check_fits` says by how much).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from absl import logging

from reasoning_jax.agents.infmem import prompts as prompts_lib
from reasoning_jax.agents.infmem.config import InfMemConfig
from reasoning_jax.agents.infmem.document import Document, prepare_document
from reasoning_jax.agents.infmem.episode import Call, Completion, Episode
from reasoning_jax.agents.infmem.llm import ContextError

_RETRIEVED_LABEL = "[Retrieved #20] "


@dataclasses.dataclass(frozen=True)
class Budget:
  """The largest prompt + output of one call kind, in tokens, by part."""

  kind: str
  template: int
  question: int
  memory: int
  chunk: int
  retrieved: int
  output: int

  @property
  def total(self) -> int:
    return self.template + self.question + self.memory + self.chunk + self.retrieved + self.output


def call_budgets(
  tokenizer: Any, config: InfMemConfig, question: str, prompt_set: prompts_lib.PromptSet
) -> list[Budget]:
  """Upper bounds of each call kind: |template| + |Q| + |M| + |c| + |R| + the output budget.

  |M| is the memory budget; |c| the chunk size; |R| `max_top_k` units of `unit_tokens` plus
  their labels (InfMem's Write only). The retrieval history of PreThink is not bounded here:
  episodes drop its oldest lines to fit (`Episode(max_prompt_tokens=)`).
  """
  count = lambda text: len(tokenizer.encode(text))  # noqa: E731
  q = count(question)
  empty = dict(question="", history="", memory="", retrieved="", chunk="")
  system = prompt_set.tool_instructions[config.tool_format]  # As `Episode` renders PreThink.

  def template(text: str, system: str = "") -> int:
    return count(prompts_lib.render(tokenizer, text.format(**empty), system=system))

  history = count(prompts_lib.history_text([], config.chunk_tokens, config.chunk_tokens))
  label = count(_RETRIEVED_LABEL) + 2
  m = config.memory_tokens
  out = [
    Budget(
      "answer", template(prompt_set.answer), q, config.memory_tokens, 0, 0, config.answer_tokens
    )
  ]
  if config.controller == "memagent":
    t = template(prompt_set.memagent_write)
    out.append(Budget("write", t, q, m, config.chunk_tokens, 0, m))
  else:
    t = template(prompt_set.prethink, system) + history
    out.append(Budget("prethink", t, q, config.memory_tokens, 0, 0, config.prethink_tokens))
    r = config.max_top_k * (config.unit_tokens + label)
    t = template(prompt_set.write)
    out.append(Budget("write", t, q, m, config.chunk_tokens, r, m))
  return out


def check_fits(budgets: Sequence[Budget], max_context: int, *, where: str = "") -> None:
  """ContextError naming the call kind, each part and the shortfall when a call cannot fit."""
  for b in budgets:
    if b.total > max_context:
      raise ContextError(
        f"{where}the {b.kind} call needs up to {b.total} tokens (template {b.template} + "
        f"question {b.question} + memory {b.memory} + chunk {b.chunk} + retrieved {b.retrieved} "
        f"+ output {b.output}) but the model's context is {max_context}: short by "
        f"{b.total - max_context}. Lower chunk_tokens / unit_tokens / max_top_k / "
        f"memory_tokens or use a model with a longer context."
      )


def _group_by_budget(calls: Sequence[Call]) -> list[list[Call]]:
  groups: dict[int, list[Call]] = {}
  for c in calls:
    groups.setdefault(c.max_new_tokens, []).append(c)
  return [groups[k] for k in sorted(groups)]


def complete_round(llm: Any, calls: Sequence[Call], config: InfMemConfig) -> list[Completion]:
  """One batched round; with `config.think_tokens` a thinking stage first (see `InfMemConfig`).

  With thinking, the completion's text is the thinking (closed) followed by the answer, its
  ids the model's own tokens of both stages (the forced closure is not among them).
  """
  if config.think_tokens <= 0:
    return llm.complete(calls)
  first = llm.complete([dataclasses.replace(c, max_new_tokens=config.think_tokens) for c in calls])
  thoughts = []
  for done in first:
    text = done.text
    thoughts.append(text if "</think>" in text else text.rstrip() + config.think_close)
  second = llm.complete(
    [dataclasses.replace(c, prompt=c.prompt + t) for c, t in zip(calls, thoughts)]
  )
  return [
    Completion(
      t + b.text,
      a.ids + b.ids,
      b.finished,
      a.prompt_ids,
      a.logprobs + b.logprobs,
    )
    for t, a, b in zip(thoughts, first, second)
  ]


def make_episodes(
  llm: Any,
  questions: Sequence[str],
  documents: Sequence[Any],
  config: InfMemConfig,
  *,
  prompt_set: prompts_lib.PromptSet | None = None,
) -> list[Episode]:
  """Validates every input, prepares the documents and builds one episode per question."""
  prompt_set = prompt_set or prompts_lib.PromptSet()
  if isinstance(questions, str) or isinstance(documents, str):
    raise TypeError("questions and documents must be sequences of str (not one str)")
  if len(questions) != len(documents):
    raise ValueError(f"{len(questions)} questions but {len(documents)} documents")
  if not questions:
    raise ValueError("questions is empty")
  tokenizer = llm.tokenizer
  max_context = getattr(llm, "max_context", None)
  episodes = []
  for i, (q, d) in enumerate(zip(questions, documents)):
    if not isinstance(q, str) or not q.strip():
      raise ValueError(f"questions[{i}] must be a non-empty str, got {q!r:.80}")
    n = len(tokenizer.encode(q))
    if n > config.max_question_tokens:
      raise ValueError(
        f"questions[{i}] has {n} tokens > config.max_question_tokens={config.max_question_tokens}"
      )
    if max_context is not None:
      check_fits(
        call_budgets(tokenizer, config, q, prompt_set), max_context, where=f"questions[{i}]: "
      )
    document: Document = prepare_document(d, tokenizer, config, name=f"documents[{i}]")
    limit = None if max_context is None else max_context - config.prethink_tokens
    episodes.append(
      Episode(
        q,
        document,
        config,
        tokenizer=tokenizer,
        prompt_set=prompt_set,
        max_prompt_tokens=limit,
        index=i,
      )
    )
  return episodes


def run_episodes(
  llm: Any,
  questions: Sequence[str],
  documents: Sequence[Any],
  config: InfMemConfig,
  *,
  prompt_set: prompts_lib.PromptSet | None = None,
  log_every: int = 0,
) -> list[Episode]:
  """Runs every episode to its answer, batched over questions; returns the episodes.

  Args:
    llm: a `GenerateLLM` / `FunctionLLM` (anything with `tokenizer`, `complete(calls)` and
      optionally `max_context`).
    questions, documents: one document (str) per question.
    config: the protocol flags (`InfMemConfig()` or `InfMemConfig.memagent()`).
    prompt_set: the templates.
    log_every: log progress every this many rounds (0: never).
  """
  episodes = make_episodes(llm, questions, documents, config, prompt_set=prompt_set)
  rounds = 0
  while True:
    active = [e for e in episodes if not e.done]
    if not active:
      return episodes
    for group in _group_by_budget([e.pending for e in active]):
      completions = complete_round(llm, group, config)
      if len(completions) != len(group):
        raise RuntimeError(f"the model returned {len(completions)} outputs for {len(group)} calls")
      for call, completion in zip(group, completions):
        episodes[call.episode].feed(completion)
    rounds += 1
    if log_every and rounds % log_every == 0:
      logging.info("infmem round %d: %d/%d episodes active", rounds, len(active), len(episodes))
