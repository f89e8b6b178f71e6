"""reasoning_jax.train.recall: model specs, the recall loss, sparse head and accuracy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.train import recall as recall_train


def test_parse_model_spec_errors():
  assert recall_train.parse_model_spec("attention@2") == ("attention", 2, None)
  assert recall_train.parse_model_spec("gla@1@4") == ("gla", 1, 4)
  for bad in ("attention", "attention@x", "@2", "attention@0"):
    with pytest.raises(ValueError, match="model spec"):
      recall_train.parse_model_spec(bad)


def test_model_overrides_reach_one_model_only():
  """`model_for_spec` merges `model_overrides[spec]` into that model's overrides, which win
  over the fields derived from the spec (head_dim here); other specs keep `model`."""
  model = {
    "preset": "tiny-llama",
    "hidden_size": 32,
    "num_heads": 2,
    "overrides": {"rope_theta": 5.0},
  }
  extra = {"gla@1": {"head_dim": 10}, "sliding_attention@1": {"sliding_window": 3}}
  gla = recall_train.build_model_config(
    "gla@1", vocab_size=16, max_len=8, model=recall_train.model_for_spec(model, extra, "gla@1")
  )
  assert (gla.head_dim, gla.num_heads, gla.rope_theta) == (10, 2, 5.0)
  swa = recall_train.model_for_spec(model, extra, "sliding_attention@1")
  assert swa["overrides"] == {"rope_theta": 5.0, "sliding_window": 3}
  assert recall_train.model_for_spec(model, extra, "attention@1") is model
  assert recall_train.model_for_spec(model, None, "gla@1") is model
  plain = recall_train.build_model_config("gla@1", vocab_size=16, max_len=8, model=model)
  assert plain.head_dim == 16 and plain.sliding_window is None


def test_train_kwargs_change_only_the_training_data():
  """`task["train_kwargs"]` (Zoology's mixed training) overrides the generator's kwargs for the
  training set; the test set keeps `kwargs` and its seed + 10."""
  from reasoning_jax.data import recall as recall_data

  kwargs = {"vocab_size": 128, "seq_len": 32, "num_kv_pairs": 4}
  task = {
    "name": "mqar",
    "num_train": 30,
    "num_test": 12,
    "kwargs": kwargs,
    "train_kwargs": {"num_kv_pairs": (2, 4)},
  }
  train, test = recall_train.make_task_data(task, 3)
  assert sorted(set((train.targets != recall_data.IGNORE).sum(axis=1))) == [2, 4]
  expected = recall_data.mqar(12, seed=13, **kwargs)
  np.testing.assert_array_equal(test.inputs, expected.inputs)
  np.testing.assert_array_equal(test.targets, expected.targets)
  plain_train, _ = recall_train.make_task_data({**task, "train_kwargs": {}}, 3)
  np.testing.assert_array_equal(plain_train.inputs, recall_data.mqar(30, seed=3, **kwargs).inputs)


def test_masked_cross_entropy_hand_case():
  logits = jnp.log(jnp.array([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]]))
  targets = jnp.array([[0, 2]])
  total, count, aux = recall_train.masked_cross_entropy(logits, targets, jnp.array([[1.0, 1.0]]))
  np.testing.assert_allclose(total, -np.log(0.5) - np.log(0.1), rtol=1e-6)
  assert float(count) == 2 and float(aux["accuracy_sum"]) == 1
  total, count, _ = recall_train.masked_cross_entropy(
    logits, jnp.array([[0, -100]]), jnp.array([[1.0, 0.0]])
  )
  np.testing.assert_allclose(total, -np.log(0.5), rtol=1e-6)


def test_target_slots_and_sparse_head_match_the_dense_loss_and_accuracy():
  """The head on gathered target positions gives the dense loss and accuracy exactly."""
  from reasoning_jax.data import recall
  from reasoning_jax.models import Transformer, get_preset

  mask = np.array([[0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]], bool)
  slots = recall_train.target_slots(mask)
  assert slots.shape == (3, 2)
  assert slots[0].tolist() == [1, 3] and slots[1, 0] == 0
  valid = np.take_along_axis(mask, slots, axis=1)
  assert valid.tolist() == [[True, True], [True, False], [False, False]]
  assert recall_train.target_slots(mask, 3).shape == (3, 3)
  with pytest.raises(ValueError, match="k=1"):
    recall_train.target_slots(mask, 1)

  data = recall.mqar(6, vocab_size=64, seq_len=32, num_kv_pairs=3, seed=0)
  config = get_preset("tiny-llama").replace(
    vocab_size=64,
    num_layers=1,
    hidden_size=32,
    num_heads=2,
    num_kv_heads=2,
    head_dim=16,
    intermediate_size=32,
    max_position_embeddings=64,
  )
  model = Transformer(config, rngs=nnx.Rngs(0))
  weights = (data.targets != recall.IGNORE).astype(np.float32)
  dense = recall_train.recall_loss(
    model,
    {
      "inputs": jnp.asarray(data.inputs),
      "targets": jnp.asarray(data.targets),
      "loss_weights": jnp.asarray(weights),
    },
  )
  slots = recall_train.target_slots(weights > 0, 4)  # One padding slot per row.
  sparse = recall_train.recall_loss(
    model,
    {
      "inputs": jnp.asarray(data.inputs),
      "slots": jnp.asarray(slots),
      "targets": jnp.asarray(np.take_along_axis(data.targets, slots, 1)),
      "loss_weights": jnp.asarray(np.take_along_axis(weights, slots, 1)),
    },
  )
  for a, b in zip(jax.tree_util.tree_leaves(dense), jax.tree_util.tree_leaves(sparse)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
  graphdef, params = nnx.split(model, nnx.Param)
  train = {
    "batch_size": 4,
    "num_steps": 2,
    "learning_rate": 1e-3,
    "warmup_steps": 1,
    "weight_decay": 0.0,
    "grad_clip": 1.0,
  }
  _, _, _, counts = recall_train.compiled_functions(config, train)
  accs = [
    recall_train.evaluate_accuracy(counts, params, data, batch_size=4, sparse=s)
    for s in (False, True)
  ]
  assert accs[0] == accs[1]
