"""Linear-time LaTeX brace helpers shared by the answer extractors and parsers.

Everything here is plain string scanning: no regular expression with nested
quantifiers, no evaluation. A backslash escapes the next character, so `\\{` and
`\\}` are literal braces that never open or close a group.
"""

from __future__ import annotations

import re
from typing import Iterable

# Commands whose argument is text or a font change; `\text{5}` reads as `5`.
TEXT_COMMANDS: tuple[str, ...] = (
  "text",
  "textbf",
  "textit",
  "textrm",
  "textnormal",
  "textsf",
  "texttt",
  "mbox",
  "mathrm",
  "mathbf",
  "mathit",
  "mathsf",
  "mathtt",
  "mathnormal",
  "operatorname",
  "boldsymbol",
)


def brace_matches(text: str) -> dict[int, int]:
  """Maps the index of every balanced `{` in `text` to the index of its `}`.

  Unmatched braces are simply absent from the mapping. One left-to-right pass.

  Args:
    text: Any string.

  Returns:
    `{open_index: close_index}` for each balanced group.
  """
  matches: dict[int, int] = {}
  stack: list[int] = []
  i, n = 0, len(text)
  while i < n:
    c = text[i]
    if c == "\\":
      i += 2
      continue
    if c == "{":
      stack.append(i)
    elif c == "}" and stack:
      matches[stack.pop()] = i
    i += 1
  return matches


def command_pattern(names: Iterable[str]) -> re.Pattern[str]:
  """Regex for `\\name` (any of `names`) not followed by another letter, then `{`."""
  alternatives = "|".join(sorted((re.escape(n) for n in names), key=len, reverse=True))
  return re.compile(r"\\(?:" + alternatives + r")(?![A-Za-z])\s*(?=\{)")


_TEXT_COMMAND_RE = command_pattern(TEXT_COMMANDS)


def unwrap_commands(text: str, pattern: re.Pattern[str] = _TEXT_COMMAND_RE) -> str:
  """Replaces every balanced `\\cmd{content}` matched by `pattern` with `content`.

  Nested groups are handled; a command whose `{` has no matching `}` is left
  untouched. Linear in `len(text)`.

  Args:
    text: Any string.
    pattern: A regex matching the command name up to (not including) its `{`,
      as built by `command_pattern`.

  Returns:
    `text` with the matched command wrappers removed.
  """
  matches = None
  drop: list[tuple[int, int]] = []  # Half-open [start, end) spans to delete.
  for m in pattern.finditer(text):
    if matches is None:
      matches = brace_matches(text)
    close = matches.get(m.end())
    if close is None:
      continue
    drop.append((m.start(), m.end() + 1))
    drop.append((close, close + 1))
  if not drop:
    return text
  drop.sort()
  pieces, pos = [], 0
  for start, end in drop:
    if start >= pos:
      pieces.append(text[pos:start])
      pos = end
  pieces.append(text[pos:])
  return "".join(pieces)


def strip_wrapping(text: str, pairs: str = "{}()") -> str:
  """Removes delimiters that wrap the whole string, e.g. `{(5)}` -> `5`.

  Args:
    text: A string (already stripped of surrounding whitespace).
    pairs: Consecutive open/close characters to strip, e.g. `"{}()"`.

  Returns:
    `text` without any outer delimiter pair whose opener matches its last char.
  """
  openers = {pairs[k]: pairs[k + 1] for k in range(0, len(pairs), 2)}
  while len(text) >= 2 and text[0] in openers and text[-1] == openers[text[0]]:
    opener, closer = text[0], text[-1]
    depth = 0
    for i, c in enumerate(text):
      if c == opener:
        depth += 1
      elif c == closer:
        depth -= 1
        if depth == 0 and i != len(text) - 1:
          return text  # The first group closes early: `(1)+(2)`.
    if depth != 0:
      return text
    text = text[1:-1].strip()
  return text
