"""The RFT pipeline (`evaluate.trajfusion.run_pipeline`): a workdir teacher trained here for a
few steps and a Hugging Face folder teacher, config errors naming the key, and the pieces of
the RFT vs TrajFusion experiment (difficulty buckets, summaries, the results table)."""

import json
import os
import sys

import ml_collections
import numpy as np
import pytest

from reasoning_jax.evaluate.trajfusion import (
  PipelineError,
  bucket_accuracy,
  difficulty,
  markdown,
  run_pipeline,
  score_rows,
  summarize,
  verdict,
)
from reasoning_jax.evaluate.trajfusion.experiment import plot
from reasoning_jax.rft import EmptyDatasetError, write_sft_dataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from configs import rft as rft_config  # noqa: E402
from configs import sft_arith  # noqa: E402
from configs import trajfusion as trajfusion_config  # noqa: E402


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory):
  """A task a few SFT steps learn half-way: two questions, answers 1 and 2."""
  folder = str(tmp_path_factory.mktemp("task"))
  train = [
    {"question": f"Q{1 + i % 2}?", "answer": str(1 + i % 2), "solution": str(1 + i % 2)}
    for i in range(32)
  ]
  test = train[:4]
  write_sft_dataset(folder, train, test, {"method": "by hand"})
  return folder


def teacher_train(folder):
  c = sft_arith.sized(32, 1, 1, 1, num_steps=20, batch_size=8, intermediate=64)
  c.task, c.task_config, c.task_overrides = "rft", "", {}
  c.manual_dir, c.data_dir = folder, os.path.join(folder, "tfds")
  c.seq_len, c.learning_rate, c.warmup_steps = 16, 3e-2, 2
  c.eval_examples, c.eval_max_new_tokens = 4, 4
  return c


def pipeline_config(folder, out_dir, **teacher):
  c = rft_config.get_config("quick")
  c.workdir = str(out_dir)
  c.teacher.workdir = teacher.get("workdir", "")
  c.teacher.hf_dir = teacher.get("hf_dir", "")
  c.teacher.train = teacher.get("train")
  c.task, c.task_config, c.task_overrides = "rft", "", {}
  c.manual_dir, c.data_dir = folder, os.path.join(folder, "tfds")
  c.max_prompt_len = 16
  c.sampling.update(
    num_samples=4, problems_per_batch=8, max_new_tokens=4, max_problems=8, temperature=0.7
  )
  return c


def test_workdir_teacher_trained_then_sampled_into_both_datasets(task_folder, tmp_path):
  teacher_dir = str(tmp_path / "teacher")
  config = pipeline_config(
    task_folder, tmp_path / "rft", workdir=teacher_dir, train=teacher_train(task_folder)
  )
  stats = run_pipeline(config, progress=False)
  assert os.path.isdir(os.path.join(teacher_dir, "checkpoints"))  # trained first
  assert stats["summary"]["trajectories"] == 32 and stats["summary"]["correct"] > 0
  assert stats["rft"]["samples"] == stats["trajfusion"]["samples"] > 0
  assert stats["rft"]["problems"] == stats["trajfusion"]["problems"]
  for name in ("rft", "trajfusion"):
    folder = stats["dirs"][name]
    assert f"--config.manual_dir={folder}" in stats["flags"][name]
    assert f"--config.init_workdir={teacher_dir}" in stats["flags"][name]
  sampling = json.loads((tmp_path / "rft" / "samples" / "sampling.json").read_text())
  assert sampling["teacher"] == {"workdir": teacher_dir} and sampling["seed"] == 0
  assert sampling["task"]["task"] == "rft"
  assert (tmp_path / "rft" / "datasets" / "stats.md").exists()
  again = run_pipeline(config, progress=False)  # resumed: nothing more to sample
  assert again["summary"]["sampled_problems"] == 0


def test_hf_folder_teacher_samples_with_its_own_tokenizer(task_folder, tiny_hf_folder, tmp_path):
  hf_dir = tiny_hf_folder("qwen3")
  config = pipeline_config(task_folder, tmp_path / "rft", hf_dir=hf_dir)
  try:
    stats = run_pipeline(config, progress=False)
    assert stats["teacher"] == {"hf_dir": os.path.abspath(hf_dir)}
  except EmptyDatasetError:  # a random model: no correct trajectory is expected
    pass
  sampling = json.loads((tmp_path / "rft" / "samples" / "sampling.json").read_text())
  assert sampling["teacher"] == {"hf_dir": os.path.abspath(hf_dir)}
  lines = (tmp_path / "rft" / "samples" / "samples.jsonl").read_text().splitlines()
  assert len(lines) == 8 and len(json.loads(lines[0])["trajectories"]) == 4


@pytest.mark.parametrize(
  "teacher, match",
  [
    ({}, "exactly one of config.teacher.workdir"),
    ({"workdir": "/x", "hf_dir": "/y"}, "exactly one of config.teacher.workdir"),
    ({"workdir": "/nonexistent"}, r"config.teacher.workdir='/nonexistent' has no checkpoints"),
    ({"hf_dir": "/nonexistent"}, "config.teacher.hf_dir"),
  ],
)
def test_teacher_source_errors_name_the_key(task_folder, tmp_path, teacher, match):
  with pytest.raises(PipelineError, match=match):
    run_pipeline(pipeline_config(task_folder, tmp_path, **teacher))


def test_sampling_and_construction_errors_name_the_key(task_folder, tmp_path):
  config = pipeline_config(task_folder, tmp_path, workdir="/x", train=teacher_train(task_folder))
  config.sampling.num_samples = 0
  with pytest.raises(PipelineError, match="config.sampling.*num_samples"):
    run_pipeline(config)
  config = pipeline_config(task_folder, tmp_path, workdir="/x", train=teacher_train(task_folder))
  config.trajfusion.k_max = -1
  with pytest.raises(PipelineError, match="config.trajfusion.*k_max"):
    run_pipeline(config)


def test_difficulty_from_operands_or_the_question():
  assert difficulty({"operands": np.array([5, 123, 40]), "question": "x"}) == {
    "operands": 3,
    "digits": 3,
  }
  assert difficulty({"question": "What is 12 + 7?"}) == {"operands": 2, "digits": 2}
  rows = [
    {"correct": 1.0, "tokens": 10, "operands": 2, "digits": 1},
    {"correct": 0.0, "tokens": 30, "operands": 3, "digits": 1},
    {"correct": 1.0, "tokens": 20, "operands": 3, "digits": 2},
  ]
  assert bucket_accuracy(rows, "operands") == {"2": 1.0, "3": 0.5}
  scores = score_rows(rows)
  assert scores["accuracy"] == pytest.approx(2 / 3) and scores["mean_response_tokens"] == 20
  assert scores["bucket_counts"]["digits"] == {"1": 2, "2": 1}


def fake_payload():
  def run(acc, tokens):
    return {
      "accuracy": acc,
      "mean_response_tokens": tokens,
      "by_operands": {"2": acc + 0.1, "3": acc - 0.1},
      "by_digits": {"1": acc, "2": acc},
      "bucket_counts": {"operands": {"2": 5, "3": 5}, "digits": {"1": 5, "2": 5}},
    }

  runs = {"rft": [run(0.5, 30), run(0.52, 31)], "trajfusion": [run(0.6, 60), run(0.61, 62)]}
  stats = {"samples": 10.0, "response_tokens": 300.0, "mean_response_tokens": 30.0}
  return {
    "seeds": [0, 1],
    "teacher_source": "/t",
    "device": "cpu",
    "num_test": 10,
    "problems": 16,
    "teacher": run(0.4, 25),
    "runs": runs,
    "summary": summarize(runs),
    "verdict": verdict(runs),
    "datasets": {
      "rft": {**stats, "k_histogram": {"0": 20}},
      "trajfusion": {**stats, "k_histogram": {"0": 5, "2": 15}},
      "mean_error_rate": 0.4,
    },
    "seconds": 1.0,
  }


def test_summary_verdict_table_and_plot(tmp_path):
  config = trajfusion_config.get_config("quick")
  config.workdir = str(tmp_path)
  payload = fake_payload()
  s = payload["summary"]
  assert s["rft"]["accuracy"][0] == pytest.approx(0.51)
  assert s["trajfusion"]["by_operands"]["3"][0] == pytest.approx(0.505)
  assert payload["verdict"]["verdict"] == "beats"
  text = markdown(config, payload)
  assert "TrajFusion beats RFT at this scale" in text
  assert all(not line.startswith("## ") and not line.startswith("# ") for line in text.split("\n"))
  assert "### Accuracy by operands" in text and "| trajfusion | 0.605 ± 0.007 |" in text
  assert "Teacher: /t;" in text  # A folder elsewhere is named as given; one in the workdir
  payload["teacher_source"] = str(tmp_path / "teacher")  # relatively (docs/report is shared).
  assert "Teacher: <workdir>/teacher;" in markdown(config, payload)
  runs = payload["runs"]
  assert verdict({"rft": runs["trajfusion"], "trajfusion": runs["rft"]})["verdict"] == "worse"
  assert os.path.exists(plot(config, payload))


def test_experiment_config_is_valid():
  from reasoning_jax.evaluate.trajfusion.experiment import validate

  for variant in ("", "quick"):
    config = trajfusion_config.get_config(variant)
    validate(config)
    assert len(config.seeds) >= 2
    assert config.pipeline.trajfusion.max_tokens < config.student.seq_len
  bad = trajfusion_config.get_config("quick")
  bad.seeds = (0,)
  with pytest.raises(ValueError, match="config.seeds"):
    validate(bad)
  bad = ml_collections.ConfigDict(trajfusion_config.get_config("quick").to_dict())
  bad.pipeline.teacher.hf_dir = "/m"
  with pytest.raises(ValueError, match="config.pipeline.teacher"):
    validate(bad)


def test_both_arms_continue_the_teacher_with_equal_settings():
  from reasoning_jax.evaluate.trajfusion.experiment import student_config

  config = trajfusion_config.get_config("")
  teacher = config.pipeline.teacher.train
  arms = {
    arm: student_config(teacher, "/t", f"/d/{arm}", 2, f"/w/{arm}", config)
    for arm in ("rft", "trajfusion")
  }
  for arm, c in arms.items():
    assert (c.task, c.manual_dir, c.data_dir) == ("rft", f"/d/{arm}", f"/d/{arm}/tfds")
    assert c.init_workdir == "/t" and c.seed == 2
    assert c.model_overrides == teacher.model_overrides
  keys = ("num_steps", "batch_size", "seq_len", "learning_rate", "warmup_steps")
  assert [arms["rft"][k] for k in keys] == [arms["trajfusion"][k] for k in keys]
  assert arms["rft"].seq_len == config.student.seq_len
