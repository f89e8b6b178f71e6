"""The in-document BM25 search (spec test (d)) and the tool-call parser."""

from __future__ import annotations

import itertools
import random

import pytest

from reasoning_jax.agents.infmem import InfMemConfig, bm25_terms, format_tool_call, parse_prethink
from reasoning_jax.agents.infmem.chunking import chunk_spans, unit_spans
from reasoning_jax.agents.infmem.retrieval import DocumentIndex, jaccard

CONFIG = InfMemConfig()


def _index(texts_per_chunk, **flags):
  spans, texts = [], []
  for c, chunk in enumerate(texts_per_chunk):
    for text in chunk:
      from reasoning_jax.agents.infmem.chunking import Span

      spans.append(Span(c, len(texts), len(texts) + 1))
      texts.append(text)
  return DocumentIndex(spans, texts, CONFIG.replace(**flags))


def test_terms_lowercase_words_and_cjk_pairs():
  assert bm25_terms("Ada MOSS, born_in 1990!") == ["ada", "moss", "born_in", "1990"]
  assert bm25_terms("北京大") == ["北", "京", "大", "北京", "京大"]


def test_d_diverse_results_jaccard_and_per_chunk_cap():
  rng = random.Random(0)
  words = [f"w{i}" for i in range(60)]
  chunks = []
  for c in range(8):  # Every chunk has near-duplicates of the same relevant unit.
    base = ["lima", "mentor"] + rng.sample(words, 8)
    chunks.append([" ".join(base + [f"c{c}n{j}"]) for j in range(4)])
    chunks[-1] += [" ".join(rng.sample(words, 10)) for _ in range(3)]
  index = _index(chunks, top_up=False)
  hits = index.search("mentor lima", 8, exclude_chunk=3)
  assert len(hits) >= 4
  assert all(h.span.chunk != 3 for h in hits)
  per_chunk = {}
  for h in hits:
    per_chunk[h.span.chunk] = per_chunk.get(h.span.chunk, 0) + 1
  assert max(per_chunk.values()) <= 2
  for a, b in itertools.combinations(hits, 2):
    assert jaccard(index._sets[a.unit], index._sets[b.unit]) <= 0.8
  scores = [h.score for h in hits]
  assert scores == sorted(scores, reverse=True)


def test_top_up_fills_to_top_k_but_never_from_the_current_chunk():
  chunks = [[f"lima mentor x{c} y{j}" for j in range(3)] for c in range(3)]
  hits = _index(chunks, top_up=True, max_per_chunk=1).search("lima", 5, exclude_chunk=0)
  assert len(hits) == 5 and all(h.span.chunk != 0 for h in hits)
  hits = _index(chunks, top_up=False, max_per_chunk=1).search("lima", 5, exclude_chunk=0)
  assert len(hits) == 2


def test_empty_query_and_empty_index_return_nothing():
  index = _index([["a b c"], ["d e f"]])
  assert index.search("?!", 3) == []
  assert DocumentIndex([], [], CONFIG).search("a", 3) == []


def test_units_tile_each_chunk_and_never_cross_it():
  chunks = chunk_spans(2345, 1000)
  units = unit_spans(chunks, 300, 50)
  for c in chunks:
    mine = [u for u in units if u.chunk == c.chunk]
    assert mine[0].start == c.start and mine[-1].end == c.end
    assert all(b.start - a.start == 250 for a, b in zip(mine, mine[1:]))


@pytest.mark.parametrize("fmt", ["qwen_agent", "hermes"])
def test_tool_call_round_trip_in_both_formats(fmt):
  text = format_tool_call("mentor of Ada Moss", 5, fmt)
  d = parse_prethink(text, question="q", config=CONFIG)
  assert not d.stop and d.calls == (("mentor of Ada Moss", 5),)
  # Decoded from a word-level vocabulary: pieces separated by spaces.
  spaced = " ".join(text.replace("✿", " ✿ ").replace('"', ' " ').split())
  assert parse_prethink(spaced, question="q", config=CONFIG).calls == (("mentor of Ada Moss", 5),)


def test_tool_call_fallbacks():
  q = "the question"
  d = parse_prethink('✿FUNCTION✿: retrievesearch\n✿ARGS✿: {"top_k": 99}', question=q, config=CONFIG)
  assert d.calls == ((q, 20),)  # Missing query -> the question; top_k clamped to 20.
  d = parse_prethink(
    '✿FUNCTION✿: retrievesearch\n✿ARGS✿: {"query": "  ", "top_k": 1}', question=q, config=CONFIG
  )
  assert d.calls == ((q, 3),)
  d = parse_prethink(
    '✿FUNCTION✿: retrievesearch\n✿ARGS✿: {"query": "a", "top_k": 7.5}', question=q, config=CONFIG
  )
  assert d.calls == (("a", 8),) and d.bad_top_k == 1
  d = parse_prethink("<think>STOP or not</think> ok", question=q, config=CONFIG)
  assert d.stop and not d.explicit_stop  # Thinking is stripped; no call left = a stop.
  d = parse_prethink("I will STOP now", question=q, config=CONFIG)
  assert d.stop and d.explicit_stop
  two = format_tool_call("first", 4) + "\n" + format_tool_call("second", 6)
  assert parse_prethink(two, question=q, config=CONFIG).calls == (("first", 4), ("second", 6))
  hermes_str_args = (
    '<tool_call>{"name": "retrievesearch", "arguments": "{\\"query\\": \\"z\\"}"}</tool_call>'
  )
  assert parse_prethink(hermes_str_args, question=q, config=CONFIG).calls == (("z", 8),)
