"""A scripted controller that follows the protocol on the generated multi-hop data.

It reads only what a model would read — the call's question, memory, retrieved passages and
chunk — and the fact grammar of `reasoning_jax.data.multihop_task`:

* PreThink: walk the question's relation chain through the facts in memory; STOP when the
  chain reaches its answer, else search `<relation> of <person>` for the first missing hop,
  with `top_k` and, each time that same query is repeated, `top_k + widen` more (up to
  `max_top_k`: "a larger top_k explores").
* Write: keep the chain's facts found in memory, the retrieved passages and the chunk (a fact
  is kept when its subject is the start person or the object of the previous kept hop and its
  relation is that hop's), in hop order; "No previous memory" when none is known yet.
* Answer: `Therefore , the answer is <object of the last hop> .` (or `unknown`).

With the MemAgent controller the same write rule sees no retrieved passages, so a hop whose
fact was read before the previous hop was known is lost: the passive reader's weakness.
Outputs are written in pre-tokenized form (word pieces separated by single spaces), which a
word-level vocabulary round-trips exactly; they are the SFT targets of protocol training.
"""

from __future__ import annotations

from typing import Sequence

from reasoning_jax.agents.infmem.config import InfMemConfig
from reasoning_jax.agents.infmem.episode import Call
from reasoning_jax.agents.infmem.toolcall import format_tool_call
from reasoning_jax.data import multihop_task as task

UNKNOWN = "unknown"


def spaced(text: str) -> str:
  """Word pieces separated by single spaces (newlines kept as their own piece)."""
  lines = [" ".join(task.word_pieces(line)) for line in text.split("\n")]
  return " \n ".join(line for line in lines if line) if len(lines) > 1 else lines[0]


def chain_facts(question: str, texts: Sequence[str]) -> tuple[list[str], str | None]:
  """(the chain's fact sentences found in `texts`, in hop order; the answer if complete)."""
  start, relations = task.parse_question(question)
  facts: dict[tuple[str, str], tuple[str, str]] = {}
  for text in texts:
    for sentence in task.split_sentences(text):
      parsed = task.parse_fact(sentence)
      if parsed is not None:
        subject, relation, obj = parsed
        facts.setdefault((subject, relation), (sentence, obj))
  kept, current = [], start
  for relation in relations:
    found = facts.get((current, relation))
    if found is None:
      return kept, None
    kept.append(found[0])
    current = found[1]
  return kept, current


def next_query(question: str, memory: str) -> str | None:
  """`<relation> of <person>` for the first hop missing from memory; None when complete."""
  start, relations = task.parse_question(question)
  kept, answer = chain_facts(question, [memory])
  if answer is not None:
    return None
  current = start
  for sentence in kept:
    current = task.parse_fact(sentence)[2]
  return f"{relations[len(kept)]} of {current}"


class OracleController:
  """`fn(call) -> str` for `FunctionLLM`: the scripted protocol (module docstring)."""

  def __init__(self, config: InfMemConfig, *, top_k: int | None = None, widen: int = 4):
    self.config = config
    self.top_k = config.top_k if top_k is None else int(top_k)
    self.widen = int(widen)

  def __call__(self, call: Call) -> str:
    question = call.fields["question"]
    memory = call.fields["memory"]
    if call.kind == "prethink":
      query = next_query(question, memory)
      if query is None:
        return "STOP"
      repeats = sum(q == query for q, _ in call.fields.get("history", ()))
      top_k = min(self.config.max_top_k, self.top_k + self.widen * repeats)
      return spaced(format_tool_call(query, top_k, self.config.tool_format))
    if call.kind == "write":
      texts = [memory, *call.fields.get("retrieved", ()), call.fields["chunk"]]
      kept, _ = chain_facts(question, texts)
      return " ".join(kept) if kept else spaced(self.config.no_memory)
    _, answer = chain_facts(question, [memory])
    return spaced(f"Therefore, the answer is {answer or UNKNOWN}.")
