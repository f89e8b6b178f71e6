"""An offline R2-Bench-style table: every pool model answers every query at every budget.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue et al., arXiv:2602.02823),
`shared/methods/inference.md` section 6.3: R2-Bench has, per (query, LLM, budget), the judged
quality of the answer produced under the length instruction, and prices per LLM. Here the pool is
this project's models (`pool.PoolModel`), the judge is one of our verifiers (a callable
`fn(completion, answer, **fields) -> float` or a `reasoning_jax.rewards` registry name), and the
price is either given or measured: seconds per prompt token (prefill) and per generated token
(decode), from `generate`'s own timings with compilation excluded.

`build_bench` generates per (model, budget) in batches and appends each finished batch as one
JSON line to the shard `shards/<model>__b<budget>.jsonl`; an atomic marker
`<shard>.done` (written to a temporary file and renamed) closes a shard. A killed run resumes: a
closed shard is read back, an open one keeps its whole lines (a torn last line is cut off) and
generates only the batches it lacks, so no (query, model, budget) is written twice.

  >>> table = build_bench(pool, queries, "math_exact", (10, 50, 200), "outputs/bench")
  >>> table.quality.shape, table.output_len.shape, table.cost.shape   # [N, M, K] each
  >>> train, test = split_indices(table.num_queries, test_fraction=0.3, seed=0)
  >>> train, test = ood_split(table.families, test_families=["countdown"])
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging

from reasoning_jax.routing.config import check_budgets
from reasoning_jax.routing.cost import ModelPrice, price_arrays
from reasoning_jax.routing.pool import (
  LENGTH_INSTRUCTION,
  PoolError,
  check_pool,
  generate_capped,
  load_pool_model,
)

__all__ = [
  "BenchQuery",
  "BenchTable",
  "as_queries",
  "build_bench",
  "ood_split",
  "resolve_verifier",
  "shard_path",
  "split_indices",
]

MANIFEST = "manifest.json"


@dataclasses.dataclass(frozen=True)
class BenchQuery:
  """One benchmark query: its text, reference answer, task family (for the out-of-distribution
  split) and extra fields passed to the verifier (e.g. countdown's `numbers`, `target`)."""

  text: str
  answer: Any = ""
  family: str = ""
  fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def as_queries(queries: Sequence[Any]) -> list[BenchQuery]:
  """`BenchQuery`s from `BenchQuery`s, strings, or mappings with `query` (or `text` /
  `prompt`), `answer`, `family` and any other keys (the verifier's fields)."""
  if isinstance(queries, (str, bytes)) or not isinstance(queries, Sequence):
    raise TypeError(f"queries must be a sequence, got {type(queries).__name__}")
  if not queries:
    raise ValueError("queries must hold at least one query, got an empty sequence")
  out = []
  for i, q in enumerate(queries):
    if isinstance(q, str):
      q = BenchQuery(q)
    elif isinstance(q, Mapping):
      d = dict(q)
      keys = [k for k in ("query", "text", "prompt") if k in d]
      if not keys:
        raise ValueError(f"queries[{i}] needs a 'query' (or 'text' / 'prompt') key, got {list(d)}")
      text = d.pop(keys[0])
      q = BenchQuery(text, d.pop("answer", ""), str(d.pop("family", "")), d)
    if not isinstance(q, BenchQuery) or not isinstance(q.text, str):
      raise TypeError(f"queries[{i}] must be a str, a mapping or a BenchQuery, got {q!r}")
    out.append(q)
  return out


def resolve_verifier(verifier: Any) -> Callable[..., float]:
  """A callable `fn(completion, answer, **fields) -> float`, or a `REWARDS` name."""
  if isinstance(verifier, str):
    import reasoning_jax.rewards  # noqa: F401 - registers the verifiers
    from reasoning_jax.registry import REWARDS

    REWARDS.validate(verifier, argument="verifier")
    return REWARDS.get(verifier)
  if not callable(verifier):
    raise TypeError(f"verifier must be a callable or a REWARDS name, got {verifier!r}")
  return verifier


def _safe(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def shard_path(out_dir: str, model: str, budget: int) -> str:
  """The JSONL shard of (model, budget); its completion marker is this path + ".done"."""
  return os.path.join(out_dir, "shards", f"{_safe(model)}__b{budget}.jsonl")


def _atomic_json(path: str, value: Any) -> None:
  tmp = f"{path}.tmp.{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(value, f)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def _read_shard(path: str, *, repair: bool) -> dict[int, dict]:
  """Batch index -> record of the shard's whole lines (the first of any repeated batch). With
  `repair`, a torn last line is cut off so that appends start on a fresh line."""
  if not os.path.exists(path):
    return {}
  records: dict[int, dict] = {}
  good = 0
  with open(path, "rb") as f:
    data = f.read()
  pos = 0
  while pos < len(data):
    end = data.find(b"\n", pos)
    if end < 0:
      break  # no newline: a torn write
    try:
      rec = json.loads(data[pos:end])
    except json.JSONDecodeError:
      break
    records.setdefault(int(rec["batch"]), rec)
    pos = good = end + 1
  if repair and good < len(data):
    with open(path, "r+b") as f:
      f.truncate(good)
  return records


@dataclasses.dataclass
class BenchTable:
  """The benchmark as arrays (N queries, M models, K budgets).

  Attributes:
    models / budgets: the M names and K budgets.
    queries / answers / families: per query.
    quality: `[N, M, K]` verifier scores.
    output_len: `[N, M, K]` generated tokens (EOS included, at most the budget).
    input_len: `[N, M, K]` prompt tokens (the instruction included).
    cost: `[N, M, K]` `input_len * price_in + output_len * price_out`.
    prices: name -> `ModelPrice` used for `cost`.
    price_source: name -> "given" or "measured" (seconds per token).
    completions: `[N, M, K]` object array of completion texts.
  """

  models: tuple[str, ...]
  budgets: tuple[int, ...]
  queries: list[str]
  answers: list[Any]
  families: list[str]
  quality: np.ndarray
  output_len: np.ndarray
  input_len: np.ndarray
  cost: np.ndarray
  prices: dict[str, ModelPrice]
  price_source: dict[str, str]
  completions: np.ndarray

  @property
  def num_queries(self) -> int:
    return len(self.queries)

  def take(self, index: Any) -> BenchTable:
    """The table restricted to the queries `index`."""
    idx = np.asarray(index, np.int64)
    return dataclasses.replace(
      self,
      queries=[self.queries[i] for i in idx],
      answers=[self.answers[i] for i in idx],
      families=[self.families[i] for i in idx],
      quality=self.quality[idx],
      output_len=self.output_len[idx],
      input_len=self.input_len[idx],
      cost=self.cost[idx],
      completions=self.completions[idx],
    )

  def save(self, path: str) -> None:
    """Writes `path` (.npz arrays) and `path` + ".json" (names, prices, texts)."""
    np.savez(
      path,
      quality=self.quality,
      output_len=self.output_len,
      input_len=self.input_len,
      cost=self.cost,
    )
    meta = {
      "models": list(self.models),
      "budgets": list(self.budgets),
      "queries": self.queries,
      "answers": [str(a) for a in self.answers],
      "families": self.families,
      "prices": {k: list(v) for k, v in self.prices.items()},
      "price_source": self.price_source,
      "completions": self.completions.tolist(),
    }
    _atomic_json(f"{path}.json", meta)


def _fingerprint(queries: list[BenchQuery], models: Sequence[str], budgets, instruction) -> str:
  h = hashlib.sha256()
  for q in queries:
    h.update(json.dumps([q.text, str(q.answer), q.family], sort_keys=True).encode())
  h.update(json.dumps([list(models), list(budgets), instruction]).encode())
  return h.hexdigest()


def _check_manifest(out_dir: str, manifest: dict) -> None:
  path = os.path.join(out_dir, MANIFEST)
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    for key in ("fingerprint", "batch_size", "chat"):
      if old.get(key) != manifest[key]:
        raise ValueError(
          f"out_dir={out_dir!r} holds a benchmark built with a different {key} (queries, "
          f"models, budgets or instruction for 'fingerprint'); use a new out_dir to rebuild"
        )
  else:
    _atomic_json(path, manifest)


def build_bench(
  pool: Mapping[str, Any],
  queries: Sequence[Any],
  verifier: Any,
  budgets: Sequence[int],
  out_dir: str,
  *,
  batch_size: int = 8,
  instruction: str = LENGTH_INSTRUCTION,
  chat: bool = True,
  warmup: bool = True,
  on_batch: Callable[[str, int, int], None] | None = None,
  progress: bool = True,
) -> BenchTable:
  """Builds (or resumes) the table of every (query, model, budget) in `out_dir`.

  Args:
    pool: name -> `PoolModel` (or `(model, tokenizer[, price])`, an HF folder, a loader); a
      model whose `price` is None is priced at its measured seconds per token.
    queries: `BenchQuery`s, strings or mappings (see `as_queries`).
    verifier: `fn(completion, answer, **fields) -> float` or a `REWARDS` name.
    budgets: the output budgets (tokens), strictly increasing.
    out_dir: where the shards, markers and manifest live (resumed when it holds them).
    batch_size: queries per `generate` call (fixed for an `out_dir`).
    instruction: the length instruction, with a `{budget}` field ("": none, truncation only).
    chat: put the instruction through the tokenizer's chat template when it has one.
    warmup: run each new shape once untimed, so measured seconds exclude compilation.
    on_batch: called as `on_batch(model, budget, batch_index)` after each batch is written.
    progress: show a tqdm bar (else log through absl).

  Raises:
    PoolError: a model fails to load (named), or a bad pool.
    ValueError: bad budgets (named `budgets`), no queries, an unknown verifier name, or an
      `out_dir` built from other queries / settings.
  """
  check_pool(pool)
  models = tuple(pool)
  budgets = check_budgets(budgets, "budgets")
  qs = as_queries(queries)
  verify = resolve_verifier(verifier)
  if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
    raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
  if instruction and "{budget}" not in instruction:
    raise ValueError(f"instruction must contain a '{{budget}}' field, got {instruction!r}")
  os.makedirs(os.path.join(out_dir, "shards"), exist_ok=True)
  manifest = {
    "fingerprint": _fingerprint(qs, models, budgets, instruction),
    "batch_size": batch_size,
    "chat": chat,
    "models": list(models),
    "budgets": list(budgets),
    "num_queries": len(qs),
  }
  _check_manifest(out_dir, manifest)
  n, m, k = len(qs), len(models), len(budgets)
  num_batches = -(-n // batch_size)
  bar = None
  if progress:
    from tqdm.auto import tqdm

    bar = tqdm(total=m * k * num_batches, desc="R2-Bench", unit="batch")
  records: dict[tuple[int, int], dict[int, dict]] = {}
  loaded: dict[str, Any] = {}
  seen: set = set()
  try:
    for mi, name in enumerate(models):
      for ki, b in enumerate(budgets):
        path = shard_path(out_dir, name, b)
        closed = os.path.exists(path + ".done")
        recs = _read_shard(path, repair=not closed)
        records[mi, ki] = recs
        if bar is not None:
          bar.update(len(recs))
        if closed:
          continue
        if name not in loaded:
          loaded[name] = load_pool_model(name, pool[name])
        pm = loaded[name]
        for j in range(num_batches):
          if j in recs:
            continue
          chunk = qs[j * batch_size : (j + 1) * batch_size]
          out = generate_capped(
            pm,
            [q.text for q in chunk],
            b,
            instruction=instruction,
            chat=chat,
            batch_size=batch_size,
            warmup=warmup,
            _seen=seen,
          )
          scores = [
            float(verify(c, q.answer, **dict(q.fields))) for c, q in zip(out.completions, chunk)
          ]
          rec = {
            "batch": j,
            "indices": list(range(j * batch_size, j * batch_size + len(chunk))),
            "completions": out.completions,
            "quality": scores,
            "output_len": [int(x) for x in out.output_lengths],
            "input_len": [int(x) for x in out.input_lengths],
            "prefill_s": out.prefill_s,
            "decode_s": out.decode_s,
          }
          with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())
          recs[j] = rec
          if bar is not None:
            bar.update(1)
          else:
            logging.info("R2-Bench %s b=%d batch %d/%d", name, b, j + 1, num_batches)
          if on_batch is not None:
            on_batch(name, b, j)
        _atomic_json(path + ".done", {"batches": num_batches, "rows": n})
  finally:
    if bar is not None:
      bar.close()
  return _assemble(pool, models, budgets, qs, records)


def _assemble(pool, models, budgets, qs, records) -> BenchTable:
  n, m, k = len(qs), len(models), len(budgets)
  quality = np.zeros((n, m, k), np.float32)
  out_len = np.zeros((n, m, k), np.int64)
  in_len = np.zeros((n, m, k), np.int64)
  completions = np.empty((n, m, k), object)
  seconds = np.zeros((m, 2))
  for (mi, ki), recs in records.items():
    for rec in recs.values():
      idx = np.asarray(rec["indices"], np.int64)
      quality[idx, mi, ki] = rec["quality"]
      out_len[idx, mi, ki] = rec["output_len"]
      in_len[idx, mi, ki] = rec["input_len"]
      completions[idx, mi, ki] = rec["completions"]
      seconds[mi] += (rec["prefill_s"], rec["decode_s"])
  prices: dict[str, ModelPrice] = {}
  source: dict[str, str] = {}
  for mi, name in enumerate(models):
    given = getattr(pool[name], "price", None)
    if isinstance(pool[name], tuple) and len(pool[name]) == 3:
      given = pool[name][2]
    if given is not None:
      try:
        pin, pout = price_arrays([name], {name: given})
      except ValueError as e:
        raise PoolError(f"pool model {name!r}: {e}") from None
      prices[name], source[name] = ModelPrice(float(pin[0]), float(pout[0])), "given"
    else:
      per_in = seconds[mi, 0] / max(int(in_len[:, mi].sum()), 1)
      per_out = seconds[mi, 1] / max(int(out_len[:, mi].sum()), 1)
      prices[name], source[name] = ModelPrice(per_in, per_out), "measured"
  pin, pout = price_arrays(models, prices)
  cost = in_len * pin[None, :, None] + out_len * pout[None, :, None]
  return BenchTable(
    models,
    budgets,
    [q.text for q in qs],
    [q.answer for q in qs],
    [q.family for q in qs],
    quality,
    out_len,
    in_len,
    cost,
    prices,
    source,
    completions,
  )


def split_indices(
  n: int, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
  """A seeded random `(train, test)` split of `range(n)` (each sorted, both non-empty)."""
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
    raise ValueError(f"n must be an int >= 2 (queries to split), got {n!r}")
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
  perm = np.random.default_rng(seed).permutation(n)
  n_test = min(max(1, int(round(test_fraction * n))), n - 1)
  return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def ood_split(
  families: Sequence[str], test_families: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
  """An out-of-distribution `(train, test)` split: the test set is every query whose family is
  in `test_families`, the training set the rest (section 6.6: STEM -> non-STEM)."""
  fams = list(families)
  test_set = set(test_families)
  missing = sorted(test_set - set(fams))
  if missing:
    raise ValueError(f"test_families {missing} do not occur in families {sorted(set(fams))}")
  mask = np.array([f in test_set for f in fams])
  if mask.all():
    raise ValueError(f"test_families {sorted(test_set)} cover every query; no training set left")
  return np.flatnonzero(~mask), np.flatnonzero(mask)
