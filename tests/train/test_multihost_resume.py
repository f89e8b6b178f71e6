"""A preempted two-process (jax.distributed) training run resumes bit-identically.

The single-process SIGTERM-and-resume test lives in tests/train/test_sft.py (the RL and
CPMöbius two-process tests resume too). On several processes the restore path differs: the
checkpoint's RNG key comes back on one device, and a plain `jax.device_put` onto a mesh
spanning both hosts fails ("represents addressable devices"); it is made uncommitted again,
as a fresh run's key is (`sharding.uncommitted`), so the global update and a per-host rollout
engine both accept it. The helper (tests/helpers/multihost_sft_resume.py) preempts a 4-step
SFT run at step 2 on both hosts, resumes it, and runs the same 4 steps straight elsewhere.
"""

import jax
import numpy as np
import pytest

from reasoning_jax import sharding as sharding_lib


def test_two_process_sft_resumes_bit_identically(tmp_path):
  from tests.helpers.two_processes import run_helper

  results = run_helper("multihost_sft_resume.py", tmp_path, timeout=500)
  for r in results:
    assert r["first"] == [2, True]  # stopped at the preemption point, step 2 saved
    assert r["steps"] == [4, 4]
    assert r["max_param_diff"] == 0.0
    resumed, straight = r["losses"]
    assert resumed == straight and sorted(resumed) == ["1", "2", "3", "4"]
  assert results[0]["losses"] == results[1]["losses"]


def test_place_replicates_a_typed_key_through_its_data(monkeypatch):
  """`sharding.place` of a typed PRNG key on 'several processes' (patched): the key's data
  goes through a host copy and is re-wrapped with its implementation; other leaves too."""
  mesh = sharding_lib.make_mesh({"data": -1})
  key = jax.random.key(7)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  tree = {"rng": key, "x": np.arange(4.0)}
  out = sharding_lib.place(tree, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
  assert jax.dtypes.issubdtype(out["rng"].dtype, jax.dtypes.prng_key)
  assert jax.random.key_impl(out["rng"]) == jax.random.key_impl(key)
  np.testing.assert_array_equal(jax.random.key_data(out["rng"]), jax.random.key_data(key))
  assert out["rng"].sharding.is_fully_replicated and out["x"].sharding.is_fully_replicated
  np.testing.assert_array_equal(jax.random.uniform(out["rng"], (3,)), jax.random.uniform(key, (3,)))
  with pytest.raises(TypeError):
    np.asarray(key)  # why the key cannot take the plain host-copy path


def test_uncommitted_key_is_the_same_key_placed_by_jit():
  mesh = sharding_lib.make_mesh({"data": -1})
  key = jax.device_put(jax.random.key(3), jax.devices()[-1])  # committed to one device
  free = sharding_lib.uncommitted(key)
  assert jax.random.key_impl(free) == jax.random.key_impl(key)
  np.testing.assert_array_equal(jax.random.key_data(free), jax.random.key_data(key))
  x = jax.device_put(np.ones((len(jax.devices()), 2)), sharding_lib.batch_sharding(mesh, 2))
  # Committed to another device than x, the key could not join x's computation; freed, it can.
  f = jax.jit(lambda k, x: x + jax.random.uniform(k, ()))
  with pytest.raises(ValueError, match="incompatible devices"):
    f(key, x)
  out = f(free, x)
  assert out.sharding.is_equivalent_to(x.sharding, 2)
  np.testing.assert_array_equal(sharding_lib.uncommitted(np.arange(3)), np.arange(3))
