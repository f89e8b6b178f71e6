"""One process of the two-process ROSA test (run by tests/ops/test_rosa_sharded.py).

Usage: python multihost_rosa.py PORT PROCESS_ID
Each process owns 2 CPU devices; the batch is split over all 4. The ROSA branch (serial and
overlapped, forward and gradients) and the decode streams must equal an unsharded reference
computed here on one local device, and this process's host matcher must see only the rows
its own devices hold.
"""

import os
import sys
import threading

# The test run's compile-speed flags (tests/conftest.py) come through; the device count is ours.
os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
)
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from reasoning_jax import distributed  # noqa: E402

port, pid = int(sys.argv[1]), int(sys.argv[2])
distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
assert jax.process_count() == 2 and jax.device_count() == 4, (
  jax.process_count(),
  jax.device_count(),
)

from jax.experimental import multihost_utils  # noqa: E402

from reasoning_jax import sharding  # noqa: E402
from reasoning_jax.ops.rosa import host  # noqa: E402
from reasoning_jax.ops.rosa.branch import rosa_branch, to_symbols  # noqa: E402
from reasoning_jax.ops.rosa.config import RosaConfig  # noqa: E402
from reasoning_jax.ops.rosa.overlap import overlapped_branch  # noqa: E402
from reasoning_jax.ops.rosa.stream import open_streams, stream_match  # noqa: E402

SEEN, LOCK, MATCH = [], threading.Lock(), host.match


def spy(q_symbols, *args, **kwargs):
  with LOCK:
    SEEN.append(np.array(q_symbols))
  return MATCH(q_symbols, *args, **kwargs)


host.match = spy

B, T, C = 8, 24, 8
rng = np.random.default_rng(0)  # Same values on both processes.
q, k, v, g = (rng.normal(size=(B, T, C)).astype(np.float32) + 0.5 for _ in range(4))
e0, e1 = (rng.normal(size=(C,)).astype(np.float32) for _ in range(2))
seg = (np.arange(T)[None, :] >= np.arange(B)[:, None] + 9).astype(np.int32)
config = RosaConfig()


def serial(q, k, v, e0, e1, seg):
  return rosa_branch(q, k, v, e0, e1, config=config, segment_ids=seg)


def overlapped(q, k, v, e0, e1, seg):
  y, out = overlapped_branch(q, k, v, e0, e1, jnp.tanh, q, config=config, segment_ids=seg)
  return y + 0.0 * out


def value_and_grads(f):
  loss = lambda q, k, v, e0, e1, seg: jnp.sum(f(q, k, v, e0, e1, seg) * g)
  return jax.jit(lambda *a: (f(*a), jax.grad(loss, argnums=range(5))(*a)))


mesh = sharding.make_mesh({"data": 2, "fsdp": 2})
local_device = jax.local_devices()[0]


def global_rows(x):
  """`x` (the same on every process) as a global array split by rows over the 4 devices."""
  spec = sharding.batch_sharding(mesh, x.ndim)
  return jax.make_array_from_callback(x.shape, spec, lambda index: x[index])


gq = global_rows(q)
mine = sorted({r for s in gq.addressable_shards for r in range(B)[s.index[0]]})
assert len(mine) == B // 2, mine
sym_q = np.asarray(to_symbols(jnp.asarray(q), config.bits_per_route))

for name, f in (("serial", serial), ("overlap", overlapped)):
  fn = value_and_grads(f)
  ref = jax.device_put((q, k, v, e0, e1, seg), local_device)
  want_y, want_grads = jax.block_until_ready(fn(*ref))
  SEEN.clear()
  with jax.set_mesh(mesh):
    args = (gq, global_rows(k), global_rows(v), e0, e1, global_rows(seg))
    y, grads = jax.block_until_ready(fn(*args))
  # Every host call saw one device shard (2 rows), two per device (forward, grad's forward),
  # and together exactly this process's rows, twice.
  assert [s.shape[0] for s in SEEN] == [2] * 4, (name, [s.shape for s in SEEN])
  seen = np.concatenate(SEEN)
  want_seen = np.concatenate([sym_q[mine], sym_q[mine]])
  order = lambda a: a[np.lexsort(a.reshape(len(a), -1).T)]
  np.testing.assert_array_equal(order(seen), order(want_seen), err_msg=name)
  y, grads = multihost_utils.process_allgather((y, grads), tiled=True)
  np.testing.assert_array_equal(np.asarray(y), np.asarray(want_y), err_msg=name)
  for arg, got, want in zip("qkv01", grads, want_grads):
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-6, atol=1e-6, err_msg=name + arg)
  print(name, "ok", pid, flush=True)

# Decode streams: every process opens the handle for the global batch; its devices step
# their own rows (first_row = the shard's first global row).
steps, step = [], host.RosaStreams.step


def spy_step(self, q_symbols, *args, first_row=None, **kwargs):
  with LOCK:
    steps.append((np.shape(q_symbols)[0], first_row))
  return step(self, q_symbols, *args, first_row=first_row, **kwargs)


host.RosaStreams.step = spy_step
sq = np.random.default_rng(1).integers(0, 16, (B, 12, 3)).astype(np.uint8)
want, _ = MATCH(sq, sq, config=config)
full = lambda n: global_rows(np.full(B, n, np.int32))
with jax.set_mesh(mesh):
  handle = open_streams(B, 3, 16, config)
  fn = jax.jit(stream_match)
  first = fn(handle, global_rows(sq[:, :7]), global_rows(sq[:, :7]), full(0), full(7))
  rest = fn(handle, global_rows(sq[:, 7:]), global_rows(sq[:, 7:]), full(7), full(5))
  got = multihost_utils.process_allgather((first, rest), tiled=True)
np.testing.assert_array_equal(np.concatenate(got, axis=1), want)
assert sorted(steps) == sorted((2, r) for r in mine[::2] for _ in range(2)), (steps, mine)
print("streams ok", pid, flush=True)
