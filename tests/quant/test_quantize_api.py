"""`reasoning_jax.quant.quantize` and `QuantConfig`: one interface for RTN / GPTQ / BPDQ, the
errors it raises (naming the argument), Hessian damping escalation, and the storage it returns."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax.ops.quant import dequant_matmul_reference
from reasoning_jax.quant import (
  QuantConfig,
  hessian_from_inputs,
  inverse_cholesky_upper,
  prepare_hessian,
  quantize,
  quantize_dequantize,
  weighted_error,
)


def _case(seed=0, d_out=32, d_in=128):
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(d_out, d_in)).astype(np.float32)
  x = rng.normal(size=(4 * d_in, d_in)) @ (np.eye(d_in) + 0.3 * rng.normal(size=(d_in, d_in)))
  return w, np.array(hessian_from_inputs(x.astype(np.float32)))


def test_hessian_from_inputs():
  x = np.arange(12, dtype=np.float32).reshape(4, 3)
  np.testing.assert_allclose(np.asarray(hessian_from_inputs(x)), 2 * x.T @ x / 4, rtol=1e-6)


@pytest.mark.parametrize("method, bits", [("rtn", 8), ("gptq", 4), ("bpdq", 3)])
def test_one_interface_for_all_methods(method, bits):
  w, h = _case()
  qw = quantize(w, h, method=method, bits=bits, group_size=32)
  assert qw.method == method and qw.bits == bits and qw.shape == w.shape
  assert qw.kind == ("bitplane" if method == "bpdq" else "uniform")
  q = np.asarray(qw.dequantize())
  assert q.shape == w.shape and np.all(np.isfinite(q))
  e = float(weighted_error(w, q, h))
  assert e < float(weighted_error(w, np.zeros_like(w), h))
  np.testing.assert_array_equal(
    np.asarray(quantize_dequantize(w, h, method=method, bits=bits, group_size=32)), q
  )


def test_act_order_weight_matmul_reads_permuted_inputs():
  w, h = _case(1)
  qw = quantize(w, h, method="gptq", bits=4, group_size=32, act_order=True)
  assert qw.perm is not None
  x = np.random.default_rng(2).normal(size=(5, 128)).astype(np.float32)
  y = dequant_matmul_reference(jnp.asarray(x), qw, jnp.float32)
  np.testing.assert_allclose(np.asarray(y), x @ np.asarray(qw.dequantize()).T, atol=1e-4)


def test_config_and_overrides():
  w, h = _case()
  config = QuantConfig(method="gptq", bits=3, group_size=64)
  a = quantize(w, h, config=config)
  assert (a.method, a.bits, a.group_size) == ("gptq", 3, 64)
  b = quantize(w, h, config=config, bits=2, act_order=True)
  assert (b.method, b.bits, b.perm is not None) == ("gptq", 2, True)
  default = quantize(w, h, group_size=64)  # QuantConfig(): bpdq, 2 bits
  assert (default.method, default.bits) == ("bpdq", 2)
  assert QuantConfig().damp_value == 0.05 and QuantConfig(method="gptq").damp_value == 0.01
  assert QuantConfig(group_size=256).block_value == 256
  assert QuantConfig(method="gptq", group_size=256).block_value == 128
  with pytest.raises(ValueError, match="unknown QuantConfig flag"):
    quantize(w, h, method="gptq", blocksize=64)


@pytest.mark.parametrize(
  "flags, name",
  [
    (dict(method="awq"), "method"),
    (dict(method="bpdq", bits=5), "bits"),
    (dict(method="bpdq", bits=8), "bits"),
    (dict(method="gptq", bits=1), "bits"),
    (dict(method="bpdq", group_size=48), "group_size"),
    (dict(method="bpdq", act_order=True), "act_order"),
    (dict(method="rtn", static_groups=True), "static_groups"),
    (dict(method="bpdq", sym=True), "sym"),
    (dict(n_iters=0), "n_iters"),
    (dict(damp=-0.1), "damp"),
    (dict(alpha=float("nan")), "alpha"),
    (dict(init_bits=1), "init_bits"),
    (dict(block_size=96, group_size=64), "block_size"),
    (dict(storage_dtype="int8"), "storage_dtype"),
  ],
)
def test_config_validation_names_the_flag(flags, name):
  with pytest.raises(ValueError, match=name):
    QuantConfig(**flags).validate()


def test_bad_inputs_name_the_argument():
  w, h = _case()
  with pytest.raises(ValueError, match="bits"):
    quantize(w, h, method="bpdq", bits=5, group_size=32)
  with pytest.raises(ValueError, match=r"group_size=64 .* d_in = 96"):
    quantize(w[:, :96], h[:96, :96], method="gptq", bits=4, group_size=64)
  bad = w.copy()
  bad[3, 5] = np.nan
  with pytest.raises(ValueError, match="weight"):
    quantize(bad, h, method="gptq", bits=4, group_size=32)
  with pytest.raises(ValueError, match="weight"):
    quantize(w[0], h, method="rtn", bits=4, group_size=32)
  with pytest.raises(ValueError, match="weight"):
    quantize(w.astype(np.int32), h, method="rtn", bits=4, group_size=32)
  with pytest.raises(ValueError, match=r"hessian.*\[128, 128\]"):
    quantize(w, h[:64, :64], method="gptq", bits=4, group_size=32)
  with pytest.raises(ValueError, match="hessian"):
    quantize(w, None, method="bpdq", bits=2, group_size=32)
  h_nan = h.copy()
  h_nan[0, 1] = np.inf
  with pytest.raises(ValueError, match="hessian"):
    quantize(w, h_nan, method="gptq", bits=4, group_size=32)
  assert quantize(w, None, method="rtn", bits=4, group_size=32).method == "rtn"


def test_non_spd_hessian_escalates_damping_then_fails():
  rng = np.random.default_rng(3)
  d = 64
  x = rng.normal(size=(d, 16))  # rank 16 < 64: singular, then pushed slightly indefinite
  h = (2 * x @ x.T / 16).astype(np.float32)
  h -= 2e-3 * np.mean(np.diag(h)) * np.eye(d, dtype=np.float32)
  w = rng.normal(size=(8, d)).astype(np.float32)
  assert not np.all(np.isfinite(np.asarray(inverse_cholesky_upper(jnp.asarray(h)))))
  prep = prepare_hessian(h, w, 1e-4)
  assert prep.damp > 2e-3  # escalated 1e-4 -> 1e-3 -> 1e-2
  assert np.all(np.isfinite(np.asarray(prep.inv_chol)))
  h_inv = np.asarray(prep.inv_chol).T @ np.asarray(prep.inv_chol)
  np.testing.assert_allclose(h_inv @ np.asarray(prep.hessian), np.eye(d), atol=2e-3)
  # Strongly indefinite (eigenvalue -2 with unit diagonal): no admissible damping helps.
  block = np.array([[1.0, 3.0], [3.0, 1.0]], np.float32)
  indefinite = np.kron(np.eye(d // 2, dtype=np.float32), block)
  with pytest.raises(ValueError, match="hessian is not positive definite"):
    quantize(w, indefinite, method="gptq", bits=4, group_size=32)
  with pytest.raises(ValueError, match="hessian"):
    quantize(w, -np.eye(d, dtype=np.float32), method="bpdq", bits=2, group_size=32)


def test_dead_columns_zeroed_and_unit_diagonal():
  w, h = _case()
  h[5, :] = 0.0
  h[:, 5] = 0.0
  prep = prepare_hessian(h, w, 0.0)
  assert bool(prep.dead[5]) and float(prep.hessian[5, 5]) == 1.0
  np.testing.assert_array_equal(np.asarray(prep.weight[:, 5]), 0.0)


def test_storage_rounding_flag():
  w, h = _case()
  qw, info = quantize(w, h, method="bpdq", bits=2, group_size=32, return_info=True)
  np.testing.assert_allclose(np.asarray(qw.dequantize()), np.asarray(info["q"]), atol=1e-6)
  qf, info_f = quantize(
    w, h, method="bpdq", bits=2, group_size=32, round_to_storage=False, return_info=True
  )
  # Without rounding the propagated Q is f32 and the stored bf16 weight differs slightly.
  diff = np.abs(np.asarray(qf.dequantize()) - np.asarray(info_f["q"]))
  assert 0 < diff.max() < 0.05 * np.abs(w).max()
