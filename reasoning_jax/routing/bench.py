"""An offline R2-Bench-style table: every pool model answers every query at every budget.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue et al., arXiv:2602.02823),
`shared/methods/inference.md` section 6.3: R2-Bench has, per (query, LLM, budget), the judged
quality of the answer produced under the length instruction, and prices per LLM. Here the pool is
this project's models (`pool.PoolModel`), the grader is one of our verifiers (a callable
`fn(completion, answer, **fields) -> float` or a `reasoning_jax.rewards` registry name), plus a
judge model when configured (`judge=`, below), and the price is either given or measured:
seconds per prompt token (prefill) and per generated token (decode), from `generate`'s own
timings with compilation excluded.

`build_bench` generates per (model, budget) in batches and appends each finished batch as one
JSON line to the shard `shards/<model>__b<budget>.jsonl`; an atomic marker `<shard>.done`
(written to a temporary file and renamed) closes a shard (`routing.shards`). A killed run
resumes: a closed shard is read back, an open one keeps its whole lines (a torn last line is
cut off) and generates only the batches it lacks, so no (query, model, budget) is written twice.

With `default_cap`, every model also answers every query with no instruction, capped at
`default_cap` tokens: R2-Bench's "default" column, the released code's `unlimited` option
(`RouterConfig.unlimited`). It lives in its own shards `shards/<model>__default.jsonl` under the
same scheme, so a bench built without it gains it later without regenerating a budget shard.
The manifest's fingerprint covers the queries, models, budgets and instruction; `default_cap` is
recorded beside it, and a later run asking for a different one is refused.

With `judge` (a `routing.judge.ModelJudge`), every finished shard is also graded by the judge
model from its stored completions, into the judge's own shards beside it; the table gains
`judge_quality [N, M, K]` (and `default_judge_quality [N, M]`). A bench built without a judge
gains one later, its completions reused as they are: grading is a teacher-forced forward over
text already on disk, never a new generation. The verifier's `quality` stays the ground truth
unless a router asks for `option_tables(quality_source="judge")`.

  >>> table = build_bench(pool, queries, "math_exact", (10, 50, 200), "outputs/bench")
  >>> table.quality.shape, table.output_len.shape, table.cost.shape   # [N, M, K] each
  >>> table = build_bench(pool, queries, "math_exact", (10, 50, 200), "outputs/bench",
  ...                     default_cap=400)                    # adds the "default" column
  >>> quality, cost, output_len = table.option_tables(unlimited=True)   # [N, M, K + 1] each
  >>> table = build_bench(pool, queries, "math_exact", (10, 50, 200), "outputs/bench",
  ...                     judge=ModelJudge.from_hf("/m/judge"))    # + table.judge_quality
  >>> train, test = split_indices(table.num_queries, test_fraction=0.3, seed=0)
  >>> train, test = ood_split(table.families, test_families=["countdown"])
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging

from reasoning_jax.routing.bench_table import BenchTable, OptionTables, ood_split, split_indices
from reasoning_jax.routing.config import check_budgets
from reasoning_jax.routing.cost import ModelPrice, price_arrays
from reasoning_jax.routing.pool import (
  LENGTH_INSTRUCTION,
  PoolError,
  check_pool,
  generate_capped,
  load_pool_model,
)
from reasoning_jax.routing.shards import (
  DEFAULT,
  append_record,
  atomic_json,
  judge_shard_path,
  read_shard,
  shard_path,
)

__all__ = [
  "BenchQuery",
  "BenchTable",
  "OptionTables",
  "as_queries",
  "build_bench",
  "check_default_cap",
  "check_judge",
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


def check_default_cap(default_cap: Any, name: str = "default_cap") -> int | None:
  """`default_cap` as a positive int (tokens of the no-instruction answer) or None."""
  if default_cap is None:
    return None
  if isinstance(default_cap, bool) or not isinstance(default_cap, (int, np.integer)):
    raise ValueError(f"{name} must be a positive int (tokens) or None, got {default_cap!r}")
  if default_cap < 1:
    raise ValueError(f"{name} must be >= 1 token, got {default_cap!r}")
  return int(default_cap)


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
    atomic_json(path, manifest)
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
    atomic_json(path, old | {"default_cap": cap})


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
  judge: Any = None,
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
    judge: a `routing.judge.ModelJudge` (anything with `name`, `settings` and
      `score(questions, answers, responses) -> [n]`): every batch is also graded by it, from
      the stored completions, into its own shards (`shards.judge_shard_path`), so a bench
      built without a judge gains one later without regenerating a completion; the table
      gains `judge_quality`. The verifier stays `quality` (`BenchTable.option_tables`'
      `quality_source` picks which one a router uses). A judge's settings are recorded in the
      manifest under its name; another judge under the same name is refused.
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
  check_judge(judge)
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
  if judge is not None:
    _record_judge(out_dir, judge)
  # The columns per model: the budgets, then None (no instruction, `default_cap`) when asked.
  columns: tuple[int | None, ...] = budgets + ((None,) if default_cap is not None else ())
  num_batches = -(-len(qs) // batch_size)
  bar = None
  if progress:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(models) * len(columns) * num_batches, desc="R2-Bench", unit="batch")
  records: dict[tuple[int, int], dict[int, dict]] = {}
  judged: dict[tuple[int, int], dict[int, dict]] = {}
  loaded: dict[str, Any] = {}
  seen: set = set()
  try:
    for mi, name in enumerate(models):
      for ki, b in enumerate(columns):
        path = shard_path(out_dir, name, b)
        closed = os.path.exists(path + ".done")
        recs = records[mi, ki] = read_shard(path, repair=not closed)
        if bar is not None:
          bar.update(len(recs))
        if closed:
          if judge is not None:
            judged[mi, ki] = _judge_shard(judge, out_dir, name, b, qs, recs)
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
          append_record(path, rec)
          recs[j] = rec
          if bar is not None:
            bar.update(1)
          else:
            label = DEFAULT if b is None else f"b={b}"
            logging.info("R2-Bench %s %s batch %d/%d", name, label, j + 1, num_batches)
          if on_batch is not None:
            on_batch(name, b, j)
        atomic_json(path + ".done", {"batches": num_batches, "rows": len(qs)})
        if judge is not None:
          judged[mi, ki] = _judge_shard(judge, out_dir, name, b, qs, recs)
  finally:
    if bar is not None:
      bar.close()
  table = _assemble(pool, models, budgets, qs, records, default_cap)
  if judge is not None:
    _assemble_judge(table, judge.name, judged)
  return table


def check_judge(judge: Any) -> None:
  """`judge` is None or has a non-empty `name`, `settings` and a callable `score`."""
  if judge is None:
    return
  name = getattr(judge, "name", None)
  if not callable(getattr(judge, "score", None)) or not isinstance(name, str) or not name:
    raise ValueError(
      "judge must be a routing.judge.ModelJudge (a non-empty `name`, `settings` and "
      f"`score(questions, answers, responses)`), got {judge!r}"
    )


def _record_judge(out_dir: str, judge: Any) -> None:
  """Records the judge's settings in the manifest under its name, or refuses a judge whose
  settings differ from those its name's stored scores were made with."""
  path = os.path.join(out_dir, MANIFEST)
  with open(path) as f:
    manifest = json.load(f)
  settings = dict(getattr(judge, "settings", {}) or {})
  judges = dict(manifest.get("judges", {}))
  old = judges.get(judge.name)
  if old is not None and old != settings:
    raise ValueError(
      f"judge {judge.name!r} has settings {settings} but out_dir={out_dir!r} holds its scores "
      f"made with {old}; give the judge another name"
    )
  if old is None:
    atomic_json(path, manifest | {"judges": judges | {judge.name: settings}})


def _judge_shard(judge, out_dir, name, budget, qs, recs) -> dict[int, dict]:
  """The judge's records of one finished completion shard: read back, and the batches it
  lacks scored from the stored completions (one `judge.score` call per batch) and appended."""
  path = judge_shard_path(out_dir, name, budget, judge.name)
  closed = os.path.exists(path + ".done")
  scored = read_shard(path, repair=not closed)
  if closed:
    return scored
  for j, rec in sorted(recs.items()):
    if j in scored:
      continue
    chunk = [qs[i] for i in rec["indices"]]
    values = judge.score([q.text for q in chunk], [q.answer for q in chunk], rec["completions"])
    values = [float(v) for v in np.asarray(values, np.float64).reshape(-1)]
    if len(values) != len(chunk) or not all(0.0 <= v <= 1.0 for v in values):
      raise ValueError(
        f"judge {judge.name!r} must return {len(chunk)} scores in [0, 1], got {values}"
      )
    out = {"batch": j, "indices": rec["indices"], "judge_quality": values}
    append_record(path, out)
    scored[j] = out
  atomic_json(path + ".done", {"batches": len(scored), "judge": judge.name})
  label = DEFAULT if budget is None else f"b={budget}"
  logging.info("R2-Bench judge %s graded %s %s", judge.name, name, label)
  return scored


def _assemble_judge(table: BenchTable, judge_name: str, judged: dict) -> None:
  n, m, k = table.quality.shape
  scores = {"judge_quality": np.zeros((n, m, k), np.float32)}
  default = {"judge_quality": np.zeros((n, m), np.float32)}
  for (mi, ki), recs in judged.items():
    if ki == k:
      _fill(recs, mi, default)
    else:
      _fill(recs, mi, scores, (ki,))
  table.judge = judge_name
  table.judge_quality = scores["judge_quality"]
  if table.has_default:
    table.default_judge_quality = default["judge_quality"]


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
