"""The sharded train step: 8 devices == 1 device, rule shardings, exact accumulation,
and two processes (jax.distributed + gloo) == one process."""

import os
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from reasoning_jax import sharding
from reasoning_jax.models.partition_rules import rules_for
from reasoning_jax.train import make_train_step, state_shardings

HELPERS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "helpers")
sys.path.insert(0, HELPERS)
import sft_problem  # noqa: E402


def _flat(tree):
  return {
    sharding.path_to_name(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(tree)
  }


@pytest.fixture(scope="module")
def reference():
  graphdef, state, tx, batch = sft_problem.build()
  step = make_train_step(graphdef, tx, sft_problem.loss_fn, donate=False)
  new_state, metrics = step(state, batch)
  return new_state, metrics


@pytest.mark.parametrize(
  "shape", [{"data": 2, "fsdp": 2, "tensor": 2}, {"data": 8}, {"fsdp": 4, "tensor": 2}]
)
def test_sharded_step_equals_single_device(reference, shape):
  if jax.device_count() < 8:
    pytest.skip("needs 8 host devices (tests/conftest.py sets them)")
  graphdef, state, tx, batch = sft_problem.build()
  mesh = sharding.make_mesh(shape)
  shards = state_shardings(state, tx, rules_for("qwen3"), mesh)
  state = jax.device_put(state, shards)
  step = make_train_step(graphdef, tx, sft_problem.loss_fn, mesh=mesh, shardings=shards)
  new_state, metrics = step(state, sharding.shard_batch(batch, mesh))
  ref_state, ref_metrics = reference
  np.testing.assert_allclose(float(metrics["loss"]), float(ref_metrics["loss"]), atol=1e-5)
  got, want = _flat(new_state.params), _flat(ref_state.params)
  for name in want:
    np.testing.assert_allclose(got[name], want[name], atol=1e-5, err_msg=name)
  # Parameters (and momentum) carry the shardings the rules say.
  q = new_state.params["layers"][0]["mixer"]["q_proj"][...]
  expected = sharding.spec_for("layers.0.mixer.q_proj", q.shape, rules_for("qwen3"), mesh)
  assert q.sharding.spec == expected
  momentum = [x for x in jax.tree_util.tree_leaves(new_state.opt_state) if x.shape == q.shape]
  assert momentum and all(m.sharding.spec == expected for m in momentum)


def test_rules_drop_axes_that_do_not_divide():
  mesh = sharding.make_mesh({"tensor": 4, "data": 2})
  # 2 KV heads cannot be split 4 ways: that dimension is replicated.
  spec = sharding.spec_for("layers.0.mixer.k_proj", (64, 2, 24), rules_for("qwen3"), mesh)
  assert spec == P("fsdp", None, None)  # fsdp has size 1 here: kept, harmless.
  assert sharding.spec_for("layers.0.mixer.q_proj", (64, 4, 24), rules_for("qwen3"), mesh) == P(
    "fsdp", "tensor", None
  )
  with pytest.raises(ValueError, match="no partition rule matches"):
    sharding.spec_for("layers.0.mystery", (3,), rules_for("qwen3"), mesh)


def test_micro_batched_accumulation_is_exact(reference):
  graphdef, state, tx, batch = sft_problem.build()
  step = make_train_step(graphdef, tx, sft_problem.loss_fn, micro_batches=4, donate=False)
  new_state, metrics = step(state, batch)
  ref_state, ref_metrics = reference
  np.testing.assert_allclose(float(metrics["loss"]), float(ref_metrics["loss"]), atol=1e-6)
  got, want = _flat(new_state.params), _flat(ref_state.params)
  for name in want:
    np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=name)
  with pytest.raises(ValueError, match="micro_batches=3"):
    make_train_step(graphdef, tx, sft_problem.loss_fn, micro_batches=3)(state, batch)


@pytest.mark.parametrize(
  "shape,match",
  [
    ({"data": 3}, "multiply to 3"),
    ({"data": -1, "fsdp": 3}, "fsdp|divide"),
    ({"pipeline": 2}, "unknown axis"),
    ({"data": 0}, "mesh.data"),
    ({"data": -1, "fsdp": -1}, "only one axis"),
  ],
)
def test_mesh_config_errors_name_the_key(shape, match):
  with pytest.raises(ValueError, match=match):
    sharding.make_mesh(shape)


def test_two_processes_match_single_process(reference, tmp_path):
  from two_processes import run_two_processes

  out = tmp_path / "result.npz"
  run_two_processes(os.path.join(HELPERS, "multihost_sft_step.py"), out, timeout=240)
  result = np.load(out)
  ref_state, ref_metrics = reference
  np.testing.assert_allclose(float(result["loss"]), float(ref_metrics["loss"]), atol=1e-5)
  for name, want in _flat(ref_state.params).items():
    np.testing.assert_allclose(result[name], want, atol=1e-5, err_msg=name)
