"""R2-Router: routing throughput, head training time, and route_and_generate's overhead.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue et al., arXiv:2602.02823); the
paper reports a routing overhead under 400 ms per query (`shared/methods/inference.md` 6.6).
All figures come from the same run:

  * heads: time to fit the quality heads for M models x K options (15 x 16 by default: R2-Bench's
    15 anchors + the "unlimited" option) on synthetic embeddings, ridge (closed form) and MLP
    (paper's 256-128-64, Adam; seconds per epoch and total);
  * routing: `choose` over `--queries` queries (10k) with each head kind, queries/s, against the
    baseline of the bare selection (`route` on a precomputed Q_hat and cost table, i.e. the
    argmax alone): the ratio says what the heads and the cost model add; also the exact
    continuous search under a user cap (`max_budget`);
  * route_and_generate: `Router.route_and_generate` on a tiny random pool (byte tokenizer,
    `QueryEncoder` on a tiny random model) against direct `generate_capped` of the same groups
    (the baseline): wall-clock ratio and the per-query routing overhead (encode + choose).

Random weights and synthetic qualities make every routing decision meaningless; only the times
mean something. No assertion on time.

  python benchmarks/router.py --quick
  python benchmarks/router.py --queries 10000 --models 15 --dim 1024 --epochs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._timing import median_seconds  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from reasoning_jax.models import Transformer, get_preset  # noqa: E402
from reasoning_jax.routing import (  # noqa: E402
  DEFAULT_BUDGETS,
  PoolModel,
  QueryEncoder,
  Router,
  RouterConfig,
  choose,
  fit_router,
  generate_capped,
  predict_lengths,
  predict_quality,
  route,
  router_cost_table,
)
from reasoning_jax.tokenizers import ByteTokenizer  # noqa: E402


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--queries", type=int, default=10_000, help="queries routed")
  p.add_argument("--train", type=int, default=4096, help="training queries for the heads")
  p.add_argument("--models", type=int, default=15)
  p.add_argument("--dim", type=int, default=1024, help="embedding width (Qwen3-Embedding: 1024)")
  p.add_argument("--epochs", type=int, default=5, help="MLP epochs timed (paper: 100)")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--gen-queries", type=int, default=32, help="queries of route_and_generate")
  p.add_argument("--gen-batch", type=int, default=8)
  p.add_argument(
    "--quick", action="store_true", help="CPU-sized: D=256, 1024 training queries, 2 epochs"
  )
  args = p.parse_args(argv)
  if args.quick:
    args.dim, args.train, args.epochs, args.gen_queries = 256, 1024, 2, 16
  return args


def synthetic(args, n, seed):
  """Embeddings, qualities [N, M, K+1] rising with model index and budget, output lengths."""
  rng = np.random.default_rng(seed)
  m, k = args.models, len(DEFAULT_BUDGETS) + 1
  Z = rng.normal(size=(n, args.dim)).astype(np.float32)
  skill = np.linspace(0.2, 0.9, m)[None, :, None]
  budget = np.linspace(0.0, 0.3, k)[None, None, :]
  hard = 1 / (1 + np.exp(-Z[:, :1, None]))
  q = np.clip(skill + budget - 0.5 * hard + 0.05 * rng.normal(size=(n, m, k)), 0, 1)
  lengths = rng.uniform(20, 2000, (n, m)).astype(np.float32)
  return Z, q.astype(np.float32), lengths


def bench_heads(args):
  m = args.models
  names = tuple(f"llm{i}" for i in range(m))
  prices = {nm: (1e-7 * (i + 1), 4e-7 * (i + 1)) for i, nm in enumerate(names)}
  Z, q, lengths = synthetic(args, args.train, 0)
  Zq, _, _ = synthetic(args, args.queries, 1)
  texts = ["word " * 20] * args.queries
  print(
    f"heads: {m} models x {q.shape[2]} options = {m * q.shape[2]} heads, D={args.dim}, "
    f"{args.train} training queries; routing {args.queries} queries"
  )
  routers = {}
  for kind in ("ridge", "mlp"):
    cfg = RouterConfig(head=kind, unlimited=True, epochs=args.epochs)
    fit = (
      lambda: fit_router(  # noqa: E731
        Z, q, names, prices, cfg, texts=texts[: args.train], output_lengths=lengths
      )
    )
    start = time.perf_counter()
    routers[kind] = fit()
    first = time.perf_counter() - start
    secs = median_seconds(lambda: fit().cost_scale, repeats=1) if kind == "ridge" else first
    extra = (
      f", {secs / args.epochs * 1e3:.1f} ms/epoch x {args.epochs} epochs" if kind == "mlp" else ""
    )
    print(f"  fit {kind:5s}: {secs:8.3f} s (first call with compile {first:.3f} s){extra}")
  print(f"  MLP at the paper's 100 epochs: ~{secs / args.epochs * 100:.1f} s (extrapolated)")

  print("routing throughput (choose = heads + cost model + argmax; baseline: argmax alone):")
  r0 = routers["ridge"]
  Q = predict_quality(r0.heads, Zq)
  C = router_cost_table(
    r0.config,
    names,
    prices,
    texts=texts,
    predicted_lengths=predict_lengths(r0.length_predictor, Zq),
  )
  base = median_seconds(
    lambda: route(Q, C, 0.5, cost_scale=r0.cost_scale).model, repeats=args.repeats
  )
  print(f"  argmax alone     : {args.queries / base:12,.0f} queries/s ({base * 1e3:8.2f} ms)")
  for kind, r in routers.items():
    s = median_seconds(
      lambda: choose(r, Zq, 0.5, texts=texts).route.model,  # noqa: B023
      repeats=args.repeats,
    )
    c = median_seconds(
      lambda: choose(r, Zq, 0.5, texts=texts, max_budget=700).route.model,  # noqa: B023
      repeats=args.repeats,
    )
    print(
      f"  choose {kind:5s}     : {args.queries / s:12,.0f} queries/s ({s * 1e3:8.2f} ms, "
      f"{s / base:5.1f}x the argmax; {s / args.queries * 1e6:.2f} us/query)"
    )
    print(
      f"  choose {kind:5s} cap : {args.queries / c:12,.0f} queries/s ({c * 1e3:8.2f} ms, "
      f"continuous search under max_budget=700, {c / s:4.2f}x the anchors)"
    )


def tiny(seed, tok):
  cfg = get_preset("tiny-qwen3", vocab_size=tok.vocab_size, hidden_size=64, num_layers=2)
  return Transformer(cfg, rngs=nnx.Rngs(seed))


def bench_generate(args):
  tok = ByteTokenizer()
  names = ("small", "big")
  pool = {nm: PoolModel(tiny(i, tok), tok) for i, nm in enumerate(names)}
  encoder = QueryEncoder(tiny(7, tok), tok, name="tiny-qwen3 (random)", batch_size=16)
  budgets = (4, 8, 16)
  train_q = [f"what is {i} + {2 * i}?" for i in range(64)]
  rng = np.random.default_rng(0)
  cfg = RouterConfig(head="ridge", budgets=budgets)
  r = fit_router(
    encoder(train_q),
    rng.uniform(size=(64, 2, 3)).astype(np.float32),
    names,
    {"small": (1e-7, 1e-6), "big": (1e-6, 1e-5)},
    cfg,
    texts=train_q,
  )
  router = Router(r, encoder, lam=0.5)
  queries = [f"compute {i} * {i + 3} please" for i in range(args.gen_queries)]
  bs = args.gen_batch

  def routed():
    return router.route_and_generate(queries, pool, batch_size=bs)

  out = routed()  # warm-up: compiles every (model, cap) shape the groups need
  groups = {}
  for i, (m, c) in enumerate(zip(out.models, out.caps)):
    groups.setdefault((m, c), []).append(i)

  def direct():
    for (m, c), idx in groups.items():
      generate_capped(pool[m], [queries[i] for i in idx], c, batch_size=bs)

  direct()
  t_direct, t_routed, overhead = [], [], []
  for _ in range(args.repeats):
    start = time.perf_counter()
    direct()
    t_direct.append(time.perf_counter() - start)
    start = time.perf_counter()
    o = routed()
    t_routed.append(time.perf_counter() - start)
    overhead.append(o.overhead_per_query_s)
  d, rt, ov = (statistics.median(x) for x in (t_direct, t_routed, overhead))
  print(
    f"route_and_generate ({len(queries)} queries, {len(groups)} (model, cap) groups, "
    f"batch {bs}, tiny random pool + encoder on {jax.default_backend()}):"
  )
  print(f"  direct generate_capped (baseline): {d * 1e3:9.1f} ms")
  print(f"  route_and_generate               : {rt * 1e3:9.1f} ms  ({rt / d:4.2f}x the baseline)")
  print(
    f"  routing overhead (encode + choose): {ov * 1e3:9.3f} ms/query "
    f"({ov * len(queries) / rt:.1%} of route_and_generate)"
  )


def main(argv=None):
  args = parse_args(argv)
  print(f"backend: {jax.default_backend()}, devices: {jax.devices()}")
  bench_heads(args)
  bench_generate(args)


if __name__ == "__main__":
  main()
