"""InfMem's protocol with scripted models: spec tests (a)-(f) and the invariants."""

from __future__ import annotations

import itertools

import pytest

from infmem_helpers import WordTokenizer, document, searcher, stopper
from reasoning_jax.agents.infmem import (
  ContextError,
  FunctionLLM,
  InfMemConfig,
  early_stop_reward,
  episode_rewards,
  run_episodes,
)
from reasoning_jax.agents.infmem.chunking import Span, center_truncate, chunk_spans, unit_spans

SMALL = dict(
  chunk_tokens=40,
  unit_tokens=10,
  unit_overlap=2,
  memory_tokens=16,
  prethink_tokens=32,
  answer_tokens=16,
)


def _run(fn, n_chunks=5, **flags):
  tok = WordTokenizer()
  llm = FunctionLLM(fn, tok)
  config = InfMemConfig(**{**SMALL, **flags})
  (ep,) = run_episodes(llm, ["which w1x1 ?"], [document(n_chunks, 40)], config)
  return ep, llm


def test_a_always_stop_gives_three_prethinks_two_writes_one_answer():
  ep, llm = _run(stopper, n_chunks=6)
  assert (ep.count("prethink"), ep.count("write"), ep.count("answer")) == (3, 2, 1)
  assert ep.stop_step == 2 and ep.steps_read == 2
  assert llm.stats.calls == 6


@pytest.mark.parametrize("n", [1, 4, 7])
def test_b_never_stop_gives_n_prethinks_n_writes_one_answer(n):
  ep, _ = _run(searcher, n_chunks=n)
  assert (ep.count("prethink"), ep.count("write"), ep.count("answer")) == (n, n, 1)
  assert ep.stop_step is None and ep.stats.searches == n


def test_memagent_writes_every_chunk_without_prethink():
  ep, _ = _run(searcher, n_chunks=5, controller="memagent")
  assert (ep.count("prethink"), ep.count("write"), ep.count("answer")) == (0, 5, 1)
  assert all(not c.fields.get("retrieved") for c in ep.calls if c.kind == "write")
  assert ep.document.index is None


def test_a_tool_call_resets_the_stop_counter():
  script = itertools.cycle(["STOP", "STOP", "search"])

  def fn(call):
    if call.kind != "prethink":
      return stopper(call)
    return "STOP" if next(script) == "STOP" else searcher(call)

  ep, _ = _run(fn, n_chunks=7)
  assert ep.stop_step is None  # Never three STOPs in a row.
  assert ep.count("prethink") == 7


def test_c_search_never_returns_the_current_chunk():
  ep, _ = _run(searcher, n_chunks=6)
  for call in ep.calls:
    if call.kind == "write":
      for text in call.fields["retrieved"]:
        assert f"w{call.step}x" not in text
  # The query names a token of another chunk, so something was retrieved.
  assert any(c.fields["retrieved"] for c in ep.calls if c.kind == "write")


def test_e_sub_chunking_of_a_1200_token_chunk():
  units = unit_spans([Span(0, 0, 1200)], 500, 100)
  assert [(u.start, u.end) for u in units] == [(0, 500), (400, 900), (800, 1200)]
  chunks = chunk_spans(12_000, 5000)
  assert [(c.start, c.end) for c in chunks] == [(0, 5000), (5000, 10000), (10000, 12000)]
  units = unit_spans(chunks, 500, 100)
  assert all(chunks[u.chunk].start <= u.start < u.end <= chunks[u.chunk].end for u in units)
  assert units[-1].end == 12_000


def test_center_truncation_keeps_first_and_last_halves():
  assert center_truncate(list(range(10)), 6) == [0, 1, 2, 7, 8, 9]
  assert center_truncate(list(range(4)), 6) == [0, 1, 2, 3]
  ep, _ = _run(stopper, n_chunks=10, max_document_tokens=120)
  assert ep.document.truncated and len(ep.document.ids) == 120 and ep.num_chunks == 3


def _answer_at(write_step: int, stop_at: int):
  """Writes the gold answer at `write_step`, STOPs from PreThink step `stop_at` on."""

  def fn(call):
    if call.kind == "prethink":
      return "STOP" if call.step >= stop_at else searcher(call)
    if call.kind == "write":
      return "gold is Lima" if call.step >= write_step else "nothing yet"
    return "Therefore, the answer is Lima"

  return fn


@pytest.mark.parametrize(
  "write_step, stop_at, expected",
  [(2, 3, 1.0), (2, 4, 0.6), (2, 5, 0.36), (2, 2, 0.0), (2, 1, 0.0), (0, 1, 1.0), (0, 2, 0.6)],
)
def test_f_early_stop_reward(write_step, stop_at, expected):
  ep, _ = _run(_answer_at(write_step, stop_at), n_chunks=8, patience=1)
  assert ep.stop_step == stop_at
  terms = episode_rewards(ep, ["Lima"], outcome=1.0)
  assert terms["early_stop"] == pytest.approx(expected)
  # A hit at step 0 counts (the released code's 0 sentinel would lose it).
  assert terms["hit_step"] == (write_step if stop_at > write_step else -1)


def test_f_never_stopping_is_measured_to_the_end():
  assert early_stop_reward(5, None, 8) == pytest.approx(0.6**2)
  assert early_stop_reward(None, None, 8) == 0.0
  ep, _ = _run(_answer_at(5, 99), n_chunks=8, patience=1)
  assert ep.stop_step is None
  assert episode_rewards(ep, ["lima"], 0.0)["early_stop"] == pytest.approx(0.36)


def test_memory_never_exceeds_its_budget():
  def fn(call):
    return " ".join(["word"] * 50) if call.kind == "write" else searcher(call)

  ep, _ = _run(fn, n_chunks=4, memory_tokens=16)
  tok = WordTokenizer()
  for _, memory in ep.writes:
    assert len(tok.encode(memory)) <= 16
  assert ep.stats.truncated_writes == 4
  assert episode_rewards(ep, ["x"], 0.0)["memory_ok"] == 0.0
  # Every write call asked for exactly the memory budget.
  assert {c.max_new_tokens for c in ep.calls if c.kind == "write"} == {16}


def test_batched_episodes_equal_one_at_a_time():
  def fn(call):  # Depends only on the call, as a greedy model does.
    if call.kind == "prethink":
      if "x3" in call.fields["memory"] and call.step % 2:
        return "STOP"
      return searcher(call)
    if call.kind == "write":
      return " ".join((call.fields["retrieved"] or ["none"])[0].split()[:3])
    return "Therefore, the answer is " + call.fields["memory"].split()[0]

  config = InfMemConfig(**SMALL, patience=2)
  questions = [f"which w{i}x3 ?" for i in range(5)]
  docs = [document(3 + i, 40, marker=f"w{i % 2}") for i in range(5)]
  tok = WordTokenizer()
  batched = FunctionLLM(fn, tok)
  together = run_episodes(batched, questions, docs, config)
  alone = [run_episodes(FunctionLLM(fn, tok), [q], [d], config)[0] for q, d in zip(questions, docs)]
  for a, b in zip(together, alone):
    assert [(c.kind, c.step, c.prompt, c.completion) for c in a.calls] == [
      (c.kind, c.step, c.prompt, c.completion) for c in b.calls
    ]
    assert a.output == b.output
  assert batched.stats.rounds < sum(len(e.calls) for e in alone)
  assert batched.stats.calls == sum(len(e.calls) for e in alone)


def test_bad_input_is_refused_before_any_call():
  tok = WordTokenizer()
  calls = []
  llm = FunctionLLM(lambda c: calls.append(c) or "STOP", tok, max_context=1000)
  config = InfMemConfig(**SMALL)
  with pytest.raises(ValueError, match=r"documents\[1\] is empty"):
    run_episodes(llm, ["q a", "q b"], [document(2, 40), "   "], config)
  with pytest.raises(ValueError, match=r"questions\[0\] has 30 tokens > config.max_question"):
    run_episodes(
      llm, [" ".join(["q"] * 30)], [document(2, 40)], config.replace(max_question_tokens=20)
    )
  with pytest.raises(ContextError, match=r"write call needs up to \d+ tokens .* short by \d+"):
    run_episodes(llm, ["q"], [document(2, 40)], config.replace(max_top_k=80, top_k=8))
  with pytest.raises(ValueError, match="2 questions but 1 documents"):
    run_episodes(llm, ["a", "b"], [document(1, 40)], config)
  with pytest.raises(TypeError, match="must be a str"):
    run_episodes(llm, ["a"], [None], config)
  assert not calls


@pytest.mark.parametrize(
  "output, counter, count",
  [
    # An unknown tool is no usable call: it counts as a STOP, so patience ends the episode.
    ('✿FUNCTION✿: websearch\n✿ARGS✿: {"query": "x"}', "unknown_tools", 3),
    ('✿FUNCTION✿: retrievesearch\n✿ARGS✿: {"query": "w1x1", "top_k": "many"}', "bad_top_k", 4),
    ("✿FUNCTION✿: retrievesearch\n✿ARGS✿: {query: w1x1", "malformed_calls", 4),
  ],
)
def test_bad_tool_calls_are_counted_not_raised(output, counter, count):
  ep, _ = _run(lambda c: output if c.kind == "prethink" else stopper(c), n_chunks=4)
  assert getattr(ep.stats, counter) == count
  assert ep.done


def test_unparseable_output_never_hangs():
  garbage = ["", "✿", "<tool_call>", "{{{", "✿FUNCTION✿:", "<think>STOP", "\x00\n" * 5]
  for g in garbage:
    ep, _ = _run(lambda c, g=g: g, n_chunks=5)
    assert ep.done and len(ep.calls) <= 2 * 5 + 1


def test_thinking_stage_closes_unfinished_thoughts_and_keeps_the_budget():
  seen = []

  def fn(call):
    seen.append((call.max_new_tokens, call.prompt[-40:]))
    if call.max_new_tokens == 6:  # The thinking stage: never closes within its budget.
      return "<think> " + " ".join(["hmm"] * 20)
    return "memory after thought" if call.kind == "write" else stopper(call)

  ep, _ = _run(fn, n_chunks=3, think_tokens=6)
  assert ep.done and ep.count("prethink") == 3  # STOP after the closed thoughts.
  budgets = [b for b, _ in seen]
  assert budgets[0] == 6 and budgets[1] == 32  # Think first, then the call's own budget.
  assert any("</think>" in prompt for _, prompt in seen)
  assert ep.writes[0][1] == "memory after thought"  # The thought is stripped from memory.


def test_a_ruler_style_jsonl_file_drives_episodes(tmp_path):
  import json

  from reasoning_jax.data.longqa import load_longqa_jsonl

  path = tmp_path / "hotpotqa.jsonl"
  rows = [
    {"_id": "a", "input": "which w1x1 ?", "context": document(3, 40), "answers": ["x"]},
    {"index": 7, "input": "which w0x2 ?", "context": document(2, 40), "outputs": "x"},
  ]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  data = load_longqa_jsonl(str(path))
  llm = FunctionLLM(searcher, WordTokenizer())
  eps = run_episodes(
    llm, [d["question"] for d in data], [d["document"] for d in data], InfMemConfig(**SMALL)
  )
  assert [e.num_chunks for e in eps] == [3, 2]
  assert all(e.output == "Therefore, the answer is x" for e in eps)


def test_max_history_bounds_the_prethink_prompt():
  full, _ = _run(searcher, n_chunks=8)
  capped, _ = _run(searcher, n_chunks=8, max_history=2)
  tok = WordTokenizer()
  length = lambda ep: [len(tok.encode(c.prompt)) for c in ep.calls if c.kind == "prethink"]  # noqa: E731
  assert length(full)[-1] > length(full)[2]  # Released: grows with every search.
  assert length(capped)[-1] == length(capped)[2]  # Capped: flat once 2 searches are listed.
  assert len(capped.history) == 8  # The episode still records every search.
