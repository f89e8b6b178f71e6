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

With `default_cap`, every model also answers every query with no instruction, capped at
`default_cap` tokens: R2-Bench's "default" column, the released code's `unlimited` option
(`RouterConfig.unlimited`). It lives in its own shards `shards/<model>__default.jsonl` under the
same scheme, so a bench built without it gains it later without regenerating a budget shard.
The manifest's fingerprint covers the queries, models, budgets and instruction; `default_cap` is
recorded beside it, and a later run asking for a different one is refused.

  >>> table = build_bench(pool, queries, "math_exact", (10, 50, 200), "outputs/bench")
  >>> table.quality.shape, table.output_len.shape, table.cost.shape   # [N, M, K] each
  >>> table = build_bench(pool, queries, "math_exact", (10, 50, 200), "outputs/bench",
  ...                     default_cap=400)                    # adds the "default" column
  >>> quality, cost, output_len = table.option_tables(unlimited=True)   # [N, M, K + 1] each
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
from typing import Any, NamedTuple

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
  "OptionTables",
  "as_queries",
  "build_bench",
  "check_default_cap",
  "ood_split",
  "resolve_verifier",
  "shard_path",
  "split_indices",
]

MANIFEST = "manifest.json"
DEFAULT = "default"  # The no-instruction column's option label (`RouterConfig.option_labels`).


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


def shard_path(out_dir: str, model: str, budget: int | None) -> str:
  """The JSONL shard of (model, budget) (None: the no-instruction "default" column); its
  completion marker is this path + ".done"."""
  tag = DEFAULT if budget is None else f"b{budget}"
  return os.path.join(out_dir, "shards", f"{_safe(model)}__{tag}.jsonl")


def check_default_cap(default_cap: Any, name: str = "default_cap") -> int | None:
  """`default_cap` as a positive int (tokens of the no-instruction answer) or None."""
  if default_cap is None:
    return None
  if isinstance(default_cap, bool) or not isinstance(default_cap, (int, np.integer)):
    raise ValueError(f"{name} must be a positive int (tokens) or None, got {default_cap!r}")
  if default_cap < 1:
    raise ValueError(f"{name} must be >= 1 token, got {default_cap!r}")
  return int(default_cap)


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


class OptionTables(NamedTuple):
  """Ground-truth tables over a router's options `[N, M, K (+ 1)]`: the budgets, then the
  "default" column when asked (`RouterConfig.option_labels`)."""

  quality: np.ndarray
  cost: np.ndarray
  output_len: np.ndarray
  input_len: np.ndarray


# The default column's arrays, by the name of their budget-table counterpart.
_DEFAULT_FIELDS = {
  "quality": "default_quality",
  "output_len": "default_output_len",
  "input_len": "default_input_len",
  "cost": "default_cost",
  "completions": "default_completions",
}


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
    default_cap: the token cap of the no-instruction "default" column (None: not built).
    default_quality / default_output_len / default_input_len / default_cost /
    default_completions: that column, `[N, M]` each (None when not built), priced as `cost`.
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
  default_cap: int | None = None
  default_quality: np.ndarray | None = None
  default_output_len: np.ndarray | None = None
  default_input_len: np.ndarray | None = None
  default_cost: np.ndarray | None = None
  default_completions: np.ndarray | None = None

  @property
  def num_queries(self) -> int:
    return len(self.queries)

  @property
  def has_default(self) -> bool:
    """Whether the no-instruction "default" column was built (`build_bench(default_cap=)`)."""
    return self.default_quality is not None

  def option_tables(self, unlimited: bool = False) -> OptionTables:
    """`(quality, cost, output_len, input_len)`, `[N, M, K]` each, or `[N, M, K + 1]` with the
    "default" column last when `unlimited` (the layout of `RouterConfig(unlimited=True)`'s
    `option_labels` and of `fit_router`'s `quality`)."""
    names = ("quality", "cost", "output_len", "input_len")
    if not unlimited:
      return OptionTables(*(getattr(self, f) for f in names))
    if not self.has_default:
      raise ValueError(
        "unlimited=True needs the no-instruction column: build the bench with default_cap"
      )
    return OptionTables(
      *(
        np.concatenate([getattr(self, f), getattr(self, _DEFAULT_FIELDS[f])[..., None]], -1)
        for f in names
      )
    )

  def take(self, index: Any) -> BenchTable:
    """The table restricted to the queries `index`."""
    idx = np.asarray(index, np.int64)
    default = {
      d: None if getattr(self, d) is None else getattr(self, d)[idx]
      for d in _DEFAULT_FIELDS.values()
    }
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
      **default,
    )

  def save(self, path: str) -> None:
    """Writes `path` (.npz arrays) and `path` + ".json" (names, prices, texts); the default
    column's arrays and texts under their field names when it was built."""
    arrays = {f: getattr(self, f) for f in ("quality", "output_len", "input_len", "cost")}
    if self.has_default:
      arrays |= {d: getattr(self, d) for f, d in _DEFAULT_FIELDS.items() if f != "completions"}
    np.savez(path, **arrays)
    meta = {
      "models": list(self.models),
      "budgets": list(self.budgets),
      "queries": self.queries,
      "answers": [str(a) for a in self.answers],
      "families": self.families,
      "prices": {k: list(v) for k, v in self.prices.items()},
      "price_source": self.price_source,
      "completions": self.completions.tolist(),
      "default_cap": self.default_cap,
    }
    if self.has_default:
      meta["default_completions"] = self.default_completions.tolist()
    _atomic_json(f"{path}.json", meta)


def _fingerprint(queries: list[BenchQuery], models: Sequence[str], budgets, instruction) -> str:
  h = hashlib.sha256()
  for q in queries:
    h.update(json.dumps([q.text, str(q.answer), q.family], sort_keys=True).encode())
  h.update(json.dumps([list(models), list(budgets), instruction]).encode())
  return h.hexdigest()


def _check_manifest(out_dir: str, manifest: dict) -> None:
  """Writes the manifest of a new `out_dir`, or checks it against the one there. The default
  column's cap is recorded beside the fingerprint: a bench built without it gains it (the
  manifest is rewritten), one built with it refuses another."""
  path = os.path.join(out_dir, MANIFEST)
  if not os.path.exists(path):
    _atomic_json(path, manifest)
    return
  with open(path) as f:
    old = json.load(f)
  for key in ("fingerprint", "batch_size", "chat"):
    if old.get(key) != manifest[key]:
      raise ValueError(
        f"out_dir={out_dir!r} holds a benchmark built with a different {key} (queries, "
        f"models, budgets or instruction for 'fingerprint'); use a new out_dir to rebuild"
      )
  cap, old_cap = manifest["default_cap"], old.get("default_cap")
  if cap is None:
    return
  if old_cap is not None and old_cap != cap:
    raise ValueError(
      f"default_cap={cap} differs from the default_cap={old_cap} that out_dir={out_dir!r} "
      f"was built with; pass default_cap={old_cap}, or use a new out_dir"
    )
  if old_cap is None:
    _atomic_json(path, old | {"default_cap": cap})


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
  default_cap: int | None = None,
  warmup: bool = True,
  on_batch: Callable[[str, int | None, int], None] | None = None,
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
    default_cap: when given, also build the "default" column: every model answers with no
      instruction, capped at `default_cap` tokens (R2-Bench: 4000). Fixed for an `out_dir`
      once built; a bench built without it gains it here, its budget shards reused as they are.
    warmup: run each new shape once untimed, so measured seconds exclude compilation.
    on_batch: called as `on_batch(model, budget, batch_index)` after each batch is written
      (`budget` None for the default column).
    progress: show a tqdm bar (else log through absl).

  Measured prices come from the budget shards only, so adding the default column later leaves
  the budget table's cost unchanged; the default column is priced the same way.

  Raises:
    PoolError: a model fails to load (named), or a bad pool.
    ValueError: bad budgets (named `budgets`), a bad or changed `default_cap` (named), no
      queries, an unknown verifier name, or an `out_dir` built from other queries / settings.
  """
  check_pool(pool)
  models = tuple(pool)
  budgets = check_budgets(budgets, "budgets")
  default_cap = check_default_cap(default_cap)
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
    "default_cap": default_cap,
  }
  _check_manifest(out_dir, manifest)
  # The columns per model: the budgets, then None (no instruction, `default_cap`) when asked.
  columns: tuple[int | None, ...] = budgets + ((None,) if default_cap is not None else ())
  num_batches = -(-len(qs) // batch_size)
  bar = None
  if progress:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(models) * len(columns) * num_batches, desc="R2-Bench", unit="batch")
  records: dict[tuple[int, int], dict[int, dict]] = {}
  loaded: dict[str, Any] = {}
  seen: set = set()
  try:
    for mi, name in enumerate(models):
      for ki, b in enumerate(columns):
        path = shard_path(out_dir, name, b)
        closed = os.path.exists(path + ".done")
        recs = records[mi, ki] = _read_shard(path, repair=not closed)
        if bar is not None:
          bar.update(len(recs))
        if closed:
          continue
        if name not in loaded:
          loaded[name] = load_pool_model(name, pool[name])
        pm = loaded[name]
        cap = {"default_cap": default_cap} if b is None else {}
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
            **cap,
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
            label = DEFAULT if b is None else f"b={b}"
            logging.info("R2-Bench %s %s batch %d/%d", name, label, j + 1, num_batches)
          if on_batch is not None:
            on_batch(name, b, j)
        _atomic_json(path + ".done", {"batches": num_batches, "rows": len(qs)})
  finally:
    if bar is not None:
      bar.close()
  return _assemble(pool, models, budgets, qs, records, default_cap)


def _fill(records: dict[int, dict], mi: int, arrays: dict, ki: tuple = ()) -> None:
  """Writes one shard's records into column `(mi, *ki)` of `arrays` (`[N, M, ...]` each)."""
  for rec in records.values():
    idx = np.asarray(rec["indices"], np.int64)
    for key, arr in arrays.items():
      arr[(idx, mi, *ki)] = rec[key]


def _empty(shape: tuple[int, ...]) -> dict[str, np.ndarray]:
  return {
    "quality": np.zeros(shape, np.float32),
    "output_len": np.zeros(shape, np.int64),
    "input_len": np.zeros(shape, np.int64),
    "completions": np.empty(shape, object),
  }


def _assemble(pool, models, budgets, qs, records, default_cap) -> BenchTable:
  n, m, k = len(qs), len(models), len(budgets)
  table, default = _empty((n, m, k)), _empty((n, m))
  seconds = np.zeros((m, 2))
  for (mi, ki), recs in records.items():
    if ki == k:  # The default column (not used for the measured prices).
      _fill(recs, mi, default)
      continue
    _fill(recs, mi, table, (ki,))
    for rec in recs.values():
      seconds[mi] += (rec["prefill_s"], rec["decode_s"])
  in_len, out_len = table["input_len"], table["output_len"]
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
  extra: dict[str, Any] = {}
  if default_cap is not None:
    extra = {f"default_{key}": arr for key, arr in default.items()}
    extra["default_cost"] = default["input_len"] * pin + default["output_len"] * pout
    extra["default_cap"] = default_cap
  return BenchTable(
    models,
    budgets,
    [q.text for q in qs],
    [q.answer for q in qs],
    [q.family for q in qs],
    table["quality"],
    out_len,
    in_len,
    cost,
    prices,
    source,
    table["completions"],
    **extra,
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
