"""SFT train-step time on 1 vs 8 host CPU devices (same model, same total batch).

Each configuration runs in its own process (the host device count is fixed when
JAX starts). The 8-device run uses a data x fsdp x tensor = 2 x 2 x 2 mesh with
the model's partition rules. Printed as ratios to the 1-device baseline measured
in the same invocation. On a 2-core CPU, 8 "devices" share 2 cores, so this
measures the partitioning overhead rather than a speed-up; on a TPU/GPU host the
same script shows scaling.

  python benchmarks/train_step.py [--preset tiny-qwen3 --batch 32 --seq-len 128 --steps 10]
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
  import numpy as np
  import optax
  from flax import nnx

  from reasoning_jax import sharding
  from reasoning_jax.models import Transformer, get_preset
  from reasoning_jax.models.partition_rules import rules_for
  from reasoning_jax.train import init_train_state, make_train_step, sft_loss, state_shardings

  config = get_preset(args.preset, **json.loads(args.overrides))
  model = Transformer(config, rngs=nnx.Rngs(0))
  tx = optax.adamw(1e-3)
  graphdef, state = init_train_state(model, tx)
  mesh = sharding.make_mesh(json.loads(args.mesh))
  shards = state_shardings(state, tx, rules_for(config.family), mesh)
  state = jax.device_put(state, shards)
  step = make_train_step(graphdef, tx, sft_loss, mesh=mesh, shardings=shards)
  rng = np.random.default_rng(0)
  batch = {
    "tokens": rng.integers(0, config.vocab_size, (args.batch, args.seq_len)).astype(np.int32),
    "loss_mask": np.ones((args.batch, args.seq_len), np.float32),
  }
  batch = sharding.shard_batch(batch, mesh)
  state, metrics = step(state, batch)  # Compile.
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(args.steps):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  seconds = (time.perf_counter() - start) / args.steps
  print(
    json.dumps(
      {
        "devices": jax.device_count(),
        "mesh": dict(mesh.shape),
        "step_s": seconds,
        "tokens_per_s": args.batch * args.seq_len / seconds,
      }
    )
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--preset", default="tiny-qwen3")
  parser.add_argument(
    "--overrides",
    default=json.dumps(
      {
        "hidden_size": 256,
        "intermediate_size": 768,
        "num_layers": 4,
        "num_heads": 8,
        "num_kv_heads": 4,
        "head_dim": 32,
        "vocab_size": 4096,
      }
    ),
  )
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--seq-len", type=int, default=128)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--mesh", default="{}", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    return worker(args)
  results = []
  for devices, mesh in ((1, {"data": 1}), (8, {"data": 2, "fsdp": 2, "tensor": 2})):
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
      "--preset",
      args.preset,
      "--overrides",
      args.overrides,
      "--batch",
      str(args.batch),
      "--seq-len",
      str(args.seq_len),
      "--steps",
      str(args.steps),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    results.append(json.loads(out.stdout.strip().splitlines()[-1]))
  base = results[0]["step_s"]
  print(f"{'devices':>8} {'mesh':36s} {'step (ms)':>10} {'tokens/s':>10} {'vs 1 device':>12}")
  for r in results:
    print(
      f"{r['devices']:>8} {str(r['mesh']):36s} {r['step_s'] * 1e3:10.1f} "
      f"{r['tokens_per_s']:10.0f} {base / r['step_s']:11.2f}x"
    )


if __name__ == "__main__":
  main()
