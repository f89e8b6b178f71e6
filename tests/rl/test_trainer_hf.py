"""RL from a tiny random HF checkpoint: its tokenizer, chat template and generation config."""

import json
import os
import pathlib
import shutil

import numpy as np
import pytest

from reasoning_jax.rl.trainer import ConfigError, run_rl, sft_config
from reasoning_jax.train.metrics import read_metrics
from reasoning_jax.train.sft import load_sft_params

pytest.importorskip("transformers", reason="needs the `hf` extra (pip install -e .[hf])")
from tests.helpers.hf_configs import rl_hf_config  # noqa: E402


@pytest.fixture
def qwen3_dir(tiny_hf_folder):
  return tiny_hf_folder("qwen3")


def _by_step(workdir, key):
  return {r["step"]: r[key] for r in read_metrics(workdir) if key in r}


def _params(config):
  from flax import nnx
  import jax

  model, _ = load_sft_params(config.workdir, sft_config(config))
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))]


def test_rl_from_hf_folder_runs_and_resumes_exactly(qwen3_dir, tmp_path):
  config = rl_hf_config(qwen3_dir, tmp_path)  # warm_start="source": no SFT.
  result = run_rl(config)
  assert result["step"] == 4 and np.isfinite(result["accuracy"])
  assert not os.path.exists(config.sft.workdir)
  rewards = _by_step(config.workdir, "rollout/reward")
  losses = _by_step(config.workdir, "train/loss")
  assert sorted(rewards) == [1, 2, 3, 4]
  assert all(np.isfinite(v) for v in list(rewards.values()) + list(losses.values()))
  full = _params(config)
  straight = config.workdir
  stopped = tmp_path / "stopped"
  shutil.copytree(config.workdir, stopped)
  shutil.rmtree(stopped / "checkpoints" / "4")
  config.workdir = str(stopped)
  assert run_rl(config)["step"] == 4
  for a, b in zip(_params(config), full):
    np.testing.assert_allclose(a, b, atol=1e-6)
  again = _by_step(config.workdir, "train/loss")
  np.testing.assert_allclose([again[s] for s in (3, 4)], [losses[s] for s in (3, 4)], rtol=1e-5)
  # The resumed run's logs read as the straight run's: step 4's old lines were dropped before
  # it was trained again (no step logged twice), and it sampled the same rollouts.
  shape = lambda d: [(r["step"], sorted(r)) for r in read_metrics(d)]  # noqa: E731
  assert shape(config.workdir) == shape(straight)
  rollouts = [
    pathlib.Path(os.path.join(d, "rollouts.jsonl")).read_text() for d in (straight, stopped)
  ]
  assert rollouts[0] == rollouts[1] and rollouts[0].count('"step": 4,') == 4
  samples = [
    pathlib.Path(os.path.join(d, "eval_samples.jsonl")).read_text() for d in (straight, stopped)
  ]
  steps = [json.loads(line)["step"] for line in samples[0].splitlines()]
  assert samples[0] == samples[1] and steps == [0, 0, 4, 4]  # 2 questions, start and end.


def test_rl_on_math_from_hf_folder(qwen3_dir, tmp_path):
  """MATH prompts in the chat template, rollouts scored by the boxed verifier: finite numbers.
  With the memory knobs on: rematerialised blocks, bf16 parameters, float32 Adam moments."""
  config = rl_hf_config(qwen3_dir, tmp_path, "math", num_steps=2)
  config.model.remat, config.model.param_dtype, config.model.opt_state_dtype = (
    "full",
    "bfloat16",
    "float32",
  )
  result = run_rl(config)
  assert config.sft.task == "math" and result["step"] == 2 and np.isfinite(result["accuracy"])
  rewards = _by_step(config.workdir, "rollout/reward")
  losses = _by_step(config.workdir, "train/loss")
  assert sorted(rewards) == sorted(losses) == [1, 2]
  assert all(0.0 <= v <= 1.0 for v in rewards.values())
  assert all(np.isfinite(v) for v in losses.values())


def test_rl_with_sft_warm_start_from_hf_folder(qwen3_dir, tmp_path):
  config = rl_hf_config(qwen3_dir, tmp_path, warm_start="sft", num_steps=1, temperature=1.0)
  result = run_rl(config)
  assert result["step"] == 1
  assert os.path.isdir(os.path.join(config.sft.workdir, "checkpoints", "2"))


def test_rl_bad_input_names_the_flag(qwen3_dir, tmp_path):
  with pytest.raises(ConfigError, match="config.warm_start"):
    run_rl(rl_hf_config(qwen3_dir, tmp_path, warm_start="hub"))
  with pytest.raises(ConfigError, match="config.lora"):
    run_rl(rl_hf_config(qwen3_dir, tmp_path, lora=True))
  config = rl_hf_config(qwen3_dir, tmp_path)
  config.model.opt_state_dtype = "int32"
  with pytest.raises(ConfigError, match="config.model.opt_state_dtype must be a floating"):
    run_rl(config)
  config.model.opt_state_dtype = ""
  config.sft.prompt.max_prompt_len = -1  # The task's settings are config.sft's, named so.
  with pytest.raises(ConfigError, match=r"config\.sft\.prompt\.max_prompt_len"):
    run_rl(config)
  config.sft.prompt.max_prompt_len = 16  # Found when the prompts are read: named the same way.
  with pytest.raises(ConfigError, match=r"limit config\.sft\.prompt\.max_prompt_len=16"):
    run_rl(config)
  config.sft.prompt.max_prompt_len = 256
  config.model.hf_dir = str(tmp_path)
  with pytest.raises(ConfigError, match="config.json not found.*config.model.hf_dir"):
    run_rl(config)


def test_rl_with_a_speculative_draft(qwen3_dir, tmp_path):
  """`config.draft`: rollouts by speculative decoding from an HF folder (here the policy's
  own starting checkpoint, so the first rollouts accept nearly every draft)."""
  config = rl_hf_config(qwen3_dir, tmp_path, num_steps=2)
  config.draft = {"hf_dir": str(qwen3_dir), "num_draft": 3}
  result = run_rl(config)
  assert result["step"] == 2 and np.isfinite(result["accuracy"])
  acceptance = _by_step(config.workdir, "rollout/spec_acceptance")
  per_call = _by_step(config.workdir, "rollout/spec_tokens_per_call")
  assert sorted(acceptance) == sorted(per_call) == [1, 2]
  assert acceptance[1] > 0.95  # Draft == policy before the first update.
  assert all(1.0 <= v <= 4.0 for v in per_call.values())
  assert all(np.isfinite(v) for v in _by_step(config.workdir, "train/loss").values())


def test_rl_with_a_speculative_draft_on_two_processes(qwen3_dir, tmp_path):
  """Two processes x 2 devices: each builds the draft on its own devices and samples its
  prompts by speculative decoding (rows split over its devices); both finish both steps and
  process 0 logs the acceptance (draft == policy before the first update)."""
  from reasoning_jax.data import build_dataset
  from tests.helpers.two_processes import run_helper

  config = rl_hf_config(qwen3_dir, tmp_path)  # The helper's paths: build the task's data once.
  sft = config.sft
  build_dataset(
    sft.task,
    sft.data_dir,
    config=sft.task_config or None,
    manual_dir=sft.manual_dir,
    **dict(sft.task_overrides),
  )
  results = run_helper("multihost_rl_draft.py", tmp_path, qwen3_dir)
  assert all(r["step"] == 2 for r in results)
  acceptance = _by_step(config.workdir, "rollout/spec_acceptance")
  assert sorted(acceptance) == [1, 2] and acceptance[1] > 0.95


@pytest.mark.parametrize(
  "draft, match",
  [
    ({"hf_dir": "", "num_draft": 0}, None),  # An empty folder switches the draft off.
    ({"hf_dir": "x", "num_draft": 0}, r"config.draft.num_draft must be an int >= 1"),
    ({"hf_dir": "x", "depth": 2}, r"config.draft has unknown keys \['depth'\]"),
    ({"hf_dir": "/nonexistent"}, r"config.draft"),
    ({"hf_dir": "SELF", "tokenizer": "byte"}, r"tokenizer.json not found.*config.draft"),
  ],
)
def test_rl_draft_errors_name_the_flag(qwen3_dir, tmp_path, draft, match):
  from reasoning_jax.rl.draft import draft_spec

  draft = {k: (qwen3_dir if v == "SELF" else v) for k, v in draft.items()}
  config = rl_hf_config(qwen3_dir, tmp_path, num_steps=1)
  config.draft = draft
  if match is None:
    assert draft_spec(config) is None
    return
  with pytest.raises(ConfigError, match=match):
    run_rl(config)


def test_grad2reward_on_an_hf_folder(qwen3_dir, tmp_path):
  """Grad2Reward from an HF folder (warm_start="source"): the folder's model is the frozen
  self-judge, reading the judge request through its chat template; verdicts "Y" / "N" are
  single tokens right after the assistant header."""
  import ml_collections

  config = rl_hf_config(qwen3_dir, tmp_path, loss="grad2reward", num_steps=1, eval_examples=2)
  config.sft.task, config.sft.task_config, config.sft.reward = "rubric", "default", "rubric_rules"
  config.sft.task_overrides = {"num_train": 16, "num_test": 2, "num_judge": 8}
  config.sft.prompt.answer_format = ""
  config.loss_overrides = ml_collections.ConfigDict({"beta": 0.0})
  config.judge = ml_collections.ConfigDict(
    {"chat": True, "true_word": "Y", "false_word": "N", "length_bucket": 32}
  )
  result = run_rl(config)
  assert result["step"] == 1 and "grad2reward" in result["citations"]
  (logged,) = [r for r in read_metrics(config.workdir) if "rollout/reward" in r]
  assert logged["rollout/judge_judge_pairs"] == 4 * config.prompts_per_step * config.group_size
  assert 0 <= logged["rollout/judge_judge_accuracy"] <= 1
  assert "rollout/judge_attributed_pairs" in logged
