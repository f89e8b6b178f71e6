"""Speculative decoding vs target-only decoding: passes per token, step costs, wall clock.

All figures come from the same run, on the same prompts and outputs:

  * plain:       `generate(target, ...)`, the baseline (greedy by default);
  * speculative: `speculative_generate(target, draft, num_draft=k)` for each `--k`.
    Greedy output equals plain's token for token, which the script checks.

Printed: target passes per emitted token (the issue's goal is <= 0.4), the acceptance rate,
the wall-clock ratio plain / speculative, and the cost-model prediction
`(1 - a^(k+1)) / ((1 - a)(k c + 1))` from the measured acceptance a and cost ratio c.
With `--semantic`, SemanticSpec (`semantic_speculative_generate`, KV caches kept across steps)
on the same prompts: with `--probe-dir` (the experiment's `<workdir>/probes`) the trained
probes decide; without, constant equal probes accept every draft step (spec 2.7 (b): draft
steps plus the target's bonus tokens, the most a step can save). Printed: target passes per
token, step acceptance, host-loop iterations and milliseconds per iteration, and the
wall-clock ratio plain / SemanticSpec (its output differs from plain's: not lossless).
Step costs are measured in isolation, each as one jitted loop of `--steps` steps on a filled
cache: a target decode step (1 token), a target verify step (k + 1 tokens; its overhead over a
decode step), and a draft decode step (c = draft step / target decode step).

Models: two local Hugging Face folders (`--target-hf-dir`, `--draft-hf-dir`; e.g. a pair
exported with `to_hf` from models trained here), else two random presets of the sizes given.
Random weights make the acceptance rate meaningless (the step costs and the verify overhead
are not); say which you ran when quoting figures. Prompts are random token ids, or with
`--arith-prompts` the held-out questions of the pair trained by `python -m
experiments.speculative` (one- and two-digit addition, byte tokenizer, stopping at its EOS),
on which that pair's acceptance means something.

  python benchmarks/speculative.py                                  # random pair, CPU-sized
  python benchmarks/speculative.py --target-hf-dir=/m/target --draft-hf-dir=/m/draft --k 2 4 8
  python benchmarks/speculative.py --arith-prompts --batch 8 \
      --target-hf-dir=outputs/speculative/pair/target_hf \
      --draft-hf-dir=outputs/speculative/pair/draft_hf           # the pair trained here
  python benchmarks/speculative.py --arith-prompts --semantic \
      --probe-dir=outputs/speculative/probes ...                 # + SemanticSpec, its probes
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._timing import median_seconds  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from reasoning_jax.generate import generate  # noqa: E402
from reasoning_jax.models import Transformer, count_params, get_preset  # noqa: E402
from reasoning_jax.speculative import expected_speedup, speculative_generate  # noqa: E402


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--target-hf-dir", default="")
  p.add_argument("--draft-hf-dir", default="")
  p.add_argument("--preset", default="tiny-llama")
  p.add_argument("--vocab", type=int, default=4096)
  p.add_argument("--target-size", type=int, nargs=2, default=(512, 8), metavar=("HIDDEN", "LAYERS"))
  p.add_argument("--draft-size", type=int, nargs=2, default=(128, 2), metavar=("HIDDEN", "LAYERS"))
  p.add_argument("--batch", type=int, default=4)
  p.add_argument(
    "--calls",
    type=int,
    default=1,
    help="decoder calls timed together, each on its own --batch prompts (e.g. --batch 1 "
    "--calls 32: 32 prompts one at a time, the latency setting of the experiment)",
  )
  p.add_argument("--prompt-len", type=int, default=32)
  p.add_argument("--new-tokens", type=int, default=64)
  p.add_argument("--k", type=int, nargs="+", default=(2, 4, 8))
  p.add_argument("--temperature", type=float, default=0.0)
  p.add_argument(
    "--arith-prompts",
    action="store_true",
    help="prompts: arithmetic questions (byte tokenizer, EOS stops), not random ids",
  )
  p.add_argument("--semantic", action="store_true", help="also time SemanticSpec")
  p.add_argument("--probe-dir", default="", help="SemanticSpec probes: <dir>/{target,draft}")
  p.add_argument(
    "--boundary",
    type=int,
    nargs="+",
    default=None,
    help="SemanticSpec step-ending ids (default: ',' and newline for --arith-prompts, else "
    "every id divisible by 8)",
  )
  p.add_argument("--max-step-tokens", type=int, default=16)
  p.add_argument("--steps", type=int, default=16, help="steps per timed loop (step costs)")
  p.add_argument("--repeats", type=int, default=3)
  return p.parse_args(argv)


def random_model(args, hidden, layers, seed):
  heads = max(hidden // 64, 1)
  config = get_preset(args.preset).replace(
    vocab_size=args.vocab,
    hidden_size=hidden,
    intermediate_size=4 * hidden,
    num_layers=layers,
    num_heads=heads,
    num_kv_heads=heads,
    head_dim=hidden // heads,
  )
  return Transformer(config, rngs=nnx.Rngs(seed))


def load_pair(args):
  if bool(args.target_hf_dir) != bool(args.draft_hf_dir):
    raise SystemExit("give both --target-hf-dir and --draft-hf-dir, or neither")
  if args.target_hf_dir:
    from reasoning_jax.models.hf import from_hf

    return from_hf(args.target_hf_dir), from_hf(args.draft_hf_dir), "HF folders"
  target = random_model(args, *args.target_size, seed=0)
  draft = random_model(args, *args.draft_size, seed=1)
  return target, draft, "random presets (acceptance meaningless)"


def arith_prompts(batch, width):
  """`batch` addition questions as the experiment asks them, right-padded to `width`."""
  import random

  from reasoning_jax.data.synthetic import arithmetic_example
  from reasoning_jax.tokenizers import ByteTokenizer

  tok, rng = ByteTokenizer(), random.Random(1234)
  rows = [
    tok.encode(
      arithmetic_example(rng, max_digits=2, ops=("+",), style="compact")["question"] + "\n"
    )[:width]
    for _ in range(batch)
  ]
  prompts = np.zeros((batch, width), np.int32)
  for i, row in enumerate(rows):
    prompts[i, : len(row)] = row
  return jnp.asarray(prompts), jnp.asarray([len(r) for r in rows], jnp.int32), tok.eos_id


def step_cost(model, batch, width, cache_len, steps, repeats):
  """Seconds per forward of `width` tokens on a cache of `cache_len` slots (jitted loop)."""
  graphdef, state = nnx.split(model)
  start = cache_len - steps * width - 1

  @jax.jit
  def run(state, cache):
    model = nnx.merge(graphdef, state)

    def body(i, carry):
      cache, tok = carry
      positions = start + i * width + jnp.arange(width)[None, :] + jnp.zeros((batch, 1), jnp.int32)
      hidden, cache = model.forward(
        jnp.broadcast_to(tok[:, None], (batch, width)), positions=positions, cache=cache
      )
      return cache, jnp.argmax(model.unembed(hidden[:, -1]), -1).astype(jnp.int32)

    _, tok = jax.lax.fori_loop(0, steps, body, (cache, jnp.zeros((batch,), jnp.int32)))
    return tok

  cache = model.init_cache(batch, cache_len)
  return median_seconds(lambda: run(state, cache), repeats=repeats) / steps


def main(argv=None):
  args = parse_args(argv)
  target, draft, kind = load_pair(args)
  rng = np.random.default_rng(0)
  vocab = target.config.vocab_size
  b, p, n = args.batch, args.prompt_len, args.new_tokens
  rows = b * args.calls
  prompts = jnp.asarray(rng.integers(1, vocab, (rows, p)), jnp.int32)
  lengths = jnp.full((rows,), p, jnp.int32)
  eos_id = None
  if args.arith_prompts:
    prompts, lengths, eos_id = arith_prompts(rows, p)
  calls = [(prompts[i * b : (i + 1) * b], lengths[i * b : (i + 1) * b]) for i in range(args.calls)]
  key = None if args.temperature == 0 else jax.random.key(0)
  print(
    f"models: {kind}; target {count_params(target) / 1e6:.1f}M params, draft "
    f"{count_params(draft) / 1e6:.1f}M; batch {b} x {args.calls} calls, prompt {p}, {n} new "
    "tokens, "
    f"temperature {args.temperature}; {jax.devices()[0].platform}"
  )

  cache_len = p + n + max(args.k)
  t_decode = step_cost(target, b, 1, cache_len, args.steps, args.repeats)
  d_decode = step_cost(draft, b, 1, cache_len, args.steps, args.repeats)
  c = d_decode / t_decode
  print(
    f"target decode step {t_decode * 1e3:.2f} ms, draft {d_decode * 1e3:.2f} ms "
    f"(cost ratio c = {c:.3f})"
  )

  common = dict(max_new_tokens=n, temperature=args.temperature, key=key, eos_id=eos_id)
  plain_out = [generate(target, pr, ln, **common) for pr, ln in calls]
  plain_s = median_seconds(
    lambda: [generate(target, pr, ln, **common).tokens for pr, ln in calls], repeats=args.repeats
  )
  emitted = sum(int(np.asarray(o.lengths).sum()) for o in plain_out)
  print(f"plain generate: {plain_s * 1e3:.1f} ms ({emitted / plain_s:.0f} tokens/s)")
  print(
    "| k | verify step / decode step | target passes per token | acceptance | "
    "wall clock plain / spec | cost model |"
  )
  print("|---|---|---|---|---|---|")
  for k in args.k:
    verify = step_cost(target, b, k + 1, cache_len, args.steps, args.repeats)
    passes = tokens = accepted = proposed = 0.0
    for (pr, ln), plain in zip(calls, plain_out):
      stats: dict = {}
      out = speculative_generate(target, draft, pr, ln, num_draft=k, stats=stats, **common)
      if args.temperature == 0:
        np.testing.assert_array_equal(out.tokens, plain.tokens)  # Exactness, greedy.
      passes, tokens = passes + stats["row_target_calls"], tokens + stats["emitted"]
      drafts = stats["acceptance_histogram"].sum() * k
      accepted, proposed = accepted + stats["acceptance_rate"] * drafts, proposed + drafts
    spec_s = median_seconds(
      lambda k=k: [
        speculative_generate(target, draft, pr, ln, num_draft=k, **common).tokens
        for pr, ln in calls
      ],
      repeats=args.repeats,
    )
    alpha = accepted / max(proposed, 1)
    model = expected_speedup(min(alpha, 1.0), k, c)
    print(
      f"| {k} | {verify / t_decode:.2f} | {passes / tokens:.3f} | "
      f"{alpha:.3f} | {plain_s / spec_s:.2f}x | {model:.2f}x |"
    )

  if args.semantic:
    semantic_rows(args, target, draft, calls, plain_s, common)


def semantic_rows(args, target, draft, calls, plain_s, common):
  """SemanticSpec against the plain baseline timed above (same prompts, budget, sampling)."""
  from reasoning_jax.speculative import Probe, load_probe, semantic_speculative_generate

  if args.probe_dir:
    probes = [load_probe(os.path.join(args.probe_dir, role)) for role in ("target", "draft")]
    kind = f"trained probes ({args.probe_dir})"
  else:
    probes = []
    for model in (target, draft):  # Output sigmoid(0) = 0.5 whatever the states: ratio 1.
      probe = Probe(model.config.hidden_size, (8,), rngs=nnx.Rngs(0))
      for layer in probe.layers:
        layer.kernel[...] = jnp.zeros_like(layer.kernel[...])
        layer.bias[...] = jnp.zeros_like(layer.bias[...])
      probes.append(probe)
    kind = "constant equal probes (every draft step accepted)"
  if args.boundary:
    boundary = tuple(args.boundary)
  elif args.arith_prompts:
    boundary = (13, 47)  # Byte tokenizer: newline and ",".
  else:
    boundary = tuple(range(0, target.config.vocab_size, 8))
  kwargs = dict(
    boundary_ids=boundary,
    max_step_tokens=args.max_step_tokens,
    top_p=1.0,
    **common,
  )
  if kwargs["key"] is None:
    kwargs["key"] = jax.random.key(0)  # The bonus and the acceptance test draw.
  totals = dict(emitted=0, target_passes=0, steps_proposed=0, steps_accepted=0, iterations=0)
  totals.update(fast_path_accepts=0, probe_accepts=0)

  def run(record=False):
    outs = []
    for pr, ln in calls:
      stats: dict = {}
      outs.append(
        semantic_speculative_generate(target, draft, *probes, pr, ln, stats=stats, **kwargs).tokens
      )
      if record:
        for name in totals:
          totals[name] += stats[name]
    return outs

  run(record=True)  # Compiles every block width this input needs.
  semantic_s = median_seconds(run, repeats=args.repeats)
  print(f"\nSemanticSpec, {kind}; boundary ids {boundary[:8]}{'...' if len(boundary) > 8 else ''}")
  print(
    "| target passes per token | step acceptance | fast path / probe accepts | iterations | "
    "ms per iteration | wall clock plain / semantic |"
  )
  print("|---|---|---|---|---|---|")
  proposed = max(totals["steps_proposed"], 1)
  print(
    f"| {totals['target_passes'] / max(totals['emitted'], 1):.3f} | "
    f"{totals['steps_accepted'] / proposed:.3f} | "
    f"{totals['fast_path_accepts'] / proposed:.2f} / {totals['probe_accepts'] / proposed:.2f} | "
    f"{totals['iterations']} | {semantic_s / max(totals['iterations'], 1) * 1e3:.1f} | "
    f"{plain_s / semantic_s:.2f}x |"
  )


if __name__ == "__main__":
  main()
