"""Compiled Pallas kernels against their XLA references on the current backend.

The test suite checks every kernel in interpret mode on CPU and lowers it for TPU/GPU;
this script is the check that needs the accelerator: it compiles each kernel natively
(no interpret mode) and prints the max abs / relative error of outputs and gradients
against the fp32 XLA reference, for fp32 and bf16 inputs, at a few shapes including
lengths that are not block multiples. Spec guidance (memory_attention.md 6.2): bf16
rtol ~2e-2, fp32 rtol ~1e-4. Failures to compile are printed, not raised, so one run
reports every kernel.

Usage (on a GPU/TPU machine):
  python benchmarks/kernel_check.py [--kernels flash,gla,ovq,dequant,sparse]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

KERNELS = ("flash", "gla", "ovq", "dequant", "sparse")
TINY = False  # --tiny: one small shape per kernel (a CPU smoke run of this script).


def _err(a, b) -> tuple[float, float]:
  a = np.asarray(a, np.float32)
  b = np.asarray(b, np.float32)
  abs_err = float(np.max(np.abs(a - b))) if a.size else 0.0
  scale = float(np.max(np.abs(b))) if b.size else 1.0
  return abs_err, abs_err / max(scale, 1e-12)


def _report(name: str, dtype, outs, refs, labels) -> None:
  tol = 2e-2 if dtype == jnp.bfloat16 else 1e-4
  cells, ok = [], True
  for label, a, b in zip(labels, outs, refs):
    _, rel = _err(a, b)
    ok &= rel <= tol
    cells.append(f"{label} {rel:.1e}")
  print(
    f"  {'ok  ' if ok else 'FAIL'} {name:<44} {jnp.dtype(dtype).name:<8} rel err (max|d|/max|ref|): "
    + ", ".join(cells)
  )


def _grads(fn, args, argnums):
  def loss(*a):
    out = fn(*a)
    out = out[0] if isinstance(out, tuple) else out
    w = jax.random.normal(jax.random.key(7), out.shape, jnp.float32)
    return jnp.sum(out.astype(jnp.float32) * w)

  return jax.jit(jax.value_and_grad(loss, argnums=argnums))(*args)


def check_flash() -> None:
  from pallas_kernels.flash_attention import flash_attention, flash_attention_reference

  print("flash attention (Pallas) vs flash_attention_reference")
  for dtype in (jnp.float32, jnp.bfloat16):
    for t, window, n, kh, d in (
      ((40, 16, 2, 1, 32),)
      if TINY
      else ((512, None, 4, 2, 64), (1000, 256, 4, 1, 128), (2048, None, 8, 2, 128))
    ):
      ks = jax.random.split(jax.random.key(t), 3)
      q = jax.random.normal(ks[0], (2, t, n, d), dtype)
      k = jax.random.normal(ks[1], (2, t, kh, d), dtype)
      v = jax.random.normal(ks[2], (2, t, kh, d), dtype)
      # On a GPU 16-bit calls run both CUDA forward schedules (Mosaic GPU and Triton).
      gpu16 = jax.default_backend() == "gpu" and dtype != jnp.float32
      for sched in ("mosaic", "loop") if gpu16 else (None,):
        name = f"T={t} window={window} N={n} K={kh} D={d}" + (f" {sched}" if sched else "")
        try:
          kern = lambda q, k, v: flash_attention(q, k, v, sliding_window=window, schedule=sched)
          ref = lambda q, k, v: flash_attention_reference(
            q.astype(jnp.float32),
            k.astype(jnp.float32),
            v.astype(jnp.float32),
            sliding_window=window,
          )
          (_, g1), (_, g2) = _grads(kern, (q, k, v), (0, 1, 2)), _grads(ref, (q, k, v), (0, 1, 2))
          o1, o2 = jax.jit(kern)(q, k, v), jax.jit(ref)(q, k, v)
          _report(name, dtype, (o1, *g1), (o2, *g2), ("o", "dq", "dk", "dv"))
        except Exception as e:  # pylint: disable=broad-except
          print(f"  FAIL {name} {jnp.dtype(dtype).name}: {type(e).__name__}: {str(e)[:300]}")
          traceback.print_exc(limit=3)


def check_gla() -> None:
  print("gated linear attention: pallas chunk (fused backward) vs naive (fp32 reference)")
  for dtype in (jnp.float32, jnp.bfloat16):
    for t, h, d, c, packed in (
      ((40, 2, 16, 16, True),)
      if TINY
      else ((256, 4, 64, 64, False), (1000, 2, 128, 64, True), (2048, 4, 64, 32, False))
    ):
      ks = jax.random.split(jax.random.key(t), 6)
      q, k, v = (jax.random.normal(kk, (2, t, h, d), dtype) for kk in ks[:3])
      g = jax.nn.log_sigmoid(jax.random.normal(ks[3], (2, t, h, d))) / 16
      h0 = jax.random.normal(ks[4], (2, h, d, d), jnp.float32)
      # Packed rows: a new sequence about every 100 positions (segment_ids).
      seg = jnp.cumsum(jax.random.uniform(ks[5], (2, t)) < 0.01, axis=1) if packed else None
      # On a GPU, 16-bit calls with C = 64 run both forward schedules (the Triton
      # pallas_call and the Mosaic GPU kernel); elsewhere the default.
      mosaic = jax.default_backend() == "gpu" and dtype != jnp.float32 and c == 64
      for schedule in ("pallas_call", "mosaic") if mosaic else (None,):
        _check_gla_call((q, k, v, g, h0), seg, c, schedule)


def _check_gla_call(args, seg, c: int, schedule: str | None) -> None:
  """One GLA kernel call (outputs, final state, gradients) against the fp32 scan."""
  from pallas_kernels.gla import gla_chunk_pallas
  from reasoning_jax.ops.gla import gla_naive

  q = args[0]
  _, t, h, d = q.shape
  name = f"T={t} H={h} D={d} chunk={c}" + (" packed" if seg is not None else "")
  name += f" {schedule}" if schedule else ""
  try:
    kern = lambda q, k, v, g, h0: gla_chunk_pallas(
      q, k, v, g, initial_state=h0, chunk_size=c, segment_ids=seg, schedule=schedule
    )
    ref = lambda q, k, v, g, h0: gla_naive(
      q.astype(jnp.float32),
      k.astype(jnp.float32),
      v.astype(jnp.float32),
      g,
      initial_state=h0,
      segment_ids=seg,
    )
    o1, s1 = jax.jit(kern)(*args)
    o2, s2 = jax.jit(ref)(*args)
    (_, g1), (_, g2) = _grads(kern, args, (0, 1, 2, 3, 4)), _grads(ref, args, (0, 1, 2, 3, 4))
    labels = ("o", "state", "dq", "dk", "dv", "dg", "dh0")
    _report(name, q.dtype, (o1, s1, *g1), (o2, s2, *g2), labels)
  except Exception as e:  # pylint: disable=broad-except
    print(f"  FAIL {name} {jnp.dtype(q.dtype).name}: {type(e).__name__}: {str(e)[:300]}")
    traceback.print_exc(limit=3)


def check_ovq() -> None:
  try:
    from reasoning_jax.ops.ovq import ovq_attention
  except ImportError as e:
    print(f"ovq: not available ({e})")
    return
  print("OVQ attention: pallas chunk (fused readout backward) vs xla chunk; packed = 3 segments")
  for dtype in (jnp.float32, jnp.bfloat16):
    for (t, h, d, c, slots), packed in [
      (shape, packed)
      for shape in (
        ((40, 2, 16, 16, 8),)
        if TINY
        else ((256, 2, 64, 64, 128), (1000, 2, 64, 64, 256), (2048, 4, 128, 64, 1024))
      )
      for packed in (False, True)
    ]:
      ks = jax.random.split(jax.random.key(t), 3)
      q, k, v = (jax.random.normal(kk, (2, t, h, d), dtype) for kk in ks)
      beta = jnp.full((h,), float(np.sqrt(d)), jnp.float32)
      # Segments starting mid-chunk: [0, t/3), [t/3, t/3 + 1), [t/3 + 1, t).
      ids = jnp.broadcast_to((jnp.arange(t) >= t // 3) + (jnp.arange(t) > t // 3), (2, t))
      name = f"T={t} H={h} D={d} chunk={c} slots={slots}{' packed' if packed else ''}"
      try:
        run = lambda impl: (
          lambda q, k, v, beta: ovq_attention(
            q,
            k,
            v,
            beta=beta,
            chunk_size=c,
            num_slots=slots,
            implementation=impl,
            segment_ids=ids.astype(jnp.int32) if packed else None,
          )
        )
        o1, _ = jax.jit(run("pallas"))(q, k, v, beta)
        o2, _ = jax.jit(run("xla"))(q, k, v, beta)
        (_, g1), (_, g2) = (
          _grads(run("pallas"), (q, k, v, beta), (0, 1, 2, 3)),
          _grads(run("xla"), (q, k, v, beta), (0, 1, 2, 3)),
        )
        _report(name, dtype, (o1, *g1), (o2, *g2), ("o", "dq", "dk", "dv", "dbeta"))
      except Exception as e:  # pylint: disable=broad-except
        print(f"  FAIL {name} {jnp.dtype(dtype).name}: {type(e).__name__}: {str(e)[:300]}")
        traceback.print_exc(limit=3)


def check_dequant() -> None:
  """Fused dequant-matmul (BPDQ, arXiv:2602.04163) vs the XLA reference `dequant_matmul_reference`
  (same weight rounding), forward only, at decode and prefill M for both storage kinds."""
  from pallas_kernels.dequant_matmul import dequant_matmul_pallas, dequant_matmul_reference
  from reasoning_jax.ops.quant import from_bitplanes, from_codes

  print("dequant-matmul: pallas (compiled) vs dequant_matmul_reference (XLA)")
  # On a GPU both CUDA forms: Mosaic GPU (16-bit dtypes, Hopper+) and the Triton one.
  forms = ("mosaic", "triton") if jax.default_backend() == "gpu" else ("auto",)
  shapes = (
    ((256, 512, 2, 128, "bitplane"), (128, 256, 3, 32, "uniform"))
    if TINY
    else (
      (4096, 4096, 2, 256, "bitplane"),
      (11008, 4096, 3, 128, "bitplane"),
      (4096, 11008, 4, 128, "uniform"),
      (1024, 1024, 2, 32, "uniform"),
    )
  )
  for d_out, d_in, bits, g, kind in shapes:
    keys = jax.random.split(jax.random.key(d_out + d_in + bits), 3)
    n_groups, scale = d_in // g, 1.0 / np.sqrt(d_in)
    if kind == "bitplane":
      planes = jax.random.bernoulli(keys[0], 0.5, (bits, d_out, d_in)).astype(jnp.int32)
      coeffs = jax.random.normal(keys[1], (n_groups, bits + 1, d_out)) * scale
      qw = from_bitplanes(planes, coeffs, group_size=g)
    else:
      codes = jax.random.randint(keys[0], (d_out, d_in), 0, 2**bits)
      scales = jax.random.uniform(keys[1], (n_groups, d_out), minval=0.5, maxval=1.5)
      zeros = jax.random.randint(keys[2], (n_groups, d_out), 0, 2**bits)
      qw = from_codes(codes, scales * scale / 2**bits, zeros, bits=bits, group_size=g)
    for dtype in (jnp.float32, jnp.bfloat16):
      for m in (1,) if TINY else (1, 7, 64, 300):
        x = jax.random.normal(jax.random.key(m), (m, d_in), dtype)
        for form in forms:
          if form == "mosaic" and dtype == jnp.float32:
            continue  # wgmma's register operand is 16-bit
          name = f"M={m} {kind} k={bits} g={g} [{d_out}x{d_in}] {form}"
          try:
            fn = functools.partial(dequant_matmul_pallas, gpu_kernel=form)
            y1 = jax.jit(fn)(x, qw)
            y2 = jax.jit(dequant_matmul_reference)(x, qw)
            _report(name, dtype, (y1,), (y2,), ("y",))
          except Exception as e:  # pylint: disable=broad-except
            print(f"  FAIL {name} {jnp.dtype(dtype).name}: {type(e).__name__}: {str(e)[:300]}")
            traceback.print_exc(limit=3)


def check_sparse() -> None:
  """LycheeDecode's decode kernels A and B (arXiv:2602.04541), the backend's default schedule
  (Triton split-K on GPU, Mosaic grid on TPU), vs the XLA references, ragged lengths, -1 ids."""
  from pallas_kernels.sparse_decode import (
    block_sparse_decode_pallas,
    block_sparse_decode_reference,
    retrieval_decode_pallas,
    retrieval_decode_reference,
  )

  print("sparse decode: kernels A / B (compiled) vs retrieval / block_sparse references (XLA)")
  shapes = ((1, 1024, 2, 4, 128),) if TINY else ((2, 8192, 8, 4, 128), (1, 32768, 8, 8, 128))
  blk = 64
  for b, s, kh, g, d in shapes:
    heads = jnp.arange(kh, dtype=jnp.int32)[::-1]
    lengths = jnp.asarray([s - 37 * (i + 1) for i in range(b)], jnp.int32)
    n_sel = min(16, s // blk)
    rng = np.random.default_rng(s)
    ids = np.stack(
      [np.stack([rng.choice(s // blk, n_sel, replace=False) for _ in range(kh)]) for _ in range(b)]
    ).astype(np.int32)
    ids[:, :, -2:] = -1
    ids = jnp.asarray(ids)
    for dtype in (jnp.float32, jnp.bfloat16):
      keys = jax.random.split(jax.random.key(s + kh), 3)
      q = jax.random.normal(keys[0], (b, kh, g, d), dtype)
      k = jax.random.normal(keys[1], (b, s, kh, d), dtype)
      v = jax.random.normal(keys[2], (b, s, kh, d), dtype)
      # On a GPU 16-bit calls run both CUDA schedules (Mosaic GPU and Triton split-K).
      gpu16 = jax.default_backend() == "gpu" and dtype != jnp.float32
      for sched in ("mosaic", "loop") if gpu16 else (None,):
        name = f"B={b} S={s} K={kh} G={g} D={d} block={blk}" + (f" {sched}" if sched else "")
        try:
          out_a, sc_a = jax.jit(
            lambda q, k, v, n: retrieval_decode_pallas(q, k, v, n, heads, schedule=sched)
          )(q, k, v, lengths)
          ref_a, ref_sc = jax.jit(
            lambda q, k, v, n: retrieval_decode_reference(q, k, v, n, heads, block_size=blk)
          )(q, k, v, lengths)
          finite = jnp.isfinite(ref_sc)
          same_inf = bool(jnp.all(jnp.isfinite(sc_a) == finite))
          out_b = jax.jit(
            lambda q, k, v, n, i: block_sparse_decode_pallas(q, k, v, n, heads, i, schedule=sched)
          )(q, k, v, lengths, ids)
          ref_b = jax.jit(
            lambda q, k, v, n, i: block_sparse_decode_reference(
              q, k, v, n, heads, i, block_size=blk
            )
          )(q, k, v, lengths, ids)
          _report(
            name + ("" if same_inf else " (-inf pattern differs)"),
            dtype,
            (out_a, jnp.where(finite, sc_a, 0.0), out_b),
            (ref_a, jnp.where(finite, ref_sc, 0.0), ref_b),
            ("A out", "A scores", "B out"),
          )
        except Exception as e:  # pylint: disable=broad-except
          print(f"  FAIL {name} {jnp.dtype(dtype).name}: {type(e).__name__}: {str(e)[:300]}")
          traceback.print_exc(limit=3)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--kernels", default=",".join(KERNELS))
  p.add_argument("--tiny", action="store_true", help="one small shape per kernel (CPU smoke)")
  args = p.parse_args(argv)
  global TINY
  TINY = args.tiny
  print(f"backend={jax.default_backend()} devices={jax.devices()} jax={jax.__version__}")
  if jax.default_backend() == "cpu":
    print("NOTE: on CPU the kernels run in interpret mode; the test suite already covers this.")
  for name in args.kernels.split(","):
    checks = {
      "flash": check_flash,
      "gla": check_gla,
      "ovq": check_ovq,
      "dequant": check_dequant,
      "sparse": check_sparse,
    }
    checks[name]()


if __name__ == "__main__":
  main()
