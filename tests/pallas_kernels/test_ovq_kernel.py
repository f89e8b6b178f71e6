"""Pallas OVQ chunk readout (arXiv:2602.03922): interpret mode vs the XLA chunk form.

On CPU the kernel runs in interpret mode: the readout alone against
`xla_chunk_readout` (N not a multiple of the dictionary block, inactive slots,
padding keys), the whole chunked op against its exported reference (fp32 and
bf16 tolerances, partly filled buffers, padding, packed rows equal to each segment
run alone), gradients through the custom VJP (whose backward is the fused kernel,
tested alone in `test_ovq_backward.py`), a determinism re-run, the TPU interpreter
at TPU shapes, and ahead-of-time lowering of forward and backward for TPU (Mosaic)
and CUDA (Triton). Lowering checks the Pallas lowering rules, not Mosaic's layout
passes or Triton's PTX compilation.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.ovq import (
  ovq_chunk_assign_pallas,
  ovq_chunk_pallas,
  ovq_chunk_readout_pallas,
  ovq_reference,
)
from pallas_kernels.ovq.kernel import dictionary_blocking
from reasoning_jax.ops.ovq import ovq_attention, xla_chunk_readout
from reasoning_jax.ops.ovq import common
from reasoning_jax.ops.ovq.chunk import causal_key_mask
from tests.helpers import ovq_packed

B, T, H, D, DV = 2, 23, 2, 4, 3
TOL = {jnp.float32: 1e-5, jnp.bfloat16: 2e-2}


def _inputs(*, t=T, dtype=jnp.float32, seed=0):
  ks = jax.random.split(jax.random.key(seed), 3)
  return (
    jax.random.normal(ks[0], (B, t, H, D), dtype),
    jax.random.normal(ks[1], (B, t, H, D), dtype),
    jax.random.normal(ks[2], (B, t, H, DV), dtype),
  )


def _readout_inputs(*, l=8, n=200, d=D, dv=DV, seed=0):
  """Random chunk and dictionary: about half the slots active, the last key a padding key
  (readout arguments: the key mask is causal, every query reads the dictionary)."""
  ks = jax.random.split(jax.random.key(seed), 7)
  q = common.l2_normalize(jax.random.normal(ks[0], (B, H, l, d)))
  keys = common.l2_normalize(jax.random.normal(ks[1], (B, H, l, d)))
  values = jax.random.normal(ks[2], (B, H, l, dv))
  key_valid = jnp.ones((B, l), bool).at[1, -1].set(False)
  dict_k = 0.8 * common.l2_normalize(jax.random.normal(ks[3], (B, H, n, d)))
  dict_v = jax.random.normal(ks[4], (B, H, n, dv))
  counts = jnp.where(
    jax.random.bernoulli(ks[5], 0.5, (B, H, n)),
    jax.random.randint(ks[6], (B, H, n), 1, 9).astype(jnp.float32),
    0.0,
  )
  key_mask = causal_key_mask(key_valid)
  return q, keys, values, key_mask, None, dict_k, dict_v, counts, jnp.array([4.0, 9.0])


@pytest.mark.parametrize(
  "n,block_n,renormalize", [(200, 128, False), (5, 256, True), (512, 256, False)]
)
def test_readout_matches_xla(n, block_n, renormalize):
  """N = 200 with 128-slot blocks: a partial last block padded with -inf slots."""
  args = _readout_inputs(n=n)
  out = jax.jit(
    functools.partial(
      ovq_chunk_readout_pallas, renormalize=renormalize, block_n=block_n, interpret=True
    )
  )(*args)
  expected = xla_chunk_readout(*args, renormalize=renormalize, precision="highest")
  np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5, rtol=1e-5)


def test_readout_empty_dictionary_and_no_visible_key():
  """All slots inactive and a row whose keys are all padding: finite, that row 0."""
  q, keys, values, key_mask, _, dict_k, dict_v, counts, beta = _readout_inputs(n=7)
  key_mask = key_mask.at[0].set(False)
  out = ovq_chunk_readout_pallas(
    q, keys, values, key_mask, None, dict_k, dict_v, 0 * counts, beta, interpret=True
  )
  assert bool(jnp.isfinite(out).all())
  np.testing.assert_array_equal(np.asarray(out[0]), 0.0)
  expected = xla_chunk_readout(
    q,
    keys,
    values,
    key_mask,
    None,
    dict_k,
    dict_v,
    0 * counts,
    beta,
    renormalize=False,
    precision="highest",
  )
  np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5, rtol=1e-5)


def _assign_inputs(*, l=8, n=200, d=D, seed=0):
  ks = jax.random.split(jax.random.key(seed), 3)
  keys = common.l2_normalize(jax.random.normal(ks[0], (B, H, l, d)))
  centres = 0.8 * common.l2_normalize(jax.random.normal(ks[1], (B, H, n, d)))
  candidate = jax.random.bernoulli(ks[2], 0.5, (B, H, n))
  return keys, centres, candidate


@pytest.mark.parametrize("n,block_n", [(200, 128), (5, 256), (512, 256)])
def test_assign_matches_xla(n, block_n):
  """Hot loop 2: the nearest candidate per key equals `common.nearest_candidate` exactly."""
  keys, centres, candidate = _assign_inputs(n=n)
  idx = jax.jit(functools.partial(ovq_chunk_assign_pallas, block_n=block_n, interpret=True))(
    keys, centres, candidate
  )
  expected = common.nearest_candidate(keys, centres, candidate, "highest")
  assert idx.dtype == jnp.int32 and idx.shape == keys.shape[:3]
  np.testing.assert_array_equal(np.asarray(idx), np.asarray(expected))
  assert bool(jnp.take_along_axis(candidate, idx, axis=-1).all())


def test_assign_ties_go_to_the_lowest_index_and_no_candidate_to_zero():
  """Slots 3, 7 (same block) and 150 (a later 128-slot block) hold key 0 itself, its nearest
  centre three times over: key 0 picks 3. A (batch, head) with no candidate returns 0."""
  keys, centres, candidate = _assign_inputs(n=200)
  for slot in (3, 7, 150):
    centres = centres.at[:, :, slot].set(keys[:, :, 0])
  candidate = candidate.at[:, :, jnp.array([3, 7, 150])].set(True)
  candidate = candidate.at[1, 0].set(False)
  idx = ovq_chunk_assign_pallas(keys, centres, candidate, block_n=128, interpret=True)
  expected = common.nearest_candidate(keys, centres, candidate, "highest")
  np.testing.assert_array_equal(np.asarray(idx), np.asarray(expected))
  assert (np.asarray(idx[0, :, 0]) == 3).all()
  np.testing.assert_array_equal(np.asarray(idx[1, 0]), 0)


def test_assign_rejects_mismatched_shapes():
  keys, centres, candidate = _assign_inputs(n=20)
  with pytest.raises(ValueError, match="candidate"):
    ovq_chunk_assign_pallas(keys, centres, candidate[..., :5], interpret=True)


def test_dictionary_blocking():
  assert dictionary_blocking(1024, 256, False) == (256, 1024)
  assert dictionary_blocking(1000, 256, False) == (256, 1024)
  assert dictionary_blocking(300, 256, False) == (256, 512)
  assert dictionary_blocking(200, 512, False) == (256, 256)
  assert dictionary_blocking(768, 256, True) == (256, 1024)


@functools.partial(
  jax.jit, static_argnames=("fn", "chunk_size", "num_slots", "schedule", "renormalize")
)
def _run(
  fn,
  q,
  k,
  v,
  initial_state=None,
  lengths=None,
  *,
  chunk_size,
  num_slots,
  schedule="saturating",
  renormalize=False,
):
  kw = dict(interpret=True) if fn is ovq_chunk_pallas else {}
  return fn(
    q,
    k,
    v,
    beta=jnp.array([3.0, 1.5]),
    initial_state=initial_state,
    lengths=lengths,
    chunk_size=chunk_size,
    num_slots=num_slots,
    schedule=schedule,
    renormalize=renormalize,
    **kw,
  )


def _check(actual, expected, tol):
  np.testing.assert_allclose(
    np.asarray(actual[0], np.float32), np.asarray(expected[0], np.float32), atol=tol, rtol=tol
  )
  for a, e in zip(jax.tree.leaves(actual[1]), jax.tree.leaves(expected[1])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
  "dtype,chunk_size,num_slots,schedule,renormalize",
  [
    (jnp.float32, 4, 6, "saturating", False),
    (jnp.float32, 8, 30, "every_token", True),
    (jnp.bfloat16, 4, 6, "saturating", False),
  ],
)
def test_op_matches_reference(dtype, chunk_size, num_slots, schedule, renormalize):
  q, k, v = _inputs(dtype=dtype)
  kw = dict(chunk_size=chunk_size, num_slots=num_slots, schedule=schedule, renormalize=renormalize)
  out = _run(ovq_chunk_pallas, q, k, v, **kw)
  assert out[0].dtype == dtype and out[1].dk.dtype == jnp.float32
  _check(out, _run(ovq_reference, q, k, v, **kw), TOL[dtype])


def test_op_with_write_flags_matches_reference():
  """The growth, seeding and update flags live in the XLA write the kernel op shares: a
  non-default reading of each runs on the kernel path and equals the XLA chunk form."""
  q, k, v = _inputs()
  kw = dict(
    beta=jnp.array([3.0, 1.5]),
    chunk_size=4,
    num_slots=6,
    schedule="dirichlet",
    seeding="random",
    update="constant",
    renormalize=True,
  )
  out = jax.jit(functools.partial(ovq_chunk_pallas, interpret=True, **kw))(q, k, v)
  _check(out, jax.jit(functools.partial(ovq_reference, **kw))(q, k, v), 1e-5)


def test_vq_readout_is_rejected_not_replaced():
  """The kernel reads the chunk's exact unit keys only: readout="vq" with the Pallas backend
  raises naming the flag (no silent fallback to XLA)."""
  q, k, v = _inputs(t=4)
  match = "readout='vq' is not supported by the Pallas OVQ chunk readout"
  with pytest.raises(ValueError, match=match):
    ovq_chunk_pallas(q, k, v, beta=1.0, chunk_size=4, num_slots=6, readout="vq", interpret=True)
  with pytest.raises(ValueError, match=match):
    ovq_attention(
      q, k, v, beta=1.0, chunk_size=4, num_slots=6, readout="vq", implementation="pallas"
    )


def test_op_from_partly_filled_buffer_with_padding():
  q, k, v = _inputs(t=11, seed=3)
  lengths = jnp.array([7, 10])
  kw = dict(chunk_size=4, num_slots=6)
  _, state = _run(ovq_reference, q, k, v, None, lengths, **kw)
  q2, k2, v2 = _inputs(t=13, seed=4)
  lengths2 = jnp.array([13, 6])
  out = _run(ovq_chunk_pallas, q2, k2, v2, state, lengths2, **kw)
  _check(out, _run(ovq_reference, q2, k2, v2, state, lengths2, **kw), 1e-5)
  np.testing.assert_array_equal(np.asarray(out[1].buf_len), [(3 + 13) % 4, (2 + 6) % 4])


def test_op_on_packed_rows_equals_each_segment_alone():
  """Packed rows (`tests/helpers/ovq_packed.py`: segments starting mid-chunk and on a chunk
  edge, of length 1, padding): the kernel op gives each segment what it gives alone, and
  the last segment's state, like the XLA packed scan."""
  q, k, v = ovq_packed.inputs()
  kw = dict(
    beta=ovq_packed.BETA,
    segment_ids=ovq_packed.SEGMENT_IDS,
    lengths=ovq_packed.LENGTHS,
    chunk_size=ovq_packed.L,
    num_slots=ovq_packed.N,
  )
  out = jax.jit(functools.partial(ovq_chunk_pallas, interpret=True, **kw))(q, k, v)
  ovq_packed.check_against_separate(*out, ovq_packed.separate_runs(q, k, v))
  _check(out, jax.jit(functools.partial(ovq_reference, **kw))(q, k, v), 1e-5)


def test_kernel_is_deterministic():
  q, k, v = _inputs()
  first = _run(ovq_chunk_pallas, q, k, v, chunk_size=4, num_slots=6)
  second = _run(ovq_chunk_pallas, q, k, v, chunk_size=4, num_slots=6)
  for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("packed", [False, True])
def test_gradients_through_custom_vjp(packed):
  """Gradients of the whole op (kernel readout with its fused backward, XLA write) equal the
  XLA chunk form's, on unpacked and on packed rows."""
  q, k, v = ovq_packed.inputs() if packed else _inputs(t=15)
  extra = dict(segment_ids=ovq_packed.SEGMENT_IDS, lengths=ovq_packed.LENGTHS) if packed else {}

  def loss(fn, q, k, v, beta):
    kw = dict(interpret=True) if fn is ovq_chunk_pallas else {}
    o, state = fn(q, k, v, beta=beta, chunk_size=4, num_slots=5, **extra, **kw)
    w = lambda x, s: jax.random.normal(jax.random.key(s), x.shape)
    return (
      jnp.sum(o * w(o, 7)) + jnp.sum(state.dk * w(state.dk, 8)) + jnp.sum(state.dv * w(state.dv, 9))
    )

  grad = lambda fn: jax.jit(jax.grad(functools.partial(loss, fn), argnums=(0, 1, 2, 3)))(
    q, k, v, jnp.array([3.0, 1.5])
  )
  for name, a, e in zip("q k v beta".split(), grad(ovq_chunk_pallas), grad(ovq_reference)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=2e-5, rtol=2e-5, err_msg=name)


def test_dispatcher_pallas_matches_xla():
  q, k, v = _inputs()
  run = lambda impl: ovq_attention(
    q, k, v, beta=2.0, chunk_size=8, num_slots=6, implementation=impl
  )
  _check(run("pallas"), run("xla"), 1e-5)


def test_tpu_interpreter_at_tpu_shapes():
  """The TPU interpreter (NaN-filled uninitialised memory, out-of-bounds reads raise) at
  D = Dv = 128, L = 16, N = 300 (two 256-slot blocks, the second mostly padding)."""
  from jax.experimental.pallas import tpu as pltpu

  args = _readout_inputs(l=16, n=300, d=128, dv=128, seed=2)
  params = pltpu.InterpretParams(out_of_bounds_reads="raise", uninitialized_memory="nan")
  out = ovq_chunk_readout_pallas(*args, interpret=params)
  expected = xla_chunk_readout(*args, renormalize=False, precision="highest")
  np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5, rtol=1e-5)


LOWERING_CASES = [(jnp.float32, 64, 1024, False), (jnp.bfloat16, 128, 1000, True)]
KERNEL_NAMES = ("ovq_chunk_assign", "ovq_chunk_readout", "ovq_chunk_readout_bwd")


def _lowered_text(platform, dtype, chunk_size, num_slots, packed):
  """Lower forward and backward of the whole chunked op for `platform` from this host (with
  `packed`, on packed rows: a 2L key window and a per-query dictionary mask)."""
  args = [jax.ShapeDtypeStruct((1, 256, 2, 128), dtype)] * 3 + [
    jax.ShapeDtypeStruct((2,), jnp.float32),
    jax.ShapeDtypeStruct((1, 256), jnp.int32) if packed else None,
  ]

  def loss(q, k, v, beta, segment_ids):
    o, state = ovq_chunk_pallas(
      q,
      k,
      v,
      beta=beta,
      chunk_size=chunk_size,
      num_slots=num_slots,
      segment_ids=segment_ids,
      interpret=False,
    )
    return jnp.sum(o.astype(jnp.float32)) + jnp.sum(state.dk)

  fwd_and_grad = jax.value_and_grad(loss, argnums=(0, 1, 2, 3))
  return jax.jit(fwd_and_grad).trace(*args).lower(lowering_platforms=(platform,)).as_text()


@pytest.mark.parametrize("dtype,chunk_size,num_slots,packed", LOWERING_CASES)
def test_lowers_for_tpu(dtype, chunk_size, num_slots, packed):
  text = _lowered_text("tpu", dtype, chunk_size, num_slots, packed)
  assert re.search(r"custom_call @tpu_custom_call", text)
  assert all(re.search(rf"\b{name}\b", text) for name in KERNEL_NAMES)  # All three kernels.


@pytest.mark.parametrize("dtype,chunk_size,num_slots,packed", LOWERING_CASES)
def test_lowers_for_cuda(dtype, chunk_size, num_slots, packed):
  # Triton lowering reads the target GPU from the abstract mesh when no GPU is attached.
  if not hasattr(jax.sharding, "AbstractDevice"):
    pytest.skip("this JAX cannot name an abstract GPU target (no jax.sharding.AbstractDevice)")
  device = jax.sharding.AbstractDevice(device_kind="NVIDIA H100", num_cores=None, platform="gpu")
  mesh = jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)
  with jax.sharding.use_abstract_mesh(mesh):
    text = _lowered_text("cuda", dtype, chunk_size, num_slots, packed)
  assert re.search(r"custom_call @__gpu\$xla\.gpu\.triton", text)
  assert all(re.search(rf"\b{name}\b", text) for name in KERNEL_NAMES)  # All three kernels.
