"""Speed of the fused dequant-matmul kernel vs a dense bf16 matmul and the XLA dequant path.

"BPDQ: Bit-Plane Decomposition Quantization on a Variable Grid for Large Language Models"
(Chen et al., arXiv:2602.04163). For a linear `y = x W^T` with `W [d_out, d_in]` quantised to
2-bit BPDQ with groups of 256 (2.1875 bits per weight), times on the current backend:

  * dense: `x @ W^T` with W in bf16 (what the quantised layer replaces);
  * xla: `reasoning_jax.ops.quant.dequant_matmul_reference`, which dequantises the whole weight
    in XLA every call, then multiplies;
  * pallas: `pallas_kernels.dequant_matmul.dequant_matmul_pallas` compiled (interpret off),
    which rebuilds weight tiles in fast memory from the packed planes; on a GPU once per
    `--gpu-kernels` form ("mosaic": Mosaic GPU wgmma, "triton": the deprecated Triton
    backend, "auto": the kernel's own choice), one row each.

It prints median milliseconds per call, the ratios dense / pallas and xla / pallas, the bytes
each path must read at least (weights + x + y; the xla path also writes and re-reads the f32 and
bf16 weight it materialises) and the pallas path's effective bandwidth. Decode (M <= 8) is
bandwidth-bound, so the kernel's ceiling there is `16 / 2.1875 = 7.3x` the dense matmul.
The weights are random bits and coefficients (speed does not depend on the values).

Its real use is on a TPU or GPU. On CPU Pallas runs only in interpret mode (orders of magnitude
slower than compiled code), so `--tiny` (the default on CPU) runs one small shape in interpret
mode as a smoke check whose numbers mean nothing. No timing is asserted.

Usage:
  python benchmarks/dequant_matmul.py [--shapes 4096x4096,4096x11008 --ms 1,8,64 \\
      --bits 2 --group-size 256 --repeats 20 --gpu-kernels mosaic,triton] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._timing import median_seconds  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from pallas_kernels.dequant_matmul import dequant_matmul_pallas  # noqa: E402
from reasoning_jax.ops.quant import QuantizedWeight, dequant_matmul_reference  # noqa: E402


def _parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--shapes", default="4096x4096,4096x11008", help="d_in x d_out, comma-separated")
  p.add_argument("--ms", default="1,8,64", help="rows M of x, comma-separated")
  p.add_argument("--bits", type=int, default=2)
  p.add_argument("--group-size", type=int, default=256)
  p.add_argument("--repeats", type=int, default=20)
  p.add_argument(
    "--gpu-kernels",
    default="auto",
    help="comma-separated gpu_kernel forms to time (auto, mosaic, triton); GPU only",
  )
  p.add_argument(
    "--tiny", action="store_true", help="one small shape in interpret mode (default on CPU)"
  )
  args = p.parse_args(argv)
  if jax.default_backend() == "cpu":
    args.tiny = True
  if args.tiny:
    args.shapes, args.ms, args.repeats = "512x256", "1,8", 2
  args.gpu_kernels = args.gpu_kernels.split(",") if jax.default_backend() == "gpu" else ["auto"]
  return args


def random_bpdq(d_in: int, d_out: int, bits: int, group_size: int, seed: int = 0):
  """A `QuantizedWeight` with random packed planes and bf16 coefficients (BPDQ layout)."""
  k1, k2 = jax.random.split(jax.random.key(seed))
  words = jax.random.bits(k1, (d_in // 32, bits, d_out), jnp.uint32)
  coeffs = jax.random.normal(k2, (d_in // group_size, bits + 1, d_out)) / d_in**0.5
  return QuantizedWeight(
    planes=jax.lax.bitcast_convert_type(words, jnp.int32),
    coeffs=coeffs.astype(jnp.bfloat16),
    kind="bitplane",
    bits=bits,
    group_size=group_size,
    shape=(d_out, d_in),
    method="bpdq",
  )


def _time(fn, args, repeats: int) -> float | str:
  """Median milliseconds per call after one compile-and-warm-up call, or the error."""
  try:
    return 1e3 * median_seconds(fn, *args, repeats=repeats)
  except Exception as e:  # pylint: disable=broad-except
    return f"{type(e).__name__}: {str(e)[:120]}"


def _fmt(t) -> str:
  return f"{t:9.3f}" if isinstance(t, float) else f"{'FAIL':>9}"


def _ratio(a, b) -> str:
  return f"{a / b:7.2f}x" if isinstance(a, float) and isinstance(b, float) else f"{'-':>8}"


def main(argv=None) -> None:
  args = _parse_args(argv)
  interpret = bool(args.tiny)
  print(f"backend={jax.default_backend()} devices={jax.devices()} jax={jax.__version__}")
  if interpret:
    print("NOTE: --tiny / CPU: the Pallas kernel runs in interpret mode; timings mean nothing.")
  dense_fn = jax.jit(lambda x, w: jnp.matmul(x, w.T, preferred_element_type=jnp.float32))
  xla_fn = jax.jit(dequant_matmul_reference)
  pallas_fns = {
    gk: jax.jit(
      lambda x, qw, gk=gk: dequant_matmul_pallas(x, qw, interpret=interpret, gpu_kernel=gk)
    )
    for gk in args.gpu_kernels
  }
  print(
    f"{'d_in x d_out':>13} {'M':>4} {'kernel':>7} {'dense ms':>9} {'xla ms':>9} {'pallas ms':>9} "
    f"{'dense/pal':>9} {'xla/pal':>8} {'dense MB':>9} {'quant MB':>9} {'pallas GB/s':>11}"
  )
  for shape in args.shapes.split(","):
    d_in, d_out = (int(v) for v in shape.lower().split("x"))
    qw = random_bpdq(d_in, d_out, args.bits, args.group_size)
    w = qw.dequantize(jnp.bfloat16)  # the dense layer this one replaces
    for m in (int(v) for v in args.ms.split(",")):
      x = jax.random.normal(jax.random.key(m), (m, d_in), jnp.bfloat16)
      io_bytes = 2 * m * (d_in + d_out)
      dense_bytes = 2 * d_in * d_out + io_bytes
      quant_bytes = qw.nbytes + io_bytes
      t_dense = _time(dense_fn, (x, w), args.repeats)
      t_xla = _time(xla_fn, (x, qw), args.repeats)
      for gk, pallas_fn in pallas_fns.items():
        t_pallas = _time(pallas_fn, (x, qw), args.repeats)
        bandwidth = quant_bytes / (t_pallas * 1e6) if isinstance(t_pallas, float) else float("nan")
        print(
          f"{shape:>13} {m:>4} {gk:>7} {_fmt(t_dense)} {_fmt(t_xla)} {_fmt(t_pallas)} "
          f"{_ratio(t_dense, t_pallas):>9} {_ratio(t_xla, t_pallas)} "
          f"{dense_bytes / 1e6:9.2f} {quant_bytes / 1e6:9.2f} {bandwidth:11.1f}"
        )
        for name, t in (("dense", t_dense), ("xla", t_xla), (f"pallas {gk}", t_pallas)):
          if isinstance(t, str):
            print(f"    {name} failed: {t}")
  print(
    f"weights: {qw.describe()}; the xla path also writes and reads back the dequantised "
    f"weight ({6 * d_in * d_out / 1e6:.1f} MB as f32 + bf16 for the last shape)"
  )


if __name__ == "__main__":
  main()
