"""Tiny end-to-end runs of experiments.induction / mqar / monotone_attack: outputs written, sane.

These check plumbing (files, shapes, ranges, determinism of the pieces), not the papers'
effects.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from configs import induction as induction_config  # noqa: E402
from configs import monotone_attack as monotone_config  # noqa: E402
from configs import mqar as mqar_config  # noqa: E402
from experiments import induction, monotone_attack  # noqa: E402


def _tiny_recall(config, workdir, tasks):
  config.workdir = str(workdir)
  config.seeds = (0, 1)
  config.tasks = tasks
  config.train.num_steps = 6
  config.train.eval_every = 3
  config.train.warmup_steps = 2
  config.train.batch_size = 8
  config.train.eval_batch_size = 16
  for name in tasks:
    config.task_configs[name].num_train = 32
    config.task_configs[name].num_test = 20
  return config


def _check_recall_outputs(workdir, payload, tasks, models):
  for name in ("results.md", "results.json", "accuracy.png"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  md = open(os.path.join(workdir, "results.md")).read()
  for model in models:
    assert f"| {model} |" in md
  with open(os.path.join(workdir, "results.json")) as f:
    saved = json.load(f)
  assert set(saved["results"]) == set(tasks)
  for task in tasks:
    for model in models:
      runs = payload["results"][task][model]
      assert [r["seed"] for r in runs] == [0, 1]
      for r in runs:
        assert [s for s, _ in r["curve"]] == [0, 3, 6]
        assert all(0.0 <= a <= 1.0 for _, a in r["curve"])
        assert all(np.isfinite(l) for _, l in r["train_loss"])


def test_induction_experiment_tiny(tmp_path):
  config = _tiny_recall(induction_config.get_config(), tmp_path, ("induction", "repeated"))
  config.models = ("momentum_key_only@1@1",)
  config.model.hidden_size = 16
  config.task_configs.repeated.kwargs.half_len = 6
  config.task_configs.repeated.kwargs.min_half_len = 4
  config.task_configs.repeated.kwargs.vocab_size = 16
  payload = induction.run_recall_experiment(config)
  _check_recall_outputs(tmp_path, payload, ("induction", "repeated"), config.models)
  from reasoning_jax import registry

  cls = registry.MIXERS.get("momentum_key_only")
  assert cls.gamma_q_spec == 0.0 and cls.gamma_k_spec == "scaling_law"


def test_recall_sweep_resumes_finished_runs(tmp_path, monkeypatch):
  """A rerun reuses the per-run files of finished runs, retrains a missing one, and retrains
  everything once the training config changes."""
  config = _tiny_recall(induction_config.get_config(), tmp_path, ("repeated",))
  config.models = ("attention@1@1",)
  config.model.hidden_size = 16
  config.task_configs.repeated.kwargs.half_len = 6
  config.task_configs.repeated.kwargs.min_half_len = 4
  config.task_configs.repeated.kwargs.vocab_size = 16
  first = induction.run_recall_experiment(config)
  run_files = sorted((tmp_path / "runs").glob("*.json"))
  assert len(run_files) == len(config.seeds)

  trained = []
  real = induction.train_and_eval

  def counting(model_config, task, seed, train, **kw):
    trained.append(seed)
    return real(model_config, task, seed, train, **kw)

  monkeypatch.setattr(induction, "train_and_eval", counting)

  again = induction.run_recall_experiment(config)
  assert trained == []
  assert again["results"] == first["results"]

  run_files[0].unlink()
  induction.run_recall_experiment(config)
  assert trained == [config.seeds[0]]

  trained.clear()
  config.train.learning_rate = config.train.learning_rate * 2
  induction.run_recall_experiment(config)
  assert trained == list(config.seeds)


def test_mqar_experiment_tiny(tmp_path):
  """Every mixer of the MQAR comparison (incl. the equal-state OVQ variant the config
  registers) runs; task entries name their generator."""
  config = _tiny_recall(mqar_config.get_config(), tmp_path, ("mqar_kv8",))
  config.models = ("base_conv+attention@2", "gla@1", "ovq_eq@1")
  config.model.hidden_size = 16
  config.task_configs.mqar_kv8.kwargs.vocab_size = 128
  config.task_configs.mqar_kv8.kwargs.seq_len = 40
  payload = induction.run_recall_experiment(config)
  _check_recall_outputs(tmp_path, payload, ("mqar_kv8",), config.models)


def test_mqar_config_compares_at_equal_state():
  """ovq_eq's per-head state (slots x (D + Dv + 1) + chunk buffer x (D + Dv)) is within 1%
  of GLA's D x D at the config's head dim."""
  from reasoning_jax import registry

  config = mqar_config.get_config()
  induction.register_mixer_variants(config.mixer_variants)
  ovq = registry.MIXERS.get("ovq_eq")
  d = config.model.hidden_size // config.model.num_heads
  ovq_floats = ovq.num_slots * (2 * d + 1) + ovq.chunk_size * 2 * d
  assert abs(ovq_floats - d * d) / (d * d) < 0.01
  assert {"attention@2", "base_conv+gla@2", "base_conv+ovq_eq@2"} <= set(config.models)
  model_config = induction.build_model_config(
    "base_conv+ovq_eq@2", vocab_size=256, max_len=64, model=config.model
  )
  assert model_config.mixer == ("base_conv", "ovq_eq")  # Zoology's hybrid: conv, then recall.
  assert all(t["generator"] == "mqar" for t in config.task_configs.values())
  with pytest.raises(ValueError, match="kind"):
    induction.register_mixer_variants({"x": {"kind": "lstm"}})
  zoology = mqar_config.get_config("zoology")  # --config=configs/mqar.py:zoology
  assert {t.kwargs.vocab_size for t in zoology.task_configs.values()} == {8192}
  assert zoology.tasks == ("mqar_kv8", "mqar_kv16", "mqar_kv32")
  with pytest.raises(ValueError, match="scale"):
    mqar_config.get_config("huge")


def test_parse_model_spec_errors():
  assert induction.parse_model_spec("attention@2") == ("attention", 2, None)
  assert induction.parse_model_spec("gla@1@4") == ("gla", 1, 4)
  for bad in ("attention", "attention@x", "@2", "attention@0"):
    with pytest.raises(ValueError, match="model spec"):
      induction.parse_model_spec(bad)


def test_masked_cross_entropy_hand_case():
  logits = jnp.log(jnp.array([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]]))
  targets = jnp.array([[0, 2]])
  total, count, aux = induction.masked_cross_entropy(logits, targets, jnp.array([[1.0, 1.0]]))
  np.testing.assert_allclose(total, -np.log(0.5) - np.log(0.1), rtol=1e-6)
  assert float(count) == 2 and float(aux["accuracy_sum"]) == 1
  total, count, _ = induction.masked_cross_entropy(
    logits, jnp.array([[0, -100]]), jnp.array([[1.0, 0.0]])
  )
  np.testing.assert_allclose(total, -np.log(0.5), rtol=1e-6)


# -- Monotone attack -------------------------------------------------------------------------


def test_summary_task_layout():
  d = monotone_attack.summary_task(
    50, num_filler=6, num_content=8, source_len=10, num_keywords=3, seed=0
  )
  assert d["inputs"].shape == (50, 14)
  for row in range(50):
    x, y, alt = d["inputs"][row], d["targets"][row], d["alt_targets"][row]
    content = [t for t in x[:10] if 8 <= t < 16]
    assert len(content) == 3 and x[10] == monotone_attack.SEP
    assert np.all(y[:10] == -100) and y[-1] == monotone_attack.EOS
    summary = y[10:13]
    np.testing.assert_array_equal((summary - 16) // 2, np.array(content) - 8)
    assert np.all(np.abs(alt[10:13] - summary) == 1) and alt[-1] == y[-1]
    np.testing.assert_array_equal(x[11:], y[10:13])  # Teacher forcing.
  assert d["filler_mask"].sum() == 50 * 7
  with pytest.raises(ValueError, match="num_keywords"):
    monotone_attack.summary_task(2, num_content=2, num_keywords=3)


def test_forward_from_embeddings_matches_model():
  config = monotone_config.get_config()
  from reasoning_jax.models.transformer import Transformer

  mc = monotone_attack.model_config_for(config, "monotone")
  model = Transformer(mc, rngs=nnx.Rngs(0))
  ids = jax.random.randint(jax.random.key(0), (2, 7), 0, mc.vocab_size)
  graphdef, params = nnx.split(model)

  @jax.jit
  def both(params, ids):
    m = nnx.merge(graphdef, params)
    return m(ids), monotone_attack.forward_from_embeddings(m, jnp.take(m.embed[...], ids, 0))

  want, got = both(params, ids)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_convert_to_monotone_keeps_magnitudes_and_other_params():
  from reasoning_jax.models.transformer import Transformer

  config = monotone_config.get_config()
  dense = Transformer(monotone_attack.model_config_for(config, "relu"), rngs=nnx.Rngs(0))
  mono = monotone_attack.convert_to_monotone(
    dense, monotone_attack.model_config_for(config, "monotone"), eps=1e-4, seed=1
  )
  for d_block, m_block in zip(dense.layers, mono.layers):
    w = m_block.ffn.weights()
    np.testing.assert_allclose(w["up"], jnp.abs(d_block.ffn.up[...]) + 1e-4, atol=2e-4)
    np.testing.assert_allclose(w["down"], jnp.abs(d_block.ffn.down[...]) + 1e-4, atol=2e-4)
    np.testing.assert_array_equal(m_block.mixer.q_proj[...], d_block.mixer.q_proj[...])
  np.testing.assert_array_equal(mono.embed[...], dense.embed[...])


def test_monotone_attack_experiment_tiny(tmp_path):
  config = monotone_config.get_config()
  config.workdir = str(tmp_path)
  config.seeds = (0, 1)
  config.num_train, config.num_test = 64, 24
  config.task = {"num_filler": 6, "num_content": 6, "source_len": 10, "num_keywords": 2}
  config.model.hidden_size = 16
  config.model.intermediate_size = 32
  config.model.num_heads = 2
  config.protocol.pretrain_steps = 4
  config.protocol.finetune_steps = 4
  config.train.batch_size = 8
  config.train.log_every = 2
  config.attack.num_examples = 16
  config.attack.batch_size = 8
  payload = monotone_attack.run(config)
  for name in ("results.md", "results.json", "attack.png"):
    assert os.path.getsize(os.path.join(tmp_path, name)) > 0
  md = open(os.path.join(tmp_path, "results.md")).read()
  for name in ("pretrained", "baseline", "monotone"):
    assert f"| {name} |" in md
  assert len(payload["per_seed"]) == 2
  for run in payload["per_seed"]:
    for name in ("pretrained", "baseline", "monotone"):
      r = run[name]
      assert np.isfinite(r["clean_loss"]) and 0 <= r["clean_accuracy"] <= 1
      for mode in ("any", "meaning_preserving"):
        a = r[mode]
        assert 0 <= a["success_rate"] <= 1 and a["num_examples"] == 16
        assert 0 < a["mean_tokens_changed"] <= 5


def test_target_slots_and_sparse_head_match_the_dense_loss_and_accuracy():
  """The head on gathered target positions gives the dense loss and accuracy exactly."""
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from reasoning_jax.data import recall
  from reasoning_jax.models import Transformer, get_preset

  mask = np.array([[0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]], bool)
  slots = induction.target_slots(mask)
  assert slots.shape == (3, 2)
  assert slots[0].tolist() == [1, 3] and slots[1, 0] == 0
  valid = np.take_along_axis(mask, slots, axis=1)
  assert valid.tolist() == [[True, True], [True, False], [False, False]]
  assert induction.target_slots(mask, 3).shape == (3, 3)
  with pytest.raises(ValueError, match="k=1"):
    induction.target_slots(mask, 1)

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
  dense = induction._recall_loss(
    model,
    {
      "inputs": jnp.asarray(data.inputs),
      "targets": jnp.asarray(data.targets),
      "loss_weights": jnp.asarray(weights),
    },
  )
  slots = induction.target_slots(weights > 0, 4)  # One padding slot per row.
  sparse = induction._recall_loss(
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
  _, _, _, counts = induction.compiled_functions(config, train)
  accs = [
    induction.evaluate_accuracy(counts, params, data, batch_size=4, sparse=s) for s in (False, True)
  ]
  assert accs[0] == accs[1]
