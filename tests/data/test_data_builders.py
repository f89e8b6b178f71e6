"""Tests for the TFDS builders in reasoning_jax.data.builders (ArrayRecord, no TensorFlow)."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from data_test_helpers import evaluate, literals
from reasoning_jax.data import builders
from reasoning_jax.data import build_dataset, data_source, decode_example, get_builder

SYNTHETIC = {
  "arithmetic": dict(config="easy"),
  "countdown": {},
  "modular": {},
}


def _read_all(builder, split):
  source = builder.as_data_source(split)
  return [decode_example(source[i]) for i in range(len(source))]


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_synthetic_splits_deterministic_and_disjoint(name, tmp_path):
  kw = dict(SYNTHETIC[name], num_train=40, num_test=12)
  a = build_dataset(name, tmp_path / "a", seed=7, **kw)
  b = build_dataset(name, tmp_path / "b", seed=7, **kw)
  c = build_dataset(name, tmp_path / "c", seed=8, **kw)
  assert a.builder_config.name == b.builder_config.name != c.builder_config.name
  for split, n in (("train", 40), ("test", 12)):
    ex_a, ex_b, ex_c = (_read_all(x, split) for x in (a, b, c))
    assert len(ex_a) == n
    assert ex_a == ex_b  # Same seed, different directories: identical records.
    assert ex_a != ex_c  # Different seed: different data.
    for ex in ex_a:
      assert {"question", "answer", "solution"} <= set(ex)
      assert all(isinstance(ex[k], str) and ex[k] for k in ("question", "answer", "solution"))
  train_q = {ex["question"] for ex in _read_all(a, "train")}
  test_q = [ex["question"] for ex in _read_all(a, "test")]
  assert len(set(test_q)) == len(test_q)
  assert not train_q & set(test_q)
  # Nothing was downloaded and no TensorFlow was needed.
  assert "tensorflow" not in sys.modules
  assert not [p for p in (tmp_path / "a").rglob("downloads/**/*") if p.is_file()]


def test_arithmetic_records_are_correct(arithmetic_builder):
  ops = {"+": lambda xs: sum(xs), "-": lambda xs: xs[0] - xs[1], "*": lambda xs: xs[0] * xs[1]}
  for split in ("train", "test"):
    for ex in _read_all(arithmetic_builder, split):
      assert set(ex) == {"question", "answer", "solution", "op", "operands"}
      assert int(ex["answer"]) == ops[ex["op"]](ex["operands"])
      assert all(0 <= x < 100 for x in ex["operands"])  # "easy": 1-2 digits.
      assert ex["solution"].endswith(f"Answer: {ex['answer']}")


def test_arithmetic_difficulty_configs(tmp_path):
  hard = build_dataset("arithmetic", tmp_path, config="hard", num_train=30, num_test=5)
  exs = _read_all(hard, "train")
  assert all(100 <= x < 100_000 for ex in exs for x in ex["operands"])
  assert max(len(ex["operands"]) for ex in exs) > 2
  custom = build_dataset(
    "arithmetic", tmp_path, config="easy", ops=["*"], max_digits=1, num_train=10, num_test=2
  )
  assert all(ex["op"] == "*" for ex in _read_all(custom, "train"))
  assert custom.builder_config.ops == ("*",)
  assert custom.builder_config.name.startswith("easy-")


def test_arithmetic_answer_noise_corrupts_train_solutions_only(tmp_path):
  kw = dict(config="easy", num_train=400, num_test=50, style="compact")
  clean = build_dataset("arithmetic", tmp_path / "clean", **kw)
  noisy = build_dataset("arithmetic", tmp_path / "noisy", answer_noise=0.5, **kw)
  assert noisy.builder_config.name != clean.builder_config.name  # A different dataset.
  assert _read_all(noisy, "test") == _read_all(clean, "test")  # Held-out data stays clean.
  train_clean, train_noisy = _read_all(clean, "train"), _read_all(noisy, "train")
  assert [ex["question"] for ex in train_noisy] == [ex["question"] for ex in train_clean]
  assert [ex["answer"] for ex in train_noisy] == [ex["answer"] for ex in train_clean]
  wrong = [not ex["solution"].endswith(f"Answer: {ex['answer']}") for ex in train_noisy]
  assert 0.4 < sum(wrong) / len(wrong) < 0.6


def test_countdown_records_are_solvable(tfds_dir):
  builder = build_dataset("countdown", tfds_dir, num_train=60, num_test=10, seed=3)
  for ex in _read_all(builder, "train") + _read_all(builder, "test"):
    assert isinstance(ex["numbers"], list) and isinstance(ex["target"], int)
    assert evaluate(ex["answer"]) == ex["target"]
    assert sorted(literals(ex["answer"])) == sorted(ex["numbers"])


def test_modular_records_are_correct(tfds_dir):
  builder = build_dataset("modular", tfds_dir, num_train=60, num_test=10, seed=3)
  ops = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__}
  for ex in _read_all(builder, "train"):
    assert int(ex["answer"]) == ops[ex["op"]](ex["a"], ex["b"]) % ex["modulus"]


def test_gsm8k_fixture(tfds_dir, fixtures_dir):
  builder = build_dataset("gsm8k", tfds_dir, manual_dir=os.path.join(fixtures_dir, "gsm8k"))
  train, test = _read_all(builder, "train"), _read_all(builder, "test")
  assert [ex["answer"] for ex in train] == ["72", "1200", "285", "32", "900"]
  assert [ex["answer"] for ex in test] == ["45", "30", "11.75"]
  assert [ex["index"] for ex in train] == list(range(5))  # File order is kept.
  for ex in train + test:
    assert "<<" not in ex["solution"] and "<<" in ex["raw_solution"]
    assert ex["solution"].splitlines()[-1].startswith("####")
  assert "48/2 = 24 muffins" in train[0]["solution"]


def test_math_fixture(tfds_dir, fixtures_dir):
  builder = data_source("math", "train", tfds_dir, manual_dir=os.path.join(fixtures_dir, "math"))
  train = [decode_example(builder[i]) for i in range(len(builder))]
  assert [ex["answer"] for ex in train] == [
    "\\frac{1}{2}",
    "4",
    "\\{-2, 3\\}",
    "\\dfrac{\\sqrt{3}}{2}",
    "2",
  ]
  assert train[0]["level"] == "Level 1" and train[0]["type"] == "Prealgebra"
  assert train[4]["level"] == "" and train[4]["type"] == ""  # Optional fields.
  # test.jsonl is in MATH-500's layout: `answer`, `subject`, an integer `level`, `unique_id`.
  test = data_source("math", "test", tfds_dir, manual_dir=os.path.join(fixtures_dir, "math"))
  test = [decode_example(test[i]) for i in range(len(test))]
  assert [ex["answer"] for ex in test] == ["15", "3", "(-\\infty, 2]"]
  assert (test[0]["level"], test[0]["type"]) == ("Level 1", "Counting & Probability")
  assert test[2]["solution"].endswith("$\\boxed{(-\\infty, 2]}$.")


def _write_jsonl(path, records):
  path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_math_record_layouts(tmp_path):
  """Original MATH, MATH-500, a numeric `answer` and an `answer` without a box in the text."""
  manual = tmp_path / "manual"
  manual.mkdir()
  records = [
    {
      "problem": "P1",
      "solution": "So $\\boxed{\\dfrac12}$.",
      "level": "Level ?",
      "type": "Geometry",
    },
    {
      "problem": "P2",
      "solution": "Hence $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$",
      "answer": "\\left( 3, \\frac{\\pi}{2} \\right)",
      "subject": "Precalculus",
      "level": 2,
      "unique_id": "test/precalculus/807.json",
    },
    {"problem": "P3", "solution": "Adding gives 610.", "answer": 610},
    {"problem": "P4", "solution": "So $\\boxed{4}$.", "answer": ""},  # Empty: the box.
  ]
  _write_jsonl(manual / "train.jsonl", records)
  _write_jsonl(manual / "test.jsonl", records[:1])
  train = _read_all(build_dataset("math", tmp_path / "d", manual_dir=manual), "train")
  assert [ex["answer"] for ex in train] == [
    "\\dfrac12",
    "\\left( 3, \\frac{\\pi}{2} \\right)",
    "610",
    "4",
  ]
  assert [(ex["level"], ex["type"]) for ex in train[:3]] == [
    ("Level ?", "Geometry"),
    ("Level 2", "Precalculus"),
    ("", ""),
  ]
  # Without a box the SFT target gets one, so SFT teaches what the boxed verifier reads.
  assert train[2]["solution"] == "Adding gives 610.\nThe final answer is $\\boxed{610}$."
  assert train[1]["solution"] == records[1]["solution"]


@pytest.mark.parametrize(
  "record, message",
  [
    ({"problem": "P", "solution": None}, r"train.jsonl:2: 'solution' must be a string"),
    ({"problem": "P", "solution": "S", "answer": [1]}, r"train.jsonl:2: 'answer' must be a str"),
    ({"problem": "P", "solution": "S", "answer": None}, r"train.jsonl:2: .*no 'answer' field"),
  ],
)
def test_bad_math_records_name_file_and_line_and_rebuild_once_fixed(tmp_path, record, message):
  manual = tmp_path / "manual"
  manual.mkdir()
  good = {"problem": "P", "solution": "$\\boxed{1}$"}
  _write_jsonl(manual / "train.jsonl", [good, record])
  _write_jsonl(manual / "test.jsonl", [good])
  with pytest.raises(ValueError, match=message):
    build_dataset("math", tmp_path / "d", manual_dir=manual)
  _write_jsonl(manual / "train.jsonl", [good, good])  # Fixed: the same data_dir builds.
  assert len(_read_all(build_dataset("math", tmp_path / "d", manual_dir=manual), "train")) == 2


def test_manual_dir_errors(tmp_path, fixtures_dir):
  with pytest.raises(ValueError, match="manual_dir is required"):
    build_dataset("gsm8k", tmp_path / "d0")
  with pytest.raises(FileNotFoundError, match="is not a directory"):
    build_dataset("math", tmp_path / "d1", manual_dir=tmp_path / "missing")
  partial = tmp_path / "partial"
  partial.mkdir()
  shutil.copy(os.path.join(fixtures_dir, "gsm8k", "train.jsonl"), partial)
  with pytest.raises(FileNotFoundError, match=r"missing test.jsonl .*partial.test.jsonl"):
    build_dataset("gsm8k", tmp_path / "d2", manual_dir=partial)
  # Directly through TFDS (without build_dataset's early check).
  import tensorflow_datasets as tfds

  builder = get_builder("gsm8k", tmp_path / "d3")
  with pytest.raises(FileNotFoundError, match="test.jsonl"):
    builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(partial))
    )


def test_malformed_manual_files(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "train.jsonl").write_text(json.dumps({"question": "q", "answer": "42"}) + "\n")
  (manual / "test.jsonl").write_text("")
  with pytest.raises(ValueError, match=r"train.jsonl:1: .*####"):
    build_dataset("gsm8k", tmp_path / "d", manual_dir=manual)
  (manual / "train.jsonl").write_text(json.dumps({"problem": "p", "solution": "42"}) + "\n")
  with pytest.raises(ValueError, match=r"train.jsonl:1: .*boxed"):
    build_dataset("math", tmp_path / "d", manual_dir=manual)


def test_argument_errors(tmp_path):
  with pytest.raises(ValueError, match="name must be one of"):
    get_builder("nope", tmp_path)
  with pytest.raises(ValueError, match="config 'extreme'"):
    get_builder("arithmetic", tmp_path, config="extreme")
  with pytest.raises(TypeError, match=r"unknown option\(s\) \['digits'\]"):
    get_builder("arithmetic", tmp_path, digits=3)
  with pytest.raises(TypeError, match="takes no config options"):
    get_builder("gsm8k", tmp_path, seed=1)
  with pytest.raises(ValueError, match="num_test"):
    build_dataset(
      "arithmetic", tmp_path, config="easy", min_digits=1, max_digits=1, ops=["+"], num_test=1000
    )


def test_config_object_and_default(tmp_path):
  cfg = builders.ModularConfig(name="tiny", num_train=5, num_test=2, max_modulus=7)
  b = build_dataset("modular", tmp_path, config=cfg)
  assert b.builder_config is cfg
  assert all(ex["modulus"] in (3, 5, 7) for ex in _read_all(b, "train"))
  assert get_builder("arithmetic", tmp_path).builder_config.name == "medium"


def test_a_process_that_loses_the_race_to_prepare_reads_the_winners_copy(tmp_path, monkeypatch):
  """Every host of a multi-host launch prepares the same dataset; on a shared file system the
  first to finish renames its copy into place and the others' renames fail (FileExistsError
  from TFDS). Reproduced in one process: another builder prepares the dataset while this one
  is generating its own."""
  kw = dict(config="easy", num_train=40, num_test=12, seed=3)
  cls = type(get_builder("arithmetic", tmp_path, **kw))
  real = cls._download_and_prepare
  raced = []

  def racing(self, *args, **kwargs):
    if not raced:
      raced.append(True)
      get_builder("arithmetic", tmp_path, **kw).download_and_prepare()  # The other process.
    return real(self, *args, **kwargs)

  monkeypatch.setattr(cls, "_download_and_prepare", racing)
  builder = build_dataset("arithmetic", tmp_path, **kw)
  assert raced and builder.is_prepared()
  assert _read_all(builder, "test") == _read_all(
    build_dataset("arithmetic", tmp_path / "b", **kw), "test"
  )
  leftovers = [p for p in os.listdir(os.path.dirname(builder.data_dir)) if "incomplete" in p]
  assert not leftovers


def test_a_process_that_finds_the_winners_copy_after_making_its_builder_reads_it(
  tmp_path, monkeypatch
):
  """The race's other side (seen in the two-process CPMöbius test): this process makes its
  builder while the folder is missing, another process renames its copy into place, and TFDS's
  `download_and_prepare` then reuses the folder without reading its info; the builder must
  still list the splits."""
  kw = dict(config="easy", num_train=40, num_test=12, seed=3)
  stale = get_builder("arithmetic", tmp_path, **kw)  # Made before the other process finishes.
  other = build_dataset("arithmetic", tmp_path, **kw)  # The other process.
  stale.download_and_prepare()  # TFDS alone: "Reusing dataset", and no splits read.
  assert not stale.info.splits
  real, calls = builders.get_builder, []

  def first_stale(*args, **kwargs):
    calls.append(args)
    return stale if len(calls) == 1 else real(*args, **kwargs)

  monkeypatch.setattr(builders, "get_builder", first_stale)
  builder = build_dataset("arithmetic", tmp_path, **kw)
  assert len(calls) == 2
  assert _read_all(builder, "test") == _read_all(other, "test")
