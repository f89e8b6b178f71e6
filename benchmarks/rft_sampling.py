"""Throughput of the RFT sampling pipeline (`rft.sample_trajectories`): 1 vs 8 host devices.

The same work twice: a random `tiny-qwen3` teacher (byte tokenizer) samples N trajectories
for each of the first `--problems` problems of a synthetic `arithmetic` train split, verified
by `math_exact`, written to a fresh `samples.jsonl`; once without a mesh (one device) and once
with the prompt rows sharded over a `data=8` mesh of host devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=8`, set before jax is imported). A warm-up
call per setting (one batch, its own folder) compiles `generate` first. Printed per setting:
trajectories per second over the whole call, and the share of its time in generation,
verification (decode + verifier + answer extraction), writing (JSON + fsync + progress) and
preparation (tokenizing prompts), from `SamplingSummary.seconds`; then the ratio of the two
throughputs. On a CPU host the 8 "devices" share the same cores, so the ratio measures the
sharding overhead, not a speed-up; on an accelerator host the mesh spans real chips.

("Beyond Rejection Sampling: Trajectory Fusion for Scaling Mathematical Reasoning", Deng et
al., arXiv:2602.04391, samples its teacher this way.)

Usage:
  python benchmarks/rft_sampling.py [--problems 64 --num-samples 8 --problems-per-batch 16 \
      --max-new-tokens 48 --hidden 128 --layers 2]
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
from flax import nnx  # noqa: E402

from reasoning_jax import sharding as sharding_lib  # noqa: E402
from reasoning_jax.data import data_source  # noqa: E402
from reasoning_jax.models import Transformer, get_preset  # noqa: E402
from reasoning_jax.rft import SamplingConfig, sample_trajectories  # noqa: E402
from reasoning_jax.tokenizers import ByteTokenizer  # noqa: E402

PARTS = ("generate", "verify", "write", "prepare")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--problems", type=int, default=64, help="problems sampled per setting")
  p.add_argument("--num-samples", type=int, default=8, help="N trajectories per problem")
  p.add_argument("--problems-per-batch", type=int, default=16)
  p.add_argument("--max-new-tokens", type=int, default=48)
  p.add_argument("--hidden", type=int, default=128)
  p.add_argument("--layers", type=int, default=2)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(argv)
  for name in ("problems", "num_samples", "problems_per_batch", "max_new_tokens", "hidden"):
    if getattr(args, name) < 1:
      p.error(f"--{name.replace('_', '-')} must be >= 1")
  if (args.num_samples * args.problems_per_batch) % 8:
    p.error("--num-samples x --problems-per-batch must divide by 8 (the mesh's data axis)")
  return args


def teacher(args, tok):
  config = get_preset("tiny-qwen3").replace(
    vocab_size=tok.vocab_size,
    hidden_size=args.hidden,
    intermediate_size=3 * args.hidden,
    num_layers=args.layers,
    num_heads=max(args.hidden // 32, 1),
    num_kv_heads=max(args.hidden // 64, 1),
    head_dim=32,
  )
  return Transformer(config, rngs=nnx.Rngs(args.seed))


def measure(model, tok, source, args, root: str, name: str, mesh) -> dict[str, float]:
  def call(folder, max_problems):
    cfg = SamplingConfig(
      num_samples=args.num_samples,
      problems_per_batch=args.problems_per_batch,
      max_new_tokens=args.max_new_tokens,
      seed=args.seed,
      max_problems=max_problems,
    )
    return sample_trajectories(
      model,
      tok,
      source,
      reward="math_exact",
      out_dir=os.path.join(root, folder),
      config=cfg,
      max_prompt_len=48,
      mesh=mesh,
      progress=False,
    )

  call(f"{name}_warmup", args.problems_per_batch)  # Compiles generate for this setting.
  summary = call(name, args.problems)
  total = sum(summary.seconds.values())
  row = {"trajectories": summary.trajectories, "seconds": total}
  row["traj_per_s"] = summary.trajectories / total
  for part in PARTS:
    row[part] = summary.seconds.get(part, 0.0) / total
  return row


def main(argv=None):
  args = parse_args(argv)
  tok = ByteTokenizer()
  with tempfile.TemporaryDirectory() as root:
    source = data_source(
      "arithmetic",
      "train",
      os.path.join(root, "tfds"),
      config="medium",
      num_train=max(args.problems, 64),
      num_test=8,
      ops=("+",),
      style="compact",
    )
    model = teacher(args, tok)
    mesh = sharding_lib.make_mesh({"data": 8, "fsdp": 1, "tensor": 1})
    rows = {
      "1 device (no mesh)": measure(model, tok, source, args, root, "one", None),
      "8 host devices (data=8)": measure(model, tok, source, args, root, "mesh", mesh),
    }
  print(
    f"RFT sampling: {args.problems} problems x {args.num_samples} samples, "
    f"{args.problems_per_batch} problems per batch, {args.max_new_tokens} new tokens, "
    f"tiny-qwen3 hidden {args.hidden} x {args.layers} layers, {jax.devices()[0].device_kind}, "
    f"{os.cpu_count()} CPUs"
  )
  header = f"| setting | traj/s | seconds | {' | '.join(f'{p} %' for p in PARTS)} |"
  print(header)
  print("|---" * (3 + len(PARTS)) + "|")
  for name, r in rows.items():
    shares = " | ".join(f"{100 * r[p]:.1f}" for p in PARTS)
    print(f"| {name} | {r['traj_per_s']:.1f} | {r['seconds']:.2f} | {shares} |")
  one, eight = rows.values()
  print(f"ratio traj/s (8 devices / 1): {eight['traj_per_s'] / one['traj_per_s']:.2f}")
  return rows


if __name__ == "__main__":
  main()
