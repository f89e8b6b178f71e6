"""InfMem's protocol RL: episode rows, one GRPO update, the experiment's config and verdict."""

from __future__ import annotations

import os
import sys

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from configs import infmem as infmem_config  # noqa: E402
from reasoning_jax import sharding as sharding_lib  # noqa: E402
from reasoning_jax.agents.infmem import GenerateLLM, run_episodes  # noqa: E402
from reasoning_jax.evaluate.infmem import setup  # noqa: E402
from reasoning_jax.models.config import get_preset  # noqa: E402
from reasoning_jax.models.transformer import Transformer  # noqa: E402
from reasoning_jax.reproduce.entries_memory import infmem_verdict  # noqa: E402
from reasoning_jax.rl.infmem import episode_batch, train_protocol  # noqa: E402


@pytest.fixture(scope="module")
def parts():
  config = infmem_config.get_config("quick")
  tokenizer = setup.experiment_tokenizer(setup.COMPACT_PROMPTS, max_number=8)
  model_config = get_preset(
    "tiny-qwen3",
    vocab_size=tokenizer.vocab_size,
    hidden_size=32,
    intermediate_size=64,
    num_layers=1,
    num_heads=2,
    num_kv_heads=1,
    head_dim=16,
    max_position_embeddings=1024,
  )
  model = Transformer(model_config, rngs=nnx.Rngs(0))
  examples = setup.examples(1024, 3, seed=0)
  reader = setup.protocol_config(config.reader, "infmem")
  return config, tokenizer, model, examples, reader


def test_episode_rows_mask_the_prompt_and_share_the_episode_advantage(parts):
  _, tokenizer, model, examples, reader = parts
  llm = GenerateLLM(model, tokenizer, eos_id=tokenizer.eos_id, temperature=1.0, seed=1)
  episodes = run_episodes(
    llm,
    [e["question"] for e in examples],
    [e["document"] for e in examples],
    reader,
    prompt_set=setup.COMPACT_PROMPTS,
  )
  calls = [(e, c) for e, ep in enumerate(episodes) for c in ep.calls]
  advantages = np.asarray([0.5, -1.0, 2.0], np.float32)
  rows = np.arange(len(calls))
  batch, adv = episode_batch(episodes, advantages, rows, 1024)
  for i, (e, call) in enumerate(calls):
    comp = call.completion
    p, n = len(comp.prompt_ids), len(comp.ids)
    assert batch.tokens[i, :p].tolist() == list(comp.prompt_ids)
    assert batch.tokens[i, p : p + n].tolist() == list(comp.ids)
    assert batch.mask[i].sum() == n and batch.mask[i, p : p + n].all()
    np.testing.assert_allclose(batch.sampler_logp[i, p : p + n], comp.logprobs, rtol=1e-6)
    assert adv[i] == advantages[e]
  with pytest.raises(ValueError, match="exceeds the width"):
    episode_batch(episodes, advantages, rows[:1], 8)


def test_one_grpo_step_updates_a_copy_and_keeps_the_callers_model(parts):
  config, tokenizer, model, examples, reader = parts
  rl = ml_collections.ConfigDict(dict(config.rl))
  rl.num_steps, rl.questions_per_step, rl.group_size, rl.update_rows = 1, 2, 2, 8
  before = jax.tree_util.tree_map(np.asarray, nnx.state(model, nnx.Param))
  mesh = sharding_lib.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:1])
  trained, history = train_protocol(
    model, tokenizer, examples, reader, setup.COMPACT_PROMPTS, rl, mesh=mesh, seed=0
  )
  assert len(history) == 1 and np.isfinite(history[0]["loss"])
  assert {"reward", "accuracy", "early_stop", "tool_ok", "memory_ok"} <= set(history[0])
  after = nnx.state(trained, nnx.Param)
  changed = jax.tree_util.tree_map(lambda a, b: not np.allclose(a, np.asarray(b)), before, after)
  assert any(jax.tree_util.tree_leaves(changed))
  # The caller's model was not donated to the update.
  still = jax.tree_util.tree_map(np.asarray, nnx.state(model, nnx.Param))
  jax.tree_util.tree_map(np.testing.assert_array_equal, before, still)


def test_configs_are_valid():
  for variant in ("", "quick"):
    config = infmem_config.get_config(variant)
    for controller in ("infmem", "memagent"):
      setup.protocol_config(config.reader, controller)
    assert len(config.eval.doc_tokens) == len(config.eval.questions)
  with pytest.raises(ValueError, match="unknown infmem variant"):
    infmem_config.get_config("huge")


def _payload(acc_inf, acc_mem, calls_inf, calls_mem, seeds=3):
  cell = lambda a, c: {"accuracy": [a] * seeds, "calls_per_question": [c] * seeds}  # noqa: E731
  return {
    "seeds": list(range(seeds)),
    "table": {
      "MemAgent (SFT)": {"8k": cell(0.1, 33), "32k": cell(acc_mem, calls_mem)},
      "InfMem (SFT+GRPO)": {"8k": cell(0.0, 33), "32k": cell(acc_inf, calls_inf)},
    },
  }


@pytest.mark.parametrize(
  "args, status",
  [
    ((0.5, 0.2, 20, 129), "reproduced"),
    ((0.5, 0.2, 100, 129), "partly"),
    ((0.1, 0.2, 20, 129), "partly"),
    ((0.1, 0.2, 100, 129), "not reproduced"),
  ],
)
def test_verdict(args, status):
  (v,) = infmem_verdict(_payload(*args))
  assert v.status == status and "32k" in v.reason and "8k" not in v.reason
  (v,) = infmem_verdict(_payload(*args, seeds=2))
  assert v.status == "not measured"


def test_experiment_reads_a_hugging_face_folder_with_both_protocols(tiny_hf_folder, tmp_path):
  from reasoning_jax.rl.infmem.experiment import run

  config = infmem_config.get_config("quick")
  config.workdir = str(tmp_path)
  config.hf.dir = tiny_hf_folder("qwen3")
  config.hf.prompts = "compact"
  config.hf.reader = dict(
    config.reader,
    chunk_tokens=64,
    unit_tokens=16,
    unit_overlap=4,
    memory_tokens=16,
    prethink_tokens=24,
    answer_tokens=8,
    max_top_k=4,
  )
  config.eval.doc_tokens, config.eval.questions = (64,), (2,)
  config.eval.length_multiple = 512
  payload = run(config)
  assert set(payload["table"]) >= {"MemAgent (HF folder)", "InfMem (HF folder)"}
  cell = payload["table"]["InfMem (HF folder)"]["64"]
  assert cell["calls_per_question"] and cell["calls_per_question"][0] >= 2
  assert os.path.exists(tmp_path / "results.md")
  # Each call replayed through the scripted controller: where the readers go wrong.
  replayed = payload["seeds"][0]["arms"]["InfMem (HF folder)"]["64"]["replay"]
  assert replayed["prethink_calls"] >= 1 and replayed["answer_calls"] == 2
  assert "Where the model readers go wrong (64" in (tmp_path / "results.md").read_text()
  assert "replay" not in payload["scripted"]["scripted InfMem"]["64"]  # Not against itself.


def test_no_verdict_when_neither_reader_answers():
  """0.0 vs 0.0 at 6.5x fewer calls is not "partly": a reader that does not answer is not
  judged on its call count."""
  (v,) = infmem_verdict(_payload(0.0, 0.0, 20, 129))
  assert v.status == "not measured" and "Neither trained reader" in v.reason
  (v,) = infmem_verdict(_payload(0.0, 0.125, 20, 129))  # MemAgent answers: judged.
  assert v.status == "partly"


def test_lengths_missing_seeds_are_not_judged():
  payload = _payload(0.5, 0.2, 20, 129)
  payload["table"]["MemAgent (SFT)"]["128k"] = {"accuracy": [0.9], "calls_per_question": [500]}
  (v,) = infmem_verdict(payload)  # 128k ran on one seed (and not for InfMem): not judged.
  assert v.status == "reproduced" and "not judged: 128k" in v.reason


def test_verdict_uses_the_sft_reader_when_grpo_ran_on_one_seed():
  payload = _payload(0.5, 0.2, 20, 129)
  payload["table"]["InfMem (SFT+GRPO)"]["32k"] = {"accuracy": [0.9], "calls_per_question": [5]}
  (v,) = infmem_verdict(payload)
  assert v.status == "not measured" and "InfMem (SFT)" in v.reason
  payload["table"]["InfMem (SFT)"] = {
    "32k": {"accuracy": [0.1] * 3, "calls_per_question": [20] * 3}
  }
  (v,) = infmem_verdict(payload)
  assert v.status == "partly" and "InfMem (SFT) 0.100" in v.reason


def test_sft_folder_is_reused_only_for_the_config_that_built_it(tmp_path):
  from reasoning_jax.rl.infmem.experiment import _sft_folder

  config = infmem_config.get_config("quick")
  config.train.doc_tokens, config.train.num_examples = (512,), (3,)
  config.train.num_test_records = 2
  tokenizer = setup.experiment_tokenizer(setup.COMPACT_PROMPTS, max_number=8)
  folder = _sft_folder(config, str(tmp_path), tokenizer, "infmem")
  with open(os.path.join(folder, "train.jsonl")) as f:
    records = f.readlines()
  assert records
  assert _sft_folder(config, str(tmp_path), tokenizer, "infmem") == folder
  config.train.num_examples = (30,)
  with pytest.raises(ValueError, match=r"built under other settings \(train: saved"):
    _sft_folder(config, str(tmp_path), tokenizer, "infmem")
  config.train.num_examples = (3,)
  config.reader.memory_tokens = 32
  with pytest.raises(ValueError, match=r"reader: saved"):
    _sft_folder(config, str(tmp_path), tokenizer, "infmem")
  with pytest.raises(ValueError, match=r"controller: saved 'infmem', config 'memagent'"):
    os.rename(folder, os.path.join(str(tmp_path), "sft_data_memagent"))
    config.reader.memory_tokens = 48
    _sft_folder(config, str(tmp_path), tokenizer, "memagent")
  with open(os.path.join(str(tmp_path), "sft_data_memagent", "train.jsonl")) as f:
    assert f.readlines() == records
