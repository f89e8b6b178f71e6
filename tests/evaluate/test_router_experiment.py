"""`python -m experiments.router`'s pieces on synthetic tables (fast), and the quick variant end
to end (slow: it trains three tiny pool models and builds their table)."""

from __future__ import annotations

import json
import os
import pathlib
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from configs import router as router_config  # noqa: E402
from reasoning_jax.evaluate.router import evaluation as ev  # noqa: E402
from reasoning_jax.evaluate.router import experiment  # noqa: E402
from reasoning_jax.evaluate.router.pool import family, member_configs  # noqa: E402
from reasoning_jax.evaluate.router.table import default_cap  # noqa: E402
from reasoning_jax.routing import BenchTable, ModelPrice, ood_split  # noqa: E402

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
  models = ("small", "medium", "large")
  prices = {m: ModelPrice(0.1 * p, p) for m, p in zip(models, price)}
  # The no-instruction column (cap 64 = the largest budget): each model stops at `need`.
  default_quality = difficulty[:, None] < skill[None, :]
  default_out = np.broadcast_to(need[:, None], default_quality.shape).astype(np.int64)
  default_in = np.full(default_quality.shape, 8.0)
  table = BenchTable(
    models,
    BUDGETS,
    [f"q{i}" for i in range(n)],
    [""] * n,
    list(families),
    quality.astype(np.float32),
    out_len,
    input_len,
    cost,
    prices,
    {m: "given" for m in models},
    np.full(quality.shape, "", object),
    default_cap=64,
    default_quality=default_quality.astype(np.float32),
    default_output_len=default_out,
    default_input_len=default_in,
    default_cost=default_in * 0.1 * price[None] + default_out * price[None],
    default_completions=np.full(default_quality.shape, "", object),
  )
  return table, Z


def _settings(**kw):
  return {
    "ridge_alpha": 1.0,
    "mlp_hidden": (16,),
    "mlp_epochs": 3,
    "mlp_learning_rate": 1e-3,
    "num_lambdas": 41,
    "apgr_points": 10,
  } | kw


def _split(table, Z, heads=("ridge",), anchors=(1, 2, 4), seed=0, unlimited=False):
  from reasoning_jax.routing import price_arrays, split_indices

  pin, pout = price_arrays(table.models, table.prices)
  cost_hat = ev.predicted_cost(table.input_len, pin, pout, table.budgets)
  train, test = split_indices(table.num_queries, 0.3, seed)
  truth = table.option_tables(unlimited=unlimited)
  default = None
  if unlimited:
    default = ev.DefaultOption(
      table.default_output_len, table.default_input_len, pin, pout, table.default_cap
    )
  return ev.evaluate_split(
    truth.quality, truth.cost, cost_hat, Z, train, test, table.budgets, _settings(),
    heads=heads, anchor_counts=anchors, seed=seed, default=default,
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


def test_unlimited_routes_to_the_default_column_and_bills_its_realised_cost():
  """Only the large model's default answer is right (quality 1 on every query; every budget
  answer is at most 0.3): at lam = 0 R2-Router and the oracle send every test query there, and
  the curve's cost is the default column's measured cost, not a budget's."""
  table, Z = synthetic_table(120, seed=3)
  table.quality[:] = 0.3 * table.quality
  table.default_quality[:] = 0.0
  table.default_quality[:, 2] = 1.0
  res = _split(table, Z, anchors=(), unlimited=True)
  test = _test_rows(table)
  r2 = res["routers"][ev.r2_name("ridge")]
  for name in (ev.r2_name("ridge"), ev.ORACLE):
    curve = res["routers"][name]["curve"]
    assert curve["quality"][0] == pytest.approx(1.0), name
    assert curve["cost"][0] == pytest.approx(table.default_cost[test, 2].mean()), name
  assert r2["curve"]["default_share"][0] == 1.0
  assert 0.0 < r2["default_share"] <= 1.0 and r2["peak"] == pytest.approx(1.0)
  assert "default_share" not in res["routers"][ev.REACTIVE]
  assert res["routers"][ev.REACTIVE]["peak"] <= 0.3 + 1e-9  # the baselines stay at the budgets
  assert res["singles"]["quality_default"] == pytest.approx([0.0, 0.0, 1.0])
  assert res["singles"]["cost_default"][2] == pytest.approx(table.default_cost[test, 2].mean())
  # Without the option the same heads never reach 1.
  plain = _split(table, Z, anchors=(), unlimited=False)
  assert plain["routers"][ev.r2_name("ridge")]["peak"] <= 0.3 + 1e-9
  assert "quality_default" not in plain["singles"]
  with pytest.raises(ValueError, match=r"\[N, M, 5\] \(4 budgets \+ the default column\)"):
    ev.evaluate_split(
      table.quality, table.cost, table.cost, Z, *split_of(table), BUDGETS, _settings(),
      default=ev.DefaultOption(table.default_output_len, table.default_input_len, 1, 1, 64),
    )  # fmt: skip


def split_of(table):
  from reasoning_jax.routing import split_indices

  return split_indices(table.num_queries, 0.3, 0)


def test_unlimited_config_table_summary_and_markdown():
  table, Z = synthetic_table(160, seed=2)
  config = router_config.get_config("quick")
  config.seeds, config.heads, config.anchor_counts = (0, 1), ("ridge",), (1,)
  config.budgets, config.num_lambdas = BUDGETS, 21
  config.ood_test_families = ("hard",)
  assert default_cap(config) is None  # off by default
  config.unlimited = True
  assert default_cap(config) == 64  # None: the largest budget
  config.default_cap = 40
  assert default_cap(config) == 40
  config.default_cap = 0
  with pytest.raises(ValueError, match="config.default_cap must be >= 1"):
    experiment.validate(config)
  config.default_cap = None
  experiment.validate(config)
  result = experiment.evaluate_table(config, table, Z)
  assert "default_share" in result["ood"]["routers"][ev.r2_name("ridge")]
  summary = experiment.summarize(config, table, result, table.models)
  shares = summary["routers"][ev.r2_name("ridge")]["default_share"]
  assert len(shares) == 2 and all(0.0 <= v <= 1.0 for v in shares)
  assert "default_share" not in summary["routers"][ev.ORACLE]
  payload = {
    "summary": summary,
    "ood": result["ood"],
    "families": {"easy": 1},
    "encoder": {"name": "synthetic", "hidden_size": Z.shape[1]},
    "pool": {},
    "wall_s": 1.0,
  }
  md = experiment.markdown(config, table, payload)
  assert "### The default option (no instruction, capped at 64 tokens" in md
  assert "default chosen (λ sweep / λ = 0) |" in md and "| oracle | " in md
  assert "R2-Router (ridge) routes " in md
  # Billed by budget: a default answer is billed its cap, like a budget answer its budget.
  config.bill = "budget"
  billed = experiment.evaluate_table(config, table, Z)["splits"][0]["singles"]["cost_default"]
  test = _test_rows(table)
  capped = table.default_input_len * 0.1 * np.asarray([1.0, 3.0, 9.0]) + 64 * np.asarray(
    [1.0, 3.0, 9.0]
  )
  np.testing.assert_allclose(billed, capped[test].mean(0))


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
  # The unlimited option on the same workdir: the bench gains the default column (capped at
  # the largest budget), the budget shards are not regenerated.
  shards = os.path.join(config.workdir, "bench", "shards")
  before = {f: os.path.getmtime(os.path.join(shards, f)) for f in os.listdir(shards)}
  config.unlimited = True
  unlimited = experiment.run_router_experiment(config)
  assert unlimited["default_cap"] == max(config.budgets)
  assert {f: os.path.getmtime(os.path.join(shards, f)) for f in before} == before
  for name in unlimited["models"]:
    assert os.path.exists(os.path.join(shards, f"{name}__default.jsonl.done"))
  share = unlimited["summary"]["routers"]["R2-Router (ridge)"]["default_share"]
  assert len(share) == len(config.seeds) and all(0.0 <= v <= 1.0 for v in share)
  md = pathlib.Path(os.path.join(config.workdir, "results.md")).read_text()
  assert "### The default option" in md and "to a default option" in md


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


# ------------------------------------------------------------------ the judge


def _judged(table, seed: int = 0):
  """The synthetic table with judge scores: the verifier's, flipped on a seeded 20% of cells
  and blurred into (0, 1)."""
  rng = np.random.default_rng(seed)
  flip = rng.random(table.quality.shape) < 0.2
  hard = np.where(flip, 1.0 - table.quality, table.quality)
  table.judge = "synthetic"
  table.judge_quality = (0.1 + 0.8 * hard).astype(np.float32)
  table.default_judge_quality = (0.1 + 0.8 * table.default_quality).astype(np.float32)
  return table, flip


def test_judge_config_report_and_quality_source():
  from reasoning_jax.evaluate.router import judge as jr

  table, Z = synthetic_table(160, seed=2)
  config = router_config.get_config("quick")
  config.seeds, config.heads, config.anchor_counts = (0,), ("ridge",), (1,)
  config.budgets, config.num_lambdas = BUDGETS, 21
  config.ood_test_families = ("hard",)
  assert not jr.judge_enabled(config) and jr.build_judge(config, {}) is None
  assert jr.judge_report(table, config) is None
  config.judge.quality_source = "judge"
  with pytest.raises(ValueError, match="quality_source='judge' needs a judge"):
    experiment.validate(config)
  config.judge.quality_source = "humans"
  with pytest.raises(ValueError, match="config.judge.quality_source must be one of"):
    experiment.validate(config)
  config.judge.quality_source, config.judge.pool_model = "verifier", "huge"
  with pytest.raises(ValueError, match="config.judge.pool_model='huge' must name"):
    experiment.validate(config)
  config.judge.pool_model, config.judge.hf_dir = "large", "/m/judge"
  with pytest.raises(ValueError, match="pool_model or hf_dir, not both"):
    experiment.validate(config)
  config.judge.hf_dir = ""
  experiment.validate(config)
  table, flip = _judged(table)
  report = jr.judge_report(table, config)
  agreement = report["agreement"]
  assert agreement["cells"] == table.quality.size
  assert agreement["accuracy"] == pytest.approx(1.0 - flip.mean())  # judge >= 0.5 iff not flipped
  assert agreement["pearson"] == pytest.approx(
    np.corrcoef(table.judge_quality.ravel(), table.quality.ravel())[0, 1], rel=1e-5
  )
  assert set(report["per_model"]) == set(table.models) and "default" in report
  verifier = experiment.evaluate_table(config, table, Z)
  config.judge.quality_source = "judge"
  judged = experiment.evaluate_table(config, table, Z)
  test = _test_rows(table)
  np.testing.assert_allclose(  # the single models are measured in the judge's scores
    judged["splits"][0]["singles"]["quality"],
    table.judge_quality[test][:, :, -1].mean(0),
    rtol=1e-5,
  )
  np.testing.assert_allclose(
    verifier["splits"][0]["singles"]["quality"], table.quality[test][:, :, -1].mean(0), rtol=1e-5
  )
  summary = experiment.summarize(config, table, judged, table.models)
  payload = {
    "summary": summary,
    "ood": judged["ood"],
    "families": {"easy": 1},
    "encoder": {"name": "synthetic", "hidden_size": Z.shape[1]},
    "pool": {},
    "wall_s": 1.0,
    "judge": report | {"quality_source": "judge"},
  }
  md = experiment.markdown(config, table, payload)
  assert "### Judge 'synthetic' vs the verifier 'math_exact'" in md
  assert (
    f"| {agreement['cells']} | {agreement['pearson']:.3f} | {agreement['accuracy']:.3f} |" in md
  )
  assert "trained and measured on the **judge**'s scores" in md


@pytest.mark.slow
def test_quick_variant_with_a_pool_judge_end_to_end(tmp_path):
  """The quick variant, then the largest pool model as the judge on the same workdir: the
  judge grades the stored completions (no completion shard is rewritten), results.md reports
  its agreement, and quality_source='judge' routes on its scores."""
  config = router_config.get_config("quick")
  config.workdir = str(tmp_path / "router")
  config.seeds, config.heads, config.anchor_counts, config.plot = (0,), ("ridge",), (1,), False
  experiment.run_router_experiment(config)
  shards = os.path.join(config.workdir, "bench", "shards")
  before = {f: os.path.getmtime(os.path.join(shards, f)) for f in os.listdir(shards)}
  config.judge.pool_model = "large"
  payload = experiment.run_router_experiment(config)
  assert {f: os.path.getmtime(os.path.join(shards, f)) for f in before} == before
  judge = payload["judge"]
  assert judge["name"] == "pool:large" and judge["quality_source"] == "verifier"
  n, m, k = config.num_queries, 3, len(config.budgets)
  assert judge["agreement"]["cells"] == n * m * k
  assert 0.0 <= judge["agreement"]["accuracy"] <= 1.0
  judge_shards = [f for f in os.listdir(shards) if "__judge-pool_large.jsonl.done" in f]
  assert len(judge_shards) == m * k
  md = pathlib.Path(os.path.join(config.workdir, "results.md")).read_text()
  assert "### Judge 'pool:large' vs the verifier" in md
  config.judge.quality_source = "judge"
  routed = experiment.run_router_experiment(config)
  assert routed["quality_source"] == "judge"
  assert "Quality here is judge 'pool:large'" in routed["verdict"]["text"]
  assert {f: os.path.getmtime(os.path.join(shards, f)) for f in before} == before
  assert (
    "trained and measured on the **judge**'s scores"
    in pathlib.Path(os.path.join(config.workdir, "results.md")).read_text()
  )
