"""Where a reader's episodes go wrong: each call replayed through the scripted controller.

Accuracy says that a trained reader fails, not where. `replay(episodes, config)` takes the
finished episodes of any reader on generated multi-hop questions (`data.multihop_task`) and
asks, call by call, what the scripted controller (`agents.infmem.oracle`) would have written
from the *same* inputs (the reader's own memory, history, retrieved passages and chunk), so
the counts are on the reader's own state distribution, not the oracle's:

* PreThink: agreement on the decision (STOP or search) and, when both search, on the query;
  `premature_stops`: the reader said STOP while its memory missed a hop.
* Write: `hop_available`: the inputs held the next fact of the chain (the oracle's write is
  longer than the memory it was given); `hop_taken`: the reader's new memory holds those
  same fact sentences. `hallucinated`: the new memory states a fact sentence that none of
  the inputs contains (a name copied wrong, say). `hop_lost`: the new memory no longer holds
  the chain the memory it was given held.
* Answer: agreement with the oracle's answer from the same memory, and whether that memory
  held the whole chain at all.

Rates are over the calls of that kind (0 when there were none). Questions that do not follow
the generated template (a user's own data) are skipped and counted in `skipped_episodes`.
"""

from __future__ import annotations

from typing import Any, Sequence

from reasoning_jax.agents.infmem.config import InfMemConfig
from reasoning_jax.agents.infmem.oracle import OracleController, chain_facts
from reasoning_jax.agents.infmem.toolcall import parse_prethink
from reasoning_jax.data import multihop_task as task

_COUNTS = (
  "prethink_calls",
  "prethink_decision_agrees",
  "prethink_query_agrees",
  "premature_stops",
  "missed_stops",
  "write_calls",
  "write_exact",
  "write_hop_available",
  "write_hop_taken",
  "write_hallucinated",
  "write_hop_lost",
  "answer_calls",
  "answer_exact",
  "answer_memory_complete",
  "early_stops",
  "early_stops_with_complete_memory",
  "skipped_episodes",
)


def _norm(text: str) -> str:
  return " ".join(task.word_pieces(text))


def _chain(question: str, texts: Sequence[str]) -> list[str]:
  """The chain's fact sentences found in `texts` (normalized), in hop order."""
  return [_norm(f) for f in chain_facts(question, texts)[0]]


def replay(episodes: Sequence[Any], config: InfMemConfig) -> dict[str, float]:
  """Counts and rates of the module docstring over `episodes` (finished `Episode`s)."""
  oracle = OracleController(config)
  n = dict.fromkeys(_COUNTS, 0)
  for episode in episodes:
    question = episode.question
    try:
      task.parse_question(question)
    except ValueError:
      n["skipped_episodes"] += 1
      continue
    for call in episode.calls:
      got = call.completion.text if call.completion is not None else ""
      want = oracle(call)
      memory = call.fields["memory"]
      if call.kind == "prethink":
        n["prethink_calls"] += 1
        mine = parse_prethink(got, question=question, config=config)
        theirs = parse_prethink(want, question=question, config=config)
        n["prethink_decision_agrees"] += mine.stop == theirs.stop
        n["premature_stops"] += mine.stop and not theirs.stop
        n["missed_stops"] += theirs.stop and not mine.stop
        if not mine.stop and not theirs.stop:
          n["prethink_query_agrees"] += _norm(mine.query) == _norm(theirs.query)
      elif call.kind == "write":
        n["write_calls"] += 1
        inputs = [memory, *call.fields.get("retrieved", ()), call.fields["chunk"]]
        before, available = _chain(question, [memory]), _chain(question, inputs)
        after = _chain(question, [got])
        n["write_exact"] += _norm(got) == _norm(want)
        n["write_hop_available"] += len(available) > len(before)
        n["write_hop_taken"] += (
          len(available) > len(before) and after[: len(available)] == available
        )
        n["write_hop_lost"] += after[: len(before)] != before
        source = _norm(" ".join(inputs))
        n["write_hallucinated"] += any(
          task.parse_fact(s) is not None and _norm(s) not in source
          for s in task.split_sentences(got)
        )
      else:
        n["answer_calls"] += 1
        n["answer_exact"] += _norm(got) == _norm(want)
        n["answer_memory_complete"] += chain_facts(question, [memory])[1] is not None
    if episode.stop_step is not None:
      n["early_stops"] += 1
      n["early_stops_with_complete_memory"] += (
        chain_facts(question, [episode.memory])[1] is not None
      )
  rate = lambda k, d: n[k] / n[d] if n[d] else 0.0  # noqa: E731
  return {
    **{k: float(v) for k, v in n.items()},
    "prethink_decision_rate": rate("prethink_decision_agrees", "prethink_calls"),
    "premature_stop_rate": rate("premature_stops", "prethink_calls"),
    "write_exact_rate": rate("write_exact", "write_calls"),
    "write_hop_taken_rate": rate("write_hop_taken", "write_hop_available"),
    "write_hallucinated_rate": rate("write_hallucinated", "write_calls"),
    "answer_memory_complete_rate": rate("answer_memory_complete", "answer_calls"),
  }
