"""Decode speed with the KV cache vs full recomputation, and chunked log-prob memory.

Part 1 (same run, same model, same tokens): greedy decoding of `--new-tokens`
tokens after a `--prompt-len` prompt on the ~50M-parameter `small-50m` preset,

  * cached: `reasoning_jax.generate.generate` (prefill + one jitted while_loop);
  * recompute: one jitted step that reruns the model over the whole
    (fixed-size, padded) sequence for every new token: the no-cache baseline.

Part 2: compiled temporary memory (XLA `memory_analysis()`) of value-and-grad of
chunked vs unchunked `chunked_token_logprobs` at T=2048, V=32k (see also
benchmarks/logprobs_memory.py).

Every figure is printed with its ratio to the baseline measured in this run.

  python benchmarks/generate.py [--preset small-50m --batch 4 --prompt-len 64 --new-tokens 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from reasoning_jax.generate import generate  # noqa: E402
from reasoning_jax.logprobs import chunked_token_logprobs  # noqa: E402
from reasoning_jax.models import Transformer, count_params, get_preset  # noqa: E402


def recompute_decode(model, prompts, new_tokens):
  """Greedy decoding without a cache: the full sequence is re-run for every token."""
  graphdef, state = nnx.split(model)
  b, p = prompts.shape
  total = p + new_tokens

  @jax.jit
  def run(state, prompts):
    model = nnx.merge(graphdef, state)
    buf = jnp.zeros((b, total), jnp.int32).at[:, :p].set(prompts)

    def step(t, buf):
      logits = model(buf)  # [B, total, V]: causal, so padding after t is invisible.
      nxt = jnp.argmax(jax.lax.dynamic_index_in_dim(logits, t - 1, axis=1, keepdims=False), -1)
      return jax.lax.dynamic_update_index_in_dim(buf, nxt.astype(jnp.int32), t, axis=1)

    return jax.lax.fori_loop(p, total, step, buf)[:, p:]

  return lambda: run(state, prompts)


def timed(fn, repeats):
  jax.block_until_ready(fn())  # Compile + warm up.
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - start)
  return best, out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--preset", default="small-50m")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--prompt-len", type=int, default=64)
  parser.add_argument("--new-tokens", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--logprob-seq-len", type=int, default=2048)
  parser.add_argument("--logprob-vocab", type=int, default=32000)
  parser.add_argument("--logprob-hidden", type=int, default=512)
  parser.add_argument("--chunk-size", type=int, default=256)
  args = parser.parse_args(argv)

  print(f"backend={jax.default_backend()} devices={jax.device_count()} jax={jax.__version__}")
  config = get_preset(args.preset)
  model = Transformer(config, rngs=nnx.Rngs(0))
  print(
    f"preset={args.preset} params={count_params(model):,} batch={args.batch} "
    f"prompt={args.prompt_len} new={args.new_tokens}"
  )
  prompts = jax.random.randint(
    jax.random.key(0), (args.batch, args.prompt_len), 0, config.vocab_size, jnp.int32
  )
  lengths = jnp.full((args.batch,), args.prompt_len, jnp.int32)

  def cached():
    return generate(model, prompts, lengths, max_new_tokens=args.new_tokens, temperature=0.0).tokens

  t_cache, tok_cache = timed(cached, args.repeats)
  t_full, tok_full = timed(recompute_decode(model, prompts, args.new_tokens), args.repeats)
  n = args.batch * args.new_tokens
  agree = float(np.mean(np.asarray(tok_cache) == np.asarray(tok_full)))
  print("\n== decode (greedy) ==")
  print(
    f"{'full recompute (baseline)':28s} {n / t_full:10.1f} tok/s  {t_full * 1e3:9.1f} ms  1.00x"
  )
  print(
    f"{'KV cache (generate)':28s} {n / t_cache:10.1f} tok/s  {t_cache * 1e3:9.1f} ms  "
    f"{t_full / t_cache:.2f}x"
  )
  print(f"token agreement cached vs recompute: {agree:.3f}")

  print("\n== sequence log-probs: value_and_grad temp memory ==")
  k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
  hidden = jax.random.normal(k1, (1, args.logprob_seq_len, args.logprob_hidden))
  kernel = jax.random.normal(k2, (args.logprob_hidden, args.logprob_vocab)) * 0.05
  targets = jax.random.randint(k3, (1, args.logprob_seq_len), 0, args.logprob_vocab)
  results = {}
  for name, chunk in (
    ("unchunked (baseline)", None),
    (f"chunked ({args.chunk_size})", args.chunk_size),
  ):

    def loss(h, w, chunk=chunk):
      logp, ent = chunked_token_logprobs(h, w, targets, chunk_size=chunk)
      return logp.sum() + ent.sum()

    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(hidden, kernel).compile()
    analysis = compiled.memory_analysis()
    temp = None if analysis is None else analysis.temp_size_in_bytes
    seconds, _ = timed(lambda: compiled(hidden, kernel), 1)
    results[name] = (temp, seconds)
  base_temp, base_time = results["unchunked (baseline)"]
  for name, (temp, seconds) in results.items():
    mem = "n/a" if temp is None else f"{temp / 2**20:9.1f} MiB"
    ratio = "" if temp is None or base_temp is None else f"mem {temp / base_temp:.3f}x"
    print(f"{name:22s} {mem}  {seconds * 1e3:8.1f} ms  {ratio}  time {seconds / base_time:.2f}x")


if __name__ == "__main__":
  main()
