"""`python -m experiments.evaluate`: a Hugging Face folder, or the newest checkpoint of an SFT
or RL run (full fine-tuning and LoRA), evaluated question by question on its held-out split."""

import json
import os
import pathlib
import shutil
import sys

import ml_collections
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from configs import evaluate as evaluate_config  # noqa: E402
from reasoning_jax.rl.evaluation import run_evaluation as run  # noqa: E402


def _read(out_dir):
  summary = json.loads(pathlib.Path(os.path.join(out_dir, "summary.json")).read_text())
  records = [
    json.loads(line)
    for line in pathlib.Path(os.path.join(out_dir, "results.jsonl")).read_text().splitlines()
  ]
  return summary, records


def _consistent(summary, records):
  """The summary is the mean of the per-question lines it was computed from."""
  rewards = np.array([r["rewards"] for r in records])
  assert summary["count"] == len(records) == rewards.shape[0]
  assert rewards.shape[1] == summary["num_samples"]
  assert summary["accuracy"] == pytest.approx(rewards.mean())
  assert summary["pass_at_k"] == pytest.approx((rewards > 0).any(1).mean())
  lengths = [n for r in records for n in r["lengths"]]
  assert summary["mean_completion_length"] == pytest.approx(np.mean(lengths))
  cut = [t for r in records for t in r["truncated"]]
  assert summary["truncated_fraction"] == pytest.approx(np.mean(cut))
  assert all(len(r["completions"]) == summary["num_samples"] for r in records)


def test_a_hugging_face_folder(tiny_hf_folder, tmp_path):
  config = evaluate_config.get_config("tiny")
  config.sft.model.hf_dir = tiny_hf_folder("qwen3")
  config.out_dir = str(tmp_path / "eval")
  config.num_samples, config.temperature = 2, 1.0
  summary = run(config)
  assert summary == _read(config.out_dir)[0]
  summary, records = _read(config.out_dir)
  _consistent(summary, records)
  assert summary["count"] == 3 and summary["hf_dir"] == config.sft.model.hf_dir
  assert summary["reward"] == "boxed" and summary["max_new_tokens"] == 16
  # Questions in the fixture's order, with their reference answers.
  fixture = [
    json.loads(line)
    for line in pathlib.Path(os.path.join(config.sft.manual_dir, "test.jsonl"))
    .read_text()
    .splitlines()
  ]
  assert [r["question"] for r in records] == [f["question"] for f in fixture[:3]]
  assert all(r["answer"] and r["answer"] in f["answer"] for r, f in zip(records, fixture))
  # Temperature unset: greedy with one sample (all questions: num_examples=0) ...
  config.num_samples, config.temperature, config.num_examples = 1, None, 0
  summary = run(config)
  assert summary["count"] == len(fixture) and summary["temperature"] == 0.0
  # ... and the folder's generation_config.json sampling with several.
  config.num_samples, config.num_examples = 2, 1
  generation = json.loads(
    pathlib.Path(os.path.join(config.sft.model.hf_dir, "generation_config.json")).read_text()
  )
  summary = run(config)
  assert summary["temperature"] == generation["temperature"] > 0
  assert summary["top_k"] == generation["top_k"]


def test_the_newest_checkpoint_of_an_sft_and_an_rl_run(tmp_path):
  """Evaluated with the run's own settings, the figure is the run's own final accuracy."""
  from reasoning_jax.rl.trainer import run_rl
  from tests.rl.test_trainer import rl_config

  rl = rl_config(tmp_path, num_steps=2, eval_every=100, plot=False)
  result = run_rl(rl)  # Trains the SFT warm start first.
  for workdir, kind, budget, want in (
    (rl.workdir, "rl", rl.max_new_tokens, result["accuracy"]),
    (rl.sft.workdir, "sft", rl.sft.eval_max_new_tokens, None),
  ):
    config = evaluate_config.get_config()
    config.run = workdir
    config.num_examples, config.max_new_tokens = rl.eval_examples, budget
    summary = run(config)
    assert summary["run_kind"] == kind and summary["task"] == "arithmetic"
    assert summary["out_dir"] == os.path.join(workdir, "evaluation")
    _consistent(*_read(summary["out_dir"]))
    if want is not None:
      assert summary["accuracy"] == want
  # A LoRA RL run: its checkpoint holds only the adapters; the base is the warm start.
  lora = rl_config(tmp_path, num_steps=1, eval_every=100, plot=False)
  lora.workdir = str(tmp_path / "rl_lora")
  lora.lora = ml_collections.ConfigDict(
    {
      "rank": 4,
      "alpha": 8.0,
      "targets": r"layers\.\d+\.mixer\.(q|v)_proj",
      "dropout": 0.0,
      "base_dtype": "float32",
      "export_dir": "",
    }
  )
  lora.learning_rate = 1e-2
  result = run_rl(lora)
  config = evaluate_config.get_config()
  config.run, config.num_examples, config.max_new_tokens = lora.workdir, lora.eval_examples, 8
  summary = run(config)
  assert summary["run_kind"] == "rl" and summary["accuracy"] == result["accuracy"]
  # Its base is gone: refused, naming the folder (nothing is trained to rebuild it).
  shutil.rmtree(os.path.join(lora.sft.workdir, "checkpoints"))
  with pytest.raises(ValueError, match="no finished checkpoint"):
    run(config)


@pytest.mark.parametrize(
  "change,match",
  [
    (dict(), "nothing to evaluate"),
    (dict(run="/nonexistent/run"), "no checkpoint"),
    (dict(num_examples=-1), "num_examples"),
  ],
)
def test_bad_input_names_the_flag(tmp_path, change, match, tiny_hf_folder):
  config = evaluate_config.get_config("tiny")
  config.out_dir = str(tmp_path / "eval")
  if "run" not in change and change:
    config.sft.model.hf_dir = tiny_hf_folder("qwen3")
  config.update(change)
  with pytest.raises((ValueError, FileNotFoundError), match=match):
    run(config)
