"""Sample rollouts for people to read: which rows, what each record holds, how they are written."""

import json
import os

import ml_collections
import numpy as np
import pytest

from reasoning_jax.reproduce.records import config_fingerprint
from reasoning_jax.rl.rollout import RolloutBatch
from reasoning_jax.rl.rollout_log import rollout_records, select_rows
from reasoning_jax.tokenizers import ByteTokenizer
from reasoning_jax.train.metrics import MetricWriter


def test_select_rows_takes_one_row_per_group_first():
  groups = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
  assert select_rows(groups, 2).tolist() == [0, 3]
  assert select_rows(groups, 4).tolist() == [0, 3, 6, 1]
  assert select_rows(groups, 100).tolist() == [0, 3, 6, 1, 4, 7, 2, 5, 8]
  assert select_rows(groups, 0).tolist() == []
  # Rows of a concatenated dynamic-sampling batch need not be sorted by group.
  assert select_rows(np.array([1, 0, 1, 0]), 3).tolist() == [1, 0, 3]


def _batch(tokenizer):
  prompts = ["2+3=", "7-1="]
  completions = ["5<eos>", "six"]
  rows = [tokenizer.encode(p) + tokenizer.encode("x" * 4) for p in prompts]
  width = max(len(r) for r in rows)
  tokens = np.zeros((4, width), np.int32)
  mask = np.zeros((4, width), np.float32)
  for i in range(4):
    row = rows[i // 2]
    tokens[i, : len(row)] = row
    mask[i, len(tokenizer.encode(prompts[i // 2])) : len(row)] = 1
  return RolloutBatch(
    tokens=tokens,
    mask=mask,
    old_logp=None,
    sampler_logp=np.zeros(tokens.shape, np.float32),
    ref_logp=None,
    rewards=np.array([1.0, 0.0, 0.0, 0.0], np.float32),
    group_ids=np.array([0, 0, 1, 1], np.int32),
    completion_lengths=np.array([4, 4, 4, 4], np.int32),
    truncated=np.array([False, True, False, True]),
    completions=[completions[0], "?", completions[1], "!"],
    prompt_lengths=np.array([len(tokenizer.encode(p)) for p in prompts for _ in range(2)]),
    answers=["5", "5", "6", "6"],
  )


def test_records_hold_the_prompt_completion_answer_reward_and_advantage():
  tok = ByteTokenizer()
  batch = _batch(tok)
  # Sequence-level advantages: the row's value.
  records = rollout_records(batch, tok, step=7, num=3, advantages=np.array([0.5, -0.5, 0, 0]))
  assert [r["row"] for r in records] == [0, 2, 1]
  first = records[0]
  assert first == {
    "step": 7,
    "row": 0,
    "group": 0,
    "prompt": "2+3=",
    "completion": "5<eos>",
    "answer": "5",
    "reward": 1.0,
    "advantage": 0.5,
    "completion_length": 4,
    "truncated": False,
  }
  assert records[1]["prompt"] == "7-1=" and records[1]["answer"] == "6"
  assert records[2]["truncated"] is True and records[2]["advantage"] == -0.5
  # Token-level advantages: the mean over the completion tokens only.
  token_adv = np.zeros(batch.tokens.shape, np.float32)
  token_adv[0, :4] = 100.0  # Prompt columns: ignored.
  token_adv[0, 4:8] = [1.0, 2.0, 3.0, 6.0]
  (record,) = rollout_records(batch, tok, step=1, num=1, advantages=token_adv)
  assert record["advantage"] == pytest.approx(3.0)
  # Without advantages, prompt lengths or answers the fields are left out, not invented.
  bare = batch.select(np.arange(4))
  bare.prompt_lengths, bare.answers = None, None
  (record,) = rollout_records(bare, tok, step=1, num=1)
  assert not {"prompt", "answer", "advantage"} & set(record)
  assert rollout_records(batch, tok, step=1, num=0) == []


def test_prompts_keep_their_special_tokens():
  """A chat-templated prompt reads as the model saw it: a Tokenizer keeps its special tokens,
  while the completion is the text the verifier scored."""
  tok = ByteTokenizer()
  batch = _batch(tok)
  batch.tokens = np.concatenate([np.full((4, 1), tok.bos_id, np.int32), batch.tokens], 1)
  batch.prompt_lengths = batch.prompt_lengths + 1
  (record,) = rollout_records(batch, tok, step=1, num=1)
  assert record["prompt"] == "<bos>2+3="

  class Plain:  # Only what collect_rollouts needs: decode_batch(ids, lengths).
    def decode_batch(self, ids, lengths):
      return ["|".join(str(int(t)) for t in row[:n]) for row, n in zip(ids, lengths)]

  (record,) = rollout_records(batch, Plain(), step=1, num=1)
  assert record["prompt"] == "|".join(str(t) for t in [tok.bos_id, *tok.encode("2+3=")])


def test_select_and_concatenate_keep_prompt_lengths_and_answers():
  batch = _batch(ByteTokenizer())
  picked = batch.select(np.array([3, 0]))
  assert picked.answers == ["6", "5"] and picked.prompt_lengths.tolist() == [4, 4]
  joined = RolloutBatch.concatenate([batch.select(np.array([0, 1])), batch.select([2, 3])])
  assert joined.answers == batch.answers
  assert joined.prompt_lengths.tolist() == batch.prompt_lengths.tolist()


def test_write_records_appends_jsonl_and_tensorboard_text(tmp_path):
  with MetricWriter(str(tmp_path)) as writer:
    writer.write_records(1, "rollouts", [{"step": 1, "completion": "a"}])
    writer.write_records(2, "rollouts", [{"step": 2, "completion": "b\n√"}, {"step": 2}])
    writer.write_records(3, "rollouts", [])  # Nothing to write: no line.
    with pytest.raises(ValueError, match="name must be a bare file stem"):
      writer.write_records(1, "rollouts.jsonl", [{"step": 1}])
  text = (tmp_path / "rollouts.jsonl").read_text(encoding="utf-8")
  assert "√" in text  # Written as UTF-8 text, not \u escapes: the file is for reading.
  lines = text.splitlines()
  assert [json.loads(line) for line in lines] == [
    {"step": 1, "completion": "a"},
    {"step": 2, "completion": "b\n√"},
    {"step": 2},
  ]
  events = os.listdir(tmp_path / "tensorboard")
  assert events and all(e.startswith("events.out.tfevents") for e in events)


def test_the_reproduction_fingerprint_ignores_only_output_only_keys():
  config = ml_collections.ConfigDict({"rl": {"log_rollouts": 4, "num_steps": 40}, "seed": 0})
  changed_log = ml_collections.ConfigDict({"rl": {"log_rollouts": 0, "num_steps": 40}, "seed": 0})
  without = ml_collections.ConfigDict({"rl": {"num_steps": 40}, "seed": 0})
  changed_steps = ml_collections.ConfigDict({"rl": {"log_rollouts": 4, "num_steps": 41}, "seed": 0})
  assert (
    config_fingerprint(config) == config_fingerprint(changed_log) == config_fingerprint(without)
  )
  assert config_fingerprint(config) != config_fingerprint(changed_steps)
