"""SFT from a tiny random HF checkpoint (Qwen3, Llama) with its own tokenizer and chat template."""

import json
import os
import pathlib
import shutil

import jax
import numpy as np
import pytest

from reasoning_jax.train.metrics import read_metrics
from reasoning_jax.train.sft import load_sft_params, run_sft
from reasoning_jax.train.sft_config import ConfigError

pytest.importorskip("transformers", reason="needs the `hf` extra (pip install -e .[hf])")
from tests.helpers.hf_configs import sft_hf_config  # noqa: E402


def _losses(workdir):
  out = {}
  for r in read_metrics(workdir):
    if "train/loss" in r:
      out[r["step"]] = r["train/loss"]
  return out


@pytest.mark.parametrize("family", ["qwen3", "llama"])
def test_sft_from_hf_folder_decreases_loss_and_resumes_exactly(tiny_hf_folder, family, tmp_path):
  config = sft_hf_config(tiny_hf_folder(family), tmp_path, checkpoint_every=3)
  result = run_sft(config)
  assert result["step"] == 6 and np.isfinite(result["accuracy"])
  losses = _losses(config.workdir)
  assert all(np.isfinite(v) for v in losses.values()) and losses[6] < losses[1]
  if family == "llama":
    return
  # A run stopped after step 3 resumes exactly: same losses and the same final weights.
  full = {k: np.asarray(v) for k, v in _flat(load_sft_params(config.workdir, config)[0]).items()}
  stopped = tmp_path / "stopped"
  shutil.copytree(config.workdir, stopped)
  shutil.rmtree(stopped / "checkpoints" / "6")
  config.workdir = str(stopped)
  assert run_sft(config)["step"] == 6
  resumed = _flat(load_sft_params(config.workdir, config)[0])
  for name, value in full.items():
    np.testing.assert_allclose(np.asarray(resumed[name]), value, atol=1e-6, err_msg=name)
  again = _losses(config.workdir)
  for step in range(1, 7):
    np.testing.assert_allclose(again[step], losses[step], rtol=1e-5)
  # The resumed log reads as the straight run's: steps 4-6 were dropped before being trained
  # again, so no step is logged twice.
  shape = lambda d: [(r["step"], sorted(r)) for r in read_metrics(d)]  # noqa: E731
  assert shape(config.workdir) == shape(str(tmp_path / "sft"))
  logged = read_metrics(config.workdir)  # Launched again when finished: nothing logged twice.
  assert run_sft(config)["step"] == 6 and read_metrics(config.workdir) == logged


def _flat(model):
  from flax import nnx

  return {
    jax.tree_util.keystr(p): v
    for p, v in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))
  }


def test_memory_flags_remat_and_optimizer_state_dtype(tiny_hf_folder, tmp_path):
  """config.model.remat recomputes blocks (LoRA dropout included) without changing a loss;
  opt_state_dtype keeps Adam's moments in float32 under bf16 parameters, through a
  checkpoint and a resume."""
  from configs import sft_gsm8k
  from reasoning_jax.models.source import build_model
  from reasoning_jax.train.sft_config import make_optimizer, model_source, validate_config
  from reasoning_jax.train.step import init_train_state

  folder = tiny_hf_folder("qwen3")
  plain = sft_hf_config(folder, tmp_path / "plain", num_steps=3)
  remat = sft_hf_config(folder, tmp_path / "remat", num_steps=3)
  remat.model.remat = "full"
  for c in (plain, remat):  # LoRA with dropout: the adapters' random masks under remat too.
    c.lora = sft_gsm8k.lora_config(rank=4, dropout=0.1, base_dtype="float32")
  run_sft(plain), run_sft(remat)
  a, b = _losses(plain.workdir), _losses(remat.workdir)
  assert sorted(a) == sorted(b) == [1, 2, 3]
  for step in a:
    np.testing.assert_allclose(b[step], a[step], rtol=1e-5)

  mixed = sft_hf_config(folder, tmp_path / "mixed", num_steps=4, checkpoint_every=2)
  mixed.model.param_dtype, mixed.model.opt_state_dtype = "bfloat16", "float32"
  model = build_model(model_source(mixed))
  _, state = init_train_state(model, make_optimizer(mixed))
  float_leaves = [x for x in jax.tree_util.tree_leaves(state.opt_state) if x.ndim > 0]
  assert float_leaves and all(x.dtype == np.float32 for x in float_leaves)
  assert all(x.dtype == jax.numpy.bfloat16 for x in jax.tree_util.tree_leaves(state.params))
  assert run_sft(mixed)["step"] == 4
  losses = _losses(mixed.workdir)
  shutil.rmtree(os.path.join(mixed.workdir, "checkpoints", "4"))
  assert run_sft(mixed)["step"] == 4  # Resumed from step 2: float32 moments restored.
  again = _losses(mixed.workdir)
  for step in (3, 4):
    np.testing.assert_allclose(again[step], losses[step], rtol=1e-5)

  mixed.model.opt_state_dtype = "int8"
  with pytest.raises(ConfigError, match="config.model.opt_state_dtype must be a floating"):
    validate_config(mixed)
  mixed.model.opt_state_dtype, mixed.model.remat = "", "everything"
  with pytest.raises(ConfigError, match="config.model.remat='everything'"):
    run_sft(mixed)


def test_sft_on_math_from_hf_folder(tiny_hf_folder, tmp_path):
  """MATH through the chat template (train.jsonl in MATH's layout, test.jsonl in MATH-500's)."""
  config = sft_hf_config(tiny_hf_folder("qwen3"), tmp_path, "math", num_steps=3, eval_examples=1)
  result = run_sft(config)
  assert config.task == "math" and result["step"] == 3 and np.isfinite(result["accuracy"])
  losses = _losses(config.workdir)
  assert sorted(losses) == [1, 2, 3] and all(np.isfinite(v) for v in losses.values())


def test_bad_chat_template_and_long_prompt_fail_before_training(tiny_hf_folder, tmp_path):
  bad = tmp_path / "bad_template"
  shutil.copytree(tiny_hf_folder("qwen3"), bad)
  tok_config = json.loads(pathlib.Path(bad / "tokenizer_config.json").read_text())
  tok_config["chat_template"] = "{{ raise_exception('no system role here') }}"
  pathlib.Path(bad / "tokenizer_config.json").write_text(json.dumps(tok_config))
  with pytest.raises(ConfigError, match="failed to render.*no system role.*tokenizer_config"):
    run_sft(sft_hf_config(bad, tmp_path / "a"))
  config = sft_hf_config(tiny_hf_folder("qwen3"), tmp_path / "b")
  config.prompt.max_prompt_len = 16
  with pytest.raises(ConfigError, match="longer than the configured limit.*max_prompt_len=16"):
    run_sft(config)
  assert not os.path.exists(os.path.join(config.workdir, "metrics.jsonl"))  # No step ran.
  config.model.hf_dir = str(tmp_path / "nowhere")
  with pytest.raises(ConfigError, match="config.model.hf_dir"):
    run_sft(config)
