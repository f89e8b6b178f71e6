"""`python -m experiments.router`: does routing over (model, output budget) beat routing over
models alone?

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue, Lou, Xing, Huang,
arXiv:2602.02823) reports average quality 0.8 at about 4-5x less cost than reactive
(model-only) routers, AUDC / QNC / peak gains over them, and a K-anchor ablation where 4-8
heads suffice. Here, at CPU scale (`configs/router.py`): a pool of arithmetic models of three
sizes trained here (`pool`), the `[N, M, K]` table of every model at every budget on held-out
questions with measured cost (`table`), and every router on one random split per
`config.seeds` entry plus one out-of-distribution split by task family (`evaluation`).

With `config.judge` a judge model also grades every cell (`evaluate.router.judge`): results.md
reports its agreement with the verifier, and `config.judge.quality_source = "judge"` routes on
its scores.

With `config.unlimited` (the released code's "unlimited" option) the table gains the
no-instruction "default" column, capped at `config.default_cap` (None: the largest budget);
R2-Router and the oracle may pick it, and results.md reports how often R2-Router does.

Outputs in `config.workdir`: results.json, results.md (mean ± std over splits),
deferral_curves.png (cost-quality frontier of every router, split 0), anchor_ablation.png,
pool/ (the trained models), bench/ (the resumable table and embeddings).
"""

from __future__ import annotations

import os
import time
from typing import Any

import ml_collections
import numpy as np

from absl import logging

from reasoning_jax import citations
from reasoning_jax.evaluate.outputs import write_results
from reasoning_jax.evaluate.router import evaluation as ev
from reasoning_jax.evaluate.router.judge import (
  judge_report,
  judge_section,
  quality_source,
  validate_judge,
)
from reasoning_jax.evaluate.router.pool import build_pool, family_counts, held_out_queries
from reasoning_jax.evaluate.router.table import build_table, embed_queries
from reasoning_jax.routing import check_default_cap, ood_split, price_arrays, split_indices

METRICS = ("audc", "peak", "qnc", "cost_at_best", "cost_at_90")


def validate(config: ml_collections.ConfigDict) -> None:
  """The experiment's own keys; ValueError naming the key."""
  if config.get("price", "measured") not in ("measured", "flops"):
    raise ValueError(f"config.price must be 'measured' or 'flops', got {config.price!r}")
  if config.get("bill", "generated") not in ("generated", "budget"):
    raise ValueError(f"config.bill must be 'generated' or 'budget', got {config.bill!r}")
  if not config.seeds or any(not isinstance(s, int) for s in config.seeds):
    raise ValueError(f"config.seeds must be a non-empty tuple of ints, got {config.seeds!r}")
  if not 0.0 < float(config.test_fraction) < 1.0:
    raise ValueError(f"config.test_fraction must be in (0, 1), got {config.test_fraction!r}")
  bad = [h for h in config.heads if h not in ("ridge", "mlp")]
  if bad or not config.heads:
    raise ValueError(f"config.heads must name 'ridge' and / or 'mlp', got {tuple(config.heads)}")
  k = len(config.budgets)
  bad = [a for a in config.anchor_counts if not 1 <= int(a) <= k]
  if bad:
    raise ValueError(f"config.anchor_counts must be in [1, {k}] (the budgets), got {bad}")
  if not isinstance(config.get("unlimited", False), bool):
    raise ValueError(f"config.unlimited must be a bool, got {config.unlimited!r}")
  cap = config.get("default_cap", None)
  if cap is not None:
    check_default_cap(cap, "config.default_cap")
  validate_judge(config)


def settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
  keys = ("ridge_alpha", "mlp_hidden", "mlp_epochs", "mlp_learning_rate", "num_lambdas")
  return {key: config[key] for key in keys} | {"apgr_points": int(config.apgr_points)}


def evaluate_table(config, table, Z) -> dict[str, Any]:
  """Every router on one random split per seed of `config.seeds`, and the OOD split."""
  pin, pout = price_arrays(table.models, table.prices)
  cost_hat = ev.predicted_cost(table.input_len, pin, pout, table.budgets)
  # With `unlimited`, the ground truth gains the default column (`[N, M, K + 1]`).
  unlimited = bool(config.get("unlimited", False))
  truth = table.option_tables(unlimited=unlimited, quality_source=quality_source(config))
  default = None
  if unlimited:
    default = ev.DefaultOption(
      table.default_output_len, table.default_input_len, pin, pout, table.default_cap
    )
  # "generated": the tokens each answer used (it may stop before its budget); "budget": every
  # answer billed its whole budget (the paper's C_M(b) taken as the realised cost; the default
  # answer's budget is its cap).
  cost = truth.cost
  if config.get("bill", "generated") != "generated":
    cost = cost_hat
    if unlimited:
      capped = table.default_input_len * pin + table.default_cap * pout
      cost = np.concatenate([cost_hat, capped[..., None]], -1)
  s = settings(config)
  splits = []
  for seed in config.seeds:
    train, test = split_indices(table.num_queries, float(config.test_fraction), seed)
    start = time.time()
    res = ev.evaluate_split(
      truth.quality, cost, cost_hat, Z, train, test, table.budgets, s,
      heads=tuple(config.heads), anchor_counts=tuple(config.anchor_counts), seed=seed,
      default=default,
    )  # fmt: skip
    logging.info("split %d evaluated in %.1f s", seed, time.time() - start)
    splits.append(res)
  ood = None
  fams = [f for f in config.ood_test_families if f in set(table.families)]
  if fams and len(set(table.families) - set(fams)) > 0:
    train, test = ood_split(table.families, fams)
    if len(train) >= 4 and len(test) >= 2:
      ood = ev.evaluate_split(
        truth.quality, cost, cost_hat, Z, train, test, table.budgets, s,
        heads=tuple(config.heads), seed=0, default=default,
      )  # fmt: skip
      ood["train_families"] = sorted(set(table.families) - set(fams))
      ood["test_families"] = fams
  return {"splits": splits, "ood": ood}


def _cell(values, digits: int = 3) -> str:
  v = np.asarray(values, float)
  if np.all(np.isnan(v)):
    return "n/a"
  return f"{np.nanmean(v):.{digits}f} ± {np.nanstd(v):.{digits}f}"


def cost_unit(config) -> tuple[float, str]:
  """`(factor, label)` to display costs: ms for measured seconds, MFLOP for FLOPs."""
  return (1e-6, "MFLOP") if config.get("price", "measured") == "flops" else (1e3, "ms")


def _sci(values, factor: float = 1e3) -> str:
  v = np.asarray(values, float)
  if np.all(np.isnan(v)):
    return "never"
  miss = int(np.isnan(v).sum())
  tail = f" ({miss} of {v.size} never)" if miss else ""
  return f"{np.nanmean(v) * factor:.3f} ± {np.nanstd(v) * factor:.3f}{tail}"


def summarize(config, table, result: dict[str, Any], models: tuple[str, ...]) -> dict[str, Any]:
  """Per router and metric, the values over splits; the binary router's APGR / CPT; the
  K-anchor ablation; the single models; the verdict."""
  splits = result["splits"]
  routers = list(splits[0]["routers"])
  summary = {
    name: {m: [sp["routers"][name][m] for sp in splits] for m in METRICS} for name in routers
  }
  for name in routers:  # R2-Router with the default option: how often it is picked.
    if "default_share" in splits[0]["routers"][name]:
      summary[name]["default_share"] = [sp["routers"][name]["default_share"] for sp in splits]
      summary[name]["default_share_lam0"] = [
        sp["routers"][name]["curve"]["default_share"][0] for sp in splits
      ]
  binary = {m: [sp["binary"][m] for sp in splits] for m in splits[0]["binary"]}
  anchors = {}
  if "anchors" in splits[0]:
    for key in splits[0]["anchors"]:
      anchors[key] = {
        m: [sp["anchors"][key][m] for sp in splits] for m in ("audc", "qnc", "peak")
      } | {"anchors": splits[0]["anchors"][key]["anchors"]}
  keys = [
    key
    for key in ("quality", "cost", "quality_default", "cost_default")
    if key in splits[0]["singles"]
  ]
  singles = {
    name: {key: [sp["singles"][key][i] for sp in splits] for key in keys}
    for i, name in enumerate(models)
  }
  return {
    "routers": summary,
    "binary": binary,
    "anchors": anchors,
    "singles": singles,
    "verdict": verdict(summary, singles, models),
  }


def _ratio(reactive, cost) -> float:
  """Mean over splits of reactive cost / R2 cost (splits where both reach the level)."""
  reactive, cost = np.asarray(reactive, float), np.asarray(cost, float)
  ok = ~np.isnan(cost) & ~np.isnan(reactive)
  return float(np.mean(reactive[ok] / cost[ok])) if ok.any() else float("nan")


def verdict(summary, singles, models) -> dict[str, Any]:
  """Does R2-Router reach the best single model's quality at 4-5x lower cost than the reactive
  router (the paper's claim)? Ratio of costs at that quality (and at 90% of it), reactive / R2,
  averaged over the splits where both curves reach it."""
  r2 = [n for n in summary if n.startswith("R2-Router")]
  best = max(models, key=lambda m: np.mean(singles[m]["quality"]))
  target = float(np.mean(singles[best]["quality"]))
  reactive = summary[ev.REACTIVE]
  ratios = {n: _ratio(reactive["cost_at_best"], summary[n]["cost_at_best"]) for n in r2}
  ratios90 = {n: _ratio(reactive["cost_at_90"], summary[n]["cost_at_90"]) for n in r2}
  audc = {n: float(np.mean(summary[n]["audc"])) for n in summary}
  name = max(r2, key=lambda n: audc[n])
  reached = int(np.sum(~np.isnan(np.asarray(summary[name]["cost_at_best"], float))))
  splits = len(summary[name]["cost_at_best"])
  ratio, ratio90 = ratios[name], ratios90[name]
  text = (
    f"Best single model: {best!r} (quality {target:.3f} at the largest budget). "
    f"{name}: AUDC {audc[name]:.3f} vs reactive {audc[ev.REACTIVE]:.3f}, binary "
    f"{audc[ev.BINARY]:.3f}, random {audc[ev.RANDOM]:.3f}, oracle {audc[ev.ORACLE]:.3f}; it "
    f"reaches the best single model's quality on {reached} of {splits} splits. "
  )
  if not np.isnan(ratio):
    text += f"At that quality the reactive router costs {ratio:.2f}x what {name} costs. "
  if not np.isnan(ratio90):
    text += f"At 90% of it, {ratio90:.2f}x. "
  measured = ratio if not np.isnan(ratio) else ratio90
  if target < 0.05:
    text += (
      "The pool answers almost nothing (best quality below 0.05), so these numbers say "
      "nothing about the method (e.g. the quick variant)."
    )
  elif np.isnan(measured):
    text += (
      "Neither level is reached by both routers on any split, so the paper's cost ratio "
      "(4-5x) cannot be measured here."
    )
  else:
    text += "The paper's 4-5x claim " + (
      "reproduces at this scale." if measured >= 4.0 else "does not reproduce at this scale."
    )
  return {
    "text": text,
    "best_model": best,
    "target": target,
    "cost_ratio": ratios,
    "cost_ratio_90": ratios90,
    "audc": audc,
    "verdict_router": name,
    "reached": reached,
  }


def markdown(config, table, payload: dict[str, Any]) -> str:
  s = payload["summary"]
  f, unit = cost_unit(config)
  lines = [
    f"R2-Router at CPU scale: pool {list(table.models)}, {table.num_queries} held-out questions "
    f"(families {payload['families']}), budgets {list(table.budgets)} tokens, verifier "
    f"{config.verifier!r}, cost in {unit} ({config.get('price', 'measured')}, billed: "
    f"{config.get('bill', 'generated')} tokens); encoder {payload['encoder']['name']!r} "
    f"(H = {payload['encoder']['hidden_size']}); {len(config.seeds)} random splits "
    f"(test fraction {config.test_fraction}), mean ± std. Wall time {payload['wall_s']:.0f} s.\n",
    "### Pool (at the largest budget, test queries)\n",
    f"| model | params | quality | cost ({unit} / query) | price in / out ({unit} / token) |",
    "|---|---|---|---|---|",
  ]
  for name in table.models:
    pr = table.prices[name]
    params = payload["pool"].get(name, {}).get("params", "")
    lines.append(
      f"| {name} | {params} | {_cell(s['singles'][name]['quality'])} | "
      f"{_sci(s['singles'][name]['cost'], f)} | {pr.input * f:.4f} / {pr.output * f:.4f} |"
    )
  qb = np.asarray(table.quality).mean(0)
  lines += ["", "### Mean quality by budget (all queries)\n"]
  lines.append("| model | " + " | ".join(f"b = {b}" for b in table.budgets) + " |")
  lines.append("|---|" + "---|" * len(table.budgets))
  for i, name in enumerate(table.models):
    lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in qb[i]) + " |")
  lens = np.asarray(table.output_len, float).mean(0)
  lines += ["", "### Mean generated tokens by budget (all queries; EOS included)\n"]
  lines.append("| model | " + " | ".join(f"b = {b}" for b in table.budgets) + " |")
  lines.append("|---|" + "---|" * len(table.budgets))
  for i, name in enumerate(table.models):
    lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in lens[i]) + " |")
  if getattr(table, "default_cap", None) is not None and config.get("unlimited", False):
    lines += default_section(table, s, f, unit)
  if payload.get("judge"):
    lines += judge_section(payload["judge"], config.verifier)
  unlimited = any("default_share" in m for m in s["routers"].values())
  lines += [
    "",
    f"### Routers (cost at best = mean {unit} / query where the curve first reaches the best "
    "single model's quality)\n",
    "| router | AUDC | peak | QNC | cost at best | cost at 90% of best |"
    + (" default chosen (λ sweep / λ = 0) |" if unlimited else ""),
    "|---|---|---|---|---|---|" + ("---|" if unlimited else ""),
  ]
  for name, m in s["routers"].items():
    share = ""
    if unlimited:
      share = " – |"
      if "default_share" in m:
        share = f" {_cell(m['default_share'])} / {_cell(m['default_share_lam0'])} |"
    lines.append(
      f"| {name} | {_cell(m['audc'])} | {_cell(m['peak'])} | {_cell(m['qnc'])} | "
      f"{_sci(m['cost_at_best'], f)} | {_sci(m['cost_at_90'], f)} |" + share
    )
  b = s["binary"]
  lines += [
    "",
    f"Binary router ({table.models[-1]} strong, {table.models[0]} weak): APGR "
    f"{_cell(b['apgr'])} (random {_cell(b['random_apgr'])}), CPT(50%) {_cell(b['cpt50'])}, "
    f"CPT(80%) {_cell(b['cpt80'])}.",
  ]
  if s["anchors"]:
    lines += ["", "### K-anchor ablation (ridge heads at K budgets, others interpolated)\n"]
    lines += ["| K | anchors | AUDC | QNC | peak |", "|---|---|---|---|---|"]
    for key, a in s["anchors"].items():
      lines.append(
        f"| {key} | {a['anchors']} | {_cell(a['audc'])} | {_cell(a['qnc'])} | {_cell(a['peak'])} |"
      )
  ood = payload["ood"]
  if ood:
    lines += [
      "",
      f"### Out of distribution: train on {ood['train_families']}, test on "
      f"{ood['test_families']} (one split)\n",
      "| router | AUDC | peak | QNC |",
      "|---|---|---|---|",
    ]
    for name, m in ood["routers"].items():
      lines.append(f"| {name} | {m['audc']:.3f} | {m['peak']:.3f} | {m['qnc']:.3f} |")
  lines += ["", "**Verdict.** " + s["verdict"]["text"], ""]
  return "\n".join(lines)


def default_section(table, s: dict[str, Any], f: float, unit: str) -> list[str]:
  """results.md's rows on the no-instruction "default" column: per model its quality, tokens
  and cost on the test queries, and how often R2-Router picks it."""
  lines = [
    "",
    f"### The default option (no instruction, capped at {table.default_cap} tokens; "
    "`config.unlimited`)\n",
    "| model | quality (test) | cost (test, " + unit + " / query) | mean tokens (all) |",
    "|---|---|---|---|",
  ]
  tokens = np.asarray(table.default_output_len, float).mean(0)
  for i, name in enumerate(table.models):
    single = s["singles"][name]
    lines.append(
      f"| {name} | {_cell(single['quality_default'])} | {_sci(single['cost_default'], f)} | "
      f"{tokens[i]:.1f} |"
    )
  for name, m in s["routers"].items():
    if "default_share" in m:
      lines.append(
        f"\n{name} routes {_cell(m['default_share'])} of the test queries to a default option "
        f"(mean over the λ sweep; {_cell(m['default_share_lam0'])} at λ = 0)."
      )
  return lines


def plot(payload: dict[str, Any], workdir: str, unit: tuple[float, str] = (1e3, "ms")) -> list[str]:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  written = []
  sp = payload["splits"][0]
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, r in sp["routers"].items():
    c, q = np.asarray(r["curve"]["cost"]) * unit[0], np.asarray(r["curve"]["quality"])
    order = np.lexsort((q, c))
    ls = "--" if name in (ev.ORACLE, ev.RANDOM) else "-"
    ax.plot(c[order], q[order], ls, marker=".", ms=3, label=name)
  sc, sq = np.asarray(sp["singles"]["cost"]) * unit[0], np.asarray(sp["singles"]["quality"])
  ax.scatter(sc, sq, marker="*", s=90, c="k", zorder=5, label="single models (largest budget)")
  for name, x, y in zip(payload["models"], sc, sq):
    ax.annotate(name, (x, y), fontsize=7, xytext=(3, -8), textcoords="offset points")
  ax.axhline(sp["target"], color="grey", lw=0.5, ls=":")
  ax.set_xlabel(f"mean cost per query ({unit[1]})")
  ax.set_ylabel(f"mean quality ({payload.get('quality_source', 'verifier')})")
  ax.set_title("deferral curves (split 0)")
  ax.legend(fontsize=7)
  fig.tight_layout()
  path = os.path.join(workdir, "deferral_curves.png")
  fig.savefig(path, dpi=120)
  plt.close(fig)
  written.append(path)
  anchors = payload["summary"]["anchors"]
  if anchors:
    ks = [int(k) for k in anchors]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, metric in zip(axes, ("audc", "qnc")):
      vals = np.asarray([anchors[str(k)][metric] for k in ks], float)
      ax.errorbar(ks, vals.mean(1), yerr=vals.std(1), marker="o", capsize=3, label="R2 (ridge)")
      for name in (ev.REACTIVE, ev.ORACLE):
        ref = np.mean(payload["summary"]["routers"][name][metric])
        ax.axhline(ref, ls="--", lw=0.8, color="grey" if name == ev.REACTIVE else "k")
        ax.annotate(name, (ks[0], ref), fontsize=7)
      ax.set_xlabel("K (budgets with a head)")
      ax.set_ylabel(metric.upper())
    fig.suptitle("K-anchor ablation")
    fig.tight_layout()
    path = os.path.join(workdir, "anchor_ablation.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)
  return written


def run_router_experiment(config: ml_collections.ConfigDict) -> dict[str, Any]:
  from reasoning_jax.train.metrics import quiet_library_logs

  quiet_library_logs()
  validate(config)
  os.makedirs(config.workdir, exist_ok=True)
  start = time.time()
  pool, pool_info = build_pool(config)
  logging.info("pool ready in %.0f s: %s", time.time() - start, pool_info)
  queries = held_out_queries(config)
  t0 = time.time()
  table = build_table(config, pool, queries)
  logging.info("table %s built in %.0f s", table.quality.shape, time.time() - t0)
  Z, encoder = embed_queries(config, pool, queries)
  result = evaluate_table(config, table, Z)
  payload = {
    "models": list(table.models),
    "budgets": list(table.budgets),
    "families": family_counts(table.families),
    "default_cap": table.default_cap,
    "quality_source": quality_source(config),
    "prices": {k: list(v) for k, v in table.prices.items()},
    "price_source": table.price_source,
    "pool": pool_info,
    "encoder": encoder,
    "splits": result["splits"],
    "ood": result["ood"],
    "judge": judge_report(table, config),
    "config": config.to_dict(),
  }
  payload["summary"] = summarize(config, table, result, table.models)
  payload["verdict"] = payload["summary"]["verdict"]
  if quality_source(config) == "judge":  # The numbers above are in the judge's scores.
    payload["verdict"]["text"] += (
      f" Quality here is judge {table.judge!r}'s score, not the verifier's "
      "(config.judge.quality_source = 'judge'); see its agreement with the verifier above."
    )
  payload["wall_s"] = time.time() - start
  md = markdown(config, table, payload)
  write_results(config.workdir, payload, md)
  citations.write_citations(["r2router"], os.path.join(config.workdir, "CITATIONS.bib"))
  if config.get("plot", True):
    plot(payload, config.workdir, cost_unit(config))
  logging.info("results in %s\n%s", config.workdir, md)
  return payload
