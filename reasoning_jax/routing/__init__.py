"""LLM routing: R2-Router's joint (LLM, output budget) choice, its baselines and metrics.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue, Lou, Xing, Huang,
arXiv:2602.02823, ICML 2026); baselines from "RouteLLM: Learning to Route LLMs with Preference
Data" (Ong et al., arXiv:2406.18665) and deferral-curve evaluation from "Universal Model
Routing for Efficient LLM Inference" (Jitkrittum et al., arXiv:2502.08773).
`shared/methods/inference.md` sections 5 and 6. Pure functions of arrays:

  * `config`: `RouterConfig`, every DESIGN CHOICE flag with its default;
  * `heads`: quality heads per (LLM, budget), MLP (paper) or ridge (released code), all
    trained together; the output-length predictor of the "unlimited" option;
  * `cost`: `C[n, i, k] = n_in price_in + b_k price_out` and the per-model price table;
  * `select`: `route` (argmax of `(1 - lam) Q_hat - lam C`), the exact continuous budget
    search, the reactive and RouteLLM binary baselines;
  * `router`: `R2Router` (fitted heads, prices, lam scale) and `choose` -> (model, budget);
  * `metrics`: deferral curves, AUDC, peak, QNC, the oracle, PGR / APGR / CPT;
  * `encoder`: `QueryEncoder`, the frozen mean-pooled query encoder over any zoo model or HF
    folder (`EncoderInfo` records which);
  * `pool`: `PoolModel`, the length instruction and budget-capped greedy `generate_capped`;
  * `bench`: `build_bench`, the resumable offline R2-Bench-style table (quality / output
    length / cost `[N, M, K]`, plus the no-instruction "default" column with `default_cap`,
    plus a judge model's scores with `judge`); `shards`: its append-only files;
  * `bench_table`: `BenchTable` (`option_tables(quality_source=)`) and its seeded and
    out-of-distribution splits;
  * `judge`: `ModelJudge`, P(correct) from a judge model's verdict token, and
    `judge_agreement` (Pearson, accuracy) against the verifier;
  * `api`: `Router`, `route(query) -> (model, budget)` and `route_and_generate`.

  >>> heads = fit_quality_heads(Z_train, quality_train, RouterConfig(head="ridge"))
  >>> Q_hat = predict_quality(heads, Z_test)                      # [N, M, K]
  >>> C = router_cost_table(cfg, models, prices, texts=queries)   # [N, M, K]
  >>> choice = route(Q_hat, C, lam=0.5, cost_scale=cost_normalizer(C, cfg))
"""

from reasoning_jax.routing.api import RoutedGeneration, Router
from reasoning_jax.routing.bench import (
  BenchQuery,
  BenchTable,
  OptionTables,
  as_queries,
  build_bench,
  check_default_cap,
  check_judge,
  ood_split,
  resolve_verifier,
  shard_path,
  split_indices,
)
from reasoning_jax.routing.bench_table import QUALITY_SOURCES
from reasoning_jax.routing.config import (
  DEFAULT_BUDGETS,
  HEAD_KINDS,
  LAMBDA_MODES,
  RouterConfig,
  check_budgets,
  check_lambda,
)
from reasoning_jax.routing.cost import (
  ModelPrice,
  cost_table,
  estimate_input_tokens,
  price_arrays,
  router_cost_table,
)
from reasoning_jax.routing.encoder import EncoderInfo, QueryEncoder, mean_pool
from reasoning_jax.routing.judge import DEFAULT_TEMPLATE as JUDGE_TEMPLATE
from reasoning_jax.routing.judge import JudgeError, ModelJudge, judge_agreement
from reasoning_jax.routing.heads import (
  MLPHeads,
  QualityHeads,
  RidgeHeads,
  fit_length_predictor,
  fit_quality_heads,
  fit_ridge_heads,
  init_mlp_heads,
  mlp_heads_apply,
  predict_lengths,
  predict_quality,
  ridge_heads_apply,
  train_mlp_heads,
)
from reasoning_jax.routing.metrics import (
  Curve,
  apgr,
  audc,
  best_single_model,
  binary_pgr_curve,
  cost_range,
  cpt,
  deferral_curve,
  normalize_cost,
  oracle_curve,
  peak_quality,
  pgr,
  qnc,
  realised,
)
from reasoning_jax.routing.pool import (
  LENGTH_INSTRUCTION,
  CappedOutput,
  PoolError,
  PoolModel,
  budget_cap,
  budget_prompt,
  check_pool,
  generate_capped,
  load_pool_model,
)
from reasoning_jax.routing.router import Decision, R2Router, choose, fit_router
from reasoning_jax.routing.select import (
  Route,
  continuous_candidates,
  cost_normalizer,
  interpolate_quality,
  lambda_grid,
  route,
  route_binary,
  route_continuous,
  route_reactive,
)

__all__ = [
  "BenchQuery",
  "BenchTable",
  "CappedOutput",
  "Curve",
  "DEFAULT_BUDGETS",
  "Decision",
  "EncoderInfo",
  "HEAD_KINDS",
  "JUDGE_TEMPLATE",
  "JudgeError",
  "LAMBDA_MODES",
  "LENGTH_INSTRUCTION",
  "MLPHeads",
  "ModelJudge",
  "ModelPrice",
  "OptionTables",
  "QUALITY_SOURCES",
  "PoolError",
  "PoolModel",
  "QualityHeads",
  "QueryEncoder",
  "R2Router",
  "RidgeHeads",
  "Route",
  "RoutedGeneration",
  "Router",
  "RouterConfig",
  "apgr",
  "as_queries",
  "audc",
  "best_single_model",
  "binary_pgr_curve",
  "budget_cap",
  "check_judge",
  "judge_agreement",
  "budget_prompt",
  "build_bench",
  "check_budgets",
  "check_default_cap",
  "check_lambda",
  "check_pool",
  "choose",
  "continuous_candidates",
  "cost_normalizer",
  "cost_range",
  "cost_table",
  "cpt",
  "deferral_curve",
  "estimate_input_tokens",
  "fit_length_predictor",
  "fit_quality_heads",
  "fit_ridge_heads",
  "fit_router",
  "generate_capped",
  "init_mlp_heads",
  "interpolate_quality",
  "lambda_grid",
  "load_pool_model",
  "mean_pool",
  "mlp_heads_apply",
  "normalize_cost",
  "ood_split",
  "oracle_curve",
  "peak_quality",
  "pgr",
  "predict_lengths",
  "predict_quality",
  "price_arrays",
  "qnc",
  "realised",
  "resolve_verifier",
  "ridge_heads_apply",
  "route",
  "route_binary",
  "route_continuous",
  "route_reactive",
  "router_cost_table",
  "shard_path",
  "split_indices",
  "train_mlp_heads",
]
