"""One full GRPO step (rollout + update) with google-tunix, for comparison with rl_step.py.

Runs under a separate environment with `google-tunix` installed (it never imports
reasoning_jax). `benchmarks/rl_step.py --tunix-python PATH` starts it as a subprocess
with matching sizes; on its own:

  /path/to/tunix-venv/bin/python benchmarks/tunix_grpo.py [--prompts 8 --group 4 \
      --new-tokens 64 --vocab 32000 --steps 3]

Setup, matched to rl_step.py:
  * model: tunix.models.qwen3.Qwen3 (q/k RMSNorm, GQA, SwiGLU, tied embeddings) with
    hidden 256, intermediate 768, 4 layers, 8 heads, 4 kv heads, head_dim 32,
    rope_theta 1e6, eps 1e-6, fp32 params and compute, no remat, random init;
  * RLCluster on one CPU device (mesh fsdp=1, tp=1), actor and rollout colocated
    (same mesh, so they share weights: no weight sync), tunix's vanilla sampler;
  * GRPOLearner: num_generations=group, num_iterations=1, beta=0 (no reference model),
    epsilon 0.2, loss_agg_mode sequence-mean-token-mean; optax.adamw(1e-5);
  * prompts: `prompts` integer sequences of length 32 (ids in [3, vocab)), passed as
    text through a minimal whitespace tokenizer (no BOS, pad 0, eos 2); sampling at
    temperature 1.0, top_p 1.0 (plain categorical), max `new-tokens` new tokens, eos 2
    (generation stops only when every row has emitted it, so in practice all rows run the
    full budget, as in rl_step.py);
  * rewards: uniform random per completion.

What differs from rl_step.py (by design of each library, not by knob):
  * loss: tunix's clipped GRPO ("grpo" policy loss; it also computes the full-vocab
    entropy of the logits as a metric) vs our DISPO;
  * old log-probs: with num_iterations=1 tunix skips recomputing them (it uses
    stop_gradient of the current log-probs), while our rollout recomputes them with an
    extra forward pass over prompt + completion;
  * sampler: tunix's decode attends over the whole fixed cache (prompt + budget slots)
    with a mask and keeps no per-step log-probs (return_logprobs=False); ours records the
    sampled token's log-prob at every step;
  * the learner prepares each batch on a worker thread and logs metrics (no overlap with
    the update here: actor and rollout share one mesh, so tunix does not run them async);
  * tunix's MLP down-projection starts at zero (its initializer); irrelevant to speed.

Timing: `--warmup` global steps (compilation) are excluded; each of the next `--steps`
steps is timed from the start of rollout to the end of the (blocked-on) update.
rollout_s = tunix's generate + reward + advantage (`_generate_and_compute_advantage`);
update_s = `rl_cluster.update_actor` (the jitted policy-gradient step + optimizer).
Prints one JSON line with per-step seconds and their medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--prompts", type=int, default=8)
  parser.add_argument("--group", type=int, default=4)
  parser.add_argument("--prompt-len", type=int, default=32)
  parser.add_argument("--new-tokens", type=int, default=64)
  parser.add_argument("--vocab", type=int, default=32000)
  parser.add_argument("--warmup", type=int, default=1)
  parser.add_argument("--steps", type=int, default=3)
  args = parser.parse_args()

  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from flax import nnx
  from tunix.models.qwen3 import model as qwen3
  from tunix.rl import rl_cluster as rl_cluster_lib
  from tunix.rl.grpo import grpo_learner
  from tunix.rl.rollout import base_rollout

  from tunix_tokenizer import IntTokenizer  # benchmarks/ (the script's folder)

  config = qwen3.ModelConfig(
    num_layers=4,
    vocab_size=args.vocab,
    embed_dim=256,
    hidden_dim=768,
    num_heads=8,
    head_dim=32,
    num_kv_heads=4,
    rope_theta=1_000_000,
    norm_eps=1e-6,
    use_tied_embedding=True,
    dtype=jnp.float32,
    param_dtype=jnp.float32,
  )
  mesh = jax.make_mesh(
    (1, 1), ("fsdp", "tp"), devices=jax.devices()[:1], axis_types=(jax.sharding.AxisType.Auto,) * 2
  )
  with mesh:
    model = qwen3.Qwen3(config, rngs=nnx.Rngs(0))
    state = nnx.state(model)
    shardings = jax.tree.map(
      lambda s: jax.sharding.NamedSharding(mesh, s), nnx.get_partition_spec(state)
    )
    nnx.update(model, jax.device_put(state, shardings))

  rollout_config = base_rollout.RolloutConfig(
    max_tokens_to_generate=args.new_tokens,
    max_prompt_length=args.prompt_len,
    kv_cache_size=args.prompt_len + args.new_tokens,
    temperature=1.0,
    top_p=1.0,
    top_k=None,
  )
  cluster_config = rl_cluster_lib.ClusterConfig(
    role_to_mesh={
      rl_cluster_lib.Role.ACTOR: mesh,
      rl_cluster_lib.Role.REFERENCE: mesh,
      rl_cluster_lib.Role.ROLLOUT: mesh,
    },
    rollout_engine="vanilla",
    offload_to_cpu=False,
    training_config=rl_cluster_lib.RLTrainingConfig(
      actor_optimizer=optax.adamw(1e-5),
      eval_every_n_steps=10**9,
      max_steps=args.warmup + args.steps,
      pbar_description=None,
    ),
    rollout_config=rollout_config,
  )
  cluster = rl_cluster_lib.RLCluster(
    actor=model,
    reference=None,
    tokenizer=IntTokenizer(eos_id=2, pad_id=0),
    cluster_config=cluster_config,
  )
  rng = np.random.default_rng(0)

  def reward_fn(prompts, completions, **_):
    return list(rng.random(len(completions)).astype(np.float32))

  algo = grpo_learner.GRPOConfig(
    num_generations=args.group, num_iterations=1, beta=0.0, epsilon=0.2
  )
  learner = grpo_learner.GRPOLearner(rl_cluster=cluster, algo_config=algo, reward_fns=reward_fn)

  # Wrap the two phases and the global step with blocking timers.
  times = {"rollout": [], "update": [], "step": [], "completion_tokens": []}
  gen = learner._generate_and_compute_advantage
  update = cluster.update_actor
  global_step = learner._run_global_step

  def timed_gen(*a, **k):
    t0 = time.perf_counter()
    out = jax.block_until_ready(gen(*a, **k))
    times["rollout"].append(time.perf_counter() - t0)
    times["completion_tokens"].append(int(np.asarray(out.completion_mask).sum()))
    return out

  def timed_update(*a, **k):
    t0 = time.perf_counter()
    update(*a, **k)
    jax.block_until_ready(nnx.state(cluster.actor_trainer.model))
    times["update"].append(time.perf_counter() - t0)

  def timed_step(*a, **k):
    t0 = time.perf_counter()
    global_step(*a, **k)
    jax.block_until_ready(nnx.state(cluster.actor_trainer.model))
    times["step"].append(time.perf_counter() - t0)
    print(
      f"tunix step {len(times['step'])}: {times['step'][-1]:.2f} s", file=sys.stderr, flush=True
    )

  learner._generate_and_compute_advantage = timed_gen
  cluster.update_actor = timed_update
  learner._run_global_step = timed_step

  prompts = rng.integers(3, args.vocab, (args.warmup + args.steps, args.prompts, args.prompt_len))
  dataset = [{"prompts": np.array([" ".join(map(str, row)) for row in batch])} for batch in prompts]
  learner.train(dataset)

  n = args.warmup
  rollout, upd, step = times["rollout"][n:], times["update"][n:], times["step"][n:]
  tokens = times["completion_tokens"][n:]
  med = statistics.median(step)
  print(
    json.dumps(
      {
        "framework": f"tunix {_version('google-tunix')}",
        "jax": jax.__version__,
        "devices": 1,
        "steps": len(step),
        "rollout_s_per_step": rollout,
        "update_s_per_step": upd,
        "step_s_per_step": step,
        "rollout_s": statistics.median(rollout),
        "update_s": statistics.median(upd),
        "step_s": med,
        "completion_tokens": tokens,
        "tokens_per_s": statistics.median(tokens) / med,
        "compile_step_s": times["step"][:n],
      }
    )
  )


def _version(name):
  try:
    from importlib.metadata import version

    return version(name)
  except Exception:  # pylint: disable=broad-except
    return "?"


if __name__ == "__main__":
  main()
