"""Fused Pallas backward of the OVQ chunk readout (arXiv:2602.03922), interpret mode on CPU.

The custom VJP of `ovq_chunk_readout_pallas` (the fused kernel of
`pallas_kernels/ovq/backward.py`, plus XLA autodiff of the biases and of beta) against
`jax.grad` of the XLA readout `xla_chunk_readout`, for every differentiable input (q,
keys, values, dict_k, dict_v, counts, beta) at fp32 gradient tolerance: with the causal
mask of one unpacked chunk and with a packed-row window (2L keys, a per-query dictionary
mask, rows that read nothing), N not a multiple of the dictionary block, inactive slots.
Also: the gradient really runs the backward kernel, a determinism re-run, and the TPU
interpreter at TPU shapes. Ahead-of-time lowering of the backward for TPU and CUDA is in
`test_ovq_kernel.py` (`test_lowers_for_tpu`, `test_lowers_for_cuda`), inside the whole op.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.ovq import ovq_chunk_readout_pallas
from reasoning_jax.ops.ovq import common, xla_chunk_readout
from reasoning_jax.ops.ovq.chunk import causal_key_mask

B, H = 2, 2
GRAD_TOL = 2e-5  # Twice the fp32 forward tolerance.
ARGNUMS = (0, 1, 2, 5, 6, 7, 8)  # q, keys, values, dict_k, dict_v, counts, beta_h
NAMES = ("q", "keys", "values", "dict_k", "dict_v", "counts", "beta")


def _inputs(*, packed, l=8, n=200, d=4, dv=3, seed=0):
  """Readout arguments. Unpacked: L keys, causal, the last key of row 1 padding, every query
  reads the dictionary. Packed: a 2L window with random visible spans (row 0's query 2 sees
  no key), random dictionary masks (query 2 of row 0 reads nothing at all)."""
  ks = jax.random.split(jax.random.key(seed), 10)
  lk = 2 * l if packed else l
  q = common.l2_normalize(jax.random.normal(ks[0], (B, H, l, d)))
  keys = common.l2_normalize(jax.random.normal(ks[1], (B, H, lk, d)))
  values = jax.random.normal(ks[2], (B, H, lk, dv))
  dict_k = 0.8 * common.l2_normalize(jax.random.normal(ks[3], (B, H, n, d)))
  dict_v = jax.random.normal(ks[4], (B, H, n, dv))
  counts = jnp.where(
    jax.random.bernoulli(ks[5], 0.5, (B, H, n)),
    jax.random.randint(ks[6], (B, H, n), 1, 9).astype(jnp.float32),
    0.0,
  )
  beta = jnp.array([4.0, 9.0])
  if not packed:
    key_mask = causal_key_mask(jnp.ones((B, l), bool).at[1, -1].set(False))
    return q, keys, values, key_mask, None, dict_k, dict_v, counts, beta
  # Query i of the packed window sees keys [lo_i, l + i] (its segment chunk), lo_i random.
  lo = l + jnp.arange(l)[None, :] - jax.random.randint(ks[7], (B, l), 0, l)
  col = jnp.arange(lk)[None, None, :]
  key_mask = (col >= lo[..., None]) & (col <= l + jnp.arange(l)[None, :, None])
  key_mask = key_mask.at[0, 2].set(False)
  dict_mask = jax.random.bernoulli(ks[8], 0.6, (B, l)).at[0, 2].set(False)
  return q, keys, values, key_mask, dict_mask, dict_k, dict_v, counts, beta


def _loss(readout, *args):
  out = readout(*args)
  return jnp.sum(out * jax.random.normal(jax.random.key(7), out.shape))


def _kernel(block_n, renormalize=False, interpret=True):
  return functools.partial(
    ovq_chunk_readout_pallas, renormalize=renormalize, block_n=block_n, interpret=interpret
  )


def _xla(renormalize=False):
  return functools.partial(xla_chunk_readout, renormalize=renormalize, precision="highest")


def _grads(readout, args):
  return jax.jit(jax.grad(functools.partial(_loss, readout), argnums=ARGNUMS))(*args)


@pytest.mark.parametrize(
  "packed,n,block_n,renormalize",
  [
    (False, 200, 128, False),
    (False, 5, 256, True),
    (True, 200, 128, False),
    (True, 300, 256, True),
  ],
)
def test_fused_backward_matches_xla_grad(packed, n, block_n, renormalize):
  args = _inputs(packed=packed, n=n)
  actual = _grads(_kernel(block_n, renormalize), args)
  expected = _grads(_xla(renormalize), args)
  for name, a, e in zip(NAMES, actual, expected):
    assert a.shape == e.shape and bool(jnp.isfinite(a).all()), name
    np.testing.assert_allclose(
      np.asarray(a), np.asarray(e), atol=GRAD_TOL, rtol=GRAD_TOL, err_msg=name
    )
    assert float(jnp.abs(e).max()) > 0, name
  if packed:  # Query 2 of row 0 reads nothing: no gradient reaches it.
    np.testing.assert_array_equal(np.asarray(actual[0][0, :, 2]), 0.0)


def test_gradient_runs_the_backward_kernel():
  """The VJP is the fused kernel (a pallas_call named ovq_chunk_readout_bwd), not XLA's."""
  args = _inputs(packed=True, n=20)
  text = str(jax.make_jaxpr(jax.grad(functools.partial(_loss, _kernel(128))))(*args))
  assert "ovq_chunk_readout_bwd" in text


def test_backward_is_deterministic():
  args = _inputs(packed=True, n=200, seed=3)
  first, second = _grads(_kernel(128), args), _grads(_kernel(128), args)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_tpu_interpreter_at_tpu_shapes():
  """The TPU interpreter (NaN-filled uninitialised memory, out-of-bounds reads raise) at
  D = Dv = 128, L = 16, a packed 32-key window, N = 300 (two 256-slot blocks)."""
  from jax.experimental.pallas import tpu as pltpu

  args = _inputs(packed=True, l=16, n=300, d=128, dv=128, seed=2)
  params = pltpu.InterpretParams(out_of_bounds_reads="raise", uninitialized_memory="nan")
  actual = jax.grad(functools.partial(_loss, _kernel(256, interpret=params)), argnums=ARGNUMS)(
    *args
  )
  expected = _grads(_xla(), args)
  for name, a, e in zip(NAMES, actual, expected):
    np.testing.assert_allclose(
      np.asarray(a), np.asarray(e), atol=GRAD_TOL, rtol=GRAD_TOL, err_msg=name
    )
