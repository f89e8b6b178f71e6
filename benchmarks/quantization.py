"""Quantizing a zoo model with RTN, GPTQ and BPDQ: time, weight error, bytes, decode step time.

For each row (`--rows`, `<method>-w<bits>g<group>` as in `configs/quantize.py`) a fresh copy of
the same model (`--preset`, default small-50m, random weights unless `--hf-dir`) is quantized
with `reasoning_jax.quant.quantize_model` from the same calibration batches (random tokens,
`--calib-batches` x `--batch` x `--seq-len`), and the script prints:

  * seconds to quantize (calibration passes + the algorithm, compile included: a one-off cost);
  * the weight error sum_kernels tr((W - Q) H (W - Q)^T), and the ratio BPDQ / GPTQ at equal
    bits (the issue's goal at 2 bits: <= 0.7 at matched bits per weight, BPDQ g256 vs GPTQ
    g128, both 2.1875 bits/weight here);
  * the quantized projections' real bytes against the same projections in bf16, and the whole
    model's (the float embeddings, norms and head counted in bf16) against the model in bf16;
  * the decode step time (batch 1, `--new-tokens` greedy tokens, `generate`'s own decode
    timer, compile excluded by a warm-up call) of the float model in bf16 and of the
    quantized one through the XLA reference path. On CPU the dequantize-then-matmul path is
    not the method's speed (the weights are rebuilt every step); the fused Pallas kernel
    (`--pallas`) runs in interpret mode on CPU, so only its correctness (max |logit diff|
    against the reference) is printed there. Speed is for an accelerator.

No asserts: figures only.

  python benchmarks/quantization.py [--preset small-50m --layers 2 --rows gptq-w2g128,bpdq-w2g256]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _model(args):
  from flax import nnx

  from reasoning_jax.models import Transformer, get_preset

  if args.hf_dir:
    from reasoning_jax.models.hf import from_hf

    return from_hf(args.hf_dir)
  overrides = json.loads(args.overrides)
  if args.layers:
    overrides["num_layers"] = args.layers
  return Transformer(get_preset(args.preset, **overrides), rngs=nnx.Rngs(0))


def _decode_step_seconds(model, prompt, new_tokens) -> float:
  import jax.numpy as jnp

  from reasoning_jax.generate import generate

  lengths = jnp.array([prompt.shape[1]])
  generate(model, prompt, lengths, max_new_tokens=new_tokens, temperature=0.0)  # compile
  timings: dict[str, float] = {}
  generate(model, prompt, lengths, max_new_tokens=new_tokens, temperature=0.0, timings=timings)
  return timings.get("decode_s", float("nan")) / max(new_tokens - 1, 1)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--preset", default="small-50m")
  p.add_argument("--overrides", default="{}", help="JSON preset overrides")
  p.add_argument("--layers", type=int, default=0, help="override num_layers (0: the preset's)")
  p.add_argument("--hf-dir", default="")
  p.add_argument("--rows", default="rtn-w2g128,gptq-w2g128,bpdq-w2g256,bpdq-w2g128")
  p.add_argument("--calib-batches", type=int, default=4)
  p.add_argument("--batch", type=int, default=4)
  p.add_argument("--seq-len", type=int, default=128)
  p.add_argument("--new-tokens", type=int, default=16)
  p.add_argument("--pallas", action="store_true", help="also run the fused kernel (check)")
  args = p.parse_args(argv)

  import jax
  import jax.numpy as jnp
  import numpy as np
  from flax import nnx

  from reasoning_jax.evaluate.quantize.settings import parse_settings
  from reasoning_jax.layers.quantized import set_implementation
  from reasoning_jax.quant.model import float_bytes, quantize_model, quantized_bytes

  base = _model(args)
  cfg = base.config
  rng = np.random.default_rng(0)
  batches = [
    {"input_ids": rng.integers(0, cfg.vocab_size, (args.batch, args.seq_len), dtype=np.int32)}
    for _ in range(args.calib_batches)
  ]
  prompt = jnp.asarray(rng.integers(0, cfg.vocab_size, (1, 16), dtype=np.int32))
  print(
    f"{jax.devices()[0].device_kind}: {cfg.num_layers} layers, hidden {cfg.hidden_size}, "
    f"MLP {cfg.intermediate_size}; calibration {args.calib_batches} x {args.batch} x "
    f"{args.seq_len} random tokens"
  )
  bf16 = nnx.clone(base)
  for _, node in nnx.iter_graph(bf16):
    if isinstance(node, nnx.Param):
      node.set_value(node[...].astype(jnp.bfloat16))
  bf16_step = _decode_step_seconds(bf16, prompt, args.new_tokens)
  bf16_bytes = float_bytes(base)
  print(f"bf16 model: {bf16_bytes / 1e6:.2f} MB, decode step {bf16_step * 1e3:.2f} ms")
  out = {"bf16": {"bytes": bf16_bytes, "decode_step_s": bf16_step}}
  for setting in parse_settings(tuple(args.rows.split(","))):
    model = nnx.clone(base)
    start = time.perf_counter()
    reports = quantize_model(model, batches, config=setting.config)
    seconds = time.perf_counter() - start
    error = sum(r.error for r in reports)
    weights = sum(r.shape[0] * r.shape[1] for r in reports)
    bpw = sum(r.bits_per_weight * r.shape[0] * r.shape[1] for r in reports) / weights
    step = _decode_step_seconds(model, prompt, args.new_tokens)
    q_bytes, q_weights = quantized_bytes(model)
    rest = sum(
      int(x.size) * 2 for x in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))
    )  # The float parameters that stay (embeddings, norms, head), counted in bf16.
    row = {
      "seconds": seconds,
      "error": error,
      "bits_per_weight": bpw,
      "projection_bytes": q_bytes,
      "projection_bf16_bytes": 2 * q_weights,
      "bytes": q_bytes + rest,
      "decode_step_s": step,
    }
    if args.pallas:
      want = model(prompt)
      got = set_implementation(nnx.clone(model), "pallas")(prompt)
      row["pallas_max_abs_diff"] = float(jnp.max(jnp.abs(got - want)))
    out[setting.name] = row
    print(
      f"{setting.name:>12}: {seconds:7.1f} s to quantize, error {error:.4g}, {bpw:.4f} bits/w, "
      f"projections {q_bytes / 1e6:.2f} MB ({q_bytes / (2 * q_weights):.3f} x bf16), model "
      f"{row['bytes'] / 1e6:.2f} MB ({row['bytes'] / bf16_bytes:.3f} x bf16), decode step "
      f"{step * 1e3:.2f} ms ({step / bf16_step:.2f} x bf16)"
      + (f", pallas |diff| {row['pallas_max_abs_diff']:.2e}" if args.pallas else "")
    )
  for name, row in out.items():
    if name.startswith("bpdq"):
      bits = name.split("-w")[1].split("g")[0]
      for other, o in out.items():
        if other.startswith(f"gptq-w{bits}g"):
          print(f"error ratio {name} / {other}: {row['error'] / o['error']:.3f}")
  return out


if __name__ == "__main__":
  main()
