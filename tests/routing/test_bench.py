"""`build_bench`: the (query, model, budget) table from tiny random zoo models, resumed after a
kill without duplicates, priced by measured seconds or given prices, split in and out of
distribution; a model that fails to load is named."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest
from flax import nnx

from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.routing import (
  LENGTH_INSTRUCTION,
  BenchQuery,
  PoolError,
  PoolModel,
  RouterConfig,
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
  assert json.loads(pathlib.Path(tmp_path / "table.json").read_text())["models"] == ["small", "big"]


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
      lines = pathlib.Path(shard_path(out, name, b)).read_text().splitlines()
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


# ------------------------------------------------------------------ the "default" column


def test_default_column_resumes_after_kill_and_matches_a_fresh_build(tmp_path):
  queries = _queries()
  full = build_bench(
    _pool(), queries, toy_verifier, BUDGETS, str(tmp_path / "a"), batch_size=4, default_cap=6
  )
  assert full.default_cap == 6 and full.has_default
  for arr in (full.default_quality, full.default_output_len, full.default_input_len):
    assert arr.shape == (10, 2)
  assert np.all((full.default_output_len >= 1) & (full.default_output_len <= 6))
  # No instruction: the prompt is the bos, the query and "\n"; the budget prompts carry
  # "<instruction>\n\n" on top of it (byte tokenizer, no chat template).
  texts = [q.text if isinstance(q, BenchQuery) else q["query"] for q in queries]
  assert full.default_input_len[:, 0].tolist() == [1 + len(t) + 1 for t in texts]
  instr = [len(LENGTH_INSTRUCTION.format(budget=b)) + 2 for b in BUDGETS]
  np.testing.assert_array_equal(
    full.input_len, full.default_input_len[..., None] + np.asarray(instr)[None, None, :]
  )
  np.testing.assert_allclose(
    full.default_cost[:, 1],
    full.default_input_len[:, 1] * 1e-6 + full.default_output_len[:, 1] * 2e-6,
  )
  calls = []

  def kill_in_default(model, budget, batch):
    calls.append((model, budget, batch))
    if budget is None and batch == 1:
      raise Killed

  out = str(tmp_path / "b")
  with pytest.raises(Killed):
    build_bench(
      _pool(), queries, toy_verifier, BUDGETS, out, batch_size=4, default_cap=6,
      on_batch=kill_in_default,
    )  # fmt: skip
  # The kill came in small's default shard, after its batches 0 and 1 were written.
  assert calls[-2:] == [("small", None, 0), ("small", None, 1)]
  assert calls[:-2] == [("small", b, j) for b in BUDGETS for j in range(3)]
  path = shard_path(out, "small", None)
  assert path.endswith("small__default.jsonl") and not os.path.exists(path + ".done")
  resumed = []
  table = build_bench(
    _pool(), queries, toy_verifier, BUDGETS, out, batch_size=4, default_cap=6,
    on_batch=lambda *a: resumed.append(a),
  )  # fmt: skip
  # Only small's last default batch and big's 3 budgets and default were left.
  assert resumed[0] == ("small", None, 2) and len(resumed) == 1 + 4 * 3
  for name in ("small", "big"):
    path = shard_path(out, name, None)
    assert os.path.exists(path + ".done")
    assert sorted(json.loads(x)["batch"] for x in pathlib.Path(path).read_text().splitlines()) == [
      0,
      1,
      2,
    ]
  for field in ("default_quality", "default_output_len", "default_input_len"):
    np.testing.assert_array_equal(getattr(table, field), getattr(full, field))
  assert table.default_completions.tolist() == full.default_completions.tolist()


def test_default_column_equals_the_cap_budget_without_instruction(tmp_path):
  """No instruction at all: the default answer capped at 8 is the budget-8 answer (greedy)."""
  table = build_bench(
    _pool(), _queries(6), toy_verifier, BUDGETS, str(tmp_path), batch_size=4, instruction="",
    default_cap=8,
  )  # fmt: skip
  for field in ("quality", "output_len", "input_len", "cost", "completions"):
    a, b = getattr(table, "default_" + field), getattr(table, field)[..., -1]
    assert a.tolist() == b.tolist(), field


def test_old_bench_gains_the_default_column_without_regenerating(tmp_path):
  out = str(tmp_path)
  queries = _queries(6)
  old = build_bench(_pool(), queries, toy_verifier, BUDGETS, out, batch_size=4)
  assert not old.has_default and old.default_cap is None and old.default_quality is None
  manifest = json.loads(pathlib.Path(os.path.join(out, "manifest.json")).read_text())
  budget_shards = {b: pathlib.Path(shard_path(out, "small", b)).read_bytes() for b in BUDGETS}
  calls = []
  table = build_bench(
    _pool(), queries, toy_verifier, BUDGETS, out, batch_size=4, default_cap=5,
    on_batch=lambda *a: calls.append(a),
  )  # fmt: skip
  assert calls == [(m, None, j) for m in ("small", "big") for j in range(2)]
  assert {
    b: pathlib.Path(shard_path(out, "small", b)).read_bytes() for b in BUDGETS
  } == budget_shards
  new_manifest = json.loads(pathlib.Path(os.path.join(out, "manifest.json")).read_text())
  assert new_manifest == manifest | {"default_cap": 5}
  np.testing.assert_array_equal(table.quality, old.quality)
  np.testing.assert_array_equal(table.cost, old.cost)  # prices: the budget shards only
  assert table.has_default and np.all(table.default_output_len <= 5)
  with pytest.raises(ValueError, match=r"default_cap=7 differs from the default_cap=5"):
    build_bench(_pool(), queries, toy_verifier, BUDGETS, out, batch_size=4, default_cap=7)
  # Without default_cap the bench is read back as before; the manifest keeps its cap.
  again = build_bench(_pool(), queries, toy_verifier, BUDGETS, out, batch_size=4)
  assert not again.has_default
  assert (
    json.loads(pathlib.Path(os.path.join(out, "manifest.json")).read_text())["default_cap"] == 5
  )


@pytest.mark.parametrize("cap", [0, -3, 2.5, True, "8"])
def test_bad_default_cap_is_named(tmp_path, cap):
  with pytest.raises(ValueError, match="default_cap"):
    build_bench(_pool(), _queries(2), toy_verifier, (2,), str(tmp_path), default_cap=cap)
  assert not os.path.exists(tmp_path / "manifest.json")


def test_take_save_and_option_tables_carry_the_default_column(tmp_path):
  table = build_bench(
    _pool(), _queries(5), toy_verifier, (2, 4), str(tmp_path / "b"), batch_size=4, default_cap=3
  )
  labels = RouterConfig(budgets=(2, 4), unlimited=True).option_labels
  assert labels == (2, 4, "default")
  opts = table.option_tables(unlimited=True)
  for got, budget_arr, default_arr in zip(
    opts,
    (table.quality, table.cost, table.output_len, table.input_len),
    (table.default_quality, table.default_cost, table.default_output_len, table.default_input_len),
  ):
    assert got.shape == (5, 2, len(labels))
    np.testing.assert_array_equal(got[..., : len(labels) - 1], budget_arr)
    np.testing.assert_array_equal(got[..., labels.index("default")], default_arr)
  plain = table.option_tables()
  assert plain.quality is table.quality and plain.cost.shape == (5, 2, 2)
  sub = table.take([4, 1])
  assert sub.default_cap == 3 and sub.families == ["add", "mul"]
  np.testing.assert_array_equal(sub.default_quality, table.default_quality[[4, 1]])
  np.testing.assert_array_equal(sub.default_cost, table.default_cost[[4, 1]])
  assert sub.default_completions.tolist() == table.default_completions[[4, 1]].tolist()
  sub.save(str(tmp_path / "sub"))
  saved = np.load(tmp_path / "sub.npz")
  np.testing.assert_array_equal(saved["default_output_len"], sub.default_output_len)
  np.testing.assert_array_equal(saved["default_cost"], sub.default_cost)
  meta = json.loads(pathlib.Path(tmp_path / "sub.json").read_text())
  assert meta["default_cap"] == 3
  assert meta["default_completions"] == sub.default_completions.tolist()
  bare = build_bench(_pool(), _queries(5), toy_verifier, (2, 4), str(tmp_path / "c"), batch_size=4)
  assert bare.take([0]).default_quality is None
  bare.save(str(tmp_path / "bare"))
  assert "default_quality" not in np.load(tmp_path / "bare.npz")
  assert json.loads(pathlib.Path(tmp_path / "bare.json").read_text())["default_cap"] is None
  with pytest.raises(ValueError, match="default_cap"):
    bare.option_tables(unlimited=True)
