"""The RFT sampler (resume, mesh, bad input) and the RFT / TrajFusion datasets it feeds."""

import json
import os

import jax
import numpy as np
import pytest
from flax import nnx

from reasoning_jax import sharding as sharding_lib
from reasoning_jax.data import data_source, make_sft_dataset
from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.rft import (
  EmptyDatasetError,
  SamplingConfig,
  SamplingError,
  build_sft_datasets,
  read_samples,
  sample_trajectories,
)
from reasoning_jax.rft.sampling import PROGRESS_FILE, SAMPLES_FILE
from reasoning_jax.tokenizers import ByteTokenizer

TOK = ByteTokenizer()


def make_teacher():
  config = get_preset("tiny-qwen3").replace(
    vocab_size=TOK.vocab_size, num_layers=1, hidden_size=32, intermediate_size=64, head_dim=16
  )
  return Transformer(config, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def teacher():
  return make_teacher()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  root = tmp_path_factory.mktemp("tfds")
  return data_source("arithmetic", "train", str(root), config="easy", num_train=10, num_test=4)


CONFIG = SamplingConfig(num_samples=4, problems_per_batch=4, max_new_tokens=6, seed=3)


def run(teacher, source, out_dir, **kw):
  kw.setdefault("config", CONFIG)
  return sample_trajectories(
    teacher, TOK, source, reward="math_exact", out_dir=str(out_dir), progress=False, **kw
  )


def test_a_killed_sampling_run_resumes_without_duplicates(teacher, source, tmp_path):
  full = run(teacher, source, tmp_path / "full")
  assert full.num_problems == 10 and full.trajectories == 40
  assert set(full.seconds) >= {"generate", "verify", "write"}
  part = tmp_path / "part"
  first = run(teacher, source, part, max_batches=1)
  assert first.sampled_problems == 4
  with open(part / SAMPLES_FILE, "a") as f:  # a half-written line from the killed process
    f.write('{"index": 4, "quest')
  second = run(teacher, source, part)
  assert second.resumed_from == 4 and second.sampled_problems == 6
  assert (part / SAMPLES_FILE).read_bytes() == (tmp_path / "full" / SAMPLES_FILE).read_bytes()
  assert [p.index for p in read_samples(str(part))] == list(range(10))
  again = run(teacher, source, part)  # a finished run samples nothing more
  assert again.sampled_problems == 0 and again.num_problems == 10


def test_resume_under_other_settings_is_refused(teacher, source, tmp_path):
  run(teacher, source, tmp_path, max_batches=1)
  other = SamplingConfig(num_samples=4, problems_per_batch=4, max_new_tokens=6, seed=4)
  with pytest.raises(SamplingError, match="sampling"):
    run(teacher, source, tmp_path, config=other)
  with open(tmp_path / PROGRESS_FILE) as f:
    assert json.load(f)["next_problem"] == 4


def test_prompts_sharded_over_eight_devices_give_the_same_samples(teacher, source, tmp_path):
  mesh = sharding_lib.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
  assert mesh.shape["data"] == len(jax.devices()) == 8
  cfg = SamplingConfig(
    num_samples=4, problems_per_batch=4, max_new_tokens=6, seed=3, max_problems=8
  )
  run(teacher, source, tmp_path / "one", config=cfg)
  run(teacher, source, tmp_path / "mesh", config=cfg, mesh=mesh)
  one = read_samples(str(tmp_path / "one"))
  sharded = read_samples(str(tmp_path / "mesh"))
  assert [t.text for p in one for t in p.trajectories] == [
    t.text for p in sharded for t in p.trajectories
  ]


def test_two_processes_write_one_file_that_resumes_and_matches_one_process(teacher, tmp_path):
  """On two processes (jax.distributed, 2 devices each) the rows are split over both hosts'
  devices, process 0 alone writes, and the file (straight, or stopped after a batch and
  resumed) is byte for byte the file of a one-process run."""
  from tests.helpers.two_processes import run_helper

  src = data_source(
    "arithmetic", "train", str(tmp_path / "tfds"), config="easy", num_train=10, num_test=4
  )
  run(teacher, src, tmp_path / "one")
  results = run_helper("multihost_rft_sampling.py", tmp_path, timeout=300)
  for r in results:
    assert r["full"][:2] == [10, 40] and r["part"] == [4, 4, 6] and r["num_problems"] == 10
  expected = (tmp_path / "one" / SAMPLES_FILE).read_bytes()
  assert (tmp_path / "mh_full" / SAMPLES_FILE).read_bytes() == expected
  assert (tmp_path / "mh_part" / SAMPLES_FILE).read_bytes() == expected


def test_problems_without_ground_truth_are_skipped_and_counted(teacher, tmp_path):
  src = [
    {"question": "What is 1 + 1?", "answer": "2"},
    {"question": "What is 2 + 2?", "answer": ""},
  ]
  cfg = SamplingConfig(num_samples=2, problems_per_batch=2, max_new_tokens=4)
  out = run(teacher, src, tmp_path, config=cfg)
  assert out.skipped_no_ground_truth == 1 and out.num_problems == 1


def test_reward_without_answer_extraction_is_refused(teacher, source, tmp_path):
  with pytest.raises(SamplingError, match="reward='format_tag'"):
    sample_trajectories(
      teacher, TOK, source, reward="format_tag", out_dir=str(tmp_path), config=CONFIG
    )


def write_samples(folder, problems):
  """A samples folder by hand: problems = [(question, gold, [(text, correct, answer)])]."""
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, SAMPLES_FILE), "w") as f:
    for i, (q, gold, trajs) in enumerate(problems):
      rec = {
        "index": i,
        "question": q,
        "answer": gold,
        "fields": {},
        "trajectories": [
          {"text": t, "correct": c, "answer": a, "truncated": False, "num_tokens": len(t)}
          for t, c, a in trajs
        ],
      }
      f.write(json.dumps(rec) + "\n")
  with open(os.path.join(folder, "sampling.json"), "w") as f:
    json.dump({"teacher": "by hand", "sampling": {"seed": 0}}, f)


PROBLEMS = [
  ("What is 2 + 3?", "5", [("2+3 Answer: 6", False, "6"), ("2+3 Answer: 5", True, "5")]),
  ("What is 4 + 4?", "8", [("Answer: 8", True, "8"), ("Answer: 8", True, "8")]),
  ("What is 9 + 9?", "18", [("Answer: 17", False, "17"), ("Answer: 19", False, "19")]),
]


def test_datasets_from_the_same_samples_and_the_sft_label_mask(source, tmp_path):
  samples = tmp_path / "samples"
  write_samples(str(samples), PROBLEMS)
  stats = build_sft_datasets(str(samples), str(tmp_path / "out"), tokenizer=TOK, test_source=source)
  assert stats["rft"]["samples"] == stats["trajfusion"]["samples"] == 2  # dedup; 9+9 dropped
  assert stats["problems"]["no_correct"] == 1
  assert stats["trajfusion"]["k_histogram"] == {"0": 1, "1": 1}
  assert stats["token_ratio_trajfusion_over_rft"] > 1
  assert (tmp_path / "out" / "stats.md").read_text().startswith("| dataset")
  prov = json.loads((tmp_path / "out" / "trajfusion" / "provenance.json").read_text())
  assert prov["sampling"]["teacher"] == "by hand" and prov["construction"]["k_max"] == 3
  # The SFT trainer's reader: the `rft` TFDS builder through grain.
  folder = stats["dirs"]["trajfusion"]
  src = data_source("rft", "train", os.path.join(folder, "tfds"), manual_dir=folder)
  assert len(src) == 2
  ds = make_sft_dataset(src, TOK, seq_len=256, batch_size=2, seed=0, shuffle=False, num_epochs=1)
  batch = next(iter(ds))
  fused = "2+3 Answer: 6" + prov["construction"]["reflection"] + "2+3 Answer: 5"
  prompt_ids = TOK.encode("What is 2 + 3?\n", add_bos=True)
  prompt_len, target_len = len(prompt_ids), len(TOK.encode(fused)) + 1  # + eos
  np.testing.assert_array_equal(batch["tokens"][0, :prompt_len], prompt_ids)  # file order
  mask = batch["loss_mask"][0]
  assert mask[:prompt_len].sum() == 0  # the prompt is not supervised
  assert mask[prompt_len : prompt_len + target_len].all()  # the whole fused turn is
  assert mask.sum() == target_len


def test_a_stale_prepared_dataset_is_refused(source, tmp_path):
  write_samples(str(tmp_path / "a"), PROBLEMS)
  stats = build_sft_datasets(
    str(tmp_path / "a"), str(tmp_path / "out"), tokenizer=TOK, test_source=source
  )
  folder = stats["dirs"]["rft"]
  (tmp_path / "b").mkdir()
  write_samples(str(tmp_path / "b"), PROBLEMS[:1])
  other = build_sft_datasets(
    str(tmp_path / "b"), str(tmp_path / "out2"), tokenizer=TOK, test_source=source
  )
  with pytest.raises(ValueError, match="fresh data_dir"):
    data_source("rft", "train", os.path.join(folder, "tfds"), manual_dir=other["dirs"]["rft"])


def test_no_correct_trajectory_anywhere_is_a_clear_error(source, tmp_path):
  write_samples(str(tmp_path / "s"), [PROBLEMS[2]])
  with pytest.raises(EmptyDatasetError, match="no problem .* has a correct trajectory"):
    build_sft_datasets(str(tmp_path / "s"), str(tmp_path / "o"), tokenizer=TOK, test_source=source)


def test_chat_template_mask_covers_the_assistant_turn(tiny_hf_folder, tmp_path, source):
  from reasoning_jax.data import ChatPrompt
  from reasoning_jax.tokenizers import HFTokenizer

  tok = HFTokenizer.from_file(tiny_hf_folder("qwen3"))
  write_samples(str(tmp_path / "s"), PROBLEMS)
  stats = build_sft_datasets(
    str(tmp_path / "s"), str(tmp_path / "o"), tokenizer=tok, test_source=source
  )
  folder = stats["dirs"]["trajfusion"]
  src = data_source("rft", "train", os.path.join(folder, "tfds"), manual_dir=folder)
  prompt = ChatPrompt(tok, template="{question}", instruction="", system_prompt="")
  ds = make_sft_dataset(
    src,
    tok,
    seq_len=512,
    batch_size=2,
    seed=0,
    shuffle=False,
    num_epochs=1,
    prompt_template=prompt,
    add_bos=False,
  )
  batch = next(iter(ds))
  for row in range(2):
    ex = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in src[row].items()}
    prompt_ids = tok.encode(prompt(ex))
    target_ids = tok.encode(ex["solution"], add_eos=True)
    mask, tokens = batch["loss_mask"][row], batch["tokens"][row]
    n = len(prompt_ids)
    np.testing.assert_array_equal(tokens[:n], prompt_ids)
    assert mask[:n].sum() == 0 and mask[n : n + len(target_ids)].all()
    assert mask.sum() == len(target_ids)
  with pytest.raises(ValueError, match="special token"):
    from reasoning_jax.rft import TrajFusionConfig

    build_sft_datasets(
      str(tmp_path / "s"),
      str(tmp_path / "o2"),
      tokenizer=tok,
      test_source=source,
      config=TrajFusionConfig(reflection="Wait.<|im_end|>\n<|im_start|>assistant\n"),
    )
