"""InfMem over a real zoo model through `generate`, and the oracle on the generated data."""

from __future__ import annotations

import random

import pytest
from flax import nnx

from reasoning_jax.agents.infmem import ContextError, FunctionLLM, GenerateLLM, InfMemConfig
from reasoning_jax.agents.infmem import run_episodes
from reasoning_jax.agents.infmem.oracle import OracleController, chain_facts, next_query
from reasoning_jax.agents.infmem.prompts import PromptSet
from reasoning_jax.data import multihop_task as task
from reasoning_jax.models.config import get_preset
from reasoning_jax.models.transformer import Transformer
from reasoning_jax.tokenizers.word_level import word_level_tokenizer

SCALED = dict(
  chunk_tokens=256,
  unit_tokens=48,
  unit_overlap=12,
  top_k=4,
  min_top_k=2,
  max_top_k=8,
  memory_tokens=48,
  prethink_tokens=40,
  answer_tokens=16,
)


@pytest.fixture(scope="module")
def tokenizer():
  words = set(task.vocabulary()) | {str(i) for i in range(64)}
  for text in PromptSet().texts():
    words |= set(task.word_pieces(text))
  words |= set(task.word_pieces("STOP unknown No previous memory Search query top_k [Retrieved #]"))
  return word_level_tokenizer(sorted(words))


def _examples(n, doc_tokens, seed=0):
  rng = random.Random(seed)
  return [task.make_example(rng, doc_tokens=doc_tokens) for _ in range(n)]


def test_oracle_solves_the_generated_data_and_memagent_loses_hops(tokenizer):
  examples = _examples(12, 4096)
  config = InfMemConfig(**SCALED, max_document_tokens=1 << 20)
  results = {}
  for c in (config, InfMemConfig.memagent(**SCALED, max_document_tokens=1 << 20)):
    llm = FunctionLLM(OracleController(c), tokenizer)
    eps = run_episodes(llm, [e["question"] for e in examples], [e["document"] for e in examples], c)
    correct = [f" {x['answer']} ." in e.output for e, x in zip(eps, examples)]
    results[c.controller] = (sum(correct) / len(correct), sum(len(e.calls) for e in eps))
    for e in eps:
      assert all(len(tokenizer.encode(m)) <= c.memory_tokens for _, m in e.writes)
  # Every fact is in the document, so the chain is always recoverable from it ...
  for x in examples:
    assert chain_facts(x["question"], [x["document"]])[1] == x["answer"]
  # ... and the scripted InfMem reader recovers it (a fact cut by a chunk boundary is the
  # one way to miss), with fewer calls than the passive reader, which loses out-of-order hops.
  assert results["infmem"][0] >= 0.9
  assert results["memagent"][0] < results["infmem"][0]
  assert results["infmem"][1] < results["memagent"][1]


def test_oracle_queries_the_first_missing_hop():
  q = "What is the hometown of the mentor of the partner of Ada Moss ?"
  assert next_query(q, "No previous memory") == "partner of Ada Moss"
  memory = "The partner of Ada Moss is Ben Cole ."
  assert next_query(q, memory) == "mentor of Ben Cole"
  memory += " The mentor of Ben Cole is Cy Dunn . The hometown of Cy Dunn is Lima ."
  assert next_query(q, memory) is None
  assert chain_facts(q, [memory])[1] == "Lima"


@pytest.fixture(scope="module")
def model(tokenizer):
  config = get_preset(
    "tiny-qwen3",
    vocab_size=tokenizer.vocab_size,
    hidden_size=64,
    intermediate_size=128,
    num_layers=2,
    num_heads=2,
    num_kv_heads=1,
    head_dim=32,
    max_position_embeddings=1024,
  )
  return Transformer(config, rngs=nnx.Rngs(0))


def test_batched_generate_episodes_equal_one_at_a_time(tokenizer, model):
  examples = _examples(3, 600, seed=1)
  config = InfMemConfig(**SCALED)
  eos = tokenizer.eos_id

  def llm():
    return GenerateLLM(model, tokenizer, eos_id=eos, length_multiple=128, batch_multiple=4)

  batched = llm()
  together = run_episodes(
    batched, [e["question"] for e in examples], [e["document"] for e in examples], config
  )
  for x, ep in zip(examples, together):
    (alone,) = run_episodes(llm(), [x["question"]], [x["document"]], config)
    assert [c.completion.ids for c in alone.calls] == [c.completion.ids for c in ep.calls]
    assert alone.output == ep.output
  # Lock-step batching: rounds, not calls, set the number of model invocations.
  assert batched.stats.rounds <= max(len(e.calls) for e in together) + 3
  assert batched.stats.calls == sum(len(e.calls) for e in together)
  assert len(batched.stats.shapes) <= 6


def test_a_model_whose_context_is_too_short_is_refused_before_any_call(tokenizer, model):
  llm = GenerateLLM(model, tokenizer, eos_id=tokenizer.eos_id)
  config = InfMemConfig(**{**SCALED, "chunk_tokens": 900})
  with pytest.raises(ContextError, match=r"context is 1024: short by \d+"):
    run_episodes(llm, ["What is the hometown of Ada Moss ?"], ["The a b ."], config)
  assert llm.stats.calls == 0


def test_a_hugging_face_folder_reads_through_its_own_tokenizer_and_chat_template(tiny_hf_folder):
  from reasoning_jax.evaluate.infmem.setup import COMPACT_PROMPTS
  from reasoning_jax.models.source import build_model, resolve_source

  source = resolve_source(hf_dir=tiny_hf_folder("qwen3"))
  model = build_model(source)
  llm = GenerateLLM(model, source.tokenizer, eos_id=source.eos_id, length_multiple=512)
  config = InfMemConfig(
    chunk_tokens=64,
    unit_tokens=16,
    unit_overlap=4,
    top_k=3,
    max_top_k=4,
    memory_tokens=16,
    prethink_tokens=24,
    answer_tokens=8,
  )
  examples = _examples(2, 64, seed=3)
  for c in (config, config.replace(controller="memagent")):
    eps = run_episodes(
      llm,
      [e["question"] for e in examples],
      [e["document"] for e in examples],
      c,
      prompt_set=COMPACT_PROMPTS,
    )
    for ep in eps:
      assert ep.done and ep.calls
      assert all("<|im_start|>assistant" in call.prompt for call in ep.calls)
      assert all(len(call.completion.ids) <= call.max_new_tokens for call in ep.calls)
  assert llm.stats.calls > 0 and llm.stats.rounds < llm.stats.calls
