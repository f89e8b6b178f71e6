"""ROSA's host matching per device shard: under a mesh whose batch axes split the batch, every
device's callback matches its own rows only (serial branch, overlapped submit/collect, decode
streams, the mixer in a zoo model), with the values of the unsharded op. The two-process
version (each process matches only its addressable rows) is tests/helpers/multihost_rosa.py."""

from __future__ import annotations

import os
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from reasoning_jax import sharding
from reasoning_jax.ops.rosa import host
from reasoning_jax.ops.rosa.branch import host_match, rosa_branch, to_symbols
from reasoning_jax.ops.rosa.config import RosaConfig
from reasoning_jax.ops.rosa.overlap import overlapped_branch
from reasoning_jax.ops.rosa.stream import open_streams, stream_match

HELPERS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "helpers")

pytestmark = pytest.mark.skipif(
  jax.device_count() < 8, reason="needs 8 host devices (tests/conftest.py sets them)"
)


@pytest.fixture
def rows_seen(monkeypatch):
  """The batch rows of every `host.match` call (serial callbacks and overlap jobs alike)."""
  seen, lock, match = [], threading.Lock(), host.match

  def spy(q_symbols, *args, **kwargs):
    with lock:
      seen.append(np.shape(q_symbols)[0])
    return match(q_symbols, *args, **kwargs)

  monkeypatch.setattr(host, "match", spy)
  return seen


def _inputs(b=8, t=24, c=8, seed=0):
  keys = jax.random.split(jax.random.PRNGKey(seed), 6)
  q, k, v = (jax.random.normal(kk, (b, t, c)) + 0.5 for kk in keys[:3])  # Biased: many matches.
  e0, e1 = jax.random.normal(keys[3], (c,)), jax.random.normal(keys[4], (c,))
  seg = (jnp.arange(t)[None, :] >= jnp.arange(b)[:, None] + 9).astype(jnp.int32)  # Packed rows.
  return (q, k, v, e0, e1), seg, jax.random.normal(keys[5], (b, t, c))


def _put(mesh, *xs):
  return [jax.device_put(x, sharding.batch_sharding(mesh, x.ndim)) for x in xs]


def test_row_split_follows_the_mesh_batch_axes():
  assert sharding.row_split(8) is None  # No mesh: one gathered callback, as before.
  cases = [
    ({"data": 4, "fsdp": 2}, 8, P(("data", "fsdp"))),
    ({"data": 2, "tensor": 4}, 8, P(("data", "tensor"))),  # Tensor peers share the rows out.
    ({"data": 2, "tensor": 4}, 2, P(("data",))),  # ... unless they do not divide them.
    ({"fsdp": 4, "tensor": 2}, 6, None),  # The batch axes do not divide B.
    ({"tensor": 8}, 8, None),  # The batch is not split.
  ]
  for shape, rows, want in cases:
    with jax.set_mesh(sharding.make_mesh(shape)):
      got = sharding.row_split(rows)
      assert (got and got[1]) == want, (shape, rows, got)
      # exclusive: no two devices may hold the same rows (tensor peers sharing them -> None).
      got = sharding.row_split(rows, exclusive=True)
      assert (got and got[1]) == (None if (shape, rows) == ({"data": 2, "tensor": 4}, 2) else want)
      with jax.set_mesh(sharding.make_mesh({"data": 8})):
        # Inside a shard_map every axis is already manual: no second split.
        inner = sharding.shard_map(
          lambda x: x + (sharding.row_split(1) is not None),
          mesh=jax.sharding.get_abstract_mesh(),
          in_specs=P("data"),
          out_specs=P("data"),
        )
        assert not np.any(np.asarray(inner(jnp.zeros(8))))


@pytest.mark.parametrize("shape", [{"data": 4, "fsdp": 2}, {"data": 2, "tensor": 2}])
def test_host_match_per_shard_is_bit_identical(rows_seen, shape):
  (q, k, _, _, _), seg, _ = _inputs()
  qs, ks = to_symbols(q, 4), to_symbols(k, 4)
  want = host.match(np.asarray(qs), np.asarray(ks), config=RosaConfig(), segment_ids=seg,
                    want_counterfactual=True)  # fmt: skip
  rows_seen.clear()
  mesh = sharding.make_mesh(shape, devices=jax.devices()[: np.prod(list(shape.values()))])
  with jax.set_mesh(mesh):
    fn = jax.jit(lambda a, b, s: host_match(a, b, s, config=RosaConfig(), counterfactual=True))
    got = jax.block_until_ready(fn(*_put(mesh, qs, ks, seg)))
  shards = mesh.size
  assert rows_seen == [8 // shards] * shards
  for g, w in zip(got, want):
    np.testing.assert_array_equal(np.asarray(g), w)


def _serial(config):
  return lambda q, k, v, e0, e1, seg: rosa_branch(q, k, v, e0, e1, config=config, segment_ids=seg)


def _overlapped(config):
  def run(q, k, v, e0, e1, seg):
    y, out = overlapped_branch(
      q, k, v, e0, e1, lambda u: jnp.tanh(u) * 2, q, config=config, segment_ids=seg
    )
    return y + 0.0 * out

  return run


@pytest.mark.parametrize("schedule", [_serial, _overlapped], ids=["serial", "overlap"])
@pytest.mark.parametrize("shape", [{"data": 4, "fsdp": 2}, {"fsdp": 2, "tensor": 2}])
def test_branch_values_and_gradients_equal_the_unsharded_op(rows_seen, schedule, shape):
  args, seg, g = _inputs(seed=3)
  f = schedule(RosaConfig(cf_value_k="bits"))
  loss = lambda *a: jnp.sum(f(*a, seg) * g)
  value_and_grads = jax.jit(lambda *a: (f(*a, seg), jax.grad(loss, argnums=range(5))(*a)))
  want_y, want_grads = value_and_grads(*args)
  mesh = sharding.make_mesh(shape, devices=jax.devices()[: np.prod(list(shape.values()))])
  rows_seen.clear()
  with jax.set_mesh(mesh):
    q, k, v, seg = _put(mesh, *args[:3], seg)
    y, grads = jax.block_until_ready(value_and_grads(q, k, v, *args[3:]))
  # One forward and one differentiated forward: each device matches 8 / |mesh| rows, twice.
  assert sorted(rows_seen) == [8 // mesh.size] * (2 * mesh.size)
  np.testing.assert_array_equal(np.asarray(y), np.asarray(want_y))  # The forward is discrete.
  # The host answers are bit-identical (test above); the device-side sums of the backward
  # may be reordered by the partitioner, as for any sharded reduction.
  for name, got, want in zip(("q", "k", "v", "e0", "e1"), grads, want_grads):
    np.testing.assert_allclose(
      np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6, err_msg=name
    )
  assert np.any(np.asarray(grads[0])) and np.any(np.asarray(grads[1]))


@pytest.mark.parametrize("rows", [8, 2])
def test_decode_streams_step_per_shard(monkeypatch, rows):
  """8 rows: one per device. 2 rows on data=4 x tensor=2: the tensor peers would share (and
  step twice) their row, so one callback steps the batch."""
  seen, step = [], host.RosaStreams.step

  def spy(self, q_symbols, *args, first_row=None, **kwargs):
    seen.append((np.shape(q_symbols)[0], first_row))
    return step(self, q_symbols, *args, first_row=first_row, **kwargs)

  monkeypatch.setattr(host.RosaStreams, "step", spy)
  config = RosaConfig(bits_per_route=2)
  q = np.random.default_rng(0).integers(0, 4, (rows, 12, 3)).astype(np.uint8)
  want, _ = host.match(q, q, config=config)
  mesh = sharding.make_mesh({"data": 2, "tensor": 4} if rows == 2 else {"data": 4, "tensor": 2})
  full = lambda n: jnp.full(rows, n, jnp.int32)
  with jax.set_mesh(mesh):
    handle = open_streams(rows, 3, 16, config)
    fn = jax.jit(stream_match)
    first = fn(handle, q[:, :7], q[:, :7], full(0), full(7))
    rest = fn(handle, q[:, 7:], q[:, 7:], full(7), full(5))
    got = np.concatenate([np.asarray(first), np.asarray(rest)], axis=1)
  np.testing.assert_array_equal(got, want)
  if rows == 2:
    assert seen == [(2, None)] * 2
    return
  assert sorted(seen, key=lambda s: s[1]) == [(1, i) for i in range(8) for _ in range(2)]
  # A shard cannot step rows beyond the streams it was opened with.
  with pytest.raises(ValueError, match="first_row=7 with 2 rows of q_symbols is outside"):
    host.STREAMS.get(handle).step(q[:2, :1], q[:2, :1], [0, 0], first_row=7)


def _rosa_zoo_model():
  """A 2-layer tiny-qwen3 with a ROSA layer whose value tables are non-zero (the branch acts)."""
  from flax import nnx

  from reasoning_jax.models.config import get_preset
  from reasoning_jax.models.transformer import Transformer

  config = get_preset("tiny-qwen3", num_layers=2, mixer=("attention", "rosa"), sliding_window=6)
  model = Transformer(config, rngs=nnx.Rngs(0))
  mixer = model.layers[1].mixer
  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  mixer.rosa_e0[...] = jax.random.normal(keys[0], mixer.rosa_e0.shape)
  mixer.rosa_e1[...] = jax.random.normal(keys[1], mixer.rosa_e1.shape)
  return model


def test_mixer_in_a_zoo_model_under_a_mesh(rows_seen):
  from flax import nnx

  model = _rosa_zoo_model()
  ids = jax.random.randint(jax.random.PRNGKey(2), (4, 9), 1, 512)
  ids = jnp.tile(ids, (1, 3))  # Repeats: the automaton matches.
  loss = lambda m, ids: jnp.mean(m(ids) ** 2)
  step = nnx.jit(lambda m, ids: (m(ids), nnx.grad(loss)(m, ids)))
  want_out, want_grads = step(model, ids)
  mesh = sharding.make_mesh({"data": 4}, devices=jax.devices()[:4])
  rows_seen.clear()
  with jax.set_mesh(mesh):
    out, grads = jax.block_until_ready(step(model, *_put(mesh, ids)))
  assert sorted(rows_seen) == [1] * 8  # Overlap schedule: 4 shards, forward + grad forward.
  np.testing.assert_allclose(np.asarray(out), np.asarray(want_out), rtol=1e-5, atol=1e-5)
  got_q, want_q = grads.layers[1].mixer.rosa_q[...], want_grads.layers[1].mixer.rosa_q[...]
  assert np.any(np.asarray(want_q))
  np.testing.assert_allclose(np.asarray(got_q), np.asarray(want_q), rtol=1e-4, atol=1e-6)


def test_two_processes_each_match_their_own_rows():
  """jax.distributed with two local processes of 2 CPU devices each (gloo): the batch split
  over all 4 devices; each process's host matcher sees only its rows, and the values and
  gradients (serial, overlap) and decode streams equal an unsharded reference."""
  sys.path.insert(0, HELPERS)
  from two_processes import run_two_processes

  logs = run_two_processes(os.path.join(HELPERS, "multihost_rosa.py"), timeout=240)
  for pid, log in enumerate(logs):
    for what in ("serial ok", "overlap ok", "streams ok"):
      assert f"{what} {pid}" in log, log[-2000:]


def test_zoo_model_decodes_per_shard(monkeypatch):
  """Prefill + decode of a ROSA model with the batch over 4 devices: the cache's automata are
  stepped per shard (one row each), and the logits equal the unsharded full forward."""
  from flax import nnx

  seen, step = [], host.RosaStreams.step

  def spy(self, q_symbols, *args, first_row=None, **kwargs):
    seen.append((np.shape(q_symbols)[0], first_row))
    return step(self, q_symbols, *args, first_row=first_row, **kwargs)

  monkeypatch.setattr(host.RosaStreams, "step", spy)
  model = _rosa_zoo_model()
  ids = jnp.tile(jax.random.randint(jax.random.PRNGKey(2), (4, 5), 1, 512), (1, 3))
  full = np.asarray(nnx.jit(lambda m, ids: m(ids))(model, ids))
  forward = nnx.jit(lambda m, ids, pos, cache: m.forward(ids, positions=pos, cache=cache))
  mesh = sharding.make_mesh({"data": 4}, devices=jax.devices()[:4])
  with jax.set_mesh(mesh):
    cache = model.init_cache(4, 16)
    pos = jnp.broadcast_to(jnp.arange(11), (4, 11))
    hidden, cache = forward(model, *_put(mesh, ids[:, :11], pos), cache)
    logits = [model.unembed(hidden)]
    for t in range(11, 15):
      ids_t, pos_t = _put(mesh, ids[:, t : t + 1], jnp.full((4, 1), t))
      hidden, cache = forward(model, ids_t, pos_t, cache)
      logits.append(model.unembed(hidden))
    got = np.asarray(jnp.concatenate(logits, axis=1))
  np.testing.assert_allclose(got, full, atol=2e-5)
  assert sorted(seen, key=lambda s: s[1]) == [(1, r) for r in range(4) for _ in range(5)]
