"""Recurrent token mixers: training-form speed and decode memory against attention.

Two tables, each with ratios measured in the same run:

1. Speed of the three forms of each linear-recurrent op (`naive` spec, `chunk` training
   form, `recurrent` decode scan) for gated linear attention (arXiv:2312.06635) and OVQ
   attention (arXiv:2602.03922) at T = 1k, 4k, 16k: median ms of the jitted forward
   (and forward + backward of the chunk form), and each form's time divided by the chunk
   time. On a GPU/TPU the table adds the Pallas kernels (`implementation="pallas"`; GLA's
   forward + backward times its fused Pallas backward),
   `jax.nn.dot_product_attention` (cuDNN/XLA causal attention) and the XLA attention
   reference at the same shapes, so the recurrent ops are placed against softmax attention.
   On CPU the Pallas kernels only run in interpret mode, so they are left out there.
2. Decode memory: bytes of the generation cache of a small model (`tiny-llama` widths)
   whose mixers are all attention, all GLA or all OVQ, for cache lengths 1k/4k/16k/64k
   (from `jax.eval_shape`: exact, nothing is allocated), and the compiled argument +
   temporary bytes of one decode step at the longest length. Attention's KV cache grows
   linearly in T; the recurrent states are constant.

Usage:
  python benchmarks/layers.py                       # CPU defaults (B=1, H=4, D=64)
  python benchmarks/layers.py --seq-lens 1024,4096 --ops gla --forms chunk,recurrent
  python benchmarks/layers.py --dtype bfloat16 --heads 8 --head-dim 128   # accelerator
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.attention import time_compiled  # noqa: E402
from reasoning_jax.ops.attention import attention  # noqa: E402
from reasoning_jax.ops.gla import gated_linear_attention  # noqa: E402

FORMS = ("naive", "chunk", "recurrent")
OPS = ("gla", "ovq")


def _parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--seq-lens", default="1024,4096,16384")
  p.add_argument("--ops", default=",".join(OPS))
  p.add_argument("--forms", default=",".join(FORMS))
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--heads", type=int, default=4)
  p.add_argument("--head-dim", type=int, default=64)
  p.add_argument("--chunk-size", type=int, default=64)
  p.add_argument("--num-slots", type=int, default=1024, help="OVQ dictionary size N_max")
  p.add_argument("--dtype", default=None, help="float32 on CPU, bfloat16 elsewhere by default")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument(
    "--max-naive-len",
    type=int,
    default=4096,
    help="skip the naive form above this T (its fp32 scans are slow)",
  )
  p.add_argument("--no-backward", action="store_true")
  p.add_argument("--no-memory", action="store_true")
  args = p.parse_args(argv)
  args.seq_lens = [int(x) for x in args.seq_lens.split(",")]
  args.ops = [x for x in args.ops.split(",") if x]
  args.forms = [x for x in args.forms.split(",") if x]
  for op in args.ops:
    if op not in OPS:
      p.error(f"--ops: unknown {op!r}; choose from {OPS}")
  for form in args.forms:
    if form not in FORMS:
      p.error(f"--forms: unknown {form!r}; choose from {FORMS}")
  args.on_cpu = jax.default_backend() == "cpu"
  if args.dtype is None:
    args.dtype = "float32" if args.on_cpu else "bfloat16"
  return args


def _time(fn: Callable[..., Any], inputs, repeats: int) -> float | str:
  """`time_compiled` (median seconds, compile excluded), with errors returned as text."""
  try:
    return time_compiled(fn, inputs, repeats)
  except Exception as e:  # pylint: disable=broad-except  # Reported, e.g. OOM or lowering.
    return f"failed: {type(e).__name__}: {str(e).splitlines()[0][:100]}"


def _ovq():
  try:
    from reasoning_jax.ops.ovq import ovq_attention  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return ovq_attention


def _op_fn(op: str, form: str, args, implementation: str | None = None):
  """`f(q, k, v, g) -> o` for one op/form/backend."""
  if op == "gla":
    kw = dict(chunk_size=args.chunk_size) if form == "chunk" else {}
    return lambda q, k, v, g: gated_linear_attention(
      q, k, v, g, mode=form, implementation=implementation, **kw
    )[0]
  ovq_attention = _ovq()
  beta = float(np.sqrt(args.head_dim))
  return lambda q, k, v, g: ovq_attention(
    q,
    k,
    v,
    beta=beta,
    mode=form,
    chunk_size=args.chunk_size,
    num_slots=args.num_slots,
    implementation=implementation,
  )[0]


def _inputs(t: int, args):
  dtype = jnp.dtype(args.dtype)
  keys = jax.random.split(jax.random.key(t), 4)
  shape = (args.batch, t, args.heads, args.head_dim)
  q, k, v = (jax.random.normal(kk, shape, dtype) for kk in keys[:3])
  g = jax.nn.log_sigmoid(jax.random.normal(keys[3], shape, jnp.float32)) / 16
  return q, k, v, g


def _fwd_bwd(fn):
  def loss(q, k, v, g):
    return jnp.sum(fn(q, k, v, g).astype(jnp.float32))

  return lambda q, k, v, g: jax.grad(loss, argnums=(0, 1, 2))(q, k, v, g)


def _fmt(x) -> str:
  return f"{x * 1e3:10.2f}" if isinstance(x, float) else f"{'n/a':>10}"


def speed_table(args) -> None:
  print(
    f"\n== speed: B={args.batch} H={args.heads} D={args.head_dim} dtype={args.dtype} "
    f"chunk={args.chunk_size} ovq slots={args.num_slots}; ratio = time / chunk time =="
  )
  head = f"{'op':>4} {'T':>6} {'impl':>18} {'fwd ms':>10} {'ratio':>7} {'f+b ms':>10} {'ratio':>7}"
  print(head)
  print("-" * len(head))
  for op in args.ops:
    if op == "ovq" and _ovq() is None:
      print("ovq: reasoning_jax.ops.ovq is not available in this checkout; skipped")
      continue
    for t in args.seq_lens:
      inputs = _inputs(t, args)
      rows: dict[str, tuple[Any, Any]] = {}
      for form in args.forms:
        if form == "naive" and t > args.max_naive_len:
          continue
        fn = _op_fn(op, form, args)
        bwd = (
          _time(_fwd_bwd(fn), inputs, args.repeats)
          if form == "chunk" and not args.no_backward
          else None
        )
        rows[f"xla {form}"] = (_time(fn, inputs, args.repeats), bwd)
      if not args.on_cpu:
        fn = _op_fn(op, "chunk", args, implementation="pallas")
        rows["pallas chunk"] = (
          _time(fn, inputs, args.repeats),
          None if args.no_backward else _time(_fwd_bwd(fn), inputs, args.repeats),
        )
        if op == "gla" and jax.default_backend() == "gpu" and args.dtype != "float32":
          # The Mosaic GPU kernels (opt-in while JAX has Triton), forward and backward.
          from pallas_kernels.gla import gla_chunk_pallas  # pylint: disable=g-import-not-at-top

          def mosaic(q, k, v, g):
            return gla_chunk_pallas(q, k, v, g, chunk_size=args.chunk_size, schedule="mosaic")[0]

          rows["pallas mosaic"] = (
            _time(mosaic, inputs, args.repeats),
            None if args.no_backward else _time(_fwd_bwd(mosaic), inputs, args.repeats),
          )
        q, k, v, _ = inputs
        for name, attn in (
          (
            "jax.nn attention",
            lambda q, k, v, g: jax.nn.dot_product_attention(q, k, v, is_causal=True),
          ),
          ("xla attention", lambda q, k, v, g: attention(q, k, v, implementation="xla")),
        ):
          rows[name] = (
            _time(attn, inputs, args.repeats),
            None if args.no_backward else _time(_fwd_bwd(attn), inputs, args.repeats),
          )
      base = rows.get("xla chunk", (None, None))
      for name, (fwd, bwd) in rows.items():
        ratio = lambda a, b: (
          f"{a / b:7.2f}" if isinstance(a, float) and isinstance(b, float) else f"{'-':>7}"
        )
        print(
          f"{op:>4} {t:>6} {name:>18} {_fmt(fwd)} {ratio(fwd, base[0])} "
          f"{_fmt(bwd) if bwd is not None else f'{chr(45):>10}'} {ratio(bwd, base[1])}"
        )
        for value in (fwd, bwd):
          if isinstance(value, str):
            print(f"{'':>31}{value}")


def _tree_bytes(tree) -> int:
  return sum(
    int(np.prod(x.shape)) * jnp.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree)
  )


def memory_table(args) -> None:
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from reasoning_jax import registry  # pylint: disable=g-import-not-at-top
  from reasoning_jax.models import Transformer, get_preset  # pylint: disable=g-import-not-at-top

  lengths = (1024, 4096, 16384, 65536)
  mixers = [m for m in ("attention", "gla", "ovq", "base_conv") if m in registry.MIXERS]
  print("\n== decode memory: cache bytes per model (tiny-llama widths, batch 1) ==")
  print(
    f"{'mixer':>10} "
    + " ".join(f"{f'S={s}':>12}" for s in lengths)
    + f" {'step args+temp @64k':>20}"
  )
  attn_bytes = None
  for mixer in mixers:
    config = get_preset("tiny-llama", max_position_embeddings=max(lengths)).replace(mixer=mixer)
    model = nnx.eval_shape(lambda config=config: Transformer(config, rngs=nnx.Rngs(0)))
    sizes = [_tree_bytes(jax.eval_shape(lambda s=s: model.init_cache(1, s))) for s in lengths]
    graphdef, state = nnx.split(model)

    def step(state, cache, ids, positions):
      m = nnx.merge(graphdef, state)
      return m.forward(ids, positions=positions, cache=cache)

    cache = jax.eval_shape(lambda: model.init_cache(1, lengths[-1]))
    ids = jax.ShapeDtypeStruct((1, 1), jnp.int32)
    try:
      mem = jax.jit(step, donate_argnums=1).lower(state, cache, ids, ids).compile()
      analysis = mem.memory_analysis()
      step_bytes = (
        f"{(analysis.argument_size_in_bytes + analysis.temp_size_in_bytes) / 2**20:17.1f} MiB"
      )
    except Exception as e:  # pylint: disable=broad-except
      step_bytes = f"failed: {type(e).__name__}"
    print(f"{mixer:>10} " + " ".join(f"{s / 2**20:9.2f} MiB" for s in sizes) + f" {step_bytes:>20}")
    if mixer == "attention":
      attn_bytes = sizes
    elif attn_bytes:
      print(
        f"{'':>10} "
        + " ".join(f"{s / a:11.4f}x" for s, a in zip(sizes, attn_bytes))
        + "  (of attention's KV cache)"
      )


def main(argv=None) -> None:
  args = _parse_args(argv)
  print(f"backend={jax.default_backend()} devices={jax.devices()} jax={jax.__version__}")
  speed_table(args)
  if not args.no_memory:
    memory_table(args)


if __name__ == "__main__":
  main()
