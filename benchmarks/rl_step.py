"""One full RL step (rollout + update) on a small preset: tokens/s, memory, ratios.

Measured in the same invocation:
  * rollout (KV-cache generate + rewards + old log-probs) and update time, tokens/s, and the
    phase breakdown of a step: prefill, decode, score (detokenise + rewards + batch
    assembly), old log-probs (only with --recompute-old-logp) and update;
  * the sampling primitive of a decode step on `[N, V]` logits: our two-level inverse-CDF
    draw vs `jax.random.categorical` (Gumbel-max), and `first_argmax` vs `jnp.argmax`;
  * compiled temporary memory of the update's gradient with chunked vs unchunked log-probs;
  * the whole step on 1 vs 8 host devices (separate processes; same global batch), on 8 with
    the rollout rows split over the devices (as `run_rl`) and unsplit;
  * optionally (--tunix-python PATH), google-tunix's GRPO learner on the same model size,
    batch and lengths (benchmarks/tunix_grpo.py, run with that interpreter), and the ratio
    of its step time to the 1-device, unchunked run above (> 1: ours is faster).

  python benchmarks/rl_step.py [--prompts 8 --group 4 --new-tokens 64 --vocab 32000]
      [--steps 3] [--tunix-python /path/to/tunix-venv/bin/python]

--steps times that many steps after the compiling one and reports medians (default 1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(args):
  sys.path.insert(0, REPO)
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from flax import nnx

  from reasoning_jax import rl, sharding
  from reasoning_jax.models import Transformer, get_preset
  from reasoning_jax.models.partition_rules import rules_for
  from reasoning_jax.rl.rollout import collect_rollouts, make_logprob_fn
  from reasoning_jax.rl.trainer import make_rl_loss_fn
  from reasoning_jax.train.step import init_train_state, make_train_step, state_shardings

  class Tok:
    eos_id = 2

    def decode_batch(self, tokens, lengths):
      return [" ".join(map(str, row[:n])) for row, n in zip(tokens, lengths)]

  config = get_preset("tiny-qwen3").replace(
    vocab_size=args.vocab,
    hidden_size=256,
    intermediate_size=768,
    num_layers=4,
    num_heads=8,
    num_kv_heads=4,
    head_dim=32,
  )
  model = Transformer(config, rngs=nnx.Rngs(0))
  tx = optax.adamw(1e-5)
  graphdef, state = init_train_state(model, tx)
  mesh = sharding.make_mesh(json.loads(args.mesh))
  shards = state_shardings(state, tx, rules_for(config.family), mesh)
  state = jax.device_put(state, shards)
  loss = rl.make_loss("dispo")
  chunk = args.chunk or None
  # As run_rl with one update per rollout: the update's forward pass gives the old log-probs
  # (no separate pass after sampling) unless --recompute-old-logp.
  recompute = args.recompute_old_logp
  # As run_rl: only the completion window goes through the vocabulary head (--no-window: all).
  window = None if args.no_window else args.new_tokens
  loss_fn = make_rl_loss_fn(
    loss, chunk_size=chunk, tis_cap=None if recompute else 2.0, window=window
  )
  step = make_train_step(
    graphdef,
    tx,
    loss_fn,
    mesh=mesh,
    shardings=shards,
    aux_merge=rl.merge_aux,
    aux_finalize=lambda a, d: rl.summarize_aux(a),
  )
  logprob_fn = make_logprob_fn(graphdef, chunk_size=chunk, window=window)
  rng = np.random.default_rng(0)
  prompts = {
    "prompts": rng.integers(3, args.vocab, (args.prompts, 32)).astype(np.int32),
    "prompt_lengths": np.full((args.prompts,), 32, np.int32),
    "answer": np.array(["0"] * args.prompts, dtype=object),
  }

  def reward_fn(completions, answers, **_):
    return rng.random(len(completions)).astype(np.float32)

  def one_step(i, phases=None):
    t0 = time.perf_counter()
    batch = collect_rollouts(
      graphdef,
      current["params"],
      prompts,
      tokenizer=Tok(),
      reward_fn=reward_fn,
      group_size=args.group,
      max_new_tokens=args.new_tokens,
      key=jax.random.key(i),
      logprob_fn=logprob_fn,
      recompute_old_logp=recompute,
      timings=phases,
      mesh=None if args.unsplit_rollouts else mesh,  # As run_rl: rows over the batch axes.
    )
    t1 = time.perf_counter()
    adv = rl.ADVANTAGES.get("grpo")(
      jnp.asarray(batch.rewards), group_ids=jnp.asarray(batch.group_ids)
    )
    arrays = {"tokens": batch.tokens, "mask": batch.mask, "advantages": np.asarray(adv)}
    if recompute:
      arrays["old_logp"] = batch.old_logp
    else:
      arrays["sampler_logp"] = batch.sampler_logp
    return batch, arrays, t0, t1

  current = {"params": state.params}
  batch, arrays, _, _ = one_step(0)  # Compile everything once.
  state, metrics = step(state, sharding.shard_batch(arrays, mesh))  # The step donates state.
  jax.block_until_ready(metrics)
  rollout_s, update_s, step_s, token_counts, phase_list = [], [], [], [], []
  for i in range(1, args.steps + 1):
    current["params"] = state.params
    phases = {}
    batch, arrays, t0, t1 = one_step(i, phases)
    t2 = time.perf_counter()
    state, metrics = step(state, sharding.shard_batch(arrays, mesh))
    jax.block_until_ready(metrics)
    t3 = time.perf_counter()
    rollout_s.append(t1 - t0)
    update_s.append(t3 - t2)
    phases["update_s"] = t3 - t2
    phase_list.append(phases)
    step_s.append(t3 - t0)
    token_counts.append(int(batch.mask.sum()))
  tokens = int(np.median(token_counts))
  grad_fn = jax.jit(jax.grad(lambda p, b: loss_fn(nnx.merge(graphdef, p), b)[0]))
  analysis = (
    grad_fn.lower(state.params, {k: jnp.asarray(v) for k, v in arrays.items()})
    .compile()
    .memory_analysis()
  )
  median = lambda xs: float(np.median(xs))  # pylint: disable=unnecessary-lambda-assignment
  phase_medians = {k: median([p[k] for p in phase_list]) for k in phase_list[0]}
  sampling_ms = (
    sampling_primitives(args.prompts * args.group, args.vocab) if args.primitives else {}
  )
  print(
    json.dumps(
      {
        "devices": jax.device_count(),
        "chunk": chunk,
        "rollout_s": median(rollout_s),
        "update_s": median(update_s),
        "step_s": median(step_s),
        "step_s_per_step": step_s,
        "completion_tokens": tokens,
        "tokens_per_s": tokens / median(step_s),
        "grad_temp_bytes": None if analysis is None else int(analysis.temp_size_in_bytes),
        "phases": phase_medians,
        "window": window,
        "sampling_ms": sampling_ms,
      }
    )
  )


def sampling_primitives(rows, vocab, repeats=20):
  """Milliseconds per call of one decode step's sampling primitive on `[rows, vocab]` logits."""
  import jax
  import jax.numpy as jnp

  from reasoning_jax.generate.sampling import categorical_sample, first_argmax

  logits = jax.random.normal(jax.random.key(0), (rows, vocab)) * 2.0
  log_probs = jax.nn.log_softmax(logits)
  fns = {
    "jax.random.categorical": jax.jit(lambda k, lp: jax.random.categorical(k, lp)),
    "categorical_sample (ours)": jax.jit(categorical_sample),
    "jnp.argmax": jax.jit(lambda k, lp: jnp.argmax(lp, axis=-1)),
    "first_argmax (ours)": jax.jit(lambda k, lp: first_argmax(lp)),
  }
  out = {}
  for name, fn in fns.items():
    jax.block_until_ready(fn(jax.random.key(1), log_probs))
    times = []
    for i in range(repeats):
      start = time.perf_counter()
      jax.block_until_ready(fn(jax.random.key(i), log_probs))
      times.append(time.perf_counter() - start)
    out[name] = 1000 * sorted(times)[len(times) // 2]
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--prompts", type=int, default=8)
  parser.add_argument("--group", type=int, default=4)
  parser.add_argument("--new-tokens", type=int, default=64)
  parser.add_argument("--vocab", type=int, default=32000)
  parser.add_argument("--chunk", type=int, default=0)
  parser.add_argument(
    "--steps",
    type=int,
    default=1,
    help="timed steps after the compiling one (medians are reported)",
  )
  parser.add_argument(
    "--tunix-python",
    default="",
    help="interpreter of an environment with google-tunix: also run its "
    "GRPO learner at the same sizes (benchmarks/tunix_grpo.py)",
  )
  parser.add_argument(
    "--recompute-old-logp",
    action="store_true",
    help="a separate forward pass for the old log-probs after sampling (what "
    "several updates per rollout need); default: the update's own pass",
  )
  parser.add_argument(
    "--skip-sharded", action="store_true", help="skip the 8-host-device run (slow on 2 cores)"
  )
  parser.add_argument("--no-window", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--primitives", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--mesh", default="{}", help=argparse.SUPPRESS)
  parser.add_argument("--unsplit-rollouts", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    return worker(args)
  # (name, host devices, mesh, log-prob chunk, extra worker flags). The first is the baseline
  # of the ratios and of the tunix comparison; "full head" is the same step with every
  # position projected onto the vocabulary (the update before the completion window).
  runs = [
    ("1 dev, chunk=none", 1, {"data": 1}, 0, ["--primitives"]),
    ("1 dev, full head", 1, {"data": 1}, 0, ["--no-window"]),
    ("1 dev, chunk=32", 1, {"data": 1}, 32, []),
  ]
  if not args.skip_sharded:
    runs.append(("8 dev, chunk=32", 8, {"data": 8}, 32, []))
    # The same step with every device decoding every rollout row (run_rl before rows were
    # split over the mesh).
    runs.append(("8 dev, rollout rows unsplit", 8, {"data": 8}, 32, ["--unsplit-rollouts"]))
  results = []
  for name, devices, mesh, chunk, extra in runs:
    env = dict(
      os.environ,
      XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
      JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"),
    )
    cmd = [
      sys.executable,
      __file__,
      "--worker",
      "--mesh",
      json.dumps(mesh),
      "--prompts",
      str(args.prompts),
      "--group",
      str(args.group),
      "--new-tokens",
      str(args.new_tokens),
      "--vocab",
      str(args.vocab),
      "--chunk",
      str(chunk),
      "--steps",
      str(args.steps),
    ]
    if args.recompute_old_logp:
      cmd.append("--recompute-old-logp")
    out = subprocess.run(cmd + extra, env=env, capture_output=True, text=True, check=True)
    results.append(dict(json.loads(out.stdout.strip().splitlines()[-1]), name=name))
  base = results[0]
  print(
    f"{'run':28s} {'rollout s':>9} {'update s':>9} {'tok/s':>8} {'grad temp MiB':>14} "
    f"{'step vs base':>12} {'mem vs base':>11}"
  )
  for r in results:
    mem = r["grad_temp_bytes"]
    print(
      f"{r['name']:28s} {r['rollout_s']:9.2f} {r['update_s']:9.2f} {r['tokens_per_s']:8.0f} "
      f"{(mem or 0) / 2**20:14.1f} {base['step_s'] / r['step_s']:11.2f}x "
      f"{(mem or 0) / max(base['grad_temp_bytes'] or 1, 1):10.3f}x"
    )
  phases = list(base["phases"])
  print(f"\nphase medians (s) {'':10s}" + "".join(f"{p[:-2]:>10}" for p in phases))
  for r in results[:2]:
    print(f"{r['name']:28s}" + "".join(f"{r['phases'].get(p, 0.0):10.3f}" for p in phases))
  print("\nsampling primitive of one decode step, [N, V] logits (ms, median):")
  for name, ms in base["sampling_ms"].items():
    print(f"  {name:28s} {ms:8.2f}")
  if args.tunix_python:
    compare_tunix(args, base)


def compare_tunix(args, base):
  """Runs benchmarks/tunix_grpo.py under `args.tunix_python`; prints step times and ratio."""
  env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
  env.pop("XLA_FLAGS", None)  # One host device, as in the baseline run.
  cmd = [
    args.tunix_python,
    os.path.join(REPO, "benchmarks", "tunix_grpo.py"),
    "--prompts",
    str(args.prompts),
    "--group",
    str(args.group),
    "--new-tokens",
    str(args.new_tokens),
    "--vocab",
    str(args.vocab),
    "--steps",
    str(args.steps),
  ]
  out = subprocess.run(cmd, env=env, capture_output=True, text=True)
  if out.returncode:
    sys.stderr.write(out.stderr[-4000:])
    raise SystemExit(f"tunix run failed (exit {out.returncode}): {' '.join(cmd)}")
  tunix = json.loads(out.stdout.strip().splitlines()[-1])
  ratio = tunix["step_s"] / base["step_s"]
  print(f"\n{'one RL step, 1 dev':28s} {'rollout s':>9} {'update s':>9} {'step s':>8} {'tok/s':>8}")
  for name, r in (("ours (DISPO, chunk=none)", base), (f"{tunix['framework']} GRPO", tunix)):
    print(
      f"{name:28s} {r['rollout_s']:9.2f} {r['update_s']:9.2f} {r['step_s']:8.2f} "
      f"{r['tokens_per_s']:8.0f}"
    )
  print(
    f"tunix step s / our step s = {ratio:.2f} (> 1: ours is faster; medians of "
    f"{args.steps} step(s) each)"
  )
  print(
    json.dumps(
      {
        "ours": {k: base[k] for k in ("rollout_s", "update_s", "step_s", "tokens_per_s")},
        "tunix": {
          k: tunix[k] for k in ("rollout_s", "update_s", "step_s", "tokens_per_s", "framework")
        },
        "tunix_over_ours_step": ratio,
      }
    )
  )


if __name__ == "__main__":
  main()
