"""LoRA adapters (reasoning_jax.layers.lora + reasoning_jax.lora.adapters): exact zero init,
adapters off == base, merge == adapters on, only adapters train, sharded == unsharded, and
bad inputs naming their flag."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from reasoning_jax import sharding
from reasoning_jax.lora import (
  FROZEN,
  TRAINABLE,
  LoRAConfig,
  adapters_off,
  apply_lora,
  dropout_rng,
  lora_kernels,
  lora_rules,
  merge_adapters,
)
from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.models.partition_rules import rules_for
from reasoning_jax.train import init_train_state, make_train_step, state_shardings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "helpers"))
import sft_problem  # noqa: E402

PRESETS = ["tiny-qwen3", "tiny-llama"]


def _ids(vocab, shape=(2, 12), seed=0):
  return jnp.asarray(np.random.default_rng(seed).integers(0, vocab, shape), jnp.int32)


def _adapted(preset="tiny-qwen3", bump=0.0, **kw):
  model = Transformer(get_preset(preset), rngs=nnx.Rngs(0))
  base = model(_ids(model.config.vocab_size))
  apply_lora(model, LoRAConfig(rank=4, alpha=8.0, **kw), rngs=nnx.Rngs(1))
  if bump:  # Non-zero B so the adapters change the output.
    for i, (_, k) in enumerate(lora_kernels(model)):
      b = jax.random.normal(jax.random.key(i), k.lora_b[...].shape) * bump
      k.lora_b.set_value(b)
  return model, base


@pytest.mark.parametrize("preset", PRESETS)
def test_zero_init_gives_exact_base_logits(preset):
  model, base = _adapted(preset)
  names = [n for n, _ in lora_kernels(model)]
  assert "layers.0.mixer.q_proj" in names and "layers.1.ffn.down" in names
  assert len(names) == 7 * model.config.num_layers
  ids = _ids(model.config.vocab_size)
  np.testing.assert_array_equal(np.asarray(model(ids)), np.asarray(base))
  hidden, _ = model.forward(ids)  # The path generate and chunked log-probs use.
  np.testing.assert_array_equal(np.asarray(model.unembed(hidden)), np.asarray(base))


@pytest.mark.parametrize("preset", PRESETS)
def test_adapters_off_equals_base_and_merge_equals_on(preset):
  model, base = _adapted(preset, bump=0.05)
  ids = _ids(model.config.vocab_size)
  on = model(ids)
  assert float(jnp.abs(on - base).max()) > 1e-2
  with adapters_off(model):
    np.testing.assert_array_equal(np.asarray(model(ids)), np.asarray(base))
  np.testing.assert_array_equal(np.asarray(model(ids)), np.asarray(on))  # Restored.
  off_jit = nnx.jit(lambda m, x: _off_logits(m, x))(model, ids)  # Inside a trace too.
  np.testing.assert_allclose(np.asarray(off_jit), np.asarray(base), atol=1e-5, rtol=0)  # jit fuses.
  merged = merge_adapters(model)
  assert not lora_kernels(merged)
  np.testing.assert_allclose(np.asarray(merged(ids)), np.asarray(on), atol=1e-5, rtol=0)


def _off_logits(model, ids):
  with adapters_off(model):
    return model(ids)


def test_targets_regex_selects_paths_and_bf16_base():
  model = Transformer(get_preset("tiny-qwen3"), rngs=nnx.Rngs(0))
  paths = apply_lora(
    model,
    LoRAConfig(rank=2, targets=r".*mixer\.(q|v)_proj"),
    rngs=nnx.Rngs(1),
    base_dtype=jnp.bfloat16,
  )
  assert paths == ["layers.0.mixer.q_proj", "layers.0.mixer.v_proj"] or set(paths) == {
    f"layers.{i}.mixer.{p}_proj" for i in range(2) for p in "qv"
  }
  frozen = jax.tree_util.tree_leaves(nnx.state(model, FROZEN))
  assert all(x.dtype == jnp.bfloat16 for x in frozen)
  adapters = jax.tree_util.tree_leaves(nnx.state(model, TRAINABLE))
  assert len(adapters) == 2 * len(paths) and all(x.dtype == jnp.float32 for x in adapters)
  assert np.isfinite(np.asarray(model(_ids(model.config.vocab_size)))).all()


def test_dropout_only_under_a_key():
  model, _ = _adapted(bump=0.05, dropout=0.5)
  ids = _ids(model.config.vocab_size)
  on = model(ids)
  with dropout_rng(jax.random.key(0)):
    dropped = model(ids)
  assert float(jnp.abs(dropped - on).max()) > 1e-3
  np.testing.assert_array_equal(np.asarray(model(ids)), np.asarray(on))


def test_gradients_reach_only_adapters_and_base_is_bit_identical():
  model, _ = _adapted()
  graphdef, state = init_train_state(model, optax.adam(1e-2), trainable=TRAINABLE)
  assert all(
    isinstance(v, nnx.LoRAParam)
    for v in jax.tree_util.tree_leaves(state.params, is_leaf=lambda x: isinstance(x, nnx.Variable))
  )
  _, _, _, batch = sft_problem.build()

  def loss(m):
    total, count, _ = sft_problem.loss_fn(m, batch)
    return total / count

  grads = nnx.grad(loss, argnums=nnx.DiffState(0, TRAINABLE))(model)
  flat = {
    sharding.path_to_name(p): np.asarray(g) for p, g in jax.tree_util.tree_leaves_with_path(grads)
  }
  assert flat and all(name.endswith(("lora_a", "lora_b")) for name in flat)
  assert any(np.abs(g).max() > 0 for n, g in flat.items() if n.endswith("lora_b"))

  frozen_before = jax.tree.map(np.asarray, state.frozen)
  step = make_train_step(graphdef, optax.adam(1e-2), sft_problem.loss_fn, donate=False)
  new_state, metrics = step(state, batch)
  assert np.isfinite(float(metrics["loss"]))
  for a, b in zip(
    jax.tree_util.tree_leaves(frozen_before), jax.tree_util.tree_leaves(new_state.frozen)
  ):
    np.testing.assert_array_equal(a, np.asarray(b))
  moved = [
    float(jnp.abs(a - b).max())
    for a, b in zip(
      jax.tree_util.tree_leaves(state.params), jax.tree_util.tree_leaves(new_state.params)
    )
  ]
  assert max(moved) > 0


def test_default_train_state_is_unchanged():
  model = Transformer(get_preset("tiny-qwen3"), rngs=nnx.Rngs(0))
  _, state = init_train_state(model, optax.sgd(0.1))
  assert state.frozen is None
  assert len(jax.tree_util.tree_leaves(state.params)) == len(
    jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))
  )


@pytest.mark.parametrize("shape", [{"fsdp": 4, "tensor": 2}, {"data": 2, "fsdp": 2, "tensor": 2}])
def test_sharded_equals_unsharded(shape):
  if jax.device_count() < 8:
    pytest.skip("needs 8 host devices (tests/conftest.py sets them)")
  model, _ = _adapted(bump=0.05)
  ids = _ids(model.config.vocab_size, shape=(8, 12))
  expected = np.asarray(model(ids))
  mesh = sharding.make_mesh(shape)
  rules = lora_rules(rules_for("qwen3"))
  graphdef, state = nnx.split(model)
  state = jax.device_put(state, sharding.param_shardings(state, rules, mesh))
  q = state["layers"][0]["mixer"]["q_proj"]["base"][...]
  assert len(q.sharding.device_set) == 8 and not q.sharding.is_fully_replicated
  with jax.set_mesh(mesh):
    got = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(
      state, sharding.shard_batch({"x": ids}, mesh)["x"]
    )
  np.testing.assert_allclose(np.asarray(got), expected, atol=1e-5, rtol=0)


def test_sharded_train_step_with_trainable_filter():
  if jax.device_count() < 8:
    pytest.skip("needs 8 host devices (tests/conftest.py sets them)")
  _, _, _, batch = sft_problem.build()
  tx = optax.adam(1e-2)
  model, _ = _adapted()
  graphdef, ref_state = init_train_state(model, tx, trainable=TRAINABLE)
  ref, ref_metrics = make_train_step(graphdef, tx, sft_problem.loss_fn, donate=False)(
    ref_state, batch
  )
  model, _ = _adapted()
  graphdef, state = init_train_state(model, tx, trainable=TRAINABLE)
  mesh = sharding.make_mesh({"fsdp": 4, "tensor": 2})
  shards = state_shardings(state, tx, lora_rules(rules_for("qwen3")), mesh)
  state = jax.device_put(state, shards)
  step = make_train_step(graphdef, tx, sft_problem.loss_fn, mesh=mesh, shardings=shards)
  new, metrics = step(state, sharding.shard_batch(batch, mesh))
  np.testing.assert_allclose(float(metrics["loss"]), float(ref_metrics["loss"]), atol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(new.params), jax.tree_util.tree_leaves(ref.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(rank=0), "lora_rank"),
    (dict(rank=-2), "lora_rank"),
    (dict(alpha=0.0), "lora_alpha"),
    (dict(alpha=-1.0), "lora_alpha"),
    (dict(dropout=1.0), "lora_dropout"),
    (dict(dropout=-0.1), "lora_dropout"),
    (dict(targets="("), "lora_targets"),
  ],
)
def test_bad_hyper_parameters_name_the_flag(kwargs, match):
  model = Transformer(get_preset("tiny-qwen3"), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=match):
    apply_lora(model, LoRAConfig(**kwargs), rngs=nnx.Rngs(1))


def test_targets_matching_nothing_lists_real_paths():
  model = Transformer(get_preset("tiny-qwen3"), rngs=nnx.Rngs(0))
  with pytest.raises(
    ValueError, match=r"lora_targets.*matches no parameter.*layers\.0\.mixer\.q_proj"
  ):
    apply_lora(model, LoRAConfig(targets=r".*q_proj_typo"), rngs=nnx.Rngs(1))
  apply_lora(model, LoRAConfig(), rngs=nnx.Rngs(1))
  with pytest.raises(ValueError, match="already has LoRA"):
    apply_lora(model, LoRAConfig(), rngs=nnx.Rngs(1))
