"""Invariants of the synthetic recall recipes in reasoning_jax.data.recall."""

from __future__ import annotations

import numpy as np
import pytest

from reasoning_jax.data import recall
from reasoning_jax.data.recall import IGNORE


# -- MQAR (Zoology) -------------------------------------------------------------------------


def test_mqar_layout_labels_and_ranges():
  v, t, kv = 128, 32, 4
  d = recall.mqar(200, vocab_size=v, seq_len=t, num_kv_pairs=kv, seed=3)
  assert d.inputs.shape == d.targets.shape == d.eval_mask.shape == (200, t)
  assert d.inputs.dtype == np.int32 and d.targets.dtype == np.int32
  assert d.inputs.min() >= 0 and d.inputs.max() < v
  keys, values = d.inputs[:, 0 : 2 * kv : 2], d.inputs[:, 1 : 2 * kv : 2]
  assert keys.min() >= 1 and keys.max() < v // 2
  assert values.min() >= v // 2 and values.max() < v
  for row in range(200):
    assert len(set(keys[row])) == kv and len(set(values[row])) == kv
    labelled = np.nonzero(d.targets[row] != IGNORE)[0]
    assert len(labelled) == kv
    # Labels only in the query region, at even offsets, on the key; label = that key's value.
    assert np.all(labelled >= 2 * kv) and np.all((labelled - 2 * kv) % 2 == 0)
    mapping = dict(zip(keys[row], values[row]))
    for pos in labelled:
      assert d.inputs[row, pos] in mapping
      assert d.targets[row, pos] == mapping[d.inputs[row, pos]]
    assert sorted(d.inputs[row, labelled]) == sorted(keys[row])  # Each key queried once.
  np.testing.assert_array_equal(d.eval_mask, d.targets != IGNORE)
  assert np.all(d.targets[:, : 2 * kv] == IGNORE)


def test_mqar_without_random_non_queries_is_zero_filled():
  d = recall.mqar(50, vocab_size=64, seq_len=24, num_kv_pairs=3, random_non_queries=False, seed=0)
  query = d.inputs[:, 6:]
  assert np.all((query == 0) == (d.targets[:, 6:] == IGNORE))


def test_mqar_random_non_queries_cover_the_vocabulary():
  d = recall.mqar(500, vocab_size=64, seq_len=32, num_kv_pairs=2, seed=1)
  filler = d.inputs[:, 4:][d.targets[:, 4:] == IGNORE]
  assert filler.min() == 0 and filler.max() == 63  # Uniform over [0, V), incl. 0.


def test_mqar_power_law_favours_small_gaps():
  kv, t = 1, 64
  d = recall.mqar(4000, vocab_size=128, seq_len=t, num_kv_pairs=kv, seed=0)
  gaps = (np.argmax(d.targets != IGNORE, axis=1) - 2 * kv) // 2
  space = (t - 2 * kv) // 2
  p = 0.01 * np.arange(1, space + 1) ** (0.01 - 1)
  p /= p.sum()
  assert abs(np.mean(gaps == 0) - p[0]) < 0.03
  assert np.mean(gaps == 0) > np.mean(gaps == space - 1) * 10


def test_mqar_gap_is_uniform_with_power_a_one():
  d = recall.mqar(6000, vocab_size=128, seq_len=16, num_kv_pairs=1, power_a=1.0, seed=0)
  gaps = (np.argmax(d.targets != IGNORE, axis=1) - 2) // 2
  counts = np.bincount(gaps, minlength=7)
  assert counts.shape == (7,) and np.all(np.abs(counts / 6000 - 1 / 7) < 0.03)


def test_mqar_deterministic_by_seed():
  a = recall.mqar(20, vocab_size=128, seq_len=32, num_kv_pairs=4, seed=5)
  b = recall.mqar(20, vocab_size=128, seq_len=32, num_kv_pairs=4, seed=5)
  c = recall.mqar(20, vocab_size=128, seq_len=32, num_kv_pairs=4, seed=6)
  np.testing.assert_array_equal(a.inputs, b.inputs)
  np.testing.assert_array_equal(a.targets, b.targets)
  assert not np.array_equal(a.inputs, c.inputs)


def test_mqar_mixture_splits_evenly_over_kv_and_shuffles():
  v, t = 128, 32
  d = recall.mqar(301, vocab_size=v, seq_len=t, num_kv_pairs=(2, 4, 8), seed=7)
  assert d.inputs.shape == (301, t)
  labelled = (d.targets != IGNORE).sum(axis=1)
  counts = {kv: int(np.sum(labelled == kv)) for kv in (2, 4, 8)}
  assert counts == {2: 101, 4: 100, 8: 100}  # The first count takes the remainder.
  # Each row is a valid MQAR row of its own kv: its first 2 kv tokens are the pairs and every
  # label is the value paired with the key at that position.
  for row in range(301):
    kv = int(labelled[row])
    mapping = dict(zip(d.inputs[row, 0 : 2 * kv : 2], d.inputs[row, 1 : 2 * kv : 2]))
    for pos in np.nonzero(d.targets[row] != IGNORE)[0]:
      assert pos >= 2 * kv and d.targets[row, pos] == mapping[d.inputs[row, pos]]
  # Shuffled: the three kinds are interleaved, not in blocks.
  assert len(np.unique(labelled[:30])) == 3
  again = recall.mqar(301, vocab_size=v, seq_len=t, num_kv_pairs=(2, 4, 8), seed=7)
  np.testing.assert_array_equal(d.inputs, again.inputs)
  # A one-count mixture draws what a plain call with its own seed would, in shuffled order.
  one = recall.mqar(5, vocab_size=v, seq_len=t, num_kv_pairs=[4], seed=1)
  assert one.inputs.shape == (5, t) and np.all((one.targets != IGNORE).sum(axis=1) == 4)
  # Fewer examples than counts: the last counts get none.
  tiny = recall.mqar(1, vocab_size=v, seq_len=t, num_kv_pairs=(2, 4, 8), seed=0)
  assert int((tiny.targets != IGNORE).sum()) == 2


def test_mqar_mixture_errors_name_the_argument():
  with pytest.raises(ValueError, match="non-empty sequence"):
    recall.mqar(4, vocab_size=128, seq_len=32, num_kv_pairs=())
  with pytest.raises(ValueError, match="num_kv_pairs must be an int"):
    recall.mqar(4, vocab_size=128, seq_len=32, num_kv_pairs=(4, 0))
  with pytest.raises(ValueError, match="num_kv_pairs must satisfy"):
    recall.mqar(4, vocab_size=128, seq_len=32, num_kv_pairs=(4, 9))


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(seq_len=33), "seq_len must be even"),
    (dict(vocab_size=32, seq_len=32), "vocab_size must be > seq_len"),
    (dict(seq_len=32, num_kv_pairs=9), "num_kv_pairs must satisfy 4 \\* num_kv_pairs"),
    (dict(power_a=0.0), "power_a"),
    (dict(num_kv_pairs=0), "num_kv_pairs must be an int"),
  ],
)
def test_mqar_errors_name_the_argument(kwargs, match):
  base = dict(vocab_size=128, seq_len=32, num_kv_pairs=4)
  base.update(kwargs)
  with pytest.raises(ValueError, match=match):
    recall.mqar(4, **base)


# -- Induction head (H3) ---------------------------------------------------------------------


def test_induction_head_layout():
  v, t = 20, 30
  d = recall.induction_head(300, vocab_size=v, seq_len=t, num_triggers=3, seed=0)
  prefix = v - 2
  assert d.inputs.shape == (300, t + 1)
  assert d.inputs.max() <= prefix and d.inputs.min() >= 0
  assert not np.any(d.inputs == v - 1)  # The no-op token is never generated.
  np.testing.assert_array_equal(d.inputs[:, 1:], d.targets[:, :-1])  # Next-token targets.
  assert np.all(d.inputs[:, -1] == prefix)  # The query "=>" ends the input.
  assert np.all(d.eval_mask[:, -1]) and d.eval_mask.sum() == 300
  n_triggers = []
  for row in range(300):
    x, answer = d.inputs[row], d.targets[row, -1]
    trig = np.nonzero(x[:-1] == prefix)[0]
    assert 1 <= len(trig) <= 3 and trig.max() < t - 2
    assert np.all(x[trig + 1] == answer)  # Every trigger is followed by the copied token.
    assert answer < prefix
    n_triggers.append(len(trig))
  assert 0.4 < np.mean(np.array(n_triggers) == 1) < 0.85  # p = 0.5 single, else up to 3.


def test_induction_head_unique_and_deterministic():
  a = recall.induction_head(200, vocab_size=6, seq_len=8, seed=1)
  b = recall.induction_head(200, vocab_size=6, seq_len=8, seed=1)
  np.testing.assert_array_equal(a.inputs, b.inputs)
  assert len({row.tobytes() for row in np.concatenate([a.inputs, a.targets[:, -1:]], 1)}) == 200
  c = recall.induction_head(200, vocab_size=6, seq_len=8, seed=2)
  assert not np.array_equal(a.inputs, c.inputs)


def test_induction_head_longer_copy():
  d = recall.induction_head(50, vocab_size=12, seq_len=20, induction_len=2, seed=0)
  assert d.inputs.shape == (50, 22) and d.eval_mask[:, -2:].all() and d.eval_mask.sum() == 100
  for row in range(50):
    x = np.concatenate([d.inputs[row], d.targets[row, -1:]])
    first = int(np.argmax(x == 10))
    np.testing.assert_array_equal(x[first + 1 : first + 3], x[-2:])


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(seq_len=2), "seq_len must be >= induction_len"),
    (dict(induction_len=0), "induction_len"),
    (dict(num_triggers=0), "num_triggers"),
    (dict(vocab_size=3, seq_len=4), "vocab_size"),
  ],
)
def test_induction_head_errors_name_the_argument(kwargs, match):
  with pytest.raises(ValueError, match=match):
    recall.induction_head(4, **kwargs)


def test_induction_head_unique_impossible():
  with pytest.raises(ValueError, match="unique=True"):
    recall.induction_head(100, vocab_size=4, seq_len=3, seed=0)


# -- Repeated random tokens (Olsson et al.) --------------------------------------------------


def test_repeated_tokens_layout():
  d = recall.repeated_tokens(40, vocab_size=50, half_len=8, seed=0)
  assert d.inputs.shape == (40, 16)
  np.testing.assert_array_equal(d.inputs[:, :8], d.inputs[:, 8:])
  np.testing.assert_array_equal(d.targets[:, :-1], d.inputs[:, 1:])
  assert np.all(d.targets[:, -1] == IGNORE)
  np.testing.assert_array_equal(np.nonzero(d.eval_mask[0])[0], np.arange(8, 15))
  # At every scored position the target is the token after the first copy of the input.
  rows, cols = np.nonzero(d.eval_mask)
  np.testing.assert_array_equal(d.targets[rows, cols], d.inputs[rows, cols - 8 + 1])
  np.testing.assert_array_equal(
    recall.repeated_tokens(40, vocab_size=50, half_len=8, seed=0).inputs, d.inputs
  )


def test_repeated_tokens_variable_period():
  d = recall.repeated_tokens(300, vocab_size=1000, half_len=10, min_half_len=4, seed=0)
  assert d.inputs.shape == (300, 20)
  periods = []
  for row in range(300):
    scored = np.nonzero(d.eval_mask[row])[0]
    n = scored[0]
    periods.append(n)
    np.testing.assert_array_equal(scored, np.arange(n, 2 * n - 1))
    np.testing.assert_array_equal(d.inputs[row, :n], d.inputs[row, n : 2 * n])
    np.testing.assert_array_equal(d.targets[row, scored], d.inputs[row, scored - n + 1])
  assert min(periods) == 4 and max(periods) == 10


def test_repeated_tokens_errors():
  with pytest.raises(ValueError, match="half_len"):
    recall.repeated_tokens(4, half_len=1)
  with pytest.raises(ValueError, match="min_half_len must be <= half_len"):
    recall.repeated_tokens(4, half_len=4, min_half_len=5)


def test_make_task_unknown():
  with pytest.raises(ValueError, match="task='nope'"):
    recall.make_task("nope", 4, seed=0)


# -- grain loader ----------------------------------------------------------------------------


def test_loader_batches_and_reshuffles_each_epoch():
  d = recall.repeated_tokens(12, vocab_size=1000, half_len=4, seed=0)
  ds = recall.make_recall_loader(d, batch_size=4, seed=0, num_epochs=2)
  batches = list(ds)
  assert len(batches) == 6
  assert batches[0]["inputs"].shape == (4, 8) and batches[0]["eval_mask"].dtype == bool
  rows = {r.tobytes(): i for i, r in enumerate(d.inputs)}
  order = [rows[r.tobytes()] for b in batches for r in b["inputs"]]
  assert sorted(order[:12]) == list(range(12)) and sorted(order[12:]) == list(range(12))
  assert order[:12] != order[12:]  # A new order in epoch 2.
  again = [b["inputs"] for b in recall.make_recall_loader(d, batch_size=4, seed=0, num_epochs=2)]
  for x, y in zip(again, batches):
    np.testing.assert_array_equal(x, y["inputs"])


def test_loader_errors():
  d = recall.repeated_tokens(4, half_len=2, seed=0)
  with pytest.raises(ValueError, match="batch_size"):
    recall.make_recall_loader(d, batch_size=0, seed=0)
  with pytest.raises(ValueError, match="batch_size=8 exceeds"):
    recall.make_recall_loader(d, batch_size=8, seed=0, num_epochs=1)
  with pytest.raises(TypeError, match="RecallData"):
    recall.make_recall_loader([1, 2], batch_size=1, seed=0)
