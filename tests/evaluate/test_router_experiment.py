"""`python -m experiments.router`'s pieces on synthetic tables (fast), and the quick variant end
to end (slow: it trains three tiny pool models and builds their table)."""

from __future__ import annotations

import json
import os
import sys
import types

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from configs import router as router_config  # noqa: E402
from reasoning_jax.evaluate.router import evaluation as ev  # noqa: E402
from reasoning_jax.evaluate.router import experiment  # noqa: E402
from reasoning_jax.evaluate.router.pool import family, member_configs  # noqa: E402
from reasoning_jax.routing import ModelPrice, ood_split  # noqa: E402

BUDGETS = (8, 16, 32, 64)


def synthetic_table(n: int = 240, seed: int = 0, *, bill_budget: bool = True):
  """A table where query n needs `need[n]` tokens and model i answers it iff its skill beats
  the query's difficulty; the embeddings carry both (plus noise features). Cost: the budget
  billed in full (`bill_budget`, a model that rambles to its cap) or `min(b, need)`."""
  rng = np.random.default_rng(seed)
  need = rng.choice(BUDGETS, n)
  difficulty = rng.random(n)
  skill = np.asarray([0.3, 0.6, 0.95])
  price = np.asarray([1.0, 3.0, 9.0])
  b = np.asarray(BUDGETS, float)
  quality = (b[None, None, :] >= need[:, None, None]) & (
    difficulty[:, None, None] < skill[None, :, None]
  )
  out_len = b[None, None, :] if bill_budget else np.minimum(b[None, None, :], need[:, None, None])
  out_len = np.broadcast_to(out_len, quality.shape).astype(float)
  input_len = np.full(quality.shape, 10.0)
  cost = input_len * 0.1 * price[None, :, None] + out_len * price[None, :, None]
  families = np.where(difficulty < 0.3, "easy", np.where(difficulty < 0.6, "mid", "hard"))
  Z = np.concatenate(
    [
      np.log2(need)[:, None],
      difficulty[:, None],
      (difficulty[:, None] < skill[None, :]).astype(float),
      (need[:, None] <= b[None, :]).astype(float),
      0.1 * rng.standard_normal((n, 4)),
    ],
    1,
  ).astype(np.float32)
  prices = {m: ModelPrice(0.1 * p, p) for m, p in zip(("small", "medium", "large"), price)}
  return types.SimpleNamespace(
    models=("small", "medium", "large"),
    budgets=BUDGETS,
    quality=quality.astype(np.float32),
    cost=cost,
    input_len=input_len,
    output_len=out_len,
    prices=prices,
    families=list(families),
    num_queries=n,
  ), Z


def _settings(**kw):
  return {
    "ridge_alpha": 1.0,
    "mlp_hidden": (16,),
    "mlp_epochs": 3,
    "mlp_learning_rate": 1e-3,
    "num_lambdas": 41,
    "apgr_points": 10,
  } | kw


def _split(table, Z, heads=("ridge",), anchors=(1, 2, 4), seed=0):
  from reasoning_jax.routing import price_arrays, split_indices

  pin, pout = price_arrays(table.models, table.prices)
  cost_hat = ev.predicted_cost(table.input_len, pin, pout, table.budgets)
  train, test = split_indices(table.num_queries, 0.3, seed)
  return ev.evaluate_split(
    table.quality, table.cost, cost_hat, Z, train, test, table.budgets, _settings(),
    heads=heads, anchor_counts=anchors, seed=seed,
  )  # fmt: skip


def test_configs_are_valid_and_share_one_task():
  for variant in ("", "quick"):
    config = router_config.get_config(variant)
    experiment.validate(config)
    members = member_configs(config)
    assert list(members) == ["small", "medium", "large"]
    assert len({m.data_dir for m in members.values()}) == 1
    sizes = [
      m.model_overrides["hidden_size"] * m.model_overrides["num_layers"] for m in members.values()
    ]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    assert max(config.budgets) >= 16 and list(config.budgets) == sorted(config.budgets)
  with pytest.raises(ValueError, match="unknown router variant"):
    router_config.get_config("huge")
  config = router_config.get_config("quick")
  config.pool.models.large.task_config = "medium"
  with pytest.raises(ValueError, match="must share one task"):
    member_configs(config)
  config = router_config.get_config("quick")
  config.anchor_counts = (9,)
  with pytest.raises(ValueError, match="anchor_counts"):
    experiment.validate(config)
  config.anchor_counts, config.price = (1,), "dollars"
  with pytest.raises(ValueError, match="config.price"):
    experiment.validate(config)
  config.price, config.bill = "flops", "always"
  with pytest.raises(ValueError, match="config.bill"):
    experiment.validate(config)


def test_families_and_anchor_helpers():
  assert family({"op": b"+", "operands": [1, 22, 3]}) == "add2x3"
  assert family({"op": "+", "operands": [1, 2]}) == "add1"
  assert family({"op": b"-", "operands": [5, 12]}) == "sub2"
  assert ev.anchor_indices(6, 1).tolist() == [5]
  assert ev.anchor_indices(6, 2).tolist() == [0, 5]
  assert ev.anchor_indices(6, 6).tolist() == list(range(6))
  with pytest.raises(ValueError, match="anchor count"):
    ev.anchor_indices(6, 7)
  q = np.random.default_rng(0).random((5, 3, 2))
  full = ev.anchor_quality(q, BUDGETS, np.asarray([1, 3]))
  np.testing.assert_allclose(full[..., [1, 3]], q, rtol=1e-6)
  np.testing.assert_allclose(full[..., 0], q[..., 0], rtol=1e-6)  # Held flat below.
  np.testing.assert_allclose(full[..., 2], (2 * q[..., 0] + q[..., 1]) / 3, rtol=1e-5)


def test_oracle_dominates_and_all_anchors_equal_the_full_router():
  table, Z = synthetic_table()
  res = _split(table, Z)
  routers = res["routers"]
  oracle = routers[ev.ORACLE]
  for name, r in routers.items():
    assert r["audc"] <= oracle["audc"] + 1e-9, name
    assert r["peak"] <= oracle["peak"] + 1e-9, name
  full = routers[ev.r2_name("ridge")]
  assert res["anchors"]["4"]["audc"] == pytest.approx(full["audc"], abs=1e-9)
  assert res["anchors"]["4"]["qnc"] == pytest.approx(full["qnc"], abs=1e-9)
  # Budgets billed in full: choosing the budget saves cost, so R2 beats the reactive router.
  assert full["audc"] > routers[ev.REACTIVE]["audc"]
  assert full["qnc"] < routers[ev.REACTIVE]["qnc"]
  assert res["best_model"] == 2 and res["target"] == pytest.approx(
    float(np.asarray(table.quality)[np.sort(_test_rows(table))][:, 2, -1].mean())
  )
  assert 0.0 <= res["binary"]["apgr"] <= 1.5 and 0.0 <= res["binary"]["cpt50"] <= 1.0
  assert res["binary"]["apgr"] > res["binary"]["random_apgr"] - 0.2
  lo, hi = res["cost_range"]
  for r in routers.values():
    assert lo - 1e-9 <= min(r["curve"]["cost"]) and max(r["curve"]["cost"]) <= hi + 1e-9


def _test_rows(table):
  from reasoning_jax.routing import split_indices

  return split_indices(table.num_queries, 0.3, 0)[1]


def test_random_router_apgr_is_about_one_half():
  rng = np.random.default_rng(1)
  qs, qw = (rng.random(1000) < 0.8).astype(float), (rng.random(1000) < 0.3).astype(float)
  from reasoning_jax.routing import apgr, binary_pgr_curve

  values = [
    apgr(*binary_pgr_curve(np.random.default_rng(s).random(1000), qs, qw)) for s in range(20)
  ]
  assert np.mean(values) == pytest.approx(0.5, abs=0.02)


def test_evaluate_table_summary_markdown_and_plots(tmp_path):
  table, Z = synthetic_table(160, seed=2)
  config = router_config.get_config("quick")
  config.seeds, config.heads, config.anchor_counts = (0, 1), ("ridge", "mlp"), (1, 2, 4)
  config.budgets, config.num_lambdas, config.mlp_epochs = BUDGETS, 21, 2
  config.ood_test_families = ("hard",)
  result = experiment.evaluate_table(config, table, Z)
  assert len(result["splits"]) == 2
  ood = result["ood"]
  assert ood["test_families"] == ["hard"] and "hard" not in ood["train_families"]
  train, test = ood_split(table.families, ["hard"])
  assert not {table.families[i] for i in train} & {table.families[i] for i in test}
  summary = experiment.summarize(config, table, result, table.models)
  assert set(summary["routers"]) == {
    ev.r2_name("ridge"),
    ev.r2_name("mlp"),
    ev.REACTIVE,
    ev.BINARY,
    ev.RANDOM,
    ev.ORACLE,
  }
  assert len(summary["routers"][ev.ORACLE]["audc"]) == 2
  v = summary["verdict"]
  assert v["best_model"] == "large" and v["cost_ratio"][ev.r2_name("ridge")] > 1.0
  payload = {
    "summary": summary,
    "splits": result["splits"],
    "ood": ood,
    "models": list(table.models),
    "families": {"easy": 1},
    "encoder": {"name": "synthetic", "hidden_size": Z.shape[1]},
    "pool": {m: {"params": 1} for m in table.models},
    "wall_s": 1.0,
  }
  md = experiment.markdown(config, table, payload)
  assert "| R2-Router (ridge) | " in md and " ± " in md and "**Verdict.**" in md
  assert "### K-anchor ablation" in md and "### Out of distribution" in md
  assert "### Mean generated tokens by budget" in md
  assert "4-5x claim does not reproduce" in v["text"] and v["reached"] >= 1
  written = experiment.plot(payload, str(tmp_path))
  assert [os.path.basename(p) for p in written] == ["deferral_curves.png", "anchor_ablation.png"]
  assert all(os.path.getsize(p) > 0 for p in written)
  json.dumps(payload, default=str)


@pytest.mark.slow
def test_quick_variant_end_to_end(tmp_path):
  """The quick variant (three tiny models, 10 SFT steps, 40 questions, 3 budgets): about 30 s
  alone on 2 CPU cores; a rerun reuses the pool, the table and the embeddings."""
  config = router_config.get_config("quick")
  config.workdir = str(tmp_path / "router")
  payload = experiment.run_router_experiment(config)
  for name in ("results.md", "results.json", "deferral_curves.png", "anchor_ablation.png"):
    assert os.path.getsize(os.path.join(config.workdir, name)) > 0, name
  assert payload["models"] == ["small", "medium", "large"]
  if payload["verdict"]["target"] < 0.05:
    assert "say nothing about the method" in payload["verdict"]["text"]
  assert payload["encoder"]["name"] == "pool:large"
  assert set(payload["price_source"].values()) == {"measured"}
  assert len(payload["splits"]) == len(config.seeds) and payload["ood"] is not None
  assert all(info["trained_now"] for info in payload["pool"].values())
  again = experiment.run_router_experiment(config)
  assert not any(info["trained_now"] for info in again["pool"].values())
  np.testing.assert_allclose(
    again["summary"]["routers"]["oracle"]["audc"], payload["summary"]["routers"]["oracle"]["audc"]
  )


@pytest.mark.parametrize(
  "ratio, ratio90, target, seeds, status",
  [
    (4.5, 4.0, 0.5, (0, 1, 2), "reproduced"),
    (float("nan"), 2.0, 0.5, (0, 1, 2), "partly"),
    (0.97, 0.97, 0.5, (0, 1, 2, 3, 4), "not reproduced"),
    (float("nan"), float("nan"), 0.5, (0, 1, 2), "not measured"),
    (5.0, 5.0, 0.01, (0, 1, 2), "not measured"),
    (5.0, 5.0, 0.5, (0, 1), "not measured"),
  ],
)
def test_reproduction_verdict(ratio, ratio90, target, seeds, status):
  from reasoning_jax.reproduce.entries_inference import router_verdict

  name = "R2-Router (ridge)"
  payload = {
    "seeds": list(seeds),
    "verdict": {
      "text": "t",
      "verdict_router": name,
      "cost_ratio": {name: ratio},
      "cost_ratio_90": {name: ratio90},
      "target": target,
    },
  }
  (verdict,) = router_verdict(payload)
  assert verdict.status == status and verdict.method == "r2router"
