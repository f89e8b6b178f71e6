"""The SFT trainer end to end: config validation, kill (SIGTERM) and resume == uninterrupted."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from reasoning_jax.train.metrics import read_metrics
from reasoning_jax.train.sft import load_sft_params, run_sft
from reasoning_jax.train.sft_config import ConfigError, validate_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_config(workdir, data_dir, **changes):
  sys.path.insert(0, REPO)
  from configs import sft_arith

  c = sft_arith.get_config()
  c.workdir = str(workdir)
  c.data_dir = str(data_dir)
  c.task_overrides = {"num_train": 300, "num_test": 16, "ops": ("+",), "style": "compact"}
  c.model_overrides = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_layers": 1,
    "num_heads": 2,
    "num_kv_heads": 1,
    "head_dim": 16,
  }
  c.seq_len, c.batch_size, c.num_steps = 48, 8, 12
  c.log_every, c.eval_every, c.checkpoint_every = 1, 1000, 4
  c.eval_examples, c.eval_max_new_tokens = 8, 8
  c.mesh = {"data": -1}
  c.plot = False
  for key, value in changes.items():
    c[key] = value
  return c


@pytest.mark.parametrize(
  "change,match",
  [
    (dict(batch_size=7), "batch_size"),
    (dict(preset="gpt-9"), "config.preset"),
    (dict(reward="nope"), "config.reward"),
    (dict(mesh={"data": 3, "fsdp": 1}), "config.mesh"),
    (dict(num_steps=0), "config.num_steps"),
    (dict(micro_batches=3), "micro_batches"),
    (dict(learning_rate=-0.1), "config.learning_rate"),
    (dict(grad_clip=0.0), "config.grad_clip"),
    (dict(weight_decay=-0.01), "config.weight_decay"),
    (dict(warmup_steps=-1), "config.warmup_steps"),
    (dict(eval_temperature=-1.0), "config.eval_temperature"),
    (dict(eval_examples=0), "config.eval_examples"),
  ],
)
def test_config_errors_name_the_key(tmp_path, change, match):
  with pytest.raises(ConfigError, match=match):
    validate_config(tiny_config(tmp_path, tmp_path / "data", **change))


@pytest.mark.parametrize("value", ["yes", 1])
def test_pack_must_be_a_bool(tmp_path, value):
  with pytest.raises(ConfigError, match="config.pack must be a bool"):
    validate_config(tiny_config(tmp_path, tmp_path / "data", pack=value))


def test_packing_trains_on_more_target_tokens_per_row(tmp_path):
  """`config.pack=True`: several short examples per `seq_len` row (first-fit, `segment_ids`
  apart; about 40-token examples, 3 to a 128-token row), so a step of the same batch of rows
  sees more than twice the target tokens; the loss still falls."""
  tokens = {}
  for pack in (False, True):
    config = tiny_config(
      tmp_path / f"pack{pack}", tmp_path / "data", pack=pack, num_steps=6, seq_len=128
    )
    config.checkpoint_every = 100
    run_sft(config)
    records = [r for r in read_metrics(config.workdir) if "train/tokens" in r]
    tokens[pack] = np.mean([r["train/tokens"] for r in records])
    losses = [r["train/loss"] for r in records]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], (pack, losses)
  assert tokens[True] > 2 * tokens[False], tokens


def test_bad_learning_rate_fails_before_training(tmp_path):
  config = tiny_config(tmp_path / "run", tmp_path / "data", learning_rate=-0.1)
  with pytest.raises(ConfigError, match="config.learning_rate"):
    run_sft(config)
  assert not os.path.exists(config.workdir)


def test_config_unknown_and_wrong_type(tmp_path):
  c = tiny_config(tmp_path, tmp_path)
  c.unlock()
  c.bogus = 1
  with pytest.raises(ConfigError, match="bogus"):
    validate_config(c)
  c = tiny_config(tmp_path, tmp_path)
  with pytest.raises(TypeError, match="batch_size"):  # ml_collections keeps types.
    c.batch_size = "eight"


def test_launcher_rejects_bad_overrides_at_launch(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  for override, needle in (
    ("--config.bogus_key=1", "bogus_key"),
    ("--config.batch_size=abc", "batch_size"),
    ("--config.mesh.data=3", "config.mesh"),
  ):
    result = subprocess.run(
      [sys.executable, "-m", "experiments.sft", override, f"--config.workdir={tmp_path}"],
      cwd=REPO,
      env=env,
      capture_output=True,
      text=True,
      timeout=120,
    )
    assert result.returncode != 0
    assert needle in result.stderr + result.stdout, result.stderr[-2000:]


def _flat(model):
  from flax import nnx

  return {
    jax.tree_util.keystr(p): np.asarray(v)
    for p, v in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))
  }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  root = tmp_path_factory.mktemp("sft_full")
  config = tiny_config(root / "run", root / "data")
  result = run_sft(config)
  return config, result


def test_sft_runs_logs_and_checkpoints(uninterrupted):
  config, result = uninterrupted
  assert result["step"] == 12 and not result["preempted"]
  records = read_metrics(config.workdir)
  losses = [r["train/loss"] for r in records if "train/loss" in r]
  assert len(losses) == 12 and losses[-1] < losses[0]
  assert os.path.isdir(os.path.join(config.workdir, "tensorboard"))
  samples = [
    json.loads(line)
    for line in pathlib.Path(os.path.join(config.workdir, "eval_samples.jsonl"))
    .read_text()
    .splitlines()
  ]
  assert [r["step"] for r in samples] == [0] * 3 + [12] * 3  # Before training and at the end.
  assert all(r["question"].startswith("What is") and r["reward"] in (0.0, 1.0) for r in samples)
  assert os.path.isdir(os.path.join(config.workdir, "checkpoints", "12"))
  assert "accuracy" in result


def test_sigterm_then_resume_matches_uninterrupted(uninterrupted, tmp_path):
  full_config, _ = uninterrupted
  config = tiny_config(tmp_path / "run", tmp_path / "data", checkpoint_every=100)
  config_path = tmp_path / "config.json"
  config_path.write_text(json.dumps(config.to_dict()))
  script = (
    "import json, pathlib, sys, ml_collections; from reasoning_jax.train.sft import run_sft; "
    "run_sft(ml_collections.ConfigDict(json.loads(pathlib.Path(sys.argv[1]).read_text())))"
  )
  env = dict(os.environ)  # Same 8 host devices as this process (tests/conftest.py).
  proc = subprocess.Popen(
    [sys.executable, "-c", script, str(config_path)],
    cwd=REPO,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    steps = [r["step"] for r in read_metrics(config.workdir) if "train/loss" in r]
    if steps and max(steps) >= 3:
      proc.send_signal(signal.SIGTERM)
      break
    time.sleep(0.05)
  out, _ = proc.communicate(timeout=240)
  assert proc.returncode == 0, out[-3000:]
  killed_at = [r["step"] for r in read_metrics(config.workdir) if "train/loss" in r][-1]
  assert 3 <= killed_at < 12, "the run should have been interrupted mid-way"
  assert os.path.isdir(os.path.join(config.workdir, "checkpoints", str(killed_at)))

  result = run_sft(config)  # Resume in-process from the preemption checkpoint.
  assert result["step"] == 12
  resumed_model, _ = load_sft_params(config.workdir, config)
  full_model, _ = load_sft_params(full_config.workdir, full_config)
  a, b = _flat(resumed_model), _flat(full_model)
  for name in b:
    np.testing.assert_allclose(a[name], b[name], atol=1e-6, err_msg=name)
  # Same data order: the per-step losses after the resume equal the uninterrupted ones.
  full = {
    r["step"]: r["train/loss"] for r in read_metrics(full_config.workdir) if "train/loss" in r
  }
  resumed = {r["step"]: r["train/loss"] for r in read_metrics(config.workdir) if "train/loss" in r}
  for step in range(1, 13):
    np.testing.assert_allclose(resumed[step], full[step], rtol=1e-5, err_msg=f"step {step}")


def test_evaluate_exact_match_sampled_avg_and_pass_at_k(monkeypatch):
  """avg@k averages over every sample; pass@k counts questions with any correct sample."""
  from flax import nnx

  from reasoning_jax import rewards
  from reasoning_jax.models import Transformer, get_preset
  from reasoning_jax.tokenizers import ByteTokenizer
  from reasoning_jax.train.exact_match import evaluate_exact_match

  tok = ByteTokenizer()
  model = Transformer(get_preset("tiny-qwen3", vocab_size=tok.vocab_size), rngs=nnx.Rngs(0))
  source = [{"question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(6)]
  seen = []

  def fake_score(name, completions, answers, **fields):
    # Question q's samples arrive together: sample 0 of questions 0 and 1 is "correct".
    seen.append(list(answers))
    return np.array([1.0 if i % 3 == 0 and i < 6 else 0.0 for i in range(len(completions))])

  monkeypatch.setattr(rewards, "score_batch", fake_score)
  common = dict(
    reward="math_exact", num_examples=6, max_new_tokens=3, prompt_template="{question}\n"
  )
  out = evaluate_exact_match(model, tok, source, temperature=1.0, num_samples=3, **common)
  assert seen[0] == [str(i + 1) for i in range(6) for _ in range(3)]  # Answers repeated k times.
  assert out["count"] == 6 and out["num_samples"] == 3
  assert out["accuracy"] == pytest.approx(2 / 18)
  assert out["pass_at_k"] == pytest.approx(2 / 6)
  with pytest.raises(ValueError, match="num_samples"):
    evaluate_exact_match(model, tok, source, num_samples=0, **common)
  with pytest.raises(ValueError, match="temperature"):
    evaluate_exact_match(model, tok, source, num_samples=2, temperature=0.0, **common)


def test_at_most_two_steps_are_in_flight(tmp_path, monkeypatch):
  """Each step waits for the previous step's loss before the next is dispatched: the host
  does not run ahead of the device (batches piling up on it, a progress bar that counts
  dispatched steps)."""
  waited = []
  real = jax.block_until_ready
  monkeypatch.setattr(jax, "block_until_ready", lambda x: waited.append(x) or real(x))
  config = tiny_config(tmp_path / "run", tmp_path / "data", num_steps=4, log_every=100)
  config.eval_every = config.checkpoint_every = 100
  run_sft(config)
  losses = [x for x in waited if getattr(x, "shape", None) == ()]
  assert len(losses) == 3, len(losses)  # Before steps 2, 3 and 4: the loss of the one before.
