"""Role learning on a frozen model: the distillation forward and the gate trainers (8.3, 7.2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.sparse import SparseDecodeConfig
from reasoning_jax.sparse.distill import RoleDistillContext, anchor_mask, distill_loss, ratio_mask
from reasoning_jax.sparse.roles import load_roles, save_roles
from reasoning_jax.sparse.train_roles import RoleTrainingConfig, train_roles


@pytest.fixture(scope="module")
def model():
  config = get_preset("tiny-qwen3", num_layers=3, initializer_range=0.3)
  return Transformer(config, rngs=nnx.Rngs(0))


def batches(model, n=4, t=48, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(n):
    ids = rng.integers(1, model.config.vocab_size, (2, t)).astype(np.int32)
    mask = np.zeros((2, t), bool)
    mask[:, -8:] = True
    out.append({"input_ids": ids, "loss_mask": mask})
  return out


def test_gates_of_one_reproduce_the_model_exactly(model):
  ids = jnp.asarray(batches(model)[0]["input_ids"])
  teacher = model.forward(ids)[0]
  for mode in ("lychee", "duo"):
    ctx = RoleDistillContext(jnp.ones((3, 2)), mode=mode, sink_tokens=4, recent_tokens=8)
    student = model.forward(ids, attention_context=ctx)[0]
    np.testing.assert_allclose(student, teacher, atol=2e-5)


def test_gates_of_zero_change_the_model_after_layer_zero(model):
  ids = jnp.asarray(batches(model)[0]["input_ids"])
  teacher = model.forward(ids)[0]
  z = jnp.zeros((3, 2)).at[0].set(1.0)
  ctx = RoleDistillContext(z, mode="lychee", ratio=0.3, sink_tokens=2, recent_tokens=4)
  student = model.forward(ids, attention_context=ctx)[0]
  assert float(distill_loss(teacher, student, jnp.ones(ids.shape, bool))) > 1e-6


def test_ratio_mask_keeps_the_share_anchors_and_top_logits():
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(1, 1, 20, 20)), jnp.float32)
  mask = np.asarray(ratio_mask(logits, ratio=0.3, sink_tokens=1, recent_tokens=2))[0, 0]
  anchors = np.asarray(anchor_mask(20, sink_tokens=1, recent_tokens=2))
  assert not np.triu(mask, 1).any()  # Causal.
  assert (mask | ~anchors).all()  # Anchors always kept.
  for i in range(20):
    assert mask[i].sum() == max(int(np.ceil(0.3 * (i + 1))), anchors[i].sum())
    free = [j for j in range(i + 1) if not anchors[i, j]]
    kept = [j for j in free if mask[i, j]]
    dropped = [j for j in free if not mask[i, j]]
    if kept and dropped:
      assert min(np.asarray(logits)[0, 0, i, kept]) >= max(np.asarray(logits)[0, 0, i, dropped])


def test_lychee_role_training_lowers_density_and_returns_roles(model, tmp_path):
  config = RoleTrainingConfig(
    method="lychee",
    steps=30,
    lr=0.1,
    target_density=0.0,
    sink_tokens=2,
    recent_tokens=4,
    log_every=10,
  )
  result = train_roles(model, batches(model), config)
  assert result.roles.shape == (3, 2) and result.roles[0].all()
  first, last = result.history[0], result.history[-1]
  assert last["density"] < first["density"]  # The constraint pushes gates toward sparse.
  assert set(result.gates) == {"a", "b"}
  # Untouched model: the frozen weights are not gates.
  path = save_roles(
    str(tmp_path), result.roles, method="lychee", model_config=model.config, gates=result.gates
  )
  roles, record = load_roles(path, model.config)
  np.testing.assert_array_equal(roles, result.roles)
  assert record["gates"]["a"] == result.gates["a"].tolist()
  SparseDecodeConfig(
    method="lychee", roles=roles, budget=64, block_size=16, sink_tokens=16, recent_tokens=32
  )


def test_duo_role_training_keeps_alphas_in_range_and_a_fraction(model):
  config = RoleTrainingConfig(
    method="duo", steps=12, sink_tokens=2, recent_tokens=4, duo_fraction=0.5, log_every=4
  )
  result = train_roles(model, batches(model), config)
  alpha = result.gates["alpha"]
  assert alpha.min() >= 0 and alpha.max() <= 1 and alpha.max() < 1  # L1 pulled them down.
  assert result.roles.sum() == 3


def test_model_is_frozen(model):
  before = jax.tree_util.tree_map(np.asarray, nnx.state(model, nnx.Param))
  train_roles(
    model, batches(model, n=1), RoleTrainingConfig(steps=2, sink_tokens=2, recent_tokens=4)
  )
  after = nnx.state(model, nnx.Param)
  jax.tree_util.tree_map(np.testing.assert_array_equal, before, after)


def test_bad_role_inputs_raise(model, tmp_path):
  with pytest.raises(ValueError, match="loss_mask selects no token"):
    b = batches(model, n=1)
    b[0]["loss_mask"][:] = False
    train_roles(model, b, RoleTrainingConfig(steps=1))
  with pytest.raises(ValueError, match="method must be one of"):
    RoleTrainingConfig(method="x")
  with pytest.raises(ValueError, match="exactly one of duo_fraction or duo_threshold"):
    RoleTrainingConfig(method="duo", duo_fraction=None)
  with pytest.raises(ValueError, match="has shape \\(2, 2\\) but the model has"):
    save_roles(str(tmp_path), np.ones((2, 2), bool), method="lychee", model_config=model.config)
  (tmp_path / "roles.json").write_text("{broken")
  with pytest.raises(ValueError, match="not a valid role map"):
    load_roles(str(tmp_path))
  gla = Transformer(
    get_preset("tiny-qwen3", num_layers=2, mixer=("gla", "attention")), rngs=nnx.Rngs(0)
  )
  with pytest.raises(ValueError, match="layer 0 is 'gla'"):
    train_roles(gla, batches(gla, n=1), RoleTrainingConfig(steps=1))


def test_batches_lists_cycle_and_spent_generators_raise(model):
  config = RoleTrainingConfig(steps=3, sink_tokens=2, recent_tokens=4, log_every=1)
  assert len(train_roles(model, batches(model, n=1), config).history) == 3  # A list cycles.
  with pytest.raises(ValueError, match="batches ran out after 1 steps of 3"):
    train_roles(model, iter(batches(model, n=1)), config)
