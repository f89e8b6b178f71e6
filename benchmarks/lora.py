"""LoRA vs full fine-tuning on the same model: train-step time and compiled peak memory.

Both steps are `reasoning_jax.train.make_train_step` on `sft_loss` with AdamW, the same batch,
sequence length and dtypes; LoRA adapts every attention and MLP projection
(`reasoning_jax.lora.apply_lora`, `trainable=TRAINABLE`, base kept in the model's parameter
dtype unless `--base-dtype`). Step time: median of `--steps` steps after `--warmup` (compile
excluded). Memory: `memory_analysis()` of each compiled step (arguments + outputs - aliased +
temporaries, bytes). Prints the figures and the LoRA / full ratios (no asserts).

  python benchmarks/lora.py [--preset small-50m --batch 4 --seq-len 128 --rank 16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(args, lora: bool) -> dict:
  """Compiles and times one train step (full or LoRA); returns its figures."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from flax import nnx

  from reasoning_jax.lora import TRAINABLE, LoRAConfig, apply_lora
  from reasoning_jax.models import Transformer, get_preset
  from reasoning_jax.train import init_train_state, make_train_step, sft_loss

  config = get_preset(args.preset, **json.loads(args.overrides))
  model = Transformer(config, rngs=nnx.Rngs(0))
  if lora:
    base_dtype = jnp.dtype(args.base_dtype) if args.base_dtype else None
    lcfg = LoRAConfig(rank=args.rank, alpha=2.0 * args.rank)
    apply_lora(model, lcfg, rngs=nnx.Rngs(1), base_dtype=base_dtype)
  tx = optax.adamw(1e-4)
  graphdef, state = init_train_state(model, tx, trainable=TRAINABLE if lora else None)
  step = make_train_step(graphdef, tx, sft_loss)
  rng = np.random.default_rng(0)
  batch = {
    "tokens": jnp.asarray(rng.integers(0, config.vocab_size, (args.batch, args.seq_len)), "int32"),
    "loss_mask": jnp.ones((args.batch, args.seq_len), jnp.float32),
  }
  stats = step.lower(state, batch).compile().memory_analysis()
  peak = (
    stats.argument_size_in_bytes
    + stats.output_size_in_bytes
    - stats.alias_size_in_bytes
    + stats.temp_size_in_bytes
  )
  times = []
  for i in range(args.warmup + args.steps):
    start = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    if i >= args.warmup:
      times.append(time.perf_counter() - start)
  trained = sum(x.size for x in jax.tree_util.tree_leaves(state.params))
  return {
    "step_s": statistics.median(times),
    "peak_bytes": int(peak),
    "temp_bytes": int(stats.temp_size_in_bytes),
    "trained_params": int(trained),
    "loss": float(metrics["loss"]),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--preset", default="small-50m")
  parser.add_argument("--overrides", default="{}", help="ModelConfig fields as JSON")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--seq-len", type=int, default=128)
  parser.add_argument("--rank", type=int, default=16)
  parser.add_argument("--base-dtype", default="", help="e.g. bfloat16 (default: keep)")
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--steps", type=int, default=5)
  args = parser.parse_args()
  sys.path.insert(0, REPO)
  full = measure(args, lora=False)
  lora = measure(args, lora=True)
  print(json.dumps({"full": full, "lora": lora}, indent=2))
  print(
    f"{args.preset}, batch {args.batch} x {args.seq_len}, rank {args.rank}: "
    f"LoRA / full step time {lora['step_s'] / full['step_s']:.2f}x "
    f"({lora['step_s']:.3f} s vs {full['step_s']:.3f} s), "
    f"peak memory {lora['peak_bytes'] / full['peak_bytes']:.2f}x "
    f"({lora['peak_bytes'] / 2**20:.1f} MiB vs {full['peak_bytes'] / 2**20:.1f} MiB), "
    f"trained params {lora['trained_params']:,} vs {full['trained_params']:,}"
  )


if __name__ == "__main__":
  main()
