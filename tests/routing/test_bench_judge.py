"""`build_bench(judge=)`: a judge model grades every batch from the stored completions into its
own shards; a judge is added to a finished bench without regenerating a completion; a killed
judge pass resumes without duplicates; `option_tables(quality_source=)`; bad input named."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest
from flax import nnx

from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.routing import BenchQuery, ModelJudge, PoolModel, build_bench, shard_path
from reasoning_jax.routing.shards import judge_shard_path
from reasoning_jax.tokenizers import ByteTokenizer

BUDGETS = (2, 4)
TOK = ByteTokenizer()
TEMPLATE = "Q:{question}\nA:{answer}\nR:{response}\nOK?"


def _model(seed: int):
  cfg = get_preset("tiny-qwen3", vocab_size=TOK.vocab_size, hidden_size=32, num_layers=1)
  return Transformer(cfg, rngs=nnx.Rngs(seed))


def _pool():
  return {"small": PoolModel(_model(0), TOK), "big": PoolModel(_model(1), TOK, price=(1.0, 2.0))}


def _unloadable_pool():
  def unloadable():
    raise AssertionError("a closed completion shard must not load its model")

  return {"small": PoolModel(load=unloadable), "big": PoolModel(load=unloadable, price=(1.0, 2.0))}


QUERIES = [BenchQuery(f"{i} + {i} = ?", str(2 * i), "add") for i in range(7)]


def verifier(completion: str, answer: str, **fields) -> float:
  return float(len(completion) % 2 == 0)


@pytest.fixture(scope="module")
def judge():
  return ModelJudge(_model(7), TOK, name="tiny", template=TEMPLATE, positive="Y", negative="N")


class Killed(RuntimeError):
  pass


class KilledAfter:
  """A judge that dies on its `calls`-th batch (a killed run)."""

  def __init__(self, judge, calls):
    self.judge, self.calls, self.name, self.settings = judge, calls, judge.name, judge.settings

  def score(self, *args):
    self.calls -= 1
    if self.calls == 0:
      raise Killed
    return self.judge.score(*args)


def _by_hand(judge, table, mi, ki):
  return judge.score(table.queries, table.answers, table.completions[:, mi, ki].tolist())


def test_judge_scores_every_cell_from_its_completion(tmp_path, judge):
  out = str(tmp_path)
  table = build_bench(
    _pool(), QUERIES, verifier, BUDGETS, out, batch_size=3, default_cap=3, judge=judge
  )
  assert table.judge == "tiny" and table.has_judge
  assert table.judge_quality.shape == (7, 2, 2) and table.default_judge_quality.shape == (7, 2)
  assert np.all((table.judge_quality > 0) & (table.judge_quality < 1))
  for mi in range(2):
    for ki in range(2):
      np.testing.assert_allclose(table.judge_quality[:, mi, ki], _by_hand(judge, table, mi, ki))
    np.testing.assert_allclose(
      table.default_judge_quality[:, mi],
      judge.score(table.queries, table.answers, table.default_completions[:, mi].tolist()),
    )
  # The verifier stays `quality`; quality_source picks the judge's.
  opts = table.option_tables(unlimited=True, quality_source="judge")
  np.testing.assert_array_equal(opts.quality[..., :2], table.judge_quality)
  np.testing.assert_array_equal(opts.quality[..., 2], table.default_judge_quality)
  np.testing.assert_array_equal(table.option_tables().quality, table.quality)
  with pytest.raises(ValueError, match="quality_source must be one of"):
    table.option_tables(quality_source="human")
  assert json.loads(pathlib.Path(os.path.join(out, "manifest.json")).read_text())["judges"] == {
    "tiny": judge.settings
  }
  small = table.take([0, 2])
  np.testing.assert_array_equal(small.judge_quality, table.judge_quality[[0, 2]])
  table.save(str(tmp_path / "t"))
  assert "judge_quality" in np.load(str(tmp_path / "t.npz")).files


def test_a_judge_added_later_reuses_the_completions(tmp_path, judge):
  out = str(tmp_path)
  plain = build_bench(_pool(), QUERIES, verifier, BUDGETS, out, batch_size=3)
  assert not plain.has_judge and plain.judge_quality is None
  with pytest.raises(ValueError, match="quality_source='judge' needs judge scores"):
    plain.option_tables(quality_source="judge")
  shards = os.path.join(out, "shards")
  before = {f: os.path.getmtime(os.path.join(shards, f)) for f in os.listdir(shards)}
  # Every completion shard is closed: the pool's models are never loaded.
  judged = build_bench(
    _unloadable_pool(), QUERIES, verifier, BUDGETS, out, batch_size=3, judge=judge
  )
  assert {f: os.path.getmtime(os.path.join(shards, f)) for f in before} == before
  assert judged.completions.tolist() == plain.completions.tolist()
  np.testing.assert_array_equal(judged.quality, plain.quality)
  for mi in range(2):
    for ki in range(2):
      np.testing.assert_allclose(judged.judge_quality[:, mi, ki], _by_hand(judge, plain, mi, ki))
      assert os.path.exists(judge_shard_path(out, plain.models[mi], BUDGETS[ki], "tiny") + ".done")
  # Another judge under the same name is refused; under another name it gets its own shards.
  other = ModelJudge(
    _model(8), TOK, name="tiny", template=TEMPLATE + " ", positive="Y", negative="N"
  )
  with pytest.raises(ValueError, match="judge 'tiny' has settings"):
    build_bench(_unloadable_pool(), QUERIES, verifier, BUDGETS, out, batch_size=3, judge=other)
  other.name = "other"
  again = build_bench(
    _unloadable_pool(), QUERIES, verifier, BUDGETS, out, batch_size=3, judge=other
  )
  assert again.judge == "other" and not np.allclose(again.judge_quality, judged.judge_quality)


def test_a_killed_judge_pass_resumes_without_duplicates(tmp_path, judge):
  out = str(tmp_path)
  full = build_bench(
    _pool(), QUERIES, verifier, BUDGETS, str(tmp_path / "a"), batch_size=3, judge=judge
  )
  build_bench(_pool(), QUERIES, verifier, BUDGETS, out, batch_size=3)
  with pytest.raises(Killed):  # dies on the 5th batch: small's b=2 done, b=4 has 1 of 3
    build_bench(
      _unloadable_pool(), QUERIES, verifier, BUDGETS, out, batch_size=3, judge=KilledAfter(judge, 5)
    )
  open_shard = judge_shard_path(out, "small", 4, "tiny")
  assert not os.path.exists(open_shard + ".done")
  with open(open_shard, "a") as f:
    f.write('{"batch": 1, "indi')  # a torn write
  calls = KilledAfter(judge, 10**6)
  table = build_bench(
    _unloadable_pool(), QUERIES, verifier, BUDGETS, out, batch_size=3, judge=calls
  )
  assert 10**6 - calls.calls == 2 * 2 * 3 - 4  # only the batches it lacked
  for name in ("small", "big"):
    for b in BUDGETS:
      lines = pathlib.Path(judge_shard_path(out, name, b, "tiny")).read_text().splitlines()
      assert sorted(json.loads(line)["batch"] for line in lines) == [0, 1, 2], (name, b)
      assert os.path.exists(shard_path(out, name, b) + ".done")
  assert table.completions.tolist() == full.completions.tolist()
  np.testing.assert_allclose(table.judge_quality, full.judge_quality, atol=1e-6)


def test_bad_judge_is_named(tmp_path, judge):
  with pytest.raises(ValueError, match="judge must be a routing.judge.ModelJudge"):
    build_bench(_pool(), QUERIES[:2], verifier, (2,), str(tmp_path), judge="qwen")

  class Bad:
    name, settings = "bad", {}

    def score(self, q, a, r):
      return [2.0] * len(r)

  with pytest.raises(ValueError, match=r"judge 'bad' must return 2 scores in \[0, 1\]"):
    build_bench(_pool(), QUERIES[:2], verifier, (2,), str(tmp_path / "b"), judge=Bad())
