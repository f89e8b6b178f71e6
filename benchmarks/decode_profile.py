"""Where our greedy decode step's time goes, and the memory-bandwidth floor under it.

Used by benchmarks/generate_vs_tunix.py with `--profile` (the default), on the model and the
prompts of its run; imported from the script's folder (`python benchmarks/...` puts that
folder on sys.path), like benchmarks/tunix_tokenizer.py.

  profile_decode: per-step milliseconds of our decode step, split into transformer body,
    unembedding matmul, log-prob bookkeeping and generate's loop overhead.
  memory_floor: the bytes one decode step must read (every weight it uses once, the KV cache
    at its final length), the read bandwidth of this machine measured with JAX in the same
    run, and their ratio: no implementation's step can be faster than that on this machine.
    An fp32 batch-B step does 2B flops per 4-byte weight it reads (B/2 flops per byte, 4 at
    B = 8), far below what a CPU core computes per byte it can load, so it is bound by
    memory, not compute: if the floor is above half of tunix's measured step, a 2x speed-up
    over tunix is out of reach on this machine, whatever the implementation.
"""

from __future__ import annotations

import functools
import statistics
import time


def add_arguments(parser):
  """The profile's command-line options (after generate_vs_tunix.py's `--profile`)."""
  parser.add_argument("--profile-steps", type=int, default=32, help="decode steps per timed loop")
  parser.add_argument("--profile-repeats", type=int, default=5)
  parser.add_argument(
    "--bandwidth-mib",
    type=int,
    default=512,
    help="buffer streamed to measure read bandwidth (keep it well above the CPU caches)",
  )
  parser.add_argument(
    "--bandwidth-repeats", type=int, default=7, help="timed calls per bandwidth/matmul probe"
  )


def profile_decode(model, prompts, args):
  """Per-step milliseconds of our greedy decode step, split into its parts.

  Every variant is one jitted loop of `--profile-steps` steps (the per-step cost does not
  depend on the step: attention always spans all `prompt_len + new_tokens` cache slots),
  each on a fresh donated cache; variants are timed round-robin `--profile-repeats` times,
  so that load from other processes hits all alike, and min and median are reported.

  In place (each adds one piece to the previous one; the next token is derived from the
  step's output, so nothing is dead code):
    body:      model.forward on [B, 1] with the cache (next token: sign of the hidden);
    +unembed:  ... + model.unembed (the [B, H] x [H, V] matmul) + argmax;
    +logprob:  ... + sample_logits (argmax + full-vocab log_softmax + gather), the step
               generate computes;
    generate:  generate's own decode while_loop (adds its output buffers, EOS/done
               bookkeeping and the while condition).
  In isolation (the same loop, only that piece, on fixed inputs shifted by the step index):
    unembed alone (matmul + argmax), argmax alone and sample_logits alone on [B, V] logits,
    and an empty loop that only carries the cache.

  XLA's cost analysis of one in-place step (flops, bytes accessed) is printed alongside.
  """
  import jax
  import jax.numpy as jnp
  from flax import nnx

  from reasoning_jax.generate.generate import _compiled_fns, GenerateSettings
  from reasoning_jax.generate.sampling import sample_logits

  b, p = prompts.shape
  n = args.new_tokens
  steps = min(args.profile_steps, n - 1)
  graphdef, state = nnx.split(model)
  kernel = model.unembed_kernel()
  key = jax.random.key(1)
  hidden0 = jax.random.normal(key, (b, kernel.shape[0]), jnp.float32)
  logits0 = jax.random.normal(key, (b, kernel.shape[1]), jnp.float32)

  def step(model, cache, last, i, kind):
    positions = jnp.full((b, 1), p, jnp.int32) + i
    hidden, cache = model.forward(last[:, None], positions=positions, cache=cache)
    if kind == "body":
      return cache, jnp.where(hidden[:, 0, 0] > 0, 3, 4).astype(jnp.int32), 0.0
    logits = model.unembed(hidden[:, 0])
    if kind == "unembed":
      return cache, jnp.argmax(logits, axis=-1).astype(jnp.int32), 0.0
    token, logprob, _ = sample_logits(logits, None, temperature=0.0)
    return cache, token, logprob

  def isolated(i, kind):
    shift = i.astype(jnp.float32) * 1e-3
    if kind == "unembed alone":
      logits = jnp.matmul(hidden0 + shift, kernel, preferred_element_type=jnp.float32)
      return jnp.argmax(logits, axis=-1).astype(jnp.int32), 0.0
    if kind == "argmax alone":
      return jnp.argmax(logits0 + shift, axis=-1).astype(jnp.int32), 0.0
    if kind == "sample_logits alone":
      token, logprob, _ = sample_logits(logits0 + shift, None, temperature=0.0)
      return token, logprob
    return jnp.full((b,), i, jnp.int32), 0.0  # empty loop

  def make_loop(kind):
    def run(state, cache, last):
      model = nnx.merge(graphdef, state)

      def body(i, carry):
        cache, last, acc = carry
        if kind in ("body", "unembed", "logprob"):
          cache, token, logprob = step(model, cache, last, i, kind)
        else:
          token, logprob = isolated(i, kind)
          token = token + last  # A loop-carried dependency.
        return cache, token, acc + logprob

      acc = jnp.zeros((b,), jnp.float32)
      # Returning the cache lets XLA update the donated buffers in place, as generate does.
      return jax.lax.fori_loop(0, steps, body, (cache, last, acc))

    return jax.jit(run, donate_argnums=(1,))

  last = jnp.asarray(prompts[:, -1], jnp.int32)
  ids, lens = jnp.asarray(prompts, jnp.int32), jnp.full((b,), p, jnp.int32)
  cache_size = p + n  # As in the benchmark: attention spans p + n slots.
  prefill, decode = _compiled_fns(
    graphdef, GenerateSettings(steps + 1, cache_size, 0.0, 0, 1.0, (), 0)
  )

  def fresh_cache():
    return jax.block_until_ready(model.init_cache(b, cache_size))

  def run_generate():
    cache, carry = jax.block_until_ready(prefill(state, fresh_cache(), ids, lens, None))
    start = time.perf_counter()
    jax.block_until_ready(decode(state, cache, carry, lens, None))
    return time.perf_counter() - start

  def run_loop(fn):
    cache = fresh_cache()
    start = time.perf_counter()
    jax.block_until_ready(fn(state, cache, last))
    return time.perf_counter() - start

  kinds = (
    "body",
    "unembed",
    "logprob",
    "generate",
    "unembed alone",
    "argmax alone",
    "sample_logits alone",
    "empty loop",
  )
  runners = {
    k: (run_generate if k == "generate" else functools.partial(run_loop, make_loop(k)))
    for k in kinds
  }
  for run in runners.values():
    run()  # Compile.
  times = {k: [] for k in kinds}
  for _ in range(args.profile_repeats):
    for k in kinds:
      times[k].append(runners[k]() / steps * 1e3)
  ms = {k: min(v) for k, v in times.items()}
  med = {k: statistics.median(v) for k, v in times.items()}

  cost = {}
  for kind in ("body", "unembed", "logprob"):

    def one(state, cache, last, kind=kind):
      return step(nnx.merge(graphdef, state), cache, last, 0, kind)[1:]

    analysis = jax.jit(one).lower(state, model.init_cache(b, cache_size), last).compile()
    analysis = analysis.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    cost[kind] = {
      "flops": float((analysis or {}).get("flops", float("nan"))),
      "bytes": float((analysis or {}).get("bytes accessed", float("nan"))),
    }

  labels = {
    "body": "body: forward [B,1] + KV cache",
    "unembed": "body + unembed + argmax",
    "logprob": "body + unembed + sample_logits",
    "generate": "generate's decode while_loop",
    "unembed alone": "unembed matmul + argmax alone",
    "argmax alone": "argmax [B,V] alone",
    "sample_logits alone": "sample_logits [B,V] alone",
    "empty loop": "empty loop carrying the cache",
  }
  print(
    f"\n== our decode step: ms per step (loops of {steps} steps, batch {b}, cache {cache_size} "
    f"slots, {args.profile_repeats} round-robin repeats) =="
  )
  print(f"{'variant':34s} {'min':>8} {'median':>8} {'XLA GFLOP':>10} {'XLA MiB':>8}")
  for kind in kinds:
    c = cost.get(kind)
    extra = f" {c['flops'] / 1e9:10.3f} {c['bytes'] / 2**20:8.1f}" if c else ""
    print(f"{labels[kind]:34s} {ms[kind]:8.3f} {med[kind]:8.3f}{extra}")
  split = {
    "transformer body": ms["body"],
    "unembed matmul (+ argmax)": ms["unembed"] - ms["body"],
    "log_softmax + gather (logprob)": ms["logprob"] - ms["unembed"],
    "buffers/EOS/while (loop overhead)": ms["generate"] - ms["logprob"],
  }
  print("split of generate's step (differences of the minima above):")
  for name, value in split.items():
    print(f"  {name:34s} {value:8.3f} ms  ({value / ms['generate'] * 100:5.1f}%)")
  print(
    "isolated: unembed matmul "
    f"{ms['unembed alone'] - ms['argmax alone']:.3f} ms, log_softmax + gather "
    f"{ms['sample_logits alone'] - ms['argmax alone']:.3f} ms, argmax {ms['argmax alone']:.3f} "
    f"ms, empty loop {ms['empty loop']:.4f} ms per step"
  )
  return {"min_ms": ms, "median_ms": med, "split_ms": split, "xla_cost_per_step": cost}


def _median_s(fn, *args, repeats):
  """Median seconds of `repeats` blocking calls of `fn(*args)`, after two warm-up calls."""
  import jax

  for _ in range(2):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(max(1, repeats)):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def step_bytes(model, batch, cache_len):
  """Bytes one decode step must read: `(weights, cache, detail)`.

  Weights: every parameter array of the NNX state once, by its nbytes. The embedding matrix
  counts once when tied (the unembedding reads all of it); untied, the step gathers only
  `batch` rows of it, and `lm_head` is read in full. Cache: the KV cache `model.init_cache`
  builds for `cache_len` slots (what `generate` allocates for prompt + new tokens; attention
  reads every slot each step), sized with `jax.eval_shape` without allocating it.
  """
  import jax
  import numpy as np
  from flax import nnx

  state = nnx.state(model, nnx.Param)
  weights, embed = 0, 0
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    if jax.tree_util.keystr(path).startswith("['embed']"):
      embed = leaf.nbytes
      if not model.config.tie_word_embeddings:  # Only the looked-up rows are read.
        weights += batch * leaf.nbytes // leaf.shape[0]
        continue
    weights += leaf.nbytes
  cache = jax.eval_shape(lambda: model.init_cache(batch, cache_len))
  cache_bytes = sum(
    int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(cache)
  )
  detail = {"embed_bytes": embed, "tied": bool(model.config.tie_word_embeddings)}
  return weights, cache_bytes, detail


def _step_matmuls(model, batch):
  """`(x, w)` pairs: every weight matrix of one decode step, as `[B, K] x [K, N]`.

  Attention output projections `[heads, head_dim, H]` contract over their two leading axes,
  every other layer matrix over its first; the unembedding is `model.unembed_kernel()`.
  """
  import jax
  from flax import nnx

  pairs = []
  state = nnx.state(model.layers, nnx.Param)
  for path, w in jax.tree_util.tree_flatten_with_path(state)[0]:
    if w.ndim < 2:
      continue  # Norm weights, biases.
    split = 2 if "o_proj" in jax.tree_util.keystr(path) else 1
    k = 1
    for d in w.shape[:split]:
      k *= d
    pairs.append(w.reshape(k, -1))
  pairs.append(model.unembed_kernel())
  key = jax.random.key(2)
  return [(jax.random.normal(key, (batch, w.shape[0]), w.dtype), w) for w in pairs]


def memory_floor(model, args, ours_ms=None, tunix_ms=None):
  """The memory-bandwidth floor of one decode step at `--batch`, against measured steps.

  Bandwidth: a jitted `jnp.sum` over a float32 buffer of `--bandwidth-mib` MiB, and a jitted
  `[B, K] x [K, N]` matmul streaming the same buffer (XLA may run the reduction on fewer
  threads than the matmul); the larger rate is used, so the floor is a lower bound. Also
  timed: all of the step's weight matmuls alone (one jitted call, nothing else of the step).
  `ours_ms`, `tunix_ms`: measured decode milliseconds per step (None: not measured).
  """
  import jax
  import jax.numpy as jnp

  b = args.batch
  weights, cache, detail = step_bytes(model, b, args.prompt_len + args.new_tokens)
  total = weights + cache
  k = 512
  cols = max(1, args.bandwidth_mib * 2**20 // (4 * k))
  buf = jax.block_until_ready(
    jax.jit(lambda: jnp.arange(k * cols, dtype=jnp.float32).reshape(k, cols) * 1e-9)()
  )
  x = jax.random.normal(jax.random.key(3), (b, k), jnp.float32)
  reps = args.bandwidth_repeats
  sum_s = _median_s(jax.jit(jnp.sum), buf, repeats=reps)
  matmul_s = _median_s(jax.jit(jnp.matmul), x, buf, repeats=reps)
  del buf
  buf_bytes = 4 * k * cols
  gbps = {"sum": buf_bytes / sum_s / 1e9, "matmul": buf_bytes / matmul_s / 1e9}
  bandwidth = max(gbps.values())
  floor_ms = total / (bandwidth * 1e9) * 1e3

  pairs = _step_matmuls(model, b)
  mm_bytes = sum(w.nbytes for _, w in pairs)

  @jax.jit
  def all_matmuls(pairs):
    return [jnp.matmul(x, w, preferred_element_type=jnp.float32) for x, w in pairs]

  mm_ms = _median_s(all_matmuls, pairs, repeats=reps) * 1e3

  mib = 2**20
  print(
    f"\n== memory floor of one decode step (batch {b}, {args.bandwidth_mib} MiB buffer, "
    f"medians of {reps} calls) =="
  )
  print(
    f"read bandwidth: jnp.sum {gbps['sum']:.1f} GB/s, [{b},{k}]x[{k},{cols}] matmul "
    f"{gbps['matmul']:.1f} GB/s; weight matmuls of the step alone ({len(pairs)} matrices, "
    f"{mm_bytes / mib:.1f} MiB): {mm_ms:.3f} ms ({mm_bytes / mm_ms / 1e6:.1f} GB/s)"
  )
  fmt = lambda v: "not measured" if v is None else f"{v:.2f} ms/step"
  line = (
    f"memory floor: {floor_ms:.2f} ms/step ({weights / mib:.1f} MiB weights + "
    f"{cache / mib:.1f} MiB cache at {bandwidth:.1f} GB/s), best case "
    f"{b / floor_ms * 1e3:.0f} tok/s; ours {fmt(ours_ms)}, tunix "
    f"{fmt(tunix_ms) if tunix_ms is not None else 'skipped'}"
  )
  verdict = None
  if tunix_ms is not None:
    line += f": a 2x over tunix needs <= {tunix_ms / 2:.2f} ms"
    verdict = floor_ms <= tunix_ms / 2
    line += (
      " (floor is below that: not ruled out by bandwidth)"
      if verdict
      else " (floor is above that: impossible on this machine)"
    )
  print(line)
  return {
    "weight_bytes": weights,
    "cache_bytes": cache,
    **detail,
    "bandwidth_buffer_bytes": buf_bytes,
    "read_gbps": gbps,
    "floor_gbps": bandwidth,
    "floor_ms_per_step": floor_ms,
    "floor_tokens_per_s": b / floor_ms * 1e3,
    "weight_matmuls_ms": mm_ms,
    "weight_matmul_bytes": mm_bytes,
    "ours_ms_per_step": ours_ms,
    "tunix_ms_per_step": tunix_ms,
    "tunix_2x_possible_by_bandwidth": verdict,
  }
