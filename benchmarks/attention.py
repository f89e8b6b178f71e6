"""Speed of the Pallas flash attention vs `jax.nn.dot_product_attention` and the XLA reference.

Times the forward pass and forward + backward (`jax.value_and_grad` in q, k, v)
of three implementations of causal (optionally sliding-window) grouped-query
attention at several sequence lengths, and prints median milliseconds per call
and each implementation's time divided by the Pallas time:

  * pallas: `pallas_kernels.flash_attention.flash_attention` with the backend's default
    schedule (on a GPU the Triton kernels, "loop", while JAX has them);
  * pallas_mosaic: the same with schedule="mosaic" (the Mosaic GPU kernels; Hopper GPU,
    bfloat16 / float16 only);
  * jax_nn: `jax.nn.dot_product_attention` (cuDNN on GPU when it applies, else XLA;
    the window is passed as `local_window_size=(w - 1, 0)`, the same w keys);
  * xla: `reasoning_jax.ops.attention.attention(implementation="xla")`, the dense
    fp32-softmax reference (it materialises [B, N, T, T] scores, so it may run out
    of memory at 16k; failures are reported, not raised).

Its real use is on a TPU or GPU. On CPU Pallas only runs in interpret mode, which
is orders of magnitude slower than compiled code, so the default there is a
single tiny smoke-test size whose numbers mean nothing.

Usage:
  python benchmarks/attention.py [--seq-lens 1024,4096,16384 --windows none,1024 \
      --batch 1 --heads 8 --kv-heads 2 --head-dim 128 --dtype bfloat16 --repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._timing import median_seconds  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from pallas_kernels.flash_attention import blocks, flash_attention  # noqa: E402
from reasoning_jax.ops.attention import attention  # noqa: E402

IMPLEMENTATIONS = ("pallas", "pallas_mosaic", "jax_nn", "xla")
GPU_ONLY = ("pallas_mosaic",)
_CPU_SMOKE = dict(
  seq_lens="128",
  windows="none,32",
  batch=1,
  heads=2,
  kv_heads=1,
  head_dim=32,
  repeats=1,
  block_q=64,
  block_k=64,
)


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--seq-lens", default=None, help="comma-separated T values (default 1024,4096,16384; CPU: 128)"
  )
  parser.add_argument(
    "--windows",
    default=None,
    help="comma-separated sliding windows, 'none' for full causal "
    "(default none,1024; CPU: none,32)",
  )
  parser.add_argument("--batch", type=int, default=None, help="B (default 1)")
  parser.add_argument("--heads", type=int, default=None, help="N query heads (default 8)")
  parser.add_argument("--kv-heads", type=int, default=None, help="K key/value heads (default 2)")
  parser.add_argument("--head-dim", type=int, default=None, help="D (default 128)")
  parser.add_argument("--dtype", default="bfloat16", help="dtype of q, k, v")
  parser.add_argument(
    "--block-q",
    type=int,
    default=None,
    help="Pallas query block (default: blocks.py for this backend)",
  )
  parser.add_argument("--block-k", type=int, default=None, help="Pallas key block")
  parser.add_argument("--repeats", type=int, default=None, help="timed calls after a warm-up")
  parser.add_argument(
    "--impls",
    default=None,
    help=f"comma-separated subset of {','.join(IMPLEMENTATIONS)} (default: all; "
    f"{','.join(GPU_ONLY)} only on a GPU)",
  )
  parser.add_argument("--forward-only", action="store_true", help="skip forward + backward")
  parser.add_argument(
    "--cpu-full",
    action="store_true",
    help="on CPU, use the device defaults anyway (interpret mode: very slow)",
  )
  args = parser.parse_args(argv)

  on_cpu = jax.default_backend() == "cpu"
  defaults = dict(
    seq_lens="1024,4096,16384",
    windows="none,1024",
    batch=1,
    heads=8,
    kv_heads=2,
    head_dim=128,
    repeats=5,
    block_q=None,
    block_k=None,
  )
  if on_cpu and not args.cpu_full:
    defaults = _CPU_SMOKE
  for name, value in defaults.items():
    if getattr(args, name) is None:
      setattr(args, name, value)
  try:
    args.seq_lens = [int(x) for x in args.seq_lens.split(",")]
    args.windows = [
      None if x.strip().lower() == "none" else int(x) for x in args.windows.split(",")
    ]
  except ValueError as e:
    parser.error(f"--seq-lens / --windows must be comma-separated ints (or 'none'): {e}")
  if args.impls is None:
    on_gpu = jax.default_backend() == "gpu"
    args.impls = ",".join(i for i in IMPLEMENTATIONS if on_gpu or i not in GPU_ONLY)
  args.impls = [x.strip() for x in args.impls.split(",") if x.strip()]
  for impl in args.impls:
    if impl not in IMPLEMENTATIONS:
      parser.error(f"--impls: unknown {impl!r}; choose from {IMPLEMENTATIONS}")
  for name in ("batch", "heads", "kv_heads", "head_dim", "repeats"):
    if getattr(args, name) <= 0:
      parser.error(f"--{name.replace('_', '-')} must be a positive int")
  if any(t <= 0 for t in args.seq_lens) or any(w is not None and w <= 0 for w in args.windows):
    parser.error("--seq-lens and --windows must be positive")
  if args.heads % args.kv_heads:
    parser.error(f"--heads={args.heads} must be a multiple of --kv-heads={args.kv_heads}")
  args.on_cpu = on_cpu
  return args


def _attention_fn(
  impl: str, window: int | None, args: argparse.Namespace
) -> Callable[..., jax.Array]:
  if impl in ("pallas", "pallas_mosaic"):
    schedule = "mosaic" if impl == "pallas_mosaic" else None
    return lambda q, k, v: flash_attention(
      q,
      k,
      v,
      sliding_window=window,
      block_q=args.block_q,
      block_k=args.block_k,
      schedule=schedule,
    )
  if impl == "jax_nn":
    local = None if window is None else (window - 1, 0)
    return lambda q, k, v: jax.nn.dot_product_attention(
      q, k, v, is_causal=True, local_window_size=local
    )
  return lambda q, k, v: attention(q, k, v, sliding_window=window, implementation="xla")


def time_compiled(fn: Callable[..., Any], inputs: tuple[jax.Array, ...], repeats: int) -> float:
  """Median seconds per call of a compiled `fn` (compile and one warm-up excluded)."""
  compiled = jax.jit(fn).lower(*inputs).compile()
  return median_seconds(compiled, *inputs, repeats=repeats)


def _measure(impl: str, window: int | None, inputs, args) -> dict[str, float | str]:
  attn = _attention_fn(impl, window, args)
  do = inputs[3]

  def loss(q, k, v):
    return jnp.sum(attn(q, k, v).astype(jnp.float32) * do)

  result: dict[str, float | str] = {}
  for name, fn in (
    ("fwd", lambda q, k, v, do: attn(q, k, v)),
    ("fwd+bwd", lambda q, k, v, do: jax.value_and_grad(loss, argnums=(0, 1, 2))(q, k, v)),
  ):
    if name == "fwd+bwd" and args.forward_only:
      continue
    try:
      result[name] = time_compiled(fn, inputs, args.repeats)
    except Exception as e:  # pylint: disable=broad-except  # e.g. OOM of the dense reference.
      result[name] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"
  return result


def main(argv: list[str] | None = None) -> None:
  args = _parse_args(argv)
  backend = jax.default_backend()
  print(f"backend={backend} devices={jax.devices()} jax={jax.__version__}")
  dtype = jnp.dtype(args.dtype)
  schedule = blocks.default_schedule(backend)
  sizes = blocks.default_block_sizes(backend)
  if backend == "gpu":
    schedule = blocks.gpu_schedule(args.head_dim, dtype)
    if schedule == "mosaic":
      sizes = blocks.MOSAIC_BLOCK_SIZES
  print(
    f"pallas schedule={schedule} "
    f"block_q={args.block_q or sizes.block_q} block_k={args.block_k or sizes.block_k}"
  )
  if args.on_cpu:
    print(
      "NOTE: CPU backend: Pallas runs in INTERPRET mode (orders of magnitude slower than "
      "compiled kernels); "
      + (
        "this is a tiny smoke run, the numbers mean nothing. "
        "Run on a TPU/GPU for real measurements."
        if not args.cpu_full
        else "--cpu-full: this will be slow."
      )
    )
  header = (
    f"{'T':>6} {'window':>6} {'impl':>13} {'fwd ms':>10} {'fwd+bwd ms':>11} "
    f"{'fwd/pallas':>10} {'f+b/pallas':>10}"
  )
  print(header)
  print("-" * len(header))
  for t in args.seq_lens:
    keys = jax.random.split(jax.random.key(t), 4)
    q = jax.random.normal(keys[0], (args.batch, t, args.heads, args.head_dim), dtype)
    k = jax.random.normal(keys[1], (args.batch, t, args.kv_heads, args.head_dim), dtype)
    v = jax.random.normal(keys[2], (args.batch, t, args.kv_heads, args.head_dim), dtype)
    do = jax.random.normal(keys[3], (args.batch, t, args.heads, args.head_dim), jnp.float32)
    for window in args.windows:
      results = {impl: _measure(impl, window, (q, k, v, do), args) for impl in args.impls}
      base = results.get("pallas", {})
      for impl, res in results.items():
        cells = []
        for name in ("fwd", "fwd+bwd"):
          value = res.get(name, "-")
          cells.append(f"{value * 1e3:10.3f}" if isinstance(value, float) else f"{'n/a':>10}")
        ratios = []
        for name in ("fwd", "fwd+bwd"):
          a, b = res.get(name), base.get(name)
          ratios.append(
            f"{a / b:10.2f}" if isinstance(a, float) and isinstance(b, float) else f"{'-':>10}"
          )
        print(
          f"{t:>6} {str(window):>6} {impl:>13} {cells[0]} {cells[1]:>11} {ratios[0]} {ratios[1]}"
        )
        for name, value in res.items():
          if isinstance(value, str):
            print(f"{'':>28}{name}: {value}")


if __name__ == "__main__":
  main()
