"""LoRA in the trainers (`config.lora`, `reasoning_jax.train.lora_setup`) on a tiny HF folder.

SFT and RL train only the adapters over a frozen base rebuilt from the source: loss finite and
decreasing, the base bit-identical after training (the exported merged model equals the source
base merged with the checkpointed adapters), exact resume, the RL reference log-probs equal to
the base model's (adapters off, same weights), and bad `config.lora` values named at launch.
"""

import os
import shutil
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from reasoning_jax.lora import TRAINABLE, LoRAConfig, apply_lora, merge_adapters
from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.train import lora_setup
from reasoning_jax.train.metrics import read_metrics
from reasoning_jax.train.sft import load_sft_params, run_sft
from reasoning_jax.train.sft_config import ConfigError
from reasoning_jax.train.step import init_train_state, make_train_step, sft_loss

pytest.importorskip("transformers", reason="needs the `hf` extra (pip install -e .[hf])")
from tests.helpers.tiny_hf import write_tiny_checkpoint  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from configs import rl_gsm8k, sft_gsm8k  # noqa: E402


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
  return write_tiny_checkpoint(str(tmp_path_factory.mktemp("qwen3")), "qwen3")


def sft_config(hf_dir, root, **lora_changes):
  c = sft_gsm8k.get_config("tiny_lora")
  c.model.hf_dir = str(hf_dir)
  c.workdir, c.data_dir = str(root / "sft"), str(root / "data")
  c.num_steps, c.eval_examples, c.eval_max_new_tokens, c.checkpoint_every = 6, 2, 4, 3
  c.lora.update(lora_changes)
  return c


def rl_config(hf_dir, root, variant="tiny_lora", **changes):
  c = rl_gsm8k.get_config(variant)
  c.model.hf_dir = str(hf_dir)
  c.workdir, c.sft.workdir, c.sft.data_dir = str(root / "rl"), str(root / "ws"), str(root / "d")
  c.max_new_tokens, c.checkpoint_every = 8, 2
  for key, value in changes.items():
    c[key] = value
  return c


def _losses(workdir):
  return {r["step"]: r["train/loss"] for r in read_metrics(workdir) if "train/loss" in r}


def _leaves(model, kind):
  return {
    jax.tree_util.keystr(p): np.asarray(v)
    for p, v in jax.tree_util.tree_leaves_with_path(nnx.state(model, kind))
  }


def _adapters(workdir, config):
  model, _ = load_sft_params(workdir, config)
  return _leaves(model, nnx.LoRAParam)


def test_sft_lora_trains_adapters_keeps_base_and_resumes_exactly(hf_dir, tmp_path):
  from reasoning_jax.models import from_hf

  config = sft_config(hf_dir, tmp_path, export_dir=str(tmp_path / "merged"))
  result = run_sft(config)
  assert result["step"] == 6 and result["exported"] == str(tmp_path / "merged")
  losses = _losses(config.workdir)
  assert all(np.isfinite(v) for v in losses.values()) and losses[6] < losses[1]
  # The checkpoint holds adapters only; base (rebuilt from the folder) + adapters, merged,
  # equals the model exported at the end of training bit for bit: the base never changed.
  model, _ = load_sft_params(config.workdir, config)
  adapters = _leaves(model, nnx.LoRAParam)
  assert adapters and any(np.abs(v).max() > 0 for k, v in adapters.items() if "lora_b" in k)
  # (Untouched tensors bit for bit; merged kernels to float32 rounding of W + s A B, whose
  # matmul XLA may order differently; a trained base would differ by ~lr = 1e-2.)
  adapted = {k.split("['base']")[0] for k in _leaves(model, nnx.Param) if "['base']" in k}
  expected = _leaves(merge_adapters(model), nnx.Param)
  exported = _leaves(from_hf(str(tmp_path / "merged"), dtype="float32"), nnx.Param)
  assert expected.keys() == exported.keys() and adapted
  for name, value in expected.items():
    if name.removesuffix(".value") in adapted:
      np.testing.assert_allclose(exported[name], value, rtol=0, atol=1e-7, err_msg=name)
    else:
      np.testing.assert_array_equal(exported[name], value, err_msg=name)
  # Stopped after step 3: the resumed run (base from the folder, adapters from the
  # checkpoint) gives the same later losses and the same adapters.
  stopped = tmp_path / "stopped"
  shutil.copytree(config.workdir, stopped)
  shutil.rmtree(stopped / "checkpoints" / "6")
  config.workdir, config.lora.export_dir = str(stopped), ""
  assert run_sft(config)["step"] == 6
  again = _losses(config.workdir)
  np.testing.assert_allclose([again[s] for s in (4, 5, 6)], [losses[s] for s in (4, 5, 6)], 1e-5)
  resumed = _adapters(config.workdir, config)
  for name, value in adapters.items():
    np.testing.assert_allclose(resumed[name], value, atol=1e-6, err_msg=name)


def test_lora_step_updates_only_adapters_base_bit_identical():
  # remat="full": the frozen base passes through `nnx.remat` blocks inside the traced step.
  model = Transformer(get_preset("tiny-qwen3", remat="full"), rngs=nnx.Rngs(0))
  spec = lora_setup.LoRASpec(LoRAConfig(rank=2, dropout=0.2), "float32")
  lora_setup.adapt(model, spec, seed=0)
  tx = optax.adam(1e-2)
  graphdef, state = init_train_state(model, tx, trainable=lora_setup.trainable(spec))
  base = jax.tree.map(np.asarray, state.frozen)
  adapters = jax.tree.map(np.asarray, state.params)
  step = make_train_step(graphdef, tx, lora_setup.with_dropout(sft_loss, spec, seed=0))
  tokens = np.arange(32, dtype=np.int32).reshape(2, 16) % 50
  for i in range(3):
    batch = {"tokens": tokens, "loss_mask": np.ones_like(tokens)}
    batch = lora_setup.add_dropout_seeds(batch, spec, step=i)
    state, metrics = step(state, jax.tree.map(jnp.asarray, batch))
    assert np.isfinite(float(metrics["loss"]))
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, state.frozen), base)
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - b).max()), state.params, adapters)
  assert max(jax.tree.leaves(moved)) > 0


def test_rl_lora_reference_is_the_base_model_and_resumes_exactly(hf_dir, tmp_path, monkeypatch):
  from reasoning_jax.logprobs import sequence_logprobs
  from reasoning_jax.models import from_hf
  from reasoning_jax.rl import trainer
  from reasoning_jax.rl.trainer import run_rl
  from reasoning_jax.rl.trainer import sft_config as sft_config_of

  seen = []
  original = trainer.collect_rollouts

  def spy(**kwargs):
    batch = original(**kwargs)
    seen.append(batch)
    return batch

  monkeypatch.setattr(trainer, "collect_rollouts", spy)
  config = rl_config(hf_dir, tmp_path, loss_overrides=ml_collections.ConfigDict({"beta": 0.05}))
  assert run_rl(config)["step"] == 4
  assert len(seen) == 4 and all(b.ref_logp is not None for b in seen)
  base = from_hf(str(hf_dir), dtype="float32")
  for batch in seen[1:]:  # After the first update the adapters are non-zero.
    mask = jnp.asarray(batch.mask)
    logp, _ = sequence_logprobs(base, jnp.asarray(batch.tokens), mask)
    np.testing.assert_allclose(batch.ref_logp, np.asarray(logp * mask), atol=2e-5)
    # The sampler (the adapted policy) differs from the reference.
    assert np.abs((batch.sampler_logp - batch.ref_logp) * batch.mask).max() > 1e-6
  losses = _losses(config.workdir)
  assert all(np.isfinite(v) for v in losses.values())
  lora_sft = sft_config_of(config)
  lora_sft.lora = config.lora
  lora_sft.seed = config.seed
  adapters = _adapters(config.workdir, lora_sft)
  stopped = tmp_path / "stopped"
  shutil.copytree(config.workdir, stopped)
  shutil.rmtree(stopped / "checkpoints" / "4")
  config.workdir = str(stopped)
  assert run_rl(config)["step"] == 4
  again = _losses(config.workdir)
  np.testing.assert_allclose([again[s] for s in (3, 4)], [losses[s] for s in (3, 4)], rtol=1e-5)
  resumed = _adapters(config.workdir, lora_sft)
  for name, value in adapters.items():
    np.testing.assert_allclose(resumed[name], value, atol=1e-6, err_msg=name)


@pytest.mark.parametrize(
  "changes, match",
  [
    ({"rank": 0}, r"config\.lora\.rank"),
    ({"alpha": -1.0}, r"config\.lora\.alpha"),
    ({"dropout": 1.0}, r"config\.lora\.dropout"),
    ({"base_dtype": "int8"}, r"config\.lora\.base_dtype"),
    ({"targets": "("}, r"config\.lora\.targets.*not a valid regex"),
    ({"targets": r"nothing\.here"}, r"config\.lora\.targets.*matches no parameter"),
  ],
)
def test_bad_lora_config_fails_before_training(hf_dir, tmp_path, changes, match):
  config = sft_config(hf_dir, tmp_path, **changes)
  with pytest.raises(ConfigError, match=match):
    run_sft(config)
  assert not os.path.exists(os.path.join(config.workdir, "metrics.jsonl"))


def test_bad_lora_config_in_rl_names_the_key(hf_dir, tmp_path):
  from reasoning_jax.rl.trainer import ConfigError as RLConfigError
  from reasoning_jax.rl.trainer import run_rl

  for value, match in ((True, r"config\.lora=True"), ({"rnak": 4}, r"unknown config\.lora")):
    with pytest.raises(RLConfigError, match=match):
      run_rl(rl_config(hf_dir, tmp_path, "tiny", lora=value))
  config = rl_config(hf_dir, tmp_path)
  config.lora.targets = r"layers\.\d+\.mixer\.x_proj"
  with pytest.raises(RLConfigError, match=r"config\.lora\.targets.*matches no parameter"):
    run_rl(config)
  assert not os.path.exists(os.path.join(config.workdir, "metrics.jsonl"))


def test_lora_spec_defaults_and_off():
  assert lora_setup.lora_spec({"lora": None}) is None
  assert lora_setup.lora_spec({"lora": False}) is None
  spec = lora_setup.lora_spec({"lora": {"rank": 2}})
  assert spec.lora.rank == 2 and spec.base_dtype == "float32" and spec.export_dir == ""
  model = Transformer(get_preset("tiny-qwen3"), rngs=nnx.Rngs(0))
  ids = jnp.array([[1, 2, 3]])
  before = model(ids)
  apply_lora(model, LoRAConfig(rank=2), rngs=nnx.Rngs(1))
  graphdef, state = init_train_state(model, optax.sgd(0.1), trainable=TRAINABLE)
  ref = nnx.merge(lora_setup.reference_graphdef(model), lora_setup.all_params(state))
  np.testing.assert_array_equal(np.asarray(ref(ids)), np.asarray(before))
