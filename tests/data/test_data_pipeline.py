"""Tests for the grain pipelines in reasoning_jax.data.pipeline."""

from __future__ import annotations

import collections
import json

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from reasoning_jax.data import (
  iterator_state,
  make_prompt_dataset,
  make_sft_dataset,
  packing_available,
  restore_iterator,
  to_global_batch,
)
from reasoning_jax.data import iterator_checkpoint
from reasoning_jax.tokenizers import ByteTokenizer

TOK = ByteTokenizer()
KEYS = {"tokens", "loss_mask", "positions", "segment_ids"}


def _source(n: int = 40) -> list[dict]:
  """Examples with distinct questions and varied lengths (bytes, as TFDS gives them)."""
  return [
    {
      "question": f"q{i}: {'x' * (i % 7)}".encode(),
      "solution": f"s{i}" + "y" * (i % 5),
      "answer": str(i),
      "id": i,
    }
    for i in range(n)
  ]


def _expected_ids(ex: dict, template: str = "{question}\n") -> tuple[list[int], list[int]]:
  q = ex["question"].decode() if isinstance(ex["question"], bytes) else ex["question"]
  prompt = [TOK.bos_id] + TOK.encode(template.format(question=q))
  target = TOK.encode(ex["solution"]) + [TOK.eos_id]
  return prompt + target, [0] * len(prompt) + [1] * len(target)


def _take(it, n: int) -> list[dict]:
  return [next(it) for _ in range(n)]


def _assert_same_batches(a: list[dict], b: list[dict]) -> None:
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def _decode_rows(batch: dict) -> list[str]:
  return [TOK.decode(row) for row in batch["tokens"]]


# ------------------------------------------------------------------------------
# SFT batches.
# ------------------------------------------------------------------------------


def test_sft_shapes_dtypes_and_masks():
  src = _source()
  by_text = {}
  for ex in src:
    ids, mask = _expected_ids(ex)
    by_text[TOK.decode(ids)] = (ids, mask)
  ds = make_sft_dataset(src, TOK, seq_len=32, batch_size=4, seed=0, shard_index=0, shard_count=1)
  it = iter(ds)
  for batch in _take(it, 12):  # Past one epoch (10 batches): repeats forever by default.
    assert set(batch) == KEYS
    for k in KEYS:
      assert batch[k].shape == (4, 32) and batch[k].dtype == np.int32, k
    for row in range(4):
      ids, mask = by_text[TOK.decode(batch["tokens"][row])]
      n = len(ids)
      np.testing.assert_array_equal(batch["tokens"][row, :n], ids)
      np.testing.assert_array_equal(batch["loss_mask"][row, :n], mask)
      np.testing.assert_array_equal(batch["positions"][row, :n], np.arange(n))
      assert (batch["segment_ids"][row, :n] == 1).all()
      for k in KEYS:  # Padding: pad id, no loss, segment 0, position 0.
        assert (batch[k][row, n:] == 0).all(), k
      assert batch["tokens"][row, 0] == TOK.bos_id
      assert batch["tokens"][row, n - 1] == TOK.eos_id
      # The loss covers exactly the solution and the eos.
      target = batch["tokens"][row][batch["loss_mask"][row] == 1]
      assert TOK.decode(target[:-1]).startswith("s")


def test_sft_epoch_order_seed_and_truncation():
  src = _source(12)
  kw = dict(seq_len=32, batch_size=3, shard_index=0, shard_count=1, num_epochs=2)
  rows = [t for b in make_sft_dataset(src, TOK, seed=1, **kw) for t in _decode_rows(b)]
  assert len(rows) == 24
  assert sorted(rows[:12]) == sorted(rows[12:])  # Each epoch is a full pass ...
  assert rows[:12] != rows[12:]  # ... reshuffled.
  again = [t for b in make_sft_dataset(src, TOK, seed=1, **kw) for t in _decode_rows(b)]
  other = [t for b in make_sft_dataset(src, TOK, seed=2, **kw) for t in _decode_rows(b)]
  assert rows == again and rows != other
  ordered = [
    t for b in make_sft_dataset(src, TOK, seed=1, shuffle=False, **kw) for t in _decode_rows(b)
  ]
  assert ordered[:12] == [TOK.decode(_expected_ids(ex)[0]) for ex in src]
  short = next(
    iter(make_sft_dataset(src, TOK, seq_len=6, batch_size=2, seed=0, shard_index=0, shard_count=1))
  )
  assert (short["segment_ids"] == 1).all()  # Truncated to seq_len.
  with pytest.raises(ValueError, match="seq_len=6"):
    next(
      iter(
        make_sft_dataset(
          src, TOK, seq_len=6, batch_size=2, seed=0, shard_index=0, shard_count=1, truncate=False
        )
      )
    )


def test_sft_drop_remainder_and_template():
  src = _source(10)
  kw = dict(seq_len=64, batch_size=4, seed=0, shard_index=0, shard_count=1, num_epochs=1)
  assert [b["tokens"].shape[0] for b in make_sft_dataset(src, TOK, **kw)] == [4, 4]
  assert [b["tokens"].shape[0] for b in make_sft_dataset(src, TOK, drop_remainder=False, **kw)] == [
    4,
    4,
    2,
  ]
  batch = next(
    iter(
      make_sft_dataset(
        src,
        TOK,
        prompt_template="Q: {question} A{id}=",
        target_field="answer",
        add_bos=False,
        shuffle=False,
        **kw,
      )
    )
  )
  assert TOK.decode(batch["tokens"][0]) == "Q: q0:  A0=0"
  assert batch["tokens"][0, 0] != TOK.bos_id
  with pytest.raises(ValueError, match="prompt_template .* 'nope'"):
    next(iter(make_sft_dataset(src, TOK, prompt_template="{nope}", **kw)))
  with pytest.raises(ValueError, match="target_field 'missing'"):
    next(iter(make_sft_dataset(src, TOK, target_field="missing", **kw)))


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(seq_len=0), "seq_len"),
    (dict(batch_size=-1), "batch_size"),
    (dict(num_epochs=0), "num_epochs"),
    (dict(shard_index=2, shard_count=2), "shard_index"),
    (dict(shard_count=0, shard_index=0), "shard_count"),
    (dict(worker_count=-1), "worker_count"),
  ],
)
def test_sft_argument_errors(kwargs, match):
  args = dict(seq_len=16, batch_size=2, seed=0, shard_index=0, shard_count=1)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    make_sft_dataset(_source(), TOK, **args)


def test_default_shard_is_this_process():
  ds = make_sft_dataset(_source(8), TOK, seq_len=32, batch_size=8, seed=0, num_epochs=1)
  assert len(list(ds)) == 1  # process 0 of 1: sees everything.


# ------------------------------------------------------------------------------
# Packing.
# ------------------------------------------------------------------------------


@pytest.mark.skipif(not packing_available(), reason="grain lacks FirstFitPackIterDataset")
def test_packing_segments_positions_and_coverage():
  src = _source(30)
  expected = collections.Counter()
  by_text = {}
  for ex in src:
    ids, mask = _expected_ids(ex)
    expected[TOK.decode(ids)] += 1
    by_text[TOK.decode(ids)] = (ids, mask)
  ds = make_sft_dataset(
    src,
    TOK,
    seq_len=48,
    batch_size=4,
    seed=0,
    pack=True,
    num_epochs=1,
    drop_remainder=False,
    shard_index=0,
    shard_count=1,
  )
  seen = collections.Counter()
  multi = 0
  for batch in ds:
    assert set(batch) == KEYS
    for k in KEYS:
      assert batch[k].dtype == np.int32 and batch[k].shape[1] == 48
    for row in range(batch["tokens"].shape[0]):
      seg = batch["segment_ids"][row]
      nonpad = seg > 0
      # Segments are 1, 2, ..., k, contiguous, then padding.
      k = seg.max()
      multi += k > 1
      assert list(np.unique(seg[nonpad])) == list(range(1, k + 1))
      assert (np.diff(seg[nonpad]) >= 0).all() and not nonpad[nonpad.sum() :].any()
      for s in range(1, k + 1):
        where = seg == s
        ids, mask = by_text[TOK.decode(batch["tokens"][row][where])]
        np.testing.assert_array_equal(batch["tokens"][row][where], ids)
        np.testing.assert_array_equal(batch["loss_mask"][row][where], mask)
        # Positions restart at 0 for every packed sequence.
        np.testing.assert_array_equal(batch["positions"][row][where], np.arange(len(ids)))
        seen[TOK.decode(ids)] += 1
      for key in KEYS:
        assert (batch[key][row][~nonpad] == 0).all()
  assert multi > 0  # Some rows really hold several sequences.
  assert seen == expected  # Every example exactly once.


@pytest.mark.skipif(not packing_available(), reason="grain lacks FirstFitPackIterDataset")
def test_packing_checkpoint_resume():
  kw = dict(seq_len=48, batch_size=4, seed=3, pack=True, shard_index=0, shard_count=1)
  it = iter(make_sft_dataset(_source(), TOK, **kw))
  _take(it, 3)
  state = json.loads(json.dumps(iterator_state(it)))
  expected = _take(it, 5)
  resumed = restore_iterator(iter(make_sft_dataset(_source(), TOK, **kw)), state)
  _assert_same_batches(_take(resumed, 5), expected)


# ------------------------------------------------------------------------------
# Host sharding.
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("shuffle", [False, True])
def test_host_shards_are_disjoint_and_cover(shuffle):
  src = _source(22)
  ids = []
  for shard in range(2):
    ds = make_prompt_dataset(
      src,
      TOK,
      batch_size=4,
      max_prompt_len=32,
      shuffle=shuffle,
      seed=5,
      fields=["id"],
      shard_index=shard,
      shard_count=2,
    )
    ids.append([int(x) for b in ds for x in b["id"]])
  assert len(ids[0]) == len(ids[1]) == 11
  assert not set(ids[0]) & set(ids[1])
  assert sorted(ids[0] + ids[1]) == list(range(22))
  # The SFT pipeline shards the same way.
  texts = []
  for shard in range(2):
    ds = make_sft_dataset(
      src,
      TOK,
      seq_len=32,
      batch_size=1,
      seed=5,
      shuffle=shuffle,
      num_epochs=1,
      shard_index=shard,
      shard_count=2,
    )
    texts.append({t for b in ds for t in _decode_rows(b)})
  assert not texts[0] & texts[1] and len(texts[0] | texts[1]) == 22


# ------------------------------------------------------------------------------
# Prompt batches.
# ------------------------------------------------------------------------------


def test_prompt_dataset(arithmetic_builder):
  source = arithmetic_builder.as_data_source("test")
  ds = make_prompt_dataset(
    source,
    TOK,
    batch_size=5,
    max_prompt_len=40,
    prompt_template="Q: {question}\nA:",
    shard_index=0,
    shard_count=1,
  )
  batches = list(ds)
  assert [b["prompts"].shape for b in batches] == [(5, 40)] * 3 + [(1, 40)]
  seen = []
  for b in batches:
    assert b["prompts"].dtype == np.int32 and b["prompt_lengths"].dtype == np.int32
    assert b["answer"].dtype == object and isinstance(b["answer"][0], str)
    assert b["operands"].dtype == object and isinstance(b["operands"][0], list)
    for row, n in enumerate(b["prompt_lengths"]):
      text = TOK.decode(b["prompts"][row, :n])
      assert text == f"Q: {b['question'][row]}\nA:"
      assert b["prompts"][row, 0] == TOK.bos_id and (b["prompts"][row, n:] == TOK.pad_id).all()
      seen.append(int(b["source_index"][row]))
  assert seen == list(range(16))  # Evaluation default: one ordered pass, nothing dropped.
  only = next(
    iter(
      make_prompt_dataset(
        source,
        TOK,
        batch_size=2,
        max_prompt_len=40,
        fields=["answer"],
        shard_index=0,
        shard_count=1,
      )
    )
  )
  assert set(only) == {"prompts", "prompt_lengths", "source_index", "answer"}
  with pytest.raises(ValueError, match="max_prompt_len=4"):
    next(
      iter(
        make_prompt_dataset(
          source, TOK, batch_size=2, max_prompt_len=4, shard_index=0, shard_count=1
        )
      )
    )
  cut = next(
    iter(
      make_prompt_dataset(
        source, TOK, batch_size=2, max_prompt_len=4, truncate=True, shard_index=0, shard_count=1
      )
    )
  )
  assert (cut["prompt_lengths"] == 4).all()
  assert TOK.decode(cut["prompts"][0]).endswith("?\n")  # Keeps the end of the prompt.


def test_prompt_dataset_checkpoint_resume():
  kw = dict(
    batch_size=3,
    max_prompt_len=32,
    shuffle=True,
    num_epochs=None,
    seed=1,
    shard_index=0,
    shard_count=1,
  )
  it = iter(make_prompt_dataset(_source(), TOK, **kw))
  _take(it, 4)
  state = json.loads(json.dumps(iterator_state(it)))
  expected = _take(it, 4)
  resumed = restore_iterator(iter(make_prompt_dataset(_source(), TOK, **kw)), state)
  _assert_same_batches(_take(resumed, 4), expected)


# ------------------------------------------------------------------------------
# Checkpointing.
# ------------------------------------------------------------------------------


def test_sft_checkpoint_resume_in_process(arithmetic_builder):
  source = arithmetic_builder.as_data_source("train")
  kw = dict(seq_len=128, batch_size=4, seed=11, shard_index=0, shard_count=1)
  it = iter(make_sft_dataset(source, TOK, **kw))
  _take(it, 20)  # Crosses the epoch boundary (16 batches per epoch).
  state = iterator_state(it)
  assert json.loads(json.dumps(state)) == state
  expected = _take(it, 6)
  resumed = restore_iterator(
    iter(make_sft_dataset(source, TOK, **kw)), json.loads(json.dumps(state))
  )
  _assert_same_batches(_take(resumed, 6), expected)
  # Restoring rewinds an iterator that has moved on, too.
  _take(it, 3)
  restore_iterator(it, state)
  _assert_same_batches(_take(it, 6), expected)


def test_sft_checkpoint_resume_with_workers(arithmetic_builder):
  source = arithmetic_builder.as_data_source("train")
  kw = dict(seq_len=128, batch_size=4, seed=11, shard_index=0, shard_count=1)
  reference = _take(iter(make_sft_dataset(source, TOK, **kw)), 9)
  ds = make_sft_dataset(source, TOK, worker_count=2, **kw)
  it = iter(ds)
  try:
    first = _take(it, 5)
    state = json.loads(json.dumps(iterator_state(it)))
    expected = _take(it, 4)
  finally:
    it.close()
  # Workers produce the same batches as the in-process pipeline, in the same order.
  _assert_same_batches(first + expected, reference)
  assert all(type(v) is np.ndarray for v in first[0].values())
  resumed = restore_iterator(iter(ds), state)
  try:
    _assert_same_batches(_take(resumed, 4), expected)
  finally:
    resumed.close()


def test_state_encoding_round_trips():
  state = {"a": b"\x00\xff", "b": (1, 2), 3: [np.int64(4), np.arange(3)], "__x": None}
  encoded = iterator_checkpoint._encode_state(state)
  decoded = iterator_checkpoint._decode_state(json.loads(json.dumps(encoded)))
  assert decoded.keys() == state.keys()
  assert decoded["a"] == b"\x00\xff" and decoded["b"] == (1, 2) and decoded["__x"] is None
  assert decoded[3][0] == 4
  np.testing.assert_array_equal(decoded[3][1], np.arange(3))


def test_restore_iterator_errors():
  it = iter(
    make_sft_dataset(_source(), TOK, seq_len=32, batch_size=2, seed=0, shard_index=0, shard_count=1)
  )
  with pytest.raises(ValueError, match="iterator_state"):
    restore_iterator(it, {"next_index": 3})
  with pytest.raises(TypeError, match="get_state"):
    iterator_state(iter([1, 2]))


# ------------------------------------------------------------------------------
# Global batches.
# ------------------------------------------------------------------------------


def test_to_global_batch_on_host_devices():
  devices = jax.devices()
  assert len(devices) == 8, "tests/conftest.py forces 8 host CPU devices"
  batch = next(
    iter(
      make_prompt_dataset(
        _source(), TOK, batch_size=8, max_prompt_len=16, shard_index=0, shard_count=1, truncate=True
      )
    )
  )
  mesh = Mesh(np.array(devices).reshape(4, 2), ("data", "model"))
  out = to_global_batch(batch, mesh, P("data", None))
  assert isinstance(out["prompts"], jax.Array)
  assert out["prompts"].shape == (8, 16) and out["prompt_lengths"].shape == (8,)
  assert out["prompts"].sharding.spec == P("data", None)
  assert out["prompt_lengths"].sharding.spec == P("data")
  # Each "data" shard holds 2 rows, replicated across "model".
  shard_rows = {s.data.shape[0] for s in out["prompts"].addressable_shards}
  assert shard_rows == {2}
  np.testing.assert_array_equal(np.asarray(out["prompts"]), batch["prompts"])
  assert out["answer"] is batch["answer"]  # Strings stay host-local.

  sft = next(
    iter(
      make_sft_dataset(
        _source(), TOK, seq_len=32, batch_size=8, seed=0, shard_index=0, shard_count=1
      )
    )
  )
  mesh1 = Mesh(np.array(devices), ("data",))
  specs = {k: P("data") for k in sft}
  g = to_global_batch(sft, mesh1, specs)
  for k in KEYS:
    assert g[k].shape == (8, 32) and g[k].dtype == np.int32
    assert len({s.device for s in g[k].addressable_shards}) == 8
    np.testing.assert_array_equal(np.asarray(g[k]), sft[k])
  with pytest.raises(KeyError, match="no PartitionSpec for"):
    to_global_batch(sft, mesh1, {"loss_mask": P("data")})


def test_prompt_dataset_with_workers_matches_in_process(arithmetic_builder):
  source = arithmetic_builder.as_data_source("test")
  kw = dict(batch_size=3, max_prompt_len=40, shard_index=0, shard_count=1)
  reference = list(make_prompt_dataset(source, TOK, **kw))
  it = iter(make_prompt_dataset(source, TOK, worker_count=2, **kw))
  try:
    batches = list(it)
  finally:
    it.close()
  assert [b["prompts"].shape[0] for b in batches] == [3, 3, 3, 3, 3, 1]
  _assert_same_batches(batches, reference)
  assert isinstance(batches[0]["answer"][0], str)


def test_hf_tokenizer_without_bos():
  from tokenizers import Tokenizer as RawTokenizer
  from tokenizers import models, pre_tokenizers

  from reasoning_jax.tokenizers import HFTokenizer

  words = ["<pad>", "<eos>", "[UNK]", "what", "is", "2", "+", "3", "?", "answer", ":", "5"]
  raw = RawTokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
  raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
  raw.add_special_tokens(["<pad>", "<eos>"])
  tok = HFTokenizer(raw, eos_token="<eos>", pad_token="<pad>")
  src = [{"question": "what is 2 + 3 ?", "solution": "answer : 5"}]
  batch = next(
    iter(make_sft_dataset(src, tok, seq_len=12, batch_size=1, seed=0, shard_index=0, shard_count=1))
  )
  np.testing.assert_array_equal(batch["tokens"][0], [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 0, 0])
  np.testing.assert_array_equal(batch["loss_mask"][0], [0] * 6 + [1] * 4 + [0, 0])
  np.testing.assert_array_equal(batch["segment_ids"][0], [1] * 10 + [0, 0])
  with pytest.raises(ValueError, match="add_bos=True"):
    make_sft_dataset(
      src, tok, seq_len=12, batch_size=1, seed=0, shard_index=0, shard_count=1, add_bos=True
    )
