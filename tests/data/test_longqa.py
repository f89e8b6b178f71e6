"""Tests for `reasoning_jax.data.longqa` (RULER-HotpotQA-style JSONL loading)."""

from __future__ import annotations

import json

import pytest

from reasoning_jax.data.longqa import load_longqa_jsonl


def _write(tmp_path, lines) -> str:
  path = tmp_path / "qa.jsonl"
  path.write_text(
    "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8"
  )
  return str(path)


def test_normalizes_records(tmp_path):
  path = _write(
    tmp_path,
    [
      {"_id": "a1", "input": " Who ? ", "context": "Doc one .", "answers": ["Bob", " "]},
      {"index": 7, "input": "Where ?", "context": "Doc two .", "outputs": ["Lima", "lima"]},
      "",
      {"input": "When ?", "context": "Doc three .", "answers": "1999"},
    ],
  )
  records = load_longqa_jsonl(path)
  assert records == [
    {"id": "a1", "question": "Who ?", "document": "Doc one .", "answers": ["Bob"]},
    {"id": "7", "question": "Where ?", "document": "Doc two .", "answers": ["Lima", "lima"]},
    {"id": "4", "question": "When ?", "document": "Doc three .", "answers": ["1999"]},
  ]
  assert load_longqa_jsonl(path, limit=2) == records[:2]
  assert load_longqa_jsonl(path, limit=0) == []


@pytest.mark.parametrize(
  "bad, match",
  [
    ("{not json", "malformed JSON"),
    ({"input": "q", "answers": ["a"]}, "missing field 'context'"),
    ({"context": "d", "answers": ["a"]}, "missing field 'input'"),
    ({"input": "q", "context": "d"}, "missing field 'answers'"),
    ({"input": "q", "context": "d", "answers": []}, "no non-empty answer"),
    ({"input": "q", "context": "d", "outputs": [""]}, "no non-empty answer"),
    ({"input": "q", "context": "d", "answers": [1]}, "list of strings"),
    ({"input": "q", "context": "  ", "answers": ["a"]}, "'context' is empty"),
    ({"input": 3, "context": "d", "answers": ["a"]}, "'input' must be a string"),
    ([1, 2], "expected a JSON object"),
  ],
)
def test_errors_name_file_line_and_field(tmp_path, bad, match):
  good = {"input": "q", "context": "d", "answers": ["a"]}
  path = _write(tmp_path, [good, bad])
  with pytest.raises(ValueError, match=match) as info:
    load_longqa_jsonl(path)
  assert f"{path}:2" in str(info.value)


def test_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError):
    load_longqa_jsonl(tmp_path / "absent.jsonl")
