"""Loading long-context QA files a user has locally (RULER-HotpotQA-style JSONL).

Each line is a JSON object with the question in `input`, the long document in `context`, the
gold answers in `answers` (a list, or one string) or `outputs`, and an id in `_id` or `index`
(else the line number). `load_longqa_jsonl` normalizes them to
`{"id", "question", "document", "answers"}`, the shape the multi-hop task
(`multihop_task`) also has, so an agent evaluated on synthetic documents reads these too.
Nothing is downloaded.
"""

from __future__ import annotations

from typing import Any, Optional

from reasoning_jax.data import parsing

__all__ = ["load_longqa_jsonl"]


def _answers(record: dict[str, Any], where: str) -> list[str]:
  key = "answers" if "answers" in record else "outputs" if "outputs" in record else None
  if key is None:
    raise ValueError(f"{where}: missing field 'answers' (or 'outputs'); present: {sorted(record)}")
  value = record[key]
  if isinstance(value, str):
    value = [value]
  if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
    raise ValueError(f"{where}: field {key!r} must be a string or a list of strings, got {value!r}")
  answers = [a.strip() for a in value if a.strip()]
  if not answers:
    raise ValueError(f"{where}: field {key!r} holds no non-empty answer: {value!r}")
  return answers


def load_longqa_jsonl(path: parsing.PathLike, *, limit: Optional[int] = None) -> list[dict]:
  """Reads a RULER-HotpotQA-style JSONL file into normalized records.

  Args:
    path: The JSONL file (blank lines are skipped).
    limit: Read at most this many records (None: all).

  Returns:
    Dicts with str `id` (`_id`, else `index`, else the line number), `question` (`input`),
    `document` (`context`) and `answers` (a non-empty list of str), in file order.

  Raises:
    FileNotFoundError: If `path` does not exist.
    ValueError: Naming the file, the line and the field, on a line that is not a JSON
      object, a missing or non-string `input`/`context`, or missing or empty answers.
  """
  if limit is not None and limit < 0:
    raise ValueError(f"limit must be >= 0 or None, got {limit}")
  out: list[dict] = []
  if limit == 0:
    return out
  for lineno, record in parsing.read_jsonl(path):
    where = f"{path}:{lineno}"
    for key in ("input", "context"):
      if key not in record:
        raise ValueError(f"{where}: missing field {key!r}; present: {sorted(record)}")
      if not isinstance(record[key], str):
        raise ValueError(
          f"{where}: field {key!r} must be a string, got {type(record[key]).__name__}"
        )
    if not record["context"].strip():
      raise ValueError(f"{where}: field 'context' is empty")
    rid = record.get("_id", record.get("index", lineno))
    out.append(
      {
        "id": str(rid),
        "question": record["input"].strip(),
        "document": record["context"],
        "answers": _answers(record, where),
      }
    )
    if limit is not None and len(out) >= limit:
      break
  return out
