"""The router experiment's table: every pool model at every budget on the held-out questions,
and the frozen query embeddings.

`routing.build_bench` writes the resumable table under `<workdir>/bench` (quality by the
verifier, output / input tokens, cost at measured seconds per token; with `config.unlimited`
also the no-instruction "default" column capped at `default_cap(config)`; with `config.judge`
also a judge model's scores, `evaluate.router.judge`); the query
embeddings are those of a `routing.QueryEncoder` over the pool's largest trained model (or
`config.encoder_hf_dir`), cached in `<workdir>/bench/embeddings.npz` with the encoder recorded.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections
import numpy as np

from reasoning_jax.evaluate.router.judge import build_judge
from reasoning_jax.routing import (
  BenchQuery,
  BenchTable,
  QueryEncoder,
  build_bench,
  check_default_cap,
)


def instruction(config: ml_collections.ConfigDict) -> str:
  """The length instruction of `config` ("": none; the budget is then enforced by truncation
  only, `routing.budget_prompt`)."""
  text = config.get("instruction", "")
  if text and "{budget}" not in text:
    raise ValueError(f"config.instruction must contain a '{{budget}}' field, got {text!r}")
  return text


def default_cap(config: ml_collections.ConfigDict) -> int | None:
  """The token cap of the no-instruction "default" column: None unless `config.unlimited`;
  then `config.default_cap`, or the largest budget when that is None (it plays R2-Bench's
  "default" here, `configs/router.py`)."""
  if not config.get("unlimited", False):
    return None
  cap = config.get("default_cap", None)
  return check_default_cap(max(config.budgets) if cap is None else cap, "config.default_cap")


def build_table(
  config: ml_collections.ConfigDict, pool: dict[str, Any], queries: list[BenchQuery]
) -> BenchTable:
  """The `[N, M, K]` table of `pool` x `queries` x `config.budgets`, plus the default column
  with `config.unlimited` and the judge's scores with `config.judge` (resumed when present: an
  existing bench gains the column or the judge without regenerating completions)."""
  return build_bench(
    pool,
    queries,
    config.verifier,
    tuple(config.budgets),
    os.path.join(config.workdir, "bench"),
    batch_size=int(config.bench_batch_size),
    instruction=instruction(config),
    default_cap=default_cap(config),
    judge=build_judge(config, pool),
    progress=False,
  )


def _encoder(config: ml_collections.ConfigDict, pool: dict[str, Any]) -> QueryEncoder:
  if config.get("encoder_hf_dir", ""):
    return QueryEncoder.from_hf(config.encoder_hf_dir)
  trained = [n for n in config.pool.order]
  name = trained[-1]  # The largest trained member (order: smallest first).
  pm = pool[name]
  return QueryEncoder(pm.model, pm.tokenizer, name=f"pool:{name}")


def embed_queries(
  config: ml_collections.ConfigDict, pool: dict[str, Any], queries: list[BenchQuery]
) -> tuple[np.ndarray, dict[str, Any]]:
  """`(Z [N, H], encoder info)`, cached by the query texts and the encoder's name."""
  path = os.path.join(config.workdir, "bench", "embeddings.npz")
  texts = [q.text for q in queries]
  key = json.dumps([texts, config.get("encoder_hf_dir", ""), list(config.pool.order)])
  if os.path.exists(path):
    saved = np.load(path, allow_pickle=False)
    if str(saved["key"]) == key:
      return saved["Z"], json.loads(str(saved["info"]))
  encoder = _encoder(config, pool)
  Z = encoder.encode(texts)
  info = encoder.info.to_dict()
  np.savez(path, Z=Z, key=np.asarray(key), info=np.asarray(json.dumps(info)))
  return Z, info
