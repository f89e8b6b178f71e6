"""The pieces of the InfMem experiment at CPU scale: compact prompts, the vocabulary, the data.

A tiny model trained here reads the generated multi-hop documents
(`reasoning_jax.data.multihop_task`) through a closed word-level vocabulary
(`tokenizers.word_level`): every piece of a document, question, prompt template, tool call
and number up to `max_number` is one token, so a 1M-token document is a million pieces and
a recurrent chunk of 256 tokens holds about 30 sentences. The prompts keep the protocol's
structure (the same fields, the same PreThink / Write / Answer roles) in a few words each:
on two CPU cores a prompt's length is most of a call's cost.
"""

from __future__ import annotations

import os
from typing import Any

from reasoning_jax.agents.infmem import InfMemConfig, PromptSet
from reasoning_jax.agents.infmem.oracle import UNKNOWN
from reasoning_jax.data import multihop_task as task
from reasoning_jax.tokenizers.word_level import save_word_level, word_level_tokenizer

COMPACT_PROMPTS = PromptSet(
  prethink="Plan the next search , or reply STOP .\nQUESTION : {question}\n"
  "HISTORY : {history}\nMEMORY : {memory}",
  write="Update the memory .\nQUESTION : {question}\nRETRIEVED : {retrieved}\n"
  "SECTION : {chunk}\nMEMORY : {memory}",
  memagent_write="Update the memory .\nQUESTION : {question}\nSECTION : {chunk}\nMEMORY : {memory}",
  answer="Answer from the memory .\nQUESTION : {question}\nMEMORY : {memory}",
  tool_instructions={
    "qwen_agent": "Tool : retrievesearch with query and top_k .",
    "hermes": "Tool : retrievesearch with query and top_k .",
  },
)

# Fixed texts the protocol writes besides the templates (tool-call syntax, history lines).
_PROTOCOL_TEXT = (
  '✿FUNCTION✿: retrievesearch\n✿ARGS✿: {"query": "x", "top_k": 8} STOP '
  "<tool_call> </tool_call> name arguments "
  "Current step: 1 of 2\nSearch 1: query='x', top_k=3 [Retrieved #1] "
  "Therefore, the answer is unknown. No previous memory"
)


def vocabulary(prompt_set: PromptSet, *, max_number: int) -> list[str]:
  """Every piece the task, the prompts, the tool calls and numbers 0..max_number can hold."""
  words = set(task.vocabulary()) | {str(i) for i in range(max_number + 1)} | {UNKNOWN}
  for text in [*prompt_set.texts(), _PROTOCOL_TEXT]:
    words |= set(task.word_pieces(text))
  return sorted(words)


def experiment_tokenizer(prompt_set: PromptSet, *, max_number: int, directory: str = "") -> Any:
  """The word-level tokenizer (saved as a `tokenizer.json` folder when `directory` is set)."""
  words = vocabulary(prompt_set, max_number=max_number)
  if directory:
    save_word_level(words, directory)
    from reasoning_jax.tokenizers import load_tokenizer

    return load_tokenizer(directory)
  return word_level_tokenizer(words)


def protocol_config(reader: Any, controller: str, **overrides: Any) -> InfMemConfig:
  """`InfMemConfig` from the experiment's `config.reader` block for `controller`."""
  fields = dict(reader)
  fields.update(overrides)
  return InfMemConfig(controller=controller, **fields)


def examples(doc_tokens: int, n: int, *, seed: int, min_hops: int = 2, max_hops: int = 4):
  """`n` generated (question, answer, document, ...) examples, a function of the seed."""
  import random

  rng = random.Random(f"infmem:{doc_tokens}:{seed}")
  return [
    task.make_example(rng, doc_tokens=doc_tokens, min_hops=min_hops, max_hops=max_hops)
    for _ in range(n)
  ]


def tokenizer_dir(workdir: str) -> str:
  return os.path.join(workdir, "tokenizer")
