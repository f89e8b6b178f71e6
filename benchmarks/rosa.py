"""ROSA on the host and in a training step: matcher throughput, growth with T, the periodic
worst case, and the branch's step-time overhead over window-only attention.

("ROSA-Tuning: Enhancing Long-Context Modeling via Suffix Matching", Zheng et al.,
arXiv:2602.02499; its released code matches on CPU threads while the GPU runs the window
attention.)

Four tables, each measured in this run:
  1. Matcher throughput, build + query (canonical ROSA_match, no counterfactuals) in symbols
     per second, on random 16-symbol streams (M = 4 bits per route), `--routes` routes:
     compiled with 1 thread and with all threads, and with the counterfactual tables
     (training's forward), against the plain-Python reference (`ops.rosa.reference`) and a
     naive O(T^2) matcher (vectorised numpy over the earlier ends), at T = 1k .. 64k; the
     ratio columns divide by the naive matcher at the same T (the reference is timed up to
     `--max-reference-t`, the naive matcher up to `--max-naive-t`).
  2. Cost growth with T (time per symbol, compiled, 1 thread): flat = O(T) total.
  3. The periodic worst case: "aaaa..." and "abab..." key streams, where every maxend walk
     climbs the whole suffix-link path (O(T^2) total), exact vs `max_link_walk=64`; printed as
     symbols/s and suffix-link steps per symbol.
  4. A training step (forward + backward, jitted, batch 1) of a 2-layer model (layer 0 global
     attention, layer 1 window attention, window `--window`) at T = 4k and 16k: window-only,
     window + ROSA with the branch serialised before the attention ("serial"), and with the
     host matching overlapped with the attention ("overlap"); the host time of the layer's
     matching (with counterfactuals) alone; the hidden fraction
     (serial - overlap) / host time. On a CPU host, the "device" is the same cores as the
     matcher's threads, so overlap can only hide what the attention leaves idle.

Usage:
  python benchmarks/rosa.py [--routes 16 --max-t 65536 --step-ts 1024,4096 --window 256]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from reasoning_jax.ops.rosa import host, reference, sam  # noqa: E402
from reasoning_jax.ops.rosa.config import RosaConfig  # noqa: E402


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--routes", type=int, default=16)
  p.add_argument("--max-t", type=int, default=65536)
  p.add_argument("--max-reference-t", type=int, default=4096)
  p.add_argument("--max-naive-t", type=int, default=16384)
  p.add_argument("--periodic-ts", default="4096,16384")
  p.add_argument("--step-ts", default="1024,4096", help="'' skips the training-step table")
  p.add_argument("--window", type=int, default=256)
  p.add_argument("--hidden", type=int, default=64)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--seed", type=int, default=0)
  return p.parse_args(argv)


def best_of(fn, repeats):
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


def naive_match(q, k):
  """ROSA_match in O(T^2): common-suffix lengths L[e] of q[..t] and k[..e], updated per t."""
  t_len = len(q)
  out = np.full(t_len, -1, np.int64)
  lengths = np.zeros(t_len, np.int64)
  for t in range(t_len):
    # L_t[e] = L_{t-1}[e-1] + 1 where q[t] == k[e] (e < t), else 0.
    new = np.zeros(t_len, np.int64)
    if t:
      eq = k[:t] == q[t]
      new[:t] = np.where(eq, np.concatenate([[0], lengths[: t - 1]]) + 1, 0)
    lengths = new
    if t and lengths[:t].max() > 0:
      best = lengths[:t].max()
      out[t] = np.flatnonzero(lengths[:t] == best)[-1] + 1
  return out


def matcher_table(args, rng):
  print("\n## 1-2. Matcher throughput (build + query), random 16-symbol streams")
  print(f"routes={args.routes}, numba threads available={numba.config.NUMBA_NUM_THREADS}")
  header = (
    "| T | compiled 1 thread (M sym/s) | all threads | with counterfactuals (1 thread) "
    "| Python reference | naive O(T^2) | compiled / naive | ns per symbol (1 thread) |"
  )
  print(header)
  print("|---|---|---|---|---|---|---|---|")
  for t in (x for x in (1024, 4096, 16384, 65536) if x <= args.max_t):
    q = rng.integers(0, 16, (1, t, args.routes))
    k = rng.integers(0, 16, (1, t, args.routes))
    n = q.size
    one = RosaConfig(num_threads=1)
    every = RosaConfig()
    host.match(q, k, config=one)
    t1 = best_of(lambda: host.match(q, k, config=one), args.repeats)
    tall = best_of(lambda: host.match(q, k, config=every), args.repeats)
    tcf = best_of(lambda: host.match(q, k, config=one, want_counterfactual=True), args.repeats)
    row = [f"{n / t1 / 1e6:.2f}", f"{n / tall / 1e6:.2f}", f"{n / tcf / 1e6:.2f}"]
    if t <= args.max_reference_t:
      qq, kk = list(q[0, :, 0]), list(k[0, :, 0])
      tref = best_of(lambda: reference.reference_route(qq, kk, bits=4), 1)
      row.append(f"{t / tref / 1e6:.4f}")
    else:
      row.append("-")
    if t <= args.max_naive_t:
      tn = best_of(lambda: naive_match(q[0, :, 0], k[0, :, 0]), 1)
      row += [f"{t / tn / 1e6:.4f}", f"{(n / t1) / (t / tn):.0f}x"]
    else:
      row += ["-", "-"]
    row.append(f"{t1 / n * 1e9:.0f}")
    print(f"| {t} | " + " | ".join(row) + " |")


def periodic_table(args):
  print("\n## 3. Periodic worst case (one route, 1 thread)")
  print(
    "| keys | T | exact (M sym/s) | link steps / symbol | max_link_walk=64 (M sym/s) | steps / symbol |"
  )
  print("|---|---|---|---|---|---|")
  for t in (int(x) for x in args.periodic_ts.split(",") if x):
    for name, keys in (("aaaa...", np.zeros(t, np.int32)), ("abab...", np.tile([0, 1], t // 2))):
      keys = keys.astype(np.int32)
      q = keys[None, :, None]
      row = []
      for walk in (None, 64):
        config = RosaConfig(num_threads=1, max_link_walk=walk)
        seconds = best_of(lambda: host.match(q, q, config=config), 1)
        steps = sam.build_automaton(keys, 16, -1 if walk is None else walk)[-1]
        row += [f"{t / seconds / 1e6:.3f}", f"{steps / t:.1f}"]
      print(f"| {name} | {t} | " + " | ".join(row) + " |")


def step_table(args):
  import jax
  import jax.numpy as jnp
  from flax import nnx

  from reasoning_jax.models import Transformer, get_preset
  from reasoning_jax.models.convert import with_mixers
  from reasoning_jax.ops.rosa.branch import to_symbols

  print("\n## 4. Training step (forward + backward), batch 1, 2 layers")
  print("| T | window only (s) | + ROSA serial (s) | + ROSA overlap (s) | host matching alone (s) "
        "| host / window step | serial / window | overlap / window | overhead hidden |")  # fmt: skip
  print("|---|---|---|---|---|---|---|---|---|")
  for t in (int(x) for x in args.step_ts.split(",") if x):
    config = get_preset(
      "tiny-qwen3",
      hidden_size=args.hidden,
      num_heads=4,
      num_kv_heads=2,
      head_dim=args.hidden // 4,
      intermediate_size=2 * args.hidden,
      num_layers=2,
      max_position_embeddings=t,
      mixer=("attention", "sliding_attention"),
      sliding_window=args.window,
    )
    window = Transformer(config, rngs=nnx.Rngs(args.seed))
    ids = jax.random.randint(jax.random.PRNGKey(args.seed), (1, t), 0, config.vocab_size)
    models = {"window": window}
    for name in ("rosa_serial", "rosa"):
      model = with_mixers(window, ("attention", name))
      mixer = model.layers[1].mixer
      mixer.rosa_e1[...] = jnp.full(mixer.rosa_e1[...].shape, 0.1)  # A live branch.
      models[name] = model

    @nnx.jit
    def step(model, ids):
      loss = lambda m: jnp.mean(m(ids)[..., :8] ** 2)
      return nnx.grad(loss)(model)

    times = {}
    for name, model in models.items():
      jax.block_until_ready(nnx.state(step(model, ids)))
      times[name] = best_of(
        lambda model=model: jax.block_until_ready(nnx.state(step(model, ids))), args.repeats
      )
    mixer = models["rosa"].layers[1].mixer
    u = jax.random.normal(jax.random.PRNGKey(1), (1, t, args.hidden))
    qx, kx, _ = mixer.rosa_projections(u)
    qs, ks = np.asarray(to_symbols(qx, 4)), np.asarray(to_symbols(kx, 4))
    host_s = best_of(
      lambda: host.match(qs, ks, config=mixer.rosa, want_counterfactual=True), args.repeats
    )
    w, s, o = times["window"], times["rosa_serial"], times["rosa"]
    hidden = f"{100 * (1 - (o - w) / (s - w)):.0f}%" if s > w * 1.02 else "n/a"
    print(
      f"| {t} | {w:.3f} | {s:.3f} | {o:.3f} | {host_s:.3f} | {100 * host_s / w:.1f}% "
      f"| {s / w:.2f}x | {o / w:.2f}x | {hidden} |"
    )


def main(argv=None):
  args = parse_args(argv)
  rng = np.random.default_rng(args.seed)
  matcher_table(args, rng)
  periodic_table(args)
  if args.step_ts:
    step_table(args)


if __name__ == "__main__":
  main()
