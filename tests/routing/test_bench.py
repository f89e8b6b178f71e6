"""`build_bench`: the (query, model, budget) table from tiny random zoo models, resumed after a
kill without duplicates, priced by measured seconds or given prices, split in and out of
distribution; a model that fails to load is named."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from flax import nnx

from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.routing import (
  BenchQuery,
  PoolError,
  PoolModel,
  build_bench,
  ood_split,
  shard_path,
  split_indices,
)
from reasoning_jax.tokenizers import ByteTokenizer

BUDGETS = (2, 4, 8)
TOK = ByteTokenizer()


def _model(seed: int, hidden: int = 32):
  cfg = get_preset("tiny-qwen3", vocab_size=TOK.vocab_size, hidden_size=hidden, num_layers=1)
  return Transformer(cfg, rngs=nnx.Rngs(seed))


def _pool():
  return {
    "small": PoolModel(_model(0), TOK),
    "big": PoolModel(_model(1), TOK, price=(1e-6, 2e-6)),
  }


def _queries(n: int = 10):
  fams = ("add", "mul")
  return [
    BenchQuery(f"{i} + {i} = ?", str(2 * i), fams[i % 2])
    if i % 2 == 0
    else {"query": f"{i} * 2 = ?", "answer": str(2 * i), "family": fams[i % 2]}
    for i in range(n)
  ]


def toy_verifier(completion: str, answer: str, **fields) -> float:
  return float(len(completion) % 2 == 0)


def test_build_bench_shapes_and_costs(tmp_path):
  table = build_bench(_pool(), _queries(), toy_verifier, BUDGETS, str(tmp_path), batch_size=4)
  n, m, k = 10, 2, 3
  for arr in (table.quality, table.output_len, table.input_len, table.cost):
    assert arr.shape == (n, m, k)
  assert np.all(table.output_len >= 1)
  assert np.all(table.output_len <= np.asarray(BUDGETS)[None, None, :])
  assert set(np.unique(table.quality)) <= {0.0, 1.0}
  assert table.price_source == {"small": "measured", "big": "given"}
  assert table.prices["small"].output > 0
  np.testing.assert_allclose(
    table.cost[:, 1], table.input_len[:, 1] * 1e-6 + table.output_len[:, 1] * 2e-6
  )
  # The instruction names the budget, so prompts grow with its digits only; every shard closed.
  for name in ("small", "big"):
    for b in BUDGETS:
      assert os.path.exists(shard_path(str(tmp_path), name, b) + ".done")
  table.save(str(tmp_path / "table"))
  assert json.load(open(tmp_path / "table.json"))["models"] == ["small", "big"]


class Killed(RuntimeError):
  pass


def test_resume_after_kill_has_no_duplicates(tmp_path):
  queries = _queries()
  full = build_bench(_pool(), queries, toy_verifier, BUDGETS, str(tmp_path / "a"), batch_size=4)
  calls = []

  def kill_after_4(model, budget, batch):
    calls.append((model, budget, batch))
    if len(calls) == 4:
      raise Killed

  out = str(tmp_path / "b")
  with pytest.raises(Killed):
    build_bench(_pool(), queries, toy_verifier, BUDGETS, out, batch_size=4, on_batch=kill_after_4)
  # A torn write after the kill: half a line at the end of the open shard.
  open_shard = shard_path(out, "small", 4)
  assert not os.path.exists(open_shard + ".done")
  with open(open_shard, "a") as f:
    f.write('{"batch": 1, "indi')
  resumed = []
  table = build_bench(
    _pool(),
    queries,
    toy_verifier,
    BUDGETS,
    out,
    batch_size=4,
    on_batch=lambda *a: resumed.append(a),
  )
  assert len(resumed) == 2 * 3 * 3 - 4  # only the missing batches ran
  assert not set(resumed) & set(calls)
  for name in ("small", "big"):
    for b in BUDGETS:
      lines = open(shard_path(out, name, b)).read().splitlines()
      batches = [json.loads(line)["batch"] for line in lines]
      assert sorted(batches) == [0, 1, 2], (name, b, batches)
  np.testing.assert_array_equal(table.quality, full.quality)
  np.testing.assert_array_equal(table.output_len, full.output_len)
  np.testing.assert_array_equal(table.input_len, full.input_len)
  assert table.completions.tolist() == full.completions.tolist()

  # A third run reads every closed shard back: no model is even loaded.
  def unloadable():
    raise AssertionError("a closed shard must not load its model")

  pool = {
    "small": PoolModel(load=unloadable),
    "big": PoolModel(load=unloadable, price=(1e-6, 2e-6)),
  }
  again = build_bench(pool, queries, toy_verifier, BUDGETS, out, batch_size=4)
  np.testing.assert_array_equal(again.quality, full.quality)
  np.testing.assert_allclose(again.cost, table.cost)


def test_resume_rejects_other_queries(tmp_path):
  build_bench(_pool(), _queries(4), toy_verifier, (2,), str(tmp_path), batch_size=4)
  with pytest.raises(ValueError, match="different fingerprint"):
    build_bench(_pool(), _queries(5), toy_verifier, (2,), str(tmp_path), batch_size=4)


def test_bad_input_is_named(tmp_path):
  def broken():
    raise OSError("no such checkpoint")

  pool = {"ok": PoolModel(_model(0), TOK), "broken": PoolModel(load=broken)}
  with pytest.raises(PoolError, match="pool model 'broken' failed to load: no such checkpoint"):
    build_bench(pool, _queries(2), toy_verifier, (2,), str(tmp_path / "x"), progress=False)
  with pytest.raises(PoolError, match="pool model 'gone' failed to load from '/nonexistent/m'"):
    build_bench({"gone": "/nonexistent/m"}, _queries(2), toy_verifier, (2,), str(tmp_path / "y"))
  with pytest.raises(ValueError, match="budgets must be sorted"):
    build_bench(_pool(), _queries(2), toy_verifier, (4, 2), str(tmp_path / "z"))
  with pytest.raises(ValueError, match="budgets must not repeat"):
    build_bench(_pool(), _queries(2), toy_verifier, (2, 2), str(tmp_path / "z"))
  with pytest.raises(ValueError, match="verifier"):
    build_bench(_pool(), _queries(2), "no_such_reward", (2,), str(tmp_path / "z"))
  with pytest.raises(ValueError, match="must contain a '{budget}' field"):
    build_bench(_pool(), _queries(2), toy_verifier, (2,), str(tmp_path / "z"), instruction="x")


def test_registry_verifier_and_splits(tmp_path):
  qs = [BenchQuery("1+1=", "2", "add"), BenchQuery("2*3=", "6", "mul")]
  table = build_bench(_pool(), qs, "math_exact", (2,), str(tmp_path), progress=False)
  assert table.quality.shape == (2, 2, 1)
  tr, te = split_indices(10, test_fraction=0.3, seed=1)
  assert len(te) == 3 and sorted(np.r_[tr, te]) == list(range(10))
  tr2, te2 = split_indices(10, test_fraction=0.3, seed=1)
  np.testing.assert_array_equal(te, te2)
  tr, te = ood_split(["a", "b", "a", "c"], ["b", "c"])
  assert tr.tolist() == [0, 2] and te.tolist() == [1, 3]
  with pytest.raises(ValueError, match="do not occur"):
    ood_split(["a"], ["z"])
  small = table.take([1])
  assert small.quality.shape == (1, 2, 1) and small.families == ["mul"]
