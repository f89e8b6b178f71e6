"""`evaluate.infmem.replay`: each call of an episode replayed through the scripted controller."""

from __future__ import annotations

import os
import random
import sys

import pytest

from reasoning_jax.agents.infmem import FunctionLLM, run_episodes
from reasoning_jax.agents.infmem.oracle import OracleController, spaced
from reasoning_jax.data import multihop_task as task
from reasoning_jax.evaluate.infmem import setup
from reasoning_jax.evaluate.infmem.replay import replay

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)


@pytest.fixture(scope="module")
def parts():
  tokenizer = setup.experiment_tokenizer(setup.COMPACT_PROMPTS, max_number=8)
  rng = random.Random(3)
  examples = [task.make_example(rng, doc_tokens=2048) for _ in range(6)]
  from configs import infmem as infmem_config

  reader = infmem_config.get_config().reader  # The experiment's scaled protocol flags.
  return tokenizer, examples, setup.protocol_config(reader, "infmem")


def _run(fn, parts):
  tokenizer, examples, config = parts
  llm = FunctionLLM(fn, tokenizer)
  return run_episodes(
    llm,
    [e["question"] for e in examples],
    [e["document"] for e in examples],
    config,
    prompt_set=setup.COMPACT_PROMPTS,
  )


def test_the_oracle_agrees_with_itself_everywhere(parts):
  config = parts[2]
  r = replay(_run(OracleController(config), parts), config)
  assert r["prethink_calls"] > 0 and r["write_calls"] > 0 and r["answer_calls"] == 6
  assert r["prethink_decision_rate"] == 1.0 and r["premature_stops"] == 0
  assert r["prethink_query_agrees"] == r["prethink_calls"] - r["early_stops"] * config.patience
  assert r["write_exact_rate"] == 1.0 and r["write_hallucinated"] == 0
  assert r["write_hop_lost"] == 0
  # Every hop the inputs offered was taken; a 2-4-hop chain offers at least two.
  assert r["write_hop_available"] >= 12 and r["write_hop_taken_rate"] == 1.0
  assert r["answer_exact"] == 6 and r["skipped_episodes"] == 0
  assert r["early_stops_with_complete_memory"] == r["early_stops"] > 0


def test_a_reader_that_copies_names_wrong_is_caught(parts):
  """Writes the oracle's memory with each object's surname replaced, and stops at once:
  every hop it writes is hallucinated, none is taken, and its stops are premature."""
  config = parts[2]
  oracle = OracleController(config)

  def wrong_copier(call):
    want = oracle(call)
    if call.kind == "prethink":
      return "STOP"
    if call.kind == "write":
      facts = [task.parse_fact(s) for s in task.split_sentences(want)]
      if not facts or facts[0] is None:
        return want
      other = lambda name: name.split()[0] + " Zzz" if " " in name else name  # noqa: E731
      return " ".join(spaced(f"The {r} of {s} is {other(o)}.") for s, r, o in facts)
    return want

  r = replay(_run(wrong_copier, parts), config)
  assert r["premature_stop_rate"] == 1.0 and r["prethink_decision_rate"] == 0.0
  assert r["write_hop_available"] > 0
  assert r["write_hop_taken"] == 0
  assert r["write_hallucinated"] == r["write_hop_available"]
  assert r["answer_memory_complete"] == 0
  assert r["early_stops"] == 6 and r["early_stops_with_complete_memory"] == 0


def test_questions_outside_the_generated_template_are_skipped(parts):
  config = parts[2]
  episodes = _run(OracleController(config), parts)
  episodes[0].question = "Who wrote this ?"
  r = replay(episodes, config)
  assert r["skipped_episodes"] == 1 and r["answer_calls"] == 5
