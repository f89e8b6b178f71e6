"""reasoning_jax.evaluate.monotone_attack.task: the frequency-summary task's invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reasoning_jax.evaluate.monotone_attack import task as T

KW = dict(
  num_filler=5,
  num_content=6,
  source_len=30,
  num_topics=3,
  summary_len=2,
  min_count=2,
  max_gap=6,
  min_filler=8,
)


def test_counts_summary_and_layout():
  n = 300
  d = T.frequency_summary_task(n, seed=3, **KW)
  vocab, filler0, content0 = T.task_vocab(KW["num_filler"], KW["num_content"])
  summary0 = content0 + KW["num_content"]
  L, k = KW["source_len"], KW["summary_len"]
  assert d["inputs"].shape == d["targets"].shape == (n, L + k + 1)
  assert d["inputs"].max() < vocab
  for i in range(n):
    src, counts, topics = d["inputs"][i, :L], d["counts"][i], d["topics"][i]
    assert np.all(src >= filler0) and np.all(src < summary0)
    # Every topic occurs exactly counts[r] times; no other content token occurs.
    present = np.unique(src[src >= content0]) - content0
    assert sorted(present) == sorted(topics)
    for r in range(KW["num_topics"]):
      assert (src == content0 + topics[r]).sum() == counts[r]
    gaps = -np.diff(counts)
    assert counts[-1] == KW["min_count"] and np.all((gaps >= 1) & (gaps <= KW["max_gap"]))
    assert (src < content0).sum() >= KW["min_filler"]
    # Summary: the top-k topics, most frequent first, as one of two synonyms; then EOS.
    assert d["inputs"][i, L] == T.SEP and d["targets"][i, -1] == T.EOS
    summary = d["targets"][i, L : L + k]
    np.testing.assert_array_equal((summary - summary0) // 2, topics[:k])
    np.testing.assert_array_equal(np.abs(d["alt_targets"][i, L : L + k] - summary), 1)
    np.testing.assert_array_equal((d["alt_targets"][i, L : L + k] - summary0) // 2, topics[:k])
    np.testing.assert_array_equal(d["inputs"][i, L + 1 :], summary)  # Teacher forcing.
    assert np.all(d["targets"][i, :L] == T.IGNORE)
    # Margin: the smallest gap that decides the summary (ranks 0..k-1 vs the next).
    assert d["margin"][i] == min(counts[r] - counts[r + 1] for r in range(k))
  np.testing.assert_array_equal(d["source_mask"][:, :L], True)
  assert not d["source_mask"][:, L:].any()
  np.testing.assert_array_equal(d["filler_mask"], d["source_mask"] & (d["inputs"] < content0))
  # Both synonyms and a spread of margins occur (the attack is graded).
  assert set(np.unique(d["targets"][:, L] - summary0) % 2) == {0, 1}
  assert d["margin"].min() == 1 and d["margin"].max() >= 5


def test_deterministic_and_seed_dependent():
  a = T.frequency_summary_task(20, seed=1, **KW)
  b = T.frequency_summary_task(20, seed=1, **KW)
  c = T.frequency_summary_task(20, seed=2, **KW)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert not np.array_equal(a["inputs"], c["inputs"])


def test_margin_when_the_summary_lists_every_topic():
  d = T.frequency_summary_task(50, seed=0, **{**KW, "summary_len": 3})
  # Past the last topic the rival count is 0, so the last gap is the last count itself.
  want = np.minimum(np.min(-np.diff(d["counts"], axis=1), axis=1), d["counts"][:, -1])
  np.testing.assert_array_equal(d["margin"], want)


def test_flips_to_tie_and_loss_floor():
  np.testing.assert_array_equal(T.flips_to_tie(np.array([1, 2, 3, 10, 11])), [1, 1, 2, 5, 6])
  assert T.bayes_loss_floor(2) == pytest.approx(2 * math.log(2) / 3)


@pytest.mark.parametrize(
  "change, field",
  [
    (dict(num_topics=7), "num_topics"),
    (dict(summary_len=4), "summary_len"),
    (dict(source_len=12), "source_len"),
    (dict(max_gap=0), "max_gap"),
    (dict(num_filler=1), "num_filler"),
    (dict(min_count=1.5), "min_count"),
  ],
)
def test_bad_arguments_name_themselves(change, field):
  with pytest.raises(ValueError, match=field):
    T.frequency_summary_task(4, seed=0, **{**KW, **change})
