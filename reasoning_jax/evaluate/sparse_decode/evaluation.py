"""Accuracy, KV traffic and decode time of one sparse decoding setting on one evaluation set.

Every call is greedy `generate(..., sparse_decode=cfg)`: prefill dense, decode steps sparse.
The first answer token comes from the prefill (the same for every method); the others come
from decode steps, so `decoded_token_accuracy` (answer tokens 2..m) and `exact_match` (the
whole answer) are what a method changes. `first_token_accuracy` is reported as the dense
prefill's ceiling.

KV traffic is analytic (`sparse.kv_tokens_read`: slots read per decode step summed over
layers and KV heads, Quest's page bounds included) times 2 (K and V) x head_dim x the cache
dtype's bytes. Decode time per token is `generate(..., timings=)`'s `decode_s` over the
decode steps of a second, warm call (the first compiles), on CPU: only ratios to "full"
measured in the same run mean anything.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
from absl import logging

from reasoning_jax.sparse import SparseDecodeConfig, kv_tokens_read, round_cache_size

METHODS = ("full", "lychee", "quest", "duo")


@dataclasses.dataclass
class EvalSet:
  """Prompts and answers at one context length.

  Attributes:
    prompts: `[N, P]` int32, right-padded.
    lengths: `[N]` prompt lengths.
    targets: `[N, m]` int32 answer tokens (-1: not scored).
    exact: optional `tokens [N, new] -> bool [N]` (the text passkey parses digits); default:
      every scored target token matches.
  """

  prompts: np.ndarray
  lengths: np.ndarray
  targets: np.ndarray
  exact: Callable[[np.ndarray], np.ndarray] | None = None

  @property
  def answer_len(self) -> int:
    return int(self.targets.shape[1])


def sparse_config(config, method: str, budget: int, roles=None) -> SparseDecodeConfig:
  """The `SparseDecodeConfig` of a sweep point (`config.block_size` etc.; "full" ignores
  the budget)."""
  common = dict(
    block_size=int(config.block_size),
    sink_tokens=int(config.sink_tokens),
    recent_tokens=int(config.recent_tokens),
    page_size=int(config.page_size),
    quest_dense_layers=int(config.quest_dense_layers),
    duo_streaming=str(config.duo_streaming),
    implementation=str(config.get("implementation", "xla")),
  )
  if method == "full":
    return SparseDecodeConfig(method="full", **common)
  return SparseDecodeConfig(
    method=method,
    budget=int(budget),
    roles=roles if method in ("lychee", "duo") else None,
    **common,
  )


def score(tokens: np.ndarray, data: EvalSet) -> dict[str, float]:
  """Exact match, first-token and decoded-token accuracy of greedy `tokens [N, new]`."""
  m = data.answer_len
  tokens = np.asarray(tokens)[:, :m]
  scored = data.targets >= 0
  right = (tokens == data.targets) & scored
  exact = data.exact(tokens) if data.exact is not None else (right | ~scored).all(1)
  later = scored[:, 1:]
  return {
    "exact_match": float(np.mean(exact)),
    "first_token_accuracy": float(right[:, 0].sum() / max(1, scored[:, 0].sum())),
    "decoded_token_accuracy": float(right[:, 1:].sum() / max(1, later.sum())),
  }


def generate_tokens(
  model,
  data: EvalSet,
  cfg: SparseDecodeConfig,
  *,
  batch_size: int,
  new: int,
  prefill_chunk: int | None = None,
):
  """Greedy tokens `[N, new]` in batches of `batch_size` rows (`prefill_chunk`: prompt tokens
  per prefill forward, `generate`'s chunked prefill; None = one forward)."""
  from reasoning_jax.generate import generate

  cache = round_cache_size(int(data.prompts.shape[1]) + new, cfg)
  outs = []
  for lo in range(0, len(data.prompts), batch_size):
    out = generate(
      model,
      data.prompts[lo : lo + batch_size],
      data.lengths[lo : lo + batch_size],
      max_new_tokens=new,
      temperature=0.0,
      cache_size=cache,
      sparse_decode=cfg,
      prefill_chunk=prefill_chunk,
    )
    outs.append(np.asarray(out.tokens))
  return np.concatenate(outs)


def accuracy(
  model,
  data: EvalSet,
  cfg: SparseDecodeConfig,
  *,
  batch_size: int,
  prefill_chunk: int | None = None,
) -> dict[str, float]:
  """`score` of greedy decoding with `cfg` (`answer_len` new tokens, no EOS)."""
  tokens = generate_tokens(
    model, data, cfg, batch_size=batch_size, new=data.answer_len, prefill_chunk=prefill_chunk
  )
  return score(tokens, data)


def kv_read(cfg: SparseDecodeConfig, model_config: Any, length: int) -> dict[str, float]:
  """KV slots and bytes a decode step reads at `length` visible tokens."""
  import jax.numpy as jnp

  slots = kv_tokens_read(cfg, model_config.num_layers, model_config.num_kv_heads, int(length))
  itemsize = jnp.dtype(model_config.dtype).itemsize
  return {
    "kv_tokens": float(slots),
    "kv_bytes": float(slots * 2 * model_config.head_dim * itemsize),
  }


def decode_time_per_token(
  model,
  data: EvalSet,
  cfg: SparseDecodeConfig,
  *,
  rows: int,
  new: int,
  repeats: int = 1,
  prefill_chunk: int | None = None,
) -> float:
  """Seconds per decode step (batch of `rows` prompts, `new` tokens), the best of `repeats`
  warm calls (a first call compiles and is not timed)."""
  from reasoning_jax.generate import generate

  prompts, lengths = data.prompts[:rows], data.lengths[:rows]
  cache = round_cache_size(int(prompts.shape[1]) + new, cfg)
  kwargs = dict(
    max_new_tokens=new,
    temperature=0.0,
    cache_size=cache,
    sparse_decode=cfg,
    prefill_chunk=prefill_chunk,
  )
  generate(model, prompts, lengths, **kwargs)
  best = float("inf")
  for _ in range(max(1, repeats)):
    timings: dict[str, float] = {}
    generate(model, prompts, lengths, timings=timings, **kwargs)
    best = min(best, timings["decode_s"] / max(1, new - 1))
  return best


def sweep(
  model,
  eval_sets: dict[int, EvalSet],
  config,
  roles: dict[str, np.ndarray],
  *,
  timing_lens=(),
) -> dict[str, Any]:
  """Every (method, budget, length) point of one seed: `{"points": [...]}` where each point
  holds method, budget (None for full), length, the `score` metrics, `kv_read` and, at
  `timing_lens`, `decode_s_per_token`."""
  points = []
  budgets = [int(b) for b in config.budgets]
  bs = int(config.eval_batch_size)
  chunk = int(config.get("prefill_chunk", 0)) or None
  for length, data in eval_sets.items():
    for method in METHODS:
      for budget in [None] if method == "full" else budgets:
        cfg = sparse_config(config, method, budget or 0, roles.get(method))
        point = {"method": method, "budget": budget, "length": int(length)}
        point.update(accuracy(model, data, cfg, batch_size=bs, prefill_chunk=chunk))
        point.update(kv_read(cfg, model.config, length))
        if int(length) in timing_lens:
          point["decode_s_per_token"] = decode_time_per_token(
            model,
            data,
            cfg,
            rows=int(config.timing.rows),
            new=int(config.timing.new_tokens),
            repeats=int(config.timing.repeats),
            prefill_chunk=chunk,
          )
        points.append(point)
        logging.info(
          "%s budget %s T=%d: exact %.3f decoded %.3f",
          method, budget, length, point["exact_match"], point["decoded_token_accuracy"],
        )  # fmt: skip
  return {"points": points}
