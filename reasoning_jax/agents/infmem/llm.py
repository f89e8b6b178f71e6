"""The models an episode talks to: any zoo model / HF folder through `generate`, or a function.

Both take a list of `Call`s (one batched round) and return one `Completion` per call.
`GenerateLLM` pads the batch to a multiple of `batch_multiple` rows and the prompt width to
a multiple of `length_multiple`, so the rounds of many episodes reuse a handful of compiled
prefill/decode pairs (`generate` compiles one per (rows, width, budget)). `FunctionLLM`
wraps a Python function of the call (the scripted oracle, the unit tests' mock models) and
enforces the budget the way a decoder does: the output is cut at `max_new_tokens` tokens
and is then unfinished.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

from reasoning_jax.agents.infmem.episode import Call, Completion
from reasoning_jax.generate import generate


class ContextError(ValueError):
  """A prompt plus its budget does not fit the model's context; says by how much."""


class LLMStats:
  """Costs of the calls an LLM served: batched rounds, calls, tokens and seconds."""

  def __init__(self):
    self.rounds = 0
    self.calls = 0
    self.generated_tokens = 0
    self.prompt_tokens = 0
    self.seconds = 0.0
    self.shapes: set[tuple[int, int, int]] = set()

  def as_dict(self) -> dict[str, float]:
    return {
      "rounds": self.rounds,
      "calls": self.calls,
      "generated_tokens": self.generated_tokens,
      "prompt_tokens": self.prompt_tokens,
      "model_seconds": self.seconds,
      "compiled_shapes": len(self.shapes),
    }


class FunctionLLM:
  """`fn(call) -> str` as a model: the output is tokenized and cut at the call's budget."""

  def __init__(self, fn: Callable[[Call], str], tokenizer: Any, *, max_context: int | None = None):
    self.fn = fn
    self.tokenizer = tokenizer
    self.max_context = max_context
    self.stats = LLMStats()

  def complete(self, calls: Sequence[Call]) -> list[Completion]:
    start = time.perf_counter()
    out = []
    for call in calls:
      ids = list(self.tokenizer.encode(self.fn(call)))
      finished = len(ids) <= call.max_new_tokens
      ids = ids[: call.max_new_tokens]
      out.append(Completion(self.tokenizer.decode(ids), tuple(ids), finished))
      self.stats.generated_tokens += len(ids)
    self.stats.rounds += 1
    self.stats.calls += len(calls)
    self.stats.seconds += time.perf_counter() - start
    return out


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


class GenerateLLM:
  """A zoo model (preset or `from_hf`) behind the episode interface, through `generate`."""

  def __init__(
    self,
    model: Any,
    tokenizer: Any,
    *,
    eos_id: int | tuple[int, ...] | None,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float = 1.0,
    seed: int = 0,
    add_bos: bool = False,
    length_multiple: int = 256,
    batch_multiple: int = 8,
    max_context: int | None = None,
  ):
    """Args:
    model: a `Transformer` (`models.build_model`, `from_hf`).
    tokenizer: its tokenizer (prompts arrive rendered through its chat template).
    eos_id: ids that end an output (`ModelSource.eos_id`).
    temperature, top_k, top_p: sampling (0 = greedy).
    seed: the sampling key; round r uses `fold_in(key(seed), r)`.
    add_bos: prepend the tokenizer's bos to every prompt.
    length_multiple, batch_multiple: padding buckets (fewer compiled shapes).
    max_context: the model's context (default `config.max_position_embeddings`).
    """
    if eos_id is None:
      raise ValueError("eos_id is required: a write must be able to end before its budget")
    self.model = model
    self.tokenizer = tokenizer
    self.eos_id = eos_id
    self.temperature = float(temperature)
    self.top_k = top_k
    self.top_p = float(top_p)
    self.key = jax.random.key(seed)
    self.add_bos = add_bos
    self.length_multiple = int(length_multiple)
    self.batch_multiple = int(batch_multiple)
    if max_context is None:
      max_context = int(model.config.max_position_embeddings)
    self.max_context = int(max_context)
    self.stats = LLMStats()

  def encode(self, text: str) -> list[int]:
    ids = list(self.tokenizer.encode(text))
    if self.add_bos and self.tokenizer.bos_id is not None:
      ids = [self.tokenizer.bos_id] + ids
    return ids

  def complete(self, calls: Sequence[Call]) -> list[Completion]:
    if not calls:
      return []
    budgets = {c.max_new_tokens for c in calls}
    if len(budgets) != 1:
      raise ValueError(f"one round has one budget (max_new_tokens), got {sorted(budgets)}")
    budget = budgets.pop()
    start = time.perf_counter()
    rows = [self.encode(c.prompt) for c in calls]
    for c, ids in zip(calls, rows):
      if len(ids) + budget > self.max_context:
        raise ContextError(
          f"episode {c.episode} {c.kind} call at step {c.step}: prompt {len(ids)} + "
          f"max_new_tokens {budget} = {len(ids) + budget} tokens > the model's context "
          f"{self.max_context} (short by {len(ids) + budget - self.max_context})"
        )
    width = min(_round_up(max(map(len, rows)), self.length_multiple), self.max_context - budget)
    n = _round_up(len(rows), self.batch_multiple)
    pad = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0
    prompts = np.full((n, width), pad, np.int32)
    lengths = np.ones((n,), np.int32)
    for i, ids in enumerate(rows):
      prompts[i, : len(ids)] = ids
      lengths[i] = len(ids)
    key = jax.random.fold_in(self.key, self.stats.rounds)
    out = generate(
      self.model,
      prompts,
      lengths,
      max_new_tokens=budget,
      temperature=self.temperature,
      top_k=self.top_k,
      top_p=self.top_p,
      eos_id=self.eos_id,
      key=key if self.temperature > 0 else None,
      cache_size=width + budget,
      pad_id=pad,
    )
    tokens, out_lengths, done, logp = jax.device_get(
      (out.tokens, out.lengths, out.done, out.logprobs)
    )
    completions = []
    for i, ids in enumerate(rows):
      gen = [int(t) for t in tokens[i, : out_lengths[i]]]
      lp = tuple(float(x) for x in logp[i, : out_lengths[i]])
      completions.append(
        Completion(self.tokenizer.decode(gen), tuple(gen), bool(done[i]), tuple(ids), lp)
      )
      self.stats.generated_tokens += len(gen)
      self.stats.prompt_tokens += len(ids)
    self.stats.rounds += 1
    self.stats.calls += len(calls)
    self.stats.shapes.add((n, width, budget))
    self.stats.seconds += time.perf_counter() - start
    return completions
