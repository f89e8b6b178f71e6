"""The PreThink / Write / Answer prompts, rendered through the model's chat template.

The roles follow the released code (memory_attention.md 1.1); the wording is ours. Templates
are `str.format` strings over `question`, `history`, `memory`, `retrieved`, `chunk`, `step`
and `max_steps`; `PromptSet` holds one of each so a config can replace any of them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from reasoning_jax.tokenizers.chat_template import render_chatml

TOOL_INSTRUCTIONS = {
  "qwen_agent": (
    "You can call one tool, retrievesearch: a BM25 search over the passages of the document "
    "being read. Its arguments are a JSON object with query (a few key entities or "
    "concepts) and top_k (an integer from 3 to 20, default 8).\n"
    "To call it, reply with\n"
    '✿FUNCTION✿: retrievesearch\n✿ARGS✿: {"query": "...", "top_k": 8}\n'
    "To stop retrieving, reply with STOP."
  ),
  "hermes": (
    "You can call one tool, retrievesearch: a BM25 search over the passages of the document "
    "being read. Its arguments are a JSON object with query (a few key entities or "
    "concepts) and top_k (an integer from 3 to 20, default 8).\n"
    "To call it, reply with\n"
    '<tool_call>{"name": "retrievesearch", "arguments": {"query": "...", "top_k": 8}}'
    "</tool_call>\n"
    "To stop retrieving, reply with STOP."
  ),
}

PRETHINK = """You plan the searches of a reader that goes through a long document section by \
section. Do not answer the question: a later call answers it from MEMORY.
Split the question into the facts it needs and check which of them MEMORY already holds. If \
one is missing, search for it with a new or refined query (not a repeat of the history; a \
larger top_k explores, a smaller one focuses). If MEMORY holds everything needed, reply STOP.

QUESTION:
{question}

RETRIEVAL HISTORY:
{history}

MEMORY:
{memory}"""

WRITE = """Update the memory that will be used to answer the question. You are given passages \
retrieved from elsewhere in the document for this question, the next section of the document, \
and the current memory. Keep what helps answer the question or find the missing facts, drop \
the rest, and write the new memory.

QUESTION:
{question}

RETRIEVED PASSAGES:
{retrieved}

SECTION:
{chunk}

MEMORY:
{memory}

New memory:"""

MEMAGENT_WRITE = """Update the memory that will be used to answer the question. You are given \
the next section of the document and the current memory. Keep what helps answer the question, \
drop the rest, and write the new memory.

QUESTION:
{question}

SECTION:
{chunk}

MEMORY:
{memory}

New memory:"""

ANSWER = """Answer the question from the memory. End with: Therefore, the answer is <answer>.

QUESTION:
{question}

MEMORY:
{memory}

Answer:"""


@dataclasses.dataclass(frozen=True)
class PromptSet:
  """One template per call kind, and the tool instruction of PreThink's system turn."""

  prethink: str = PRETHINK
  write: str = WRITE
  memagent_write: str = MEMAGENT_WRITE
  answer: str = ANSWER
  tool_instructions: Mapping[str, str] = dataclasses.field(
    default_factory=lambda: dict(TOOL_INSTRUCTIONS)
  )

  def texts(self) -> list[str]:
    """Every fixed text (for building a closed vocabulary that covers the prompts)."""
    return [
      self.prethink,
      self.write,
      self.memagent_write,
      self.answer,
      *self.tool_instructions.values(),
    ]


def history_text(history: Sequence[tuple[str, int]], step: int, max_steps: int) -> str:
  """'Step i of N' and one line per past search (1-based steps, as the released code)."""
  lines = [f"Current step: {step + 1} of {max_steps}"]
  lines += [f"Search {i + 1}: query={q!r}, top_k={k}" for i, (q, k) in enumerate(history)]
  return "\n".join(lines)


def retrieved_text(texts: Sequence[str]) -> str:
  return "\n\n".join(f"[Retrieved #{i + 1}] {t}" for i, t in enumerate(texts))


def render(
  tokenizer: Any,
  user: str,
  *,
  system: str = "",
  enable_thinking: bool | None = None,
) -> str:
  """The chat prompt text ending with the assistant header (ChatML without a template)."""
  messages = ([{"role": "system", "content": system}] if system else []) + [
    {"role": "user", "content": user}
  ]
  if hasattr(tokenizer, "apply_chat_template"):
    kwargs = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, **kwargs)
  return render_chatml(messages, add_generation_prompt=True)
