"""`rl.fresh_start`: the comparison's Hugging Face folder built from the task (BPE trained on
the task's ChatML conversations, a random model of the configured size), reused when its spec
matches, refused when not, skipped when the user names a folder. The end-to-end run through
it is the quick reproduction suite's `compare_rl_countdown_hf` (tests/test_reproduce.py)."""

from __future__ import annotations

import json
import os
import pathlib
import sys

import pytest

from reasoning_jax.models.source import resolve_source
from reasoning_jax.rl.fresh_start import SPEC_FILE, fresh_corpus, prepare_fresh_start
from reasoning_jax.rl.recipes import ConfigError, validate_config
from reasoning_jax.rl.recipes import sft_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from configs import compare_rl  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  c = compare_rl.get_config("countdown_hf_quick")
  c.workdir = str(tmp_path_factory.mktemp("cmp"))
  c.rl.sft.workdir = os.path.join(c.workdir, "warmstart")
  return c, prepare_fresh_start(c)


def test_the_folder_is_built_from_the_task_and_the_run_reads_it(built):
  config, out = built
  directory = out.rl.model.hf_dir
  assert directory == os.path.join(config.workdir, "fresh_hf") and not config.rl.model.hf_dir
  source = resolve_source(hf_dir=directory)
  tok = source.tokenizer
  # The model has the configured size and the BPE's vocabulary; eos is ChatML's <|im_end|>.
  assert source.model_config.hidden_size == config.fresh_hf.model_overrides["hidden_size"]
  assert source.model_config.vocab_size == tok.vocab_size <= config.fresh_hf.vocab_size
  assert source.eos_ids == (tok.token_to_id("<|im_end|>"),)
  # The BPE learnt the task's words: the countdown prompt costs fewer tokens than bytes.
  user = config.rl.sft.prompt_template.format(target=98, numbers=[14, 2, 9])
  assert user == "Make 98 from [14, 2, 9]." and len(tok.encode(user)) < len(user) - 4
  # The run config is a valid RL config whose SFT warm start reads the folder with the chat
  # template (no instruction: the user turn is the countdown question).
  run = out.rl.copy_and_resolve_references()
  run.workdir, run.loss, run.mesh = "/tmp/unused", "dispo", {"data": 1, "fsdp": 1, "tensor": -1}
  validate_config(run)
  sft = sft_config(run)
  assert sft.model.hf_dir == directory and sft.prompt.chat and sft.prompt.instruction == ""


def test_the_corpus_is_the_trainers_chatml_conversations(built):
  config, _ = built
  texts = list(fresh_corpus(config.rl.sft, 3))
  assert len(texts) == 3
  for text in texts:
    assert text.startswith("<|im_start|>user\nMake ") and text.endswith("<|im_end|>\n")
    assert "<|im_end|>\n<|im_start|>assistant\n" in text


def test_a_matching_folder_is_reused_and_another_spec_is_refused(built):
  config, out = built
  directory = out.rl.model.hf_dir
  stamp = os.path.getmtime(os.path.join(directory, "model.safetensors"))
  again = prepare_fresh_start(config)
  assert again.rl.model.hf_dir == directory
  assert os.path.getmtime(os.path.join(directory, "model.safetensors")) == stamp
  saved = json.loads(pathlib.Path(os.path.join(directory, SPEC_FILE)).read_text())
  assert saved["vocab_size"] == config.fresh_hf.vocab_size
  changed = config.copy_and_resolve_references()
  changed.fresh_hf.model_overrides = dict(changed.fresh_hf.model_overrides, num_layers=2)
  with pytest.raises(ConfigError, match=r"another spec \(differs in \['model_overrides'\]\)"):
    prepare_fresh_start(changed)


def test_a_named_folder_or_no_spec_builds_nothing(tmp_path):
  c = compare_rl.get_config("countdown_hf_quick")
  c.workdir = str(tmp_path)
  c.rl.model.hf_dir = "/m/Qwen2.5-0.5B"
  assert prepare_fresh_start(c) is c and not os.listdir(tmp_path)
  plain = compare_rl.get_config("countdown_quick")
  assert plain.get("fresh_hf") is None and prepare_fresh_start(plain) is plain


def test_a_bad_spec_names_the_config_block(tmp_path):
  c = compare_rl.get_config("countdown_hf_quick")
  c.workdir = str(tmp_path)
  c.rl.sft.workdir = str(tmp_path / "warmstart")
  c.fresh_hf.vocab_size = 100
  with pytest.raises(ConfigError, match="config.fresh_hf: vocab_size=100 must be >= 259"):
    prepare_fresh_start(c)


def test_the_comparison_runs_end_to_end_through_the_folder(tmp_path):
  """countdown_hf_quick (one recipe, one seed): the fresh folder is built, the SFT warm start
  trains from its weights with its tokenizer and chat template, RL reads it, the report is
  written; a second call reuses the folder and the runs."""
  from reasoning_jax.checkpoint import TrainCheckpointer
  from reasoning_jax.rl.compare import run_comparison

  c = compare_rl.get_config("countdown_hf_quick")
  c.workdir, c.rl.sft.workdir = str(tmp_path / "cmp"), str(tmp_path / "warm")
  c.losses, c.seeds = ("dispo",), (0,)
  c.rl.mesh = {"data": 1, "fsdp": 1, "tensor": -1}  # No data split over the 8 test devices.
  c.rl.sft.mesh = dict(c.rl.mesh)
  payload = run_comparison(c)
  folder = str(tmp_path / "cmp" / "fresh_hf")
  assert payload["config"]["rl"]["model"]["hf_dir"] == folder
  (run,) = payload["results"]["dispo"]
  assert 0.0 <= run["final"] <= 1.0 and run["diagnostics"]["dispo_pos_high_clip_frac"]
  with TrainCheckpointer(str(tmp_path / "warm" / "checkpoints")) as ckpt:
    warm = ckpt.restore(step=ckpt.latest_step(), target={})[1]["config"]
  assert warm["model"]["hf_dir"] == folder and warm["prompt"]["chat"]
  assert "| dispo |" in (tmp_path / "cmp" / "results.md").read_text()
  stamp = os.path.getmtime(os.path.join(folder, "model.safetensors"))
  again = run_comparison(c)  # Resumes: the folder, the warm start and the run are reused.
  assert os.path.getmtime(os.path.join(folder, "model.safetensors")) == stamp
  assert again["results"]["dispo"][0]["final"] == run["final"]


def test_the_spec_covers_what_the_corpus_is_made_of(built):
  """Another prompt template, instruction or target field changes the BPE's corpus, so a
  folder built before is refused."""
  config, _ = built
  for key, value in (("prompt_template", "Reach {target} with {numbers}."), ("target_field", "x")):
    changed = config.copy_and_resolve_references()
    changed.rl.sft[key] = value
    with pytest.raises(ConfigError, match=r"differs in \['task'\]"):
      prepare_fresh_start(changed)
  changed = config.copy_and_resolve_references()
  changed.rl.sft.prompt.instruction = "Answer with an expression."
  with pytest.raises(ConfigError, match=r"differs in \['task'\]"):
    prepare_fresh_start(changed)


def test_two_processes_build_one_folder_and_agree_on_the_comparison(tmp_path):
  """countdown_hf_quick on two processes (jax.distributed, 2 devices each, one 4-device data
  mesh): process 0 alone builds the folder and writes the report, both return the same
  results, a second call reuses everything, and a bad spec is refused on both hosts."""
  from tests.helpers.two_processes import run_helper

  results = run_helper("multihost_compare.py", tmp_path, timeout=600)
  first, second = results
  assert first["results"] == second["results"] and first["again"] == first["results"]
  (run,) = first["results"]["dispo"]
  assert 0.0 <= run["final"] <= 1.0 and run["curve"] and run["diagnostics"]
  assert first["hf_dir"] == second["hf_dir"] == str(tmp_path / "cmp" / "fresh_hf")
  assert {"results.json", "results.md", "curves.csv", "CITATIONS.bib"} <= set(first["files"])
  saved = json.loads((tmp_path / "cmp" / "results.json").read_text())
  assert saved["results"] == first["results"]
  assert first["refused"] == second["refused"] and "vocab_size=100" in first["refused"]
  assert not os.path.exists(tmp_path / "bad" / "fresh_hf" / SPEC_FILE)
