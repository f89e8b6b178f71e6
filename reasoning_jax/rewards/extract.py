"""Final-answer extraction from free-form model completions.

Every extractor takes an arbitrary string (model output) and returns the answer
substring, stripped of surrounding whitespace, or `None` when there is no
non-empty answer in that format. They never raise on any input (a non-`str`
argument also gives `None`), never evaluate anything, and run in time linear in
`len(text)`.

Formats:

* **Boxed** (MATH, "Measuring Mathematical Problem Solving With the MATH
  Dataset", Hendrycks et al., arXiv:2103.03874): the final answer is written as
  `\\boxed{...}` (or `\\fbox{...}`), possibly with nested braces
  (`\\boxed{\\frac{1}{2}}`), or in the brace-less form `\\boxed 5`.
* **GSM8K** ("Training Verifiers to Solve Math Word Problems", Cobbe et al.,
  arXiv:2110.14168): the reference solutions end with a line `#### 72`.
* **Answer tag** (R1-style and TinyZero Countdown prompts): `<answer>...</answer>`.
* **Last number**: the last number-like token in the text, a common fallback.

Example:
  >>> extract_boxed(r"so $x = \\boxed{\\frac{1}{2}}$.")
  '\\\\frac{1}{2}'
  >>> extract_final_answer("We get 3 apples.\\n#### 3")
  '3'
"""

from __future__ import annotations

import re
from typing import Any, Optional

from reasoning_jax.rewards import _latex

__all__ = [
  "ANSWER_FORMATS",
  "extract_boxed",
  "extract_gsm8k_answer",
  "extract_answer_tag",
  "extract_last_number",
  "extract_final_answer",
]

# Accepted values of `extract_final_answer(fmt=...)`.
ANSWER_FORMATS: tuple[str, ...] = ("auto", "boxed", "gsm8k", "tag", "last_number")

ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"

# `\boxed` / `\fbox`, not a prefix of a longer command such as `\fboxsep`.
_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# Argument of the brace-less form `\boxed 5`: up to whitespace, `$`, a brace or
# the next command.
_BARE_ARG_RE = re.compile(r"[^\s${}\\]+")

# A number token: optional sign (only when not glued to a preceding word, so
# `3-4` gives `4`), digits with optional strict thousands groups, an optional
# decimal part, exponent and `/denominator`. ASCII digits only.
_LAST_NUMBER_RE = re.compile(
  r"(?<![\w.])"
  r"(?:[-+\u2212](?=[0-9.]))?"
  r"(?:(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+)"
  r"(?:[eE][-+]?[0-9]+)?"
  r"(?:/[0-9]+(?![0-9]|\.[0-9]))?",
  re.ASCII,
)


def extract_boxed(text: Any) -> Optional[str]:
  """Returns the content of the last balanced `\\boxed{...}` or `\\fbox{...}`.

  Occurrences are tried from the last one backwards; the first whose braces
  balance and whose content is non-empty wins. For nested boxes
  (`\\boxed{\\boxed{5}}`) the innermost, which starts last, is returned. Escaped
  braces `\\{`, `\\}` do not count towards the balance. The brace-less form
  `\\boxed 5` (MATH reference solutions contain it) returns the token up to the
  next whitespace, `$`, brace or backslash.

  Args:
    text: A model completion.

  Returns:
    The stripped box content, or None if there is no usable box.
  """
  if not isinstance(text, str):
    return None
  starts = [m.end() for m in _BOX_RE.finditer(text)]
  matches: Optional[dict[int, int]] = None
  n = len(text)
  for pos in reversed(starts):
    j = pos
    while j < n and text[j].isspace():
      j += 1
    if j < n and text[j] == "{":
      if matches is None:
        matches = _latex.brace_matches(text)
      close = matches.get(j)
      if close is None:
        continue
      content = text[j + 1 : close].strip()
    else:
      m = _BARE_ARG_RE.match(text, j)
      content = m.group(0) if m else ""
    if content:
      return content
  return None


def extract_gsm8k_answer(text: Any) -> Optional[str]:
  """Returns the rest of the line after the last `####` (GSM8K answer marker).

  Args:
    text: A model completion or a GSM8K reference solution.

  Returns:
    The stripped text between the last `####` and the next newline, or None if
    there is no `####` or nothing follows it on that line.
  """
  if not isinstance(text, str):
    return None
  idx = text.rfind("####")
  if idx < 0:
    return None
  line = text[idx + 4 :].split("\n", 1)[0].strip()
  return line or None


def extract_answer_tag(text: Any) -> Optional[str]:
  """Returns the content of the last well-formed `<answer>...</answer>` pair.

  The pair is the last `<answer>` that is followed by a `</answer>`, closed by
  the first `</answer>` after it, so the content never contains either tag.
  Tags are case-sensitive, as in TinyZero.

  Args:
    text: A model completion.

  Returns:
    The stripped tag content, or None if there is no pair or it is empty.
  """
  if not isinstance(text, str):
    return None
  last_close = text.rfind(ANSWER_CLOSE)
  if last_close < 0:
    return None
  start = text.rfind(ANSWER_OPEN, 0, last_close)
  if start < 0:
    return None
  start += len(ANSWER_OPEN)
  close = text.find(ANSWER_CLOSE, start)
  content = text[start:close].strip()
  return content or None


def extract_last_number(text: Any) -> Optional[str]:
  """Returns the last number-like token, e.g. `-1,234.5`, `.5`, `3/4`, `1e5`.

  The token is returned verbatim (thousands separators kept) for
  `reasoning_jax.rewards.numbers.parse_number` to interpret. A sign counts only
  when it is not glued to a preceding word or digit (`3-4` gives `4`), and a
  number glued to a preceding letter (`x2`, `H2O`) is ignored. Only ASCII digits
  are recognised.

  Args:
    text: A model completion.

  Returns:
    The last number token, or None if there is none.
  """
  if not isinstance(text, str):
    return None
  last = None
  for last in _LAST_NUMBER_RE.finditer(text):  # noqa: B007 (the last match is wanted)
    pass
  return last.group(0) if last is not None else None


_EXTRACTORS = {
  "boxed": extract_boxed,
  "tag": extract_answer_tag,
  "gsm8k": extract_gsm8k_answer,
  "last_number": extract_last_number,
}


def extract_final_answer(text: Any, fmt: str = "auto") -> Optional[str]:
  """Extracts the final answer in format `fmt`.

  Args:
    text: A model completion.
    fmt: One of `ANSWER_FORMATS`. `"auto"` tries, in order, `"boxed"`, `"tag"`,
      `"gsm8k"` (`####`) and `"last_number"`, returning the first hit.

  Returns:
    The extracted answer string, or None.

  Raises:
    ValueError: If `fmt` is not one of `ANSWER_FORMATS`.
  """
  if fmt not in ANSWER_FORMATS:
    raise ValueError(f"fmt={fmt!r} is not a known answer format; choose one of {ANSWER_FORMATS}")
  if fmt != "auto":
    return _EXTRACTORS[fmt](text)
  for name in ("boxed", "tag", "gsm8k", "last_number"):
    answer = _EXTRACTORS[name](text)
    if answer is not None:
      return answer
  return None
