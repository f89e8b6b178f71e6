"""Tests for the multi-hop long-document task (`multihop_task`) and its `multihop` builder."""

from __future__ import annotations

import json
import random
import time

import pytest

from reasoning_jax.data import build_dataset, decode_example
from reasoning_jax.data import multihop_task as mt


def _example(seed: int, doc_tokens: int = 1024, **kw) -> dict:
  return mt.make_example(random.Random(seed), doc_tokens=doc_tokens, **kw)


def _follow_chain(question: str, document: str) -> tuple[str, list[str]]:
  """What a scripted oracle does: the answer found by following the chain in the document."""
  start, relations = mt.parse_question(question)
  table: dict[tuple[str, str], list[str]] = {}
  for sentence in mt.split_sentences(document):
    fact = mt.parse_fact(sentence)
    if fact is not None:
      table.setdefault(fact[:2], []).append(fact[2])
  person, visited = start, [start]
  for relation in relations:
    objects = table[(person, relation)]
    assert len(objects) == 1, (person, relation, objects)
    person = objects[0]
    visited.append(person)
  return person, visited


def test_name_lists_are_closed_and_disjoint():
  for words in (mt.FIRST_NAMES, mt.SURNAMES, mt.CITIES):
    assert len(set(words)) == len(words) >= 95
    assert all(w.isascii() and w.isalpha() and w[0].isupper() for w in words)
  assert not set(mt.CITIES) & (set(mt.FIRST_NAMES) | set(mt.SURNAMES))
  assert not set(mt.FIRST_NAMES) & set(mt.SURNAMES)


def test_deterministic():
  assert _example(3) == _example(3)
  assert _example(3) != _example(4)


@pytest.mark.parametrize("doc_tokens", [64, 65, 66, 67, 300, 1024, 4096])
def test_lengths_and_positions(doc_tokens):
  for seed in range(10):
    ex = _example(seed, doc_tokens)
    doc = ex["document"]
    assert mt.count_tokens(doc) == doc_tokens
    assert " ".join(mt.word_pieces(doc)) == doc and "\n" not in doc
    assert 2 <= ex["hops"] <= 4 and len(ex["facts"]) == ex["hops"] == len(ex["chain"]) - 1
    assert ex["chain"][-1] == ex["answer"]
    pieces = doc.split(" ")
    for fact, pos in zip(ex["facts"], ex["fact_positions"]):
      assert " ".join(pieces[pos : pos + mt.count_tokens(fact)]) == fact
    assert ex["solution"] == " ".join(ex["facts"]) + f" So the answer is {ex['answer']} ."


def test_facts_follow_the_chain_and_question():
  for seed in range(10):
    ex = _example(seed)
    start, relations = mt.parse_question(ex["question"])
    assert start == ex["chain"][0] and len(relations) == ex["hops"]
    for k, fact in enumerate(ex["facts"]):
      assert mt.parse_fact(fact) == (ex["chain"][k], relations[k], ex["chain"][k + 1])
    assert relations[-1] in mt.ATTRIBUTES and all(r in mt.RELATIONS for r in relations[:-1])


def test_exactly_one_fact_per_chain_pair_and_solvable():
  in_hop_order = 0
  n = 150
  for seed in range(n):
    ex = _example(seed, 2048 if seed % 2 else 700)
    answer, visited = _follow_chain(ex["question"], ex["document"])
    assert answer == ex["answer"] and visited == ex["chain"]
    in_hop_order += ex["fact_positions"] == sorted(ex["fact_positions"])
  assert in_hop_order < 0.6 * n  # Random order: ~1/h! of the examples are in hop order.


def test_hop_bounds():
  hops = {_example(s, 256, min_hops=3, max_hops=3)["hops"] for s in range(10)}
  assert hops == {3}
  assert {_example(s, 256)["hops"] for s in range(40)} == {2, 3, 4}
  with pytest.raises(ValueError):
    _example(0, 256, min_hops=1)
  with pytest.raises(ValueError):
    _example(0, 32)


def test_vocabulary_covers_generated_text():
  vocab = set(mt.vocabulary())
  assert mt.vocabulary() == sorted(vocab)
  for seed in range(30):
    ex = _example(seed, 1500)
    for key in ("question", "answer", "document", "solution"):
      assert set(mt.word_pieces(ex[key])) <= vocab, key


def test_parsing_is_whitespace_tolerant():
  assert mt.parse_fact("The mentor of Ada Moss is Ben Cole .") == ("Ada Moss", "mentor", "Ben Cole")
  assert mt.parse_fact("The mentor of Ada Moss is Ben Cole.") == ("Ada Moss", "mentor", "Ben Cole")
  assert mt.parse_fact("The hometown of Cy Dunn is Lima") == ("Cy Dunn", "hometown", "Lima")
  assert mt.parse_fact("Ada Moss visited Lima .") is None
  assert mt.parse_fact("The harbour of Ada Moss is Lima .") is None
  assert mt.split_sentences(
    "Ada Moss slept. The hometown of Cy Dunn is Lima .  Bo Hill slept ."
  ) == [
    "Ada Moss slept .",
    "The hometown of Cy Dunn is Lima .",
    "Bo Hill slept .",
  ]
  q = "What is the hometown of the mentor of the partner of Ada Moss ?"
  assert mt.parse_question(q) == ("Ada Moss", ["partner", "mentor", "hometown"])
  assert mt.parse_question(q.replace(" ?", "?")) == ("Ada Moss", ["partner", "mentor", "hometown"])
  with pytest.raises(ValueError):
    mt.parse_question("Where is Ada Moss ?")


def test_million_token_document_is_fast():
  t0 = time.perf_counter()
  ex = _example(0, 1_000_000)
  seconds = time.perf_counter() - t0
  print(f"1M-token document generated in {seconds:.2f} s")
  assert mt.count_tokens(ex["document"]) == 1_000_000
  assert _follow_chain(ex["question"], ex["document"])[0] == ex["answer"]


def test_builder(tmp_path):
  def read(builder, split):
    source = builder.as_data_source(split)
    return [decode_example(source[i]) for i in range(len(source))]

  a = build_dataset("multihop", tmp_path / "a", config="1k", num_train=4, num_test=2)
  b = build_dataset("multihop", tmp_path / "b", config="1k", num_train=4, num_test=2)
  for split, n in (("train", 4), ("test", 2)):
    records = read(a, split)
    assert len(records) == n and records == read(b, split)
    for ex in records:
      assert mt.count_tokens(ex["document"]) == 1024
      facts = json.loads(ex["facts"])
      assert len(facts) == ex["hops"] == len(ex["fact_positions"])
      assert _follow_chain(ex["question"], ex["document"])[0] == ex["answer"]
      assert ex["solution"].endswith(f"the answer is {ex['answer']} .")
