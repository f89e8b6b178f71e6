"""RTN (spec 3.1) and GPTQ (spec 3.2, arXiv:2210.17323): hand-computed RTN groups, the
include-0 rule, GPTQ against a float64 NumPy transcription of the paper's (unblocked) algorithm,
H = I => GPTQ == RTN bit for bit, GPTQ beats RTN in the Hessian metric, dead columns."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from reasoning_jax.quant import QuantConfig, weighted_error
from reasoning_jax.quant.gptq import act_order_perm, gptq
from reasoning_jax.quant.rtn import quantize_rtn, rtn_codes, rtn_params


def correlated_hessian(rng, d_in, n=None, rho=0.5):
  """`H = 2 X X^T / N` of correlated inputs with uneven scales (float32)."""
  n = n or 4 * d_in
  mix = np.eye(d_in) + rho * rng.normal(size=(d_in, d_in)) / np.sqrt(d_in)
  x = mix @ rng.normal(size=(d_in, n)) * rng.uniform(0.2, 2.0, size=(d_in, 1))
  return (2.0 * x @ x.T / n).astype(np.float32)


def numpy_gptq(w, h, bits, g, damp, *, act_order=False, static_groups=False, sym=False):
  """The paper's algorithm, unblocked, in float64: returns (codes, q) in the original order."""
  w = np.asarray(w, np.float64).copy()
  h = np.asarray(h, np.float64).copy()
  d_in = w.shape[1]
  dead = np.diag(h) == 0
  h[dead, dead] = 1.0
  w[:, dead] = 0.0
  maxq = 2**bits - 1

  def params(block):
    xmin = np.minimum(block.min(1), 0.0)
    xmax = np.maximum(block.max(1), 0.0)
    if sym:
      xmax = np.maximum(-xmin, xmax)
      xmin = -xmax
    both = (xmin == 0) & (xmax == 0)
    xmin[both], xmax[both] = -1.0, 1.0
    s = (xmax - xmin) / maxq
    z = np.full_like(s, (maxq + 1) / 2) if sym else np.round(-xmin / s)
    return s, z

  static = [params(w[:, i : i + g]) for i in range(0, d_in, g)]
  perm = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(d_in)
  w, h = w[:, perm], h[perm][:, perm]
  h += damp * np.mean(np.diag(h)) * np.eye(d_in)
  u = np.linalg.cholesky(np.linalg.inv(h)).T
  q = np.zeros_like(w)
  codes = np.zeros(w.shape, np.int64)
  for j in range(d_in):
    if static_groups:
      s, z = static[perm[j] // g]
    elif j % g == 0:
      s, z = params(w[:, j : j + g])
    c = np.clip(np.round(w[:, j] / s) + z, 0, maxq)
    q[:, j], codes[:, j] = s * (c - z), c
    e = (w[:, j] - q[:, j]) / u[j, j]
    w[:, j:] -= np.outer(e, u[j, j:])
  inverse = np.argsort(perm)
  return codes[:, inverse], q[:, inverse]


def test_rtn_hand_computed_group():
  w = jnp.asarray([[0.6, -0.3, 1.2, 0.1]], jnp.float32)
  codes, scale, zero = rtn_codes(w, bits=2, group_size=4)
  # xmin = -0.3, xmax = 1.2, s = 1.5 / 3 = 0.5, z = round(0.6) = 1
  np.testing.assert_allclose(np.asarray(scale), [[0.5]], rtol=1e-7)
  np.testing.assert_array_equal(np.asarray(zero), [[1.0]])
  # round(w / s) + z = round([1.2, -0.6, 2.4, 0.2]) + 1 = [2, 0, 3, 1]
  np.testing.assert_array_equal(np.asarray(codes), [[2, 0, 3, 1]])
  # symmetric 3-bit: xmax = 1.2, s = 2.4 / 7, z = 4; w / s = [1.75, -0.875, 3.5, 0.29]
  codes, scale, zero = rtn_codes(w, bits=3, group_size=4, sym=True)
  np.testing.assert_allclose(np.asarray(scale), [[2.4 / 7]], rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(zero), [[4.0]])
  np.testing.assert_array_equal(np.asarray(codes), [[6, 3, 7, 4]])  # 4 + 4 = 8 clamps to 7


def test_rtn_range_includes_zero():
  groups = jnp.asarray([[1.0, 2.2, 3.0, 4.0], [-1.0, -2.2, -3.0, -4.0], [0.0] * 4], jnp.float32)
  scale, zero = rtn_params(groups, 2)
  # positive group: xmin clamps to 0 (not 1): s = 4/3, z = 0; negative: xmax clamps to 0,
  # z = round(4 / (4/3)) = 3; all-zero: [-1, 1], s = 2/3, z = round(1.5) = 2
  np.testing.assert_allclose(np.asarray(scale), [4 / 3, 4 / 3, 2 / 3], rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(zero), [0.0, 3.0, 2.0])
  codes, _, _ = rtn_codes(groups[:1], bits=2, group_size=4)
  np.testing.assert_array_equal(np.asarray(codes), [[1, 2, 2, 3]])  # w * 3/4 rounded


def test_rtn_quantized_weight_dequantizes_to_the_grid():
  rng = np.random.default_rng(0)
  w = rng.normal(size=(16, 64)).astype(np.float32)
  qw = quantize_rtn(w, bits=4, group_size=32)
  codes, scale, zero = rtn_codes(jnp.asarray(w), bits=4, group_size=32, round_dtype=jnp.bfloat16)
  np.testing.assert_array_equal(np.asarray(qw.codes()), np.asarray(codes))
  expect = np.repeat(np.asarray(scale).T, 32, 1) * (np.asarray(codes) - np.repeat(zero.T, 32, 1))
  np.testing.assert_array_equal(np.asarray(qw.dequantize()), expect)  # bf16 scale: exact
  assert np.max(np.abs(np.asarray(qw.dequantize()) - w)) <= np.max(np.asarray(scale)) / 2 * 1.01


@pytest.mark.parametrize("sym", [False, True])
@pytest.mark.parametrize("group_size, block_size", [(32, 128), (64, 64), (128, 64), (256, 128)])
def test_gptq_with_identity_hessian_is_rtn_bit_exact(group_size, block_size, sym):
  rng = np.random.default_rng(1)
  w = rng.normal(size=(24, 256)).astype(np.float32)
  config = QuantConfig(method="gptq", bits=3, group_size=group_size, block_size=block_size, sym=sym)
  qg = gptq(w, np.eye(256, dtype=np.float32), config)
  qr = quantize_rtn(w, bits=3, group_size=group_size, sym=sym)
  np.testing.assert_array_equal(np.asarray(qg.planes), np.asarray(qr.planes))
  np.testing.assert_array_equal(np.asarray(qg.scales), np.asarray(qr.scales))
  np.testing.assert_array_equal(np.asarray(qg.zeros), np.asarray(qr.zeros))


@pytest.mark.parametrize(
  "act_order, static_groups, group_size, block_size",
  [
    (False, False, 32, 128),
    (False, False, 128, 64),  # a group spanning two blocks
    (True, False, 32, 64),
    (True, True, 64, 128),
    (False, True, 32, 128),
  ],
)
def test_gptq_matches_numpy_reference(act_order, static_groups, group_size, block_size):
  rng = np.random.default_rng(2)
  w = rng.normal(size=(32, 256)).astype(np.float32)
  h = correlated_hessian(rng, 256)
  config = QuantConfig(
    method="gptq",
    bits=3,
    group_size=group_size,
    block_size=block_size,
    act_order=act_order,
    static_groups=static_groups,
    round_to_storage=False,  # the paper keeps f32 scales
    storage_dtype="float32",
  )
  qw, info = gptq(w, h, config, return_info=True)
  codes_ref, q_ref = numpy_gptq(w, h, 3, group_size, 0.01, act_order=act_order,
                                static_groups=static_groups)  # fmt: skip
  codes = np.asarray(qw.codes())
  if qw.perm is not None:  # stored in the act order
    codes = codes[:, np.argsort(np.asarray(qw.perm))]
  assert np.mean(codes == codes_ref) >= 0.99
  q = np.asarray(qw.dequantize())
  assert np.mean(np.abs(q - q_ref) > 1e-4) <= 0.01
  e, e_ref = float(weighted_error(w, q, h)), float(weighted_error(w, q_ref, h))
  assert abs(e - e_ref) <= 1e-3 * e_ref
  assert (qw.perm is not None) == (act_order and not static_groups)
  # GPTQ's identity W - Q = E U holds for the propagated quantities (processing order).
  order = np.arange(256) if info["perm"] is None else np.asarray(info["perm"])
  prepared_w = w[:, order]
  recon = np.asarray(info["q"]) + np.asarray(info["err"]) @ np.asarray(info["inv_chol"])
  np.testing.assert_allclose(recon, prepared_w, atol=2e-4)


def test_act_order_perm_sorts_diagonal_descending():
  h = np.diag([1.0, 5.0, 0.0, 3.0, 5.0]).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(act_order_perm(jnp.asarray(h))), [1, 4, 3, 0, 2])


def test_gptq_beats_rtn_on_correlated_inputs():
  wins, seeds = 0, 20
  for seed in range(seeds):
    rng = np.random.default_rng(100 + seed)
    w = rng.normal(size=(32, 128)).astype(np.float32)
    h = correlated_hessian(rng, 128, rho=1.0)
    config = QuantConfig(method="gptq", bits=3, group_size=32)
    e_gptq = float(weighted_error(w, gptq(w, h, config).dequantize(), h))
    e_rtn = float(weighted_error(w, quantize_rtn(w, bits=3, group_size=32).dequantize(), h))
    wins += e_gptq < e_rtn
  assert wins >= 0.95 * seeds


def test_gptq_dead_columns_are_zero():
  rng = np.random.default_rng(3)
  w = rng.normal(size=(16, 128)).astype(np.float32)
  h = correlated_hessian(rng, 128)
  dead = [0, 7, 63, 64, 127]
  h[dead, :] = 0.0
  h[:, dead] = 0.0
  for act_order in (False, True):
    config = QuantConfig(method="gptq", bits=2, group_size=32, act_order=act_order)
    q = np.asarray(gptq(w, h, config).dequantize())
    np.testing.assert_array_equal(q[:, dead], 0.0)
    assert np.all(np.isfinite(q))
