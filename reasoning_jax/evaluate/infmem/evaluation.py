"""One reader (a model + a controller) on one set of documents: accuracy and costs."""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from reasoning_jax.agents.infmem import InfMemConfig, PromptSet, run_episodes
from reasoning_jax.evaluate.infmem.replay import replay
from reasoning_jax.rewards import qa_exact_reward


def evaluate_reader(
  llm: Any,
  examples: Sequence[dict[str, Any]],
  config: InfMemConfig,
  prompt_set: PromptSet,
  *,
  replay_calls: bool = True,
) -> dict[str, Any]:
  """Runs every example's episode (batched) and summarises it.

  Returns accuracy (`qa_exact` of the final answer), model calls, generated tokens and
  chunks read per question, the early-stop share, counted recoveries, wall time and its
  BM25 share, the model's batched rounds and compiled shapes, and `replay`: each call
  replayed through the scripted controller (`evaluate.infmem.replay`: where it goes wrong;
  `replay_calls=False` leaves it out, e.g. for the scripted controller itself).
  """
  start = time.perf_counter()
  before = dict(llm.stats.as_dict())
  episodes = run_episodes(
    llm,
    [e["question"] for e in examples],
    [e["document"] for e in examples],
    config,
    prompt_set=prompt_set,
  )
  seconds = time.perf_counter() - start
  after = llm.stats.as_dict()
  correct = [qa_exact_reward(ep.output or "", e["answer"]) for ep, e in zip(episodes, examples)]
  bm25 = sum(ep.stats.bm25_seconds + ep.document.index_seconds for ep in episodes)
  mean = lambda xs: float(np.mean(xs)) if len(xs) else 0.0  # noqa: E731
  return {
    "accuracy": mean(correct),
    "calls_per_question": mean([len(ep.calls) for ep in episodes]),
    "generated_tokens_per_question": mean([ep.stats.generated_tokens for ep in episodes]),
    "chunks_read": mean([ep.steps_read for ep in episodes]),
    "chunks": mean([ep.num_chunks for ep in episodes]),
    "early_stopped": mean([ep.stop_step is not None for ep in episodes]),
    "searches_per_question": mean([ep.stats.searches for ep in episodes]),
    "malformed_calls": int(sum(ep.stats.malformed_calls for ep in episodes)),
    "unknown_tools": int(sum(ep.stats.unknown_tools for ep in episodes)),
    "truncated_writes": int(sum(ep.stats.truncated_writes for ep in episodes)),
    "seconds": seconds,
    "bm25_share": bm25 / seconds if seconds else 0.0,
    "rounds": after["rounds"] - before["rounds"],
    "compiled_shapes": after["compiled_shapes"],
    **({"replay": replay(episodes, config)} if replay_calls else {}),
    "examples": [
      {
        "question": e["question"],
        "answer": e["answer"],
        "output": ep.output,
        "calls": len(ep.calls),
      }
      for e, ep in list(zip(examples, episodes))[:2]
    ],
  }
