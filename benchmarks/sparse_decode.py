"""Sparse long-context decoding (LycheeDecode, Quest, DuoAttention) vs full decode attention.

Issue 19. All ratios compare against a baseline doing the same decode step, measured in the
same run; nothing here asserts on time. Sections (`--section`, repeatable; default: the CPU
sections bytes, step and kernels):

  * bytes:   analytic KV bytes read per decode step (`reasoning_jax.sparse.kv_tokens_read`, no
             arrays) for full / lychee / quest / duo on a Llama-3-8B-shaped model (32 layers,
             8 KV heads, D 128, bf16) at 8k / 32k / 128k and budgets 1024 / 4096. LycheeDecode's
             role map: `--retrieval-heads` of the L*K heads are retrieval (layer 0 all of them,
             the rest spread over the later layers), or `--retrieval-share`; DuoAttention: half
             of every layer's heads are retrieval (`--duo-share`). Quest's page bounds count as
             KV slots (kmin + kmax = one slot's K + V), as `kv_tokens_read` does.
  * step:    measured time of one attention layer's decode step (jitted, XLA path, CPU-sized),
             each exactly what `generate` runs for that layer (`SparseDecodeContext.attend`):
             dense decode attention over all heads (the "full" method: the standard decode
             attention op) and `jax.nn.dot_product_attention` as a second dense baseline, vs
             LycheeDecode with r retrieval heads (kernel A's reference on r heads + select_blocks
             + kernel B's gathered XLA path on the K - r sparse heads; r = 0 is a layer that only
             inherits, r = K is layer 0), Quest (page-bound update + page scores + select +
             gathered) and DuoAttention (r dense + streaming heads). Then the per-token attention
             time of the whole Llama-3-8B-shaped role map, summed over its layers.
  * model:   (optional, not in the default) whole-model decode time per token of a small random
             preset through `generate(..., timings=...)` with sparse_decode full / lychee / quest.
  * breakdown: (optional) where the model section's decode step spends its time: the same
             random tiny-qwen3 and role map, each attention layer's step timed alone at the
             model's shapes (a full layer; LycheeDecode's layer 0, then its two parts: kernel
             A's XLA path and `select_blocks`; a sparse layer that inherits), and the
             whole-model decode time per token of full and lychee through `generate`. The rest
             of the step (everything but attention) is full minus L full layers; the sum
             rest + layer 0 + (L - 1) sparse layers predicts lychee's step, printed beside the
             measured one, per context (`--contexts`, budget = S / 8 capped at `--budget`).
  * kernels: the Pallas kernels A and B in interpret mode vs their jnp references at a small
             shape: max abs error only (correctness, never a speed figure).
  * gpu:     on a GPU / TPU backend only: compiled kernel B (`block_sparse_decode_pallas`,
             interpret=False; on a GPU both schedules, Mosaic GPU "mosaic" and Triton
             split-K "loop", on a TPU the "grid" one) vs dense decode attention (compiled
             kernel A over all heads,
             and the XLA reference) at 32k / 64k / 128k, budget 4096, B in {1, 8}, bf16, and
             the XLA gathered path. If the kernels fail to compile, the section says so and
             times the XLA paths only. Goal of the issue: >= 3x kernel-level at 128k and budget
             4096 (the paper reports up to 2.7x end to end at 128k).

  python benchmarks/sparse_decode.py                          # bytes + step + kernels, CPU
  python benchmarks/sparse_decode.py --quick                  # smoke run (< 30 s)
  python benchmarks/sparse_decode.py --section step --contexts 8192 32768 131072
  python benchmarks/sparse_decode.py --section breakdown --contexts 8192 16384 32768 \\
      --prefill-chunk 2048 --model-new-tokens 64 --repeats 3
  python benchmarks/sparse_decode.py --section gpu            # on a GPU / TPU machine

One benchmark in one file (one concept): the sections share the role maps, the method configs,
the decode step as `generate` runs it and the tiny model.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._timing import looped_seconds, median_seconds  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from reasoning_jax.ops import sparse_decode as sd  # noqa: E402
from reasoning_jax.sparse import SparseDecodeConfig, SparseDecodeContext, kv_tokens_read  # noqa: E402

BREAKDOWN_SHORT = 256  # The breakdown's prompt for the non-attention rest of a decode step.
SECTIONS = ("bytes", "step", "model", "breakdown", "kernels", "gpu")
DEFAULT_SECTIONS = ("bytes", "step", "kernels")
# Llama-3-8B's attention shape (the paper's main model).
LLAMA3_8B = dict(num_layers=32, num_kv_heads=8, group=4, head_dim=128)


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--section", action="append", choices=SECTIONS, help="repeatable")
  p.add_argument("--quick", action="store_true", help="shrink every section (smoke run)")
  p.add_argument("--contexts", type=int, nargs="+", default=None, help="step: S (8k 32k)")
  p.add_argument("--bytes-contexts", type=int, nargs="+", default=(8192, 32768, 131072))
  p.add_argument("--budgets", type=int, nargs="+", default=(1024, 4096), help="bytes section")
  p.add_argument("--budget", type=int, default=4096, help="step / gpu sections")
  p.add_argument("--block-size", type=int, default=64)
  p.add_argument("--page-size", type=int, default=16, help="Quest's page")
  p.add_argument("--retrieval-heads", type=int, default=32, help="of L*K (lychee role map)")
  p.add_argument("--retrieval-share", type=float, default=None, help="overrides the count")
  p.add_argument("--duo-share", type=float, default=0.5)
  p.add_argument("--batch", type=int, default=1, help="step section")
  p.add_argument("--dtype", default="float32", help="step section (the cache and q)")
  p.add_argument("--repeats", type=int, default=7, help="timed runs (median)")
  p.add_argument("--gpu-contexts", type=int, nargs="+", default=(32768, 65536, 131072))
  p.add_argument("--gpu-batches", type=int, nargs="+", default=(1, 8))
  p.add_argument("--model-context", type=int, default=8192, help="model section: prompt length")
  p.add_argument("--model-new-tokens", type=int, default=16)
  p.add_argument(
    "--prefill-chunk",
    type=int,
    default=0,
    help="model section: prompt tokens per prefill forward (0: one forward; 32k on a CPU "
    "host needs chunks, e.g. 2048)",
  )
  args = p.parse_args(argv)
  args.sections = tuple(args.section or DEFAULT_SECTIONS)
  if args.contexts is None:
    args.contexts = (1024,) if args.quick else (8192, 32768)
  if args.quick:
    args.repeats = min(args.repeats, 2)
    args.model_context, args.model_new_tokens = 1024, 4
    args.gpu_contexts, args.gpu_batches = (8192,), (1,)
  return args


# -- Role maps ----------------------------------------------------------------------------------


def lychee_roles(num_layers: int, num_kv: int, retrieval: int) -> np.ndarray:
  """`[L, K]` bool: layer 0 all retrieval (LycheeDecode forces it), the other retrieval heads
  spread round-robin over layers 1.. and head indices (deterministic; a stand-in for a trained
  map of the same density)."""
  retrieval = max(num_kv, min(retrieval, num_layers * num_kv))
  roles = np.zeros((num_layers, num_kv), bool)
  roles[0] = True
  # Round-robin over layers, shifting the head index each pass (distinct (layer, head) pairs).
  slots = [
    (layer, (layer + rep) % num_kv) for rep in range(num_kv) for layer in range(1, num_layers)
  ]
  for layer, head in slots[: retrieval - num_kv]:
    roles[layer, head] = True
  return roles


def duo_roles(num_layers: int, num_kv: int, share: float) -> np.ndarray:
  """`[L, K]` bool: the first `round(share * K)` heads of every layer are retrieval."""
  roles = np.zeros((num_layers, num_kv), bool)
  roles[:, : int(round(share * num_kv))] = True
  return roles


def retrieval_count(args, num_layers: int, num_kv: int) -> int:
  if args.retrieval_share is not None:
    return int(round(args.retrieval_share * num_layers * num_kv))
  return args.retrieval_heads


def method_configs(args, budget: int, num_layers: int, num_kv: int):
  roles = lychee_roles(num_layers, num_kv, retrieval_count(args, num_layers, num_kv))
  common = dict(budget=budget, block_size=args.block_size, page_size=args.page_size)
  return {
    "full": SparseDecodeConfig(method="full"),
    "lychee": SparseDecodeConfig(method="lychee", roles=roles, **common),
    "quest": SparseDecodeConfig(method="quest", **common),
    "duo": SparseDecodeConfig(
      method="duo", roles=duo_roles(num_layers, num_kv, args.duo_share), **common
    ),
  }


# -- Timing -------------------------------------------------------------------------------------


def gib(n: float) -> str:
  return f"{n / 2**30:8.3f} GiB" if n >= 2**30 else f"{n / 2**20:8.2f} MiB"


def ms(t: float) -> str:
  return f"{t * 1e3:9.3f} ms"


# -- bytes --------------------------------------------------------------------------------------


def section_bytes(args) -> dict:
  L, K, D = LLAMA3_8B["num_layers"], LLAMA3_8B["num_kv_heads"], LLAMA3_8B["head_dim"]
  slot_bytes = 2 * D * 2  # K + V of one head, bf16.
  n_ret = retrieval_count(args, L, K)
  print("\n== bytes: analytic KV bytes read per decode step (all layers and KV heads, B = 1) ==")
  print(
    f"Llama-3-8B shape: {L} layers x {K} KV heads, D {D}, bf16 ({slot_bytes} B per head-slot); "
    f"lychee: {max(K, min(n_ret, L * K))}/{L * K} retrieval heads (layer 0 all), "
    f"duo: {args.duo_share:.0%} retrieval heads (streaming: budget - sinks - 1 block), "
    f"quest: {args.page_size}-token pages, first 2 layers dense, bounds counted as slots"
  )
  header = f"{'context':>8} {'budget':>6} {'method':>7} {'KV bytes':>13} {'ratio vs full':>14}"
  print(header)
  print("-" * len(header))
  results = {}
  for budget in args.budgets:
    for s in args.bytes_contexts:
      configs = method_configs(args, budget, L, K)
      full = kv_tokens_read(configs["full"], L, K, s) * slot_bytes
      for name, cfg in configs.items():
        b = kv_tokens_read(cfg, L, K, s) * slot_bytes
        results[(s, budget, name)] = b
        print(f"{s:>8} {budget:>6} {name:>7} {gib(b):>13} {b / full:>13.3f}x")
    print()
  return results


# -- step ---------------------------------------------------------------------------------------


def make_inputs(key, b, s, kh, g, d, dtype):
  kq, kk, kv = jax.random.split(key, 3)
  q = jax.random.normal(kq, (b, kh, g, d), jnp.float32).astype(dtype)
  k = jax.random.normal(kk, (b, s, kh, d), jnp.float32).astype(dtype)
  v = jax.random.normal(kv, (b, s, kh, d), jnp.float32).astype(dtype)
  lengths = jnp.full((b,), s, jnp.int32)
  return q, k, v, lengths


def dpa_decode(q, k, v, lengths):
  """Dense decode attention through `jax.nn.dot_product_attention` (XLA): a second, stronger
  dense baseline than kernel A's reference (which the "full" method runs)."""
  b, kh, g, d = q.shape
  out = jax.nn.dot_product_attention(
    q.reshape(b, 1, kh * g, d), k, v, key_value_seq_lengths=lengths, implementation="xla"
  )
  return out.reshape(b, kh, g, d)


def context_step(cfg: SparseDecodeConfig, layer: int):
  """One layer's decode step exactly as `generate` runs it: `SparseDecodeContext.attend`,
  jitted, with the selection inherited from earlier layers and Quest's page bounds as inputs.
  Returns `fn(q [B, K, G, D], k, v, lengths, inherited, state) -> out`."""

  @jax.jit
  def step(q, k, v, lengths, inherited, state):
    b, kh, g, d = q.shape
    context = SparseDecodeContext(cfg, state=state)
    context.selection = inherited
    out = context.attend(layer, q.reshape(b, 1, kh * g, d), k, v, (lengths - 1)[:, None])
    return out, context.selection, context.state_out()

  return step


def single_layer_roles(kh: int, r: int, *, layer: int) -> np.ndarray:
  """Roles of a two-layer map whose layer `layer` has retrieval heads 0 .. r - 1."""
  roles = np.ones((2, kh), bool)
  roles[layer] = np.arange(kh) < r
  return roles


def section_step(args) -> dict:
  L, K, G, D = (LLAMA3_8B[n] for n in ("num_layers", "num_kv_heads", "group", "head_dim"))
  dtype = jnp.dtype(args.dtype)
  budget = args.budget
  configs = method_configs(args, budget, L, K)
  lychee_cfg, quest_cfg, duo_cfg = configs["lychee"], configs["quest"], configs["duo"]
  roles = np.asarray(lychee_cfg.roles)
  duo_r = int(np.asarray(duo_cfg.roles)[0].sum())
  per_layer_r = roles.sum(axis=1)
  print(
    f"\n== step: one attention layer's decode step, jitted XLA path on "
    f"{jax.default_backend()} (median of {args.repeats}) =="
  )
  print(
    f"B {args.batch}, K {K}, G {G}, D {D}, {dtype.name}, budget {budget}, block "
    f"{args.block_size}, Quest page {args.page_size}; r = retrieval heads in the layer "
    f"(lychee r=0: sparse heads only, inheriting an earlier selection). Baselines: full = the "
    "full method's path in generate (the standard decode attention op); dpa = "
    "jax.nn.dot_product_attention (XLA), a second dense decode"
  )
  header = f"{'S':>7} {'layer kind':<28} {'time':>12} {'full/this':>11} {'dpa/this':>10}"
  results = {}
  for s in args.contexts:
    cache = 2 * args.batch * s * K * D * dtype.itemsize
    print(f"\nS = {s} (cache K+V of one layer: {gib(cache).strip()})")
    print(header)
    print("-" * len(header))
    if s < budget:
      print(f"  (S < budget {budget}: every block is selected, sparse == dense work)")
    q, k, v, lengths = make_inputs(jax.random.key(s), args.batch, s, K, G, D, dtype)
    no_state = None
    full_step = context_step(SparseDecodeConfig(method="full", block_size=args.block_size), 0)
    t_dense = median_seconds(full_step, q, k, v, lengths, None, no_state, repeats=args.repeats)
    t_dpa = median_seconds(jax.jit(dpa_decode), q, k, v, lengths, repeats=args.repeats)

    def show(name, t):
      print(f"{s:>7} {name:<28} {ms(t):>12} {t_dense / t:>10.2f}x {t_dpa / t:>10.2f}x")

    show("dense: full (generate's path)", t_dense)
    show("dense: dot_product_attention", t_dpa)
    row = {"dense": t_dense, "dpa": t_dpa}
    # An inherited selection: what layer 0's retrieval heads would have chosen.
    layer0 = context_step(dataclasses.replace(lychee_cfg, roles=np.ones((2, K), bool)), 0)
    _, inherited, _ = layer0(q, k, v, lengths, None, no_state)
    t_lychee = {}
    for r in sorted(set(int(x) for x in per_layer_r) | {0, 1}):
      if r == K:
        cfg, layer = dataclasses.replace(lychee_cfg, roles=np.ones((2, K), bool)), 0
      else:
        cfg, layer = dataclasses.replace(lychee_cfg, roles=single_layer_roles(K, r, layer=1)), 1
      t = median_seconds(
        context_step(cfg, layer), q, k, v, lengths, inherited, no_state, repeats=args.repeats
      )
      t_lychee[r] = t
      show(f"lychee r={r}" + (" (layer 0)" if r == K else ""), t)
    quest_layer = dataclasses.replace(quest_cfg, quest_dense_layers=0)
    bounds = (sd.page_bounds(k, lengths - 1, page_size=args.page_size),)
    t_quest = median_seconds(
      context_step(quest_layer, 0), q, k, v, lengths, None, bounds, repeats=args.repeats
    )
    show("quest (all heads sparse)", t_quest)
    duo_layer = dataclasses.replace(duo_cfg, roles=single_layer_roles(K, duo_r, layer=0))
    t_duo = median_seconds(
      context_step(duo_layer, 0), q, k, v, lengths, None, no_state, repeats=args.repeats
    )
    show(f"duo r={duo_r} + {K - duo_r} streaming", t_duo)
    # Whole role map: per-layer times summed over the layers (quest: 2 dense layers).
    model = {
      "full": L * t_dense,
      "full (dot_product_attention)": L * t_dpa,
      "lychee": sum(t_lychee[int(r)] for r in per_layer_r),
      "quest": quest_cfg.quest_dense_layers * t_dense
      + (L - quest_cfg.quest_dense_layers) * t_quest,
      "duo": L * t_duo,
    }
    print(f"  {L}-layer attention per token (sum of per-layer times; full/this, dpa/this):")
    for name, t in model.items():
      print(f"  {name:<28} {ms(t):>12} {model['full'] / t:>10.2f}x {L * t_dpa / t:>10.2f}x")
    row.update(lychee=t_lychee, quest=t_quest, duo=t_duo, model=model)
    results[s] = row
    del q, k, v, bounds
  return results


# -- model --------------------------------------------------------------------------------------


def _tiny_model(args, p: int):
  """The model section's random tiny-qwen3 (4 layers, 2 KV heads) sized for a prompt of `p`,
  its budget (p / 8 in [512, --budget], a multiple of 64) and the methods' configs."""
  from flax import nnx

  from reasoning_jax.models import Transformer, get_preset

  layers, kv = 4, 2
  config = get_preset("tiny-qwen3").replace(
    num_layers=layers, max_position_embeddings=p + 4 * args.model_new_tokens + 1024
  )
  model = Transformer(config, rngs=nnx.Rngs(0))
  budget = min(args.budget, max(512, p // 8))
  budget -= budget % 64
  roles = np.zeros((layers, kv), bool)
  roles[0] = True
  configs = {
    "full": SparseDecodeConfig(method="full"),
    "lychee": SparseDecodeConfig(method="lychee", roles=roles, budget=budget),
    "quest": SparseDecodeConfig(method="quest", budget=budget, quest_dense_layers=1),
  }
  return model, budget, configs


def _decode_per_token(args, model, p: int, cfg: SparseDecodeConfig) -> float:
  """Median over `--repeats` of `generate`'s decode seconds per token (first call compiles)."""
  from reasoning_jax.generate import generate

  prompts = np.random.default_rng(0).integers(1, model.config.vocab_size, (1, p))

  def call(timings=None):
    return generate(
      model,
      prompts,
      np.array([p]),
      max_new_tokens=args.model_new_tokens,
      temperature=0.0,
      sparse_decode=cfg,
      timings=timings,
      prefill_chunk=args.prefill_chunk or None,
    )

  call()
  per_token = []
  for _ in range(args.repeats):
    t = {}
    call(t)
    per_token.append(t["decode_s"] / args.model_new_tokens)
  return statistics.median(per_token)


def section_model(args) -> dict:
  p = args.model_context
  model, budget, configs = _tiny_model(args, p)
  config = model.config
  print(
    f"\n== model: generate() decode time per token, random tiny-qwen3 ({config.num_layers} "
    f"layers, {config.num_kv_heads} KV heads, D {config.head_dim}), prompt {p}, "
    f"{args.model_new_tokens} new tokens, budget {budget}, prefill chunk "
    f"{args.prefill_chunk or 'none'} (median of {args.repeats}; first call compiles, not "
    "timed) =="
  )
  print("(a toy model: per-token time is dominated by non-attention work and dispatch)")
  results = {}
  for name, cfg in configs.items():
    results[name] = _decode_per_token(args, model, p, cfg)
    print(
      f"  {name:>7} {ms(results[name]):>12} per token  "
      f"full/this {results['full'] / results[name]:.2f}x"
    )
  return results


def section_breakdown(args) -> dict:
  print(
    f"\n== breakdown: the model section's decode step, piece by piece (median of "
    f"{args.repeats}; {args.model_new_tokens} new tokens, prefill chunk "
    f"{args.prefill_chunk or 'none'}) =="
  )
  print(
    "In the model (generate's decode time per token): rest R = the full model at a "
    f"{BREAKDOWN_SHORT}-token prompt (everything but attention, which does not grow with S); "
    "full F = (full - R) / L; lychee's layer 0 A = (all layers retrieval - R) / L; a sparse "
    "layer P = (lychee - R - A) / (L - 1). Alone: one layer's step at the model's shapes "
    "(f32), 16 steps in one jitted loop that writes the new token into the cache each step "
    "(no dispatch per step, no read hoisted out of the loop); layer 0 also in its parts."
  )
  results = {}
  short = None
  for s in args.contexts:
    model, budget, configs = _tiny_model(args, s)
    c = model.config
    layers, kh, g, d = c.num_layers, c.num_kv_heads, c.num_heads // c.num_kv_heads, c.head_dim
    lychee = configs["lychee"]
    every = dataclasses.replace(lychee, roles=np.ones((layers, kh), bool))
    if short is None:
      short_model, _, short_configs = _tiny_model(args, BREAKDOWN_SHORT)
      short = _decode_per_token(args, short_model, BREAKDOWN_SHORT, short_configs["full"])
    # Alone.
    q, k, v, lengths = make_inputs(jax.random.key(s), 1, s, kh, g, d, jnp.float32)
    layer0 = context_step(dataclasses.replace(lychee, roles=np.ones((2, kh), bool)), 0)
    _, inherited, _ = layer0(q, k, v, lengths, None, None)
    heads = tuple(range(kh))

    @jax.jit
    def kernel_a(q, k, v, lengths):
      return sd.retrieval_decode_xla(q, k, v, lengths, heads, block_size=lychee.block_size)

    _, scores = kernel_a(q, k, v, lengths)

    @jax.jit
    def select(scores, lengths):
      return sd.select_blocks(
        scores,
        lengths,
        n_select=lychee.n_select,
        block_size=lychee.block_size,
        sink_tokens=lychee.sink_tokens,
        recent_tokens=lychee.recent_tokens,
      )

    sparse_cfg = dataclasses.replace(lychee, roles=single_layer_roles(kh, 0, layer=1))
    n, r = 16, args.repeats
    alone = {
      "full": looped_seconds(
        context_step(configs["full"], 0), q, k, v, lengths, None, None, steps=n, repeats=r
      ),
      "layer 0": looped_seconds(layer0, q, k, v, lengths, None, None, steps=n, repeats=r),
      "kernel A": looped_seconds(kernel_a, q, k, v, lengths, steps=n, repeats=r),
      "select": looped_seconds(select, scores, lengths, steps=n, repeats=r, cache=False),
      "sparse": looped_seconds(
        context_step(sparse_cfg, 1), q, k, v, lengths, inherited, None, steps=n, repeats=r
      ),
    }
    del q, k, v, scores, inherited
    # In the model.
    whole = {
      "full": _decode_per_token(args, model, s, configs["full"]),
      "lychee": _decode_per_token(args, model, s, lychee),
      "every layer retrieval": _decode_per_token(args, model, s, every),
    }
    f = (whole["full"] - short) / layers
    a = (whole["every layer retrieval"] - short) / layers
    p = (whole["lychee"] - short - a) / (layers - 1)
    print(
      f"\nS = {s}, budget {budget} ({s // budget}x fewer slots in a sparse layer), "
      f"{layers} layers, K {kh}, G {g}, D {d}"
    )
    print(f"  {'':<30} {'in the model':>12} {'alone':>12}")
    rows = (
      ("rest R (non-attention)", short, None),
      ("full layer F", f, alone["full"]),
      ("lychee layer 0 A", a, alone["layer 0"]),
      ("  kernel A (XLA path)", None, alone["kernel A"]),
      ("  select_blocks", None, alone["select"]),
      ("lychee sparse layer P", p, alone["sparse"]),
    )
    for name, inside, by_itself in rows:
      print(
        f"  {name:<30} {ms(inside) if inside is not None else '':>12} "
        f"{ms(by_itself) if by_itself is not None else '':>12}"
      )
    attention_full, attention_lychee = layers * f, a + (layers - 1) * p
    print(
      f"  model per token: full {ms(whole['full']).strip()}, lychee "
      f"{ms(whole['lychee']).strip()} ({whole['full'] / whole['lychee']:.2f}x); attention "
      f"only: {attention_full / attention_lychee:.2f}x; A / F {a / f:.2f}, P / F {p / f:.2f}; "
      f"shares of lychee's step: R {short / whole['lychee']:.0%}, layer 0 "
      f"{a / whole['lychee']:.0%}, sparse layers {(layers - 1) * p / whole['lychee']:.0%}"
    )
    results[s] = dict(rest=short, full=f, layer0=a, sparse=p, alone=alone, model=whole)
  return results


# -- kernels ------------------------------------------------------------------------------------


def section_kernels(args) -> dict:
  from pallas_kernels.sparse_decode import block_sparse_decode_pallas, retrieval_decode_pallas

  b, s, kh, g, d, blk = (2, 256, 2, 2, 32, 16) if args.quick else (2, 1024, 4, 2, 64, 32)
  n_sel = 8
  print(
    f"\n== kernels: Pallas interpret mode vs jnp references (correctness only; interpret mode, "
    f"NOT a speed figure) B {b}, S {s}, K {kh}, G {g}, D {d}, block {blk}, n_sel {n_sel} =="
  )
  q, k, v, _ = make_inputs(jax.random.key(1), b, s, kh, g, d, jnp.float32)
  lengths = jnp.asarray([s, s // 2 + 5], jnp.int32)[:b]
  heads_a = jnp.arange(kh, dtype=jnp.int32)[::-1]
  heads_b = jnp.arange(kh, dtype=jnp.int32)
  out_ref, scores_ref = sd.retrieval_decode_reference(q, k, v, lengths, heads_a, block_size=blk)
  out_a, scores_a = retrieval_decode_pallas(
    q, k, v, lengths, heads_a, block_size=blk, interpret=True
  )
  finite = jnp.isfinite(scores_ref)
  same_inf = bool(jnp.all(finite == jnp.isfinite(scores_a)))
  sel = sd.select_blocks(
    scores_ref, lengths, n_select=n_sel, block_size=blk, sink_tokens=blk, recent_tokens=blk
  )
  ref_b = sd.block_sparse_decode_reference(q, k, v, lengths, heads_b, sel, block_size=blk)
  out_b = block_sparse_decode_pallas(q, k, v, lengths, heads_b, sel, block_size=blk, interpret=True)
  gathered = sd.gathered_block_sparse_decode(q, k, v, lengths, heads_b, sel, block_size=blk)
  # The GPU schedule (Triton, split-K) in interpret mode, split small so several parts merge.
  loop_a, loop_scores = retrieval_decode_pallas(
    q, k, v, lengths, heads_a, block_size=blk, interpret=True, schedule="loop", kernel_block=4 * blk
  )
  loop_b = block_sparse_decode_pallas(
    q,
    k,
    v,
    lengths,
    heads_b,
    sel,
    block_size=blk,
    interpret=True,
    schedule="loop",
    blocks_per_split=2,
  )

  def err(x, y):
    return float(jnp.max(jnp.abs(x.astype(jnp.float32) - y.astype(jnp.float32))))

  errs = {
    "kernel A out (interpret) vs retrieval_decode_reference": err(out_a, out_ref),
    "kernel A scores (interpret) vs reference (finite)": err(
      jnp.where(finite, scores_a, 0), jnp.where(finite, scores_ref, 0)
    ),
    "kernel B (interpret) vs block_sparse_decode_reference": err(out_b, ref_b),
    "GPU schedule: kernel A out vs reference": err(loop_a, out_ref),
    "GPU schedule: kernel A scores vs reference (finite)": err(
      jnp.where(finite, loop_scores, 0), jnp.where(finite, scores_ref, 0)
    ),
    "GPU schedule: kernel B vs reference": err(loop_b, ref_b),
    "gathered XLA path vs block_sparse_decode_reference": err(gathered, ref_b),
  }
  for name, e in errs.items():
    print(f"  {name:<56} max abs err {e:.2e}")
  print(f"  kernel A scores: -inf pattern equals the reference: {same_inf}")
  return errs


# -- gpu ----------------------------------------------------------------------------------------


def section_gpu(args) -> dict:
  backend = jax.default_backend()
  print(f"\n== gpu: compiled kernel B vs dense decode attention on {backend} ==")
  if backend not in ("gpu", "tpu"):
    print(f"skipped: the default backend is {backend!r}, this section needs a GPU or TPU")
    return {}
  from pallas_kernels.sparse_decode import block_sparse_decode_pallas, retrieval_decode_pallas

  K, G, D = LLAMA3_8B["num_kv_heads"], LLAMA3_8B["group"], LLAMA3_8B["head_dim"]
  blk, budget = args.block_size, args.budget
  n_sel = budget // blk
  heads = jnp.arange(K, dtype=jnp.int32)
  print(
    f"K {K}, G {G}, D {D}, bfloat16, budget {budget} (block {blk}, {n_sel} blocks per head), "
    f"every head sparse with its own selection (kernel-level figure; median of {args.repeats})"
  )
  results = {}
  # A GPU times both of its schedules (Mosaic GPU wgmma and Triton split-K); a TPU its grid one.
  schedules = ("mosaic", "loop") if backend == "gpu" else ("grid",)
  pallas_ok: dict[str, bool] = {}
  for s in args.gpu_contexts:
    for b in args.gpu_batches:
      q, k, v, lengths = make_inputs(jax.random.key(s + b), b, s, K, G, D, jnp.bfloat16)
      rng = np.random.default_rng(s + b)
      ids = np.stack(
        [np.stack([rng.choice(s // blk, n_sel, replace=False) for _ in range(K)]) for _ in range(b)]
      ).astype(np.int32)
      block_idx = jnp.asarray(ids)
      row = {}
      xla_dense = jax.jit(
        lambda q, k, v, n: sd.retrieval_decode_reference(q, k, v, n, heads, block_size=blk)[0]
      )
      xla_sparse = jax.jit(
        lambda q, k, v, n, i: sd.gathered_block_sparse_decode(q, k, v, n, heads, i, block_size=blk)
      )
      row["xla_dense"] = median_seconds(xla_dense, q, k, v, lengths, repeats=args.repeats)
      row["xla_gathered"] = median_seconds(
        xla_sparse, q, k, v, lengths, block_idx, repeats=args.repeats
      )
      for sched in schedules:
        if pallas_ok.get(sched) is False:
          continue
        try:
          kern_a = jax.jit(
            lambda q, k, v, n, sched=sched: retrieval_decode_pallas(
              q, k, v, n, heads, block_size=blk, interpret=False, schedule=sched
            )[0]
          )
          kern_b = jax.jit(
            lambda q, k, v, n, i, sched=sched: block_sparse_decode_pallas(
              q, k, v, n, heads, i, block_size=blk, interpret=False, schedule=sched
            )
          )
          row[f"kernel_a_dense_{sched}"] = median_seconds(
            kern_a, q, k, v, lengths, repeats=args.repeats
          )
          row[f"kernel_b_{sched}"] = median_seconds(
            kern_b, q, k, v, lengths, block_idx, repeats=args.repeats
          )
          pallas_ok[sched] = True
        except Exception as e:  # noqa: BLE001 - report and go on with the other paths.
          pallas_ok[sched] = False
          print(
            f"NOTE: the Pallas kernels' {sched} schedule did not compile on {backend} "
            f"({type(e).__name__}: {str(e).splitlines()[0][:160]}); not timed further."
          )
      line = (
        f"  S {s:>6} B {b:>2}: XLA dense {ms(row['xla_dense'])}  XLA gathered "
        f"{ms(row['xla_gathered'])} ({row['xla_dense'] / row['xla_gathered']:.2f}x)"
      )
      for sched in schedules:
        if f"kernel_b_{sched}" in row:
          a, kb = row[f"kernel_a_dense_{sched}"], row[f"kernel_b_{sched}"]
          line += (
            f"\n      {sched}: kernel A dense {ms(a)}  kernel B {ms(kb)} (vs kernel A "
            f"{a / kb:.2f}x, vs XLA dense {row['xla_dense'] / kb:.2f}x)"
          )
      print(line)
      results[(s, b)] = row
      del q, k, v
  return results


def main(argv=None) -> dict:
  args = parse_args(argv)
  print(f"backend={jax.default_backend()} devices={jax.devices()} jax={jax.__version__}")
  sections = {
    "bytes": section_bytes,
    "step": section_step,
    "model": section_model,
    "breakdown": section_breakdown,
    "kernels": section_kernels,
    "gpu": section_gpu,
  }
  return {name: sections[name](args) for name in args.sections}


if __name__ == "__main__":
  main()
