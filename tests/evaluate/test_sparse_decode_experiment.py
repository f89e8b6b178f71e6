"""`experiments.sparse_decode`: the sweep end to end (trained model and HF folder) and its
pieces."""

import json
import os

import numpy as np
import pytest

from configs.sparse_decode import get_config
from reasoning_jax.evaluate.sparse_decode import evaluation, experiment
from reasoning_jax.evaluate.sparse_decode.evaluation import METHODS, EvalSet


def tiny(workdir, **overrides):
  """The quick variant cut to one seed, one length and one budget (compiles dominate)."""
  c = get_config("quick")
  c.workdir = str(workdir)
  c.seeds = (0,)
  c.train.num_steps = 4
  c.eval_lens = (128,)
  c.budgets = (64,)
  c.roles.steps = 2
  c.timing.num_seeds = 0
  for key, value in overrides.items():
    c[key] = value
  return c


def test_the_variants_load():
  for variant in ("", "quick", "accelerator", "pose"):
    c = get_config(variant)
    assert max(c.budgets) <= max(c.eval_lens)
    # 32k prompts are prefilled in chunks on the accelerator (one forward: 128 GiB of scores).
    assert c.prefill_chunk == (2048 if variant == "accelerator" else 0)
  with pytest.raises(ValueError, match="variant"):
    get_config("nope")


@pytest.mark.slow  # colab/sparse_decode.ipynb runs the same quick pipeline in CI.
def test_quick_pipeline_writes_the_table_and_plots(tmp_path):
  config = tiny(tmp_path)
  config.timing.update(num_seeds=1, lengths=(128,), new_tokens=3, repeats=1)
  payload = experiment.run_sparse_decode_experiment(config)
  for name in ("results.json", "results.md", "accuracy_vs_budget.png", "kv_read_vs_budget.png"):
    assert os.path.getsize(tmp_path / name) > 0, name
  for method in ("lychee", "duo"):
    record = json.loads((tmp_path / "roles" / f"{method}_s0" / "roles.json").read_text())
    assert record["method"] == method and record["shape"] == [4, 2]
  table = (tmp_path / "results.md").read_text()
  for method in METHODS:
    assert f"| 128 | {method} |" in table
  assert "Decode time per token relative to full" in table
  assert " ± " in table and payload["verdict"]["text"] in table
  points = payload["runs"][0]["points"]
  assert {p["method"] for p in points} == set(METHODS)
  full = next(p for p in points if p["method"] == "full")
  sparse = [p for p in points if p["method"] != "full"]
  assert all(p["kv_bytes"] < full["kv_bytes"] for p in sparse)
  assert all("decode_s_per_token" in p for p in points)
  # A rerun reuses the model, the roles and the finished seed.
  mtime = os.path.getmtime(tmp_path / "runs" / "s0.json")
  again = experiment.run_sparse_decode_experiment(config)
  assert os.path.getmtime(tmp_path / "runs" / "s0.json") == mtime
  np.testing.assert_equal(again["verdict"], payload["verdict"])  # NaN-aware.


def test_hf_folder_runs_the_text_passkey(tmp_path, tiny_hf_folder):
  config = tiny(tmp_path, prefill_chunk=64)  # 160-token prompts in 3 prefill forwards.
  config.hf.update(dir=tiny_hf_folder("qwen3"), lengths=(160,), num_test=2, role_seq_len=128)
  payload = experiment.run_sparse_decode_experiment(config)
  table = (tmp_path / "results.md").read_text()
  assert "HF folder" in table and "| 160 | lychee |" in table
  assert not os.path.exists(tmp_path / "model")  # Nothing trained here.
  roles = np.asarray(payload["runs"][0]["roles"]["lychee"]["roles"])
  assert roles.shape == (2, 1) and roles[0].all()


def test_score_and_verdict():
  targets = np.array([[5, 6, 7], [5, 6, 7]])
  data = EvalSet(np.zeros((2, 4), np.int32), np.array([4, 4]), targets)
  got = evaluation.score(np.array([[5, 6, 7, 0], [5, 1, 7, 0]]), data)
  assert got == {"exact_match": 0.5, "first_token_accuracy": 1.0, "decoded_token_accuracy": 0.75}
  exact = {("full", None, 8): [1.0, 1.0], ("lychee", 4, 8): [0.99, 1.0], ("quest", 4, 8): [0.5]}
  exact[("duo", 4, 8)] = [0.2]
  v = experiment.verdict(None, exact, [8], [4])
  assert v["testable"] and v["reproduces"] and "reproduces" in v["text"]
  exact[("lychee", 4, 8)] = [0.3, 0.3]
  assert not experiment.verdict(None, exact, [8], [4])["reproduces"]
  exact[("full", None, 8)] = [0.1]
  v = experiment.verdict(None, exact, [8], [4])
  assert not v["testable"] and "cannot be tested" in v["text"] and v["unsolved_lengths"] == [8]
  exact[("full", None, 8)] = [1.0]
  assert not experiment.verdict(None, exact, [8], [8])["testable"]  # Budget >= T: not judged.


def _payload(points, unsolved=(), seeds=(0, 1, 2)):
  judged = [p for p in points if p["judged"]]
  frac = lambda key: sum(p[key] for p in judged) / max(1, len(judged))  # noqa: E731
  return {
    "seeds": list(seeds),
    "verdict": {
      "text": "t",
      "points": points,
      "unsolved_lengths": list(unsolved),
      "fraction_lychee_ge_quest": frac("lychee_ge_quest"),
      "fraction_lychee_near_full": frac("lychee_near_full"),
    },
  }


def _point(ge, near, judged=True):
  return dict(judged=judged, lychee_ge_quest=ge, lychee_near_full=near)


@pytest.mark.parametrize(
  "points, unsolved, seeds, status",
  [
    ([_point(True, True)] * 4, (), (0, 1, 2), "reproduced"),
    ([_point(True, True)] * 4, (512,), (0, 1, 2), "partly"),
    ([_point(True, False)] * 4, (), (0, 1, 2), "partly"),
    ([_point(False, False)] * 4, (), (0, 1, 2), "not reproduced"),
    ([_point(True, True)] * 4, (), (0, 1), "not measured"),
    ([_point(True, True, judged=False)], (256,), (0, 1, 2), "not measured"),
  ],
)
def test_reproduction_verdict(points, unsolved, seeds, status):
  from reasoning_jax.reproduce.entries_inference import sparse_decode_verdict

  (verdict,) = sparse_decode_verdict(_payload(points, unsolved, seeds))
  assert verdict.status == status and verdict.method == "lycheedecode"
