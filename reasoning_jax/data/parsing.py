"""Readers and answer extraction for GSM8K- and MATH-style JSONL files.

* GSM8K: each line has `question` and `answer`; the answer text is a rationale
  with calculator annotations (`<<48/2=24>>`) that ends with `#### 72`.
  `gsm8k_final_answer` returns the text after the last `####` without commas.
* MATH: each line has `problem` and `solution` (optionally `level`, `type`); the
  final answer is the content of the last top-level `\\boxed{...}` (or
  `\\fbox{...}`), extracted with balanced braces by `extract_boxed_answer`.
  MATH-500 / PRM800K lines also carry `answer` (used as given), `subject` (for `type`) and
  an integer `level`; `math_example` reads both layouts.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Iterator, Optional, Union

__all__ = [
  "read_jsonl",
  "gsm8k_final_answer",
  "strip_calculator_annotations",
  "extract_boxed_answer",
  "math_example",
]

PathLike = Union[str, "os.PathLike[str]"]

_CALC_RE = re.compile(r"<<[^<>]*>>")
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def read_jsonl(path: PathLike, required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict]]:
  """Yields `(line_number, record)` for each non-blank line of a JSONL file.

  Args:
    path: The file.
    required: Keys every record must have.

  Raises:
    FileNotFoundError: If `path` does not exist.
    ValueError: On malformed JSON, a non-object line or a missing key (the
      message names the file and line).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"JSONL file not found: {path}")
  with open(path, encoding="utf-8") as f:
    for lineno, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{lineno}: malformed JSON: {e}") from e
      if not isinstance(record, dict):
        raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
      missing = [k for k in required if k not in record]
      if missing:
        raise ValueError(f"{path}:{lineno}: missing key(s) {missing}; present: {sorted(record)}")
      yield lineno, record


def strip_calculator_annotations(text: str) -> str:
  """Removes GSM8K calculator annotations: `48/2 = <<48/2=24>>24` -> `48/2 = 24`."""
  return _CALC_RE.sub("", text)


def gsm8k_final_answer(text: str) -> Optional[str]:
  """The final answer of a GSM8K answer text: what follows the last `####`.

  Commas and surrounding whitespace are removed (`#### 1,200` -> `1200`).

  Args:
    text: The GSM8K `answer` field.

  Returns:
    The answer string, or None if the text has no `####` or nothing after it.
  """
  if "####" not in text:
    return None
  answer = text.rsplit("####", 1)[1].strip().replace(",", "")
  return answer or None


def _braced(text: str, start: int) -> Optional[tuple[str, int]]:
  """Content of the `{...}` group opening at `text[start]` and the index after it."""
  assert text[start] == "{"
  depth, i = 0, start
  while i < len(text):
    c = text[i]
    if c == "\\":  # `\{` and `\}` are literal braces; skip the escaped character.
      i += 2
      continue
    if c == "{":
      depth += 1
    elif c == "}":
      depth -= 1
      if depth == 0:
        return text[start + 1 : i], i + 1
    i += 1
  return None


def extract_boxed_answer(text: str) -> Optional[str]:
  """Content of the last top-level `\\boxed{...}` or `\\fbox{...}` in `text`.

  Braces are matched (escaped `\\{`/`\\}` do not count), so
  `\\boxed{\\frac{1}{2}}` gives `\\frac{1}{2}`. The unbraced form `\\boxed 5`
  gives the next whitespace/`$`-delimited token. A `\\boxed` nested inside an
  earlier one is not top-level and is skipped.

  Args:
    text: A MATH-style solution.

  Returns:
    The stripped content, or None if there is no complete boxed expression.
  """
  last, covered_until = None, -1
  for m in _BOXED_RE.finditer(text):
    if m.start() < covered_until:
      continue
    i = m.end()
    while i < len(text) and text[i] == " ":
      i += 1
    if i < len(text) and text[i] == "{":
      group = _braced(text, i)
      if group is None:
        continue
      content, end = group
    elif i > m.end():
      tok = re.match(r"[^\s$]+", text[i:])
      if tok is None:
        continue
      content, end = tok.group(0), i + tok.end()
    else:
      continue
    last, covered_until = content.strip(), end
  return last


def jsonl_field(record: dict, key: str, default: Any = "") -> Any:
  """`record[key]` as stored, or `default` when absent or null."""
  value = record.get(key)
  return default if value is None else value


def _level(value: Any) -> str:
  """MATH's `"Level 3"` as stored; MATH-500's integer `3` as `"Level 3"`."""
  if isinstance(value, int) and not isinstance(value, bool):
    return f"Level {value}"
  return str(value)


def math_example(record: dict) -> dict[str, str]:
  """`question`, `answer`, `solution`, `level`, `type` of a MATH or MATH-500 record.

  The answer is the record's `answer` field when it has a non-empty one (MATH-500, PRM800K;
  a number is written with `str`), else the last top-level `\\boxed{}` of `solution` (the
  original MATH release). A solution without a box then gets the line
  `The final answer is $\\boxed{answer}$.` appended, so the SFT target always ends with
  the answer in the form the `boxed` verifier extracts.

  Args:
    record: One JSONL object with str `problem` and `solution`.

  Returns:
    The example's text fields (`level`, `type` are "" when absent).

  Raises:
    ValueError: A field of the wrong type, or neither an `answer` nor a `\\boxed{}`
      answer (the caller adds the file and line).
  """
  for key in ("problem", "solution"):
    if not isinstance(record[key], str):
      raise ValueError(f"{key!r} must be a string, got {type(record[key]).__name__}")
  solution = record["solution"].strip()
  boxed = extract_boxed_answer(solution)
  given = jsonl_field(record, "answer")
  if isinstance(given, bool) or not isinstance(given, (str, int, float)):
    raise ValueError(f"'answer' must be a string or a number, got {type(given).__name__}")
  answer = str(given).strip()
  if not answer:
    if boxed is None:
      raise ValueError(
        "the 'solution' has no complete \\boxed{...} answer and the record has no 'answer' "
        "field; add one of them"
      )
    answer = boxed
  elif boxed is None:
    solution = f"{solution}\nThe final answer is $\\boxed{{{answer}}}$."
  return {
    "question": record["problem"].strip(),
    "answer": answer,
    "solution": solution,
    "level": _level(jsonl_field(record, "level")),
    "type": str(jsonl_field(record, "type") or jsonl_field(record, "subject")),
  }
