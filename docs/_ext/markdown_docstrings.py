"""Reads the house docstrings (Google style with Markdown habits) as reStructuredText.

The docstrings of reasoning_jax are written for readers of the source: Google sections
(napoleon parses them), backticks for code, and Markdown habits that reStructuredText
reads differently. Before napoleon runs, this hook rewrites those habits, outside the Google
sections and outside literal blocks, so that the page shows what the source shows:

* a pipe table (`| name | meaning |` with a `|---|` rule) becomes a literal block;
* a bar in a formula (`|o_i|`, `|W_pre|`) is escaped, so docutils does not read a
  substitution reference;
* an indented block that directly follows a paragraph line (a formula, aligned flag lists)
  becomes a literal block; an indented bullet list gets the blank line RST needs before it;
* an indented block after a blank line is a code block (as in Markdown) when the paragraph
  before it ends in ":" or it is indented by 4 or more, unless it is a list;
* a code span glued to a word (`jax.Array`s) gets the escaped space RST needs;
* a line that dedents out of an indented block gets the blank line RST needs.

The text of every line is kept; only blank lines and `::` markers are added.
"""

from __future__ import annotations

import re

_CODE_SPAN = re.compile(r"(`+[^`]*`+)")
_TABLE_RULE = re.compile(r"^\|[\s:|-]+\|$")
_BULLET = re.compile(r"^(\s*)([*+-]|\d+[.)]|\(\d+\)|[a-z][.)])\s+")
_SECTION = re.compile(
  r"^\s*(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Yield|Attributes|Example|"
  r"Examples|Note|Notes|Keyword Args|Keyword Arguments|Other Parameters|References|See Also|"
  r"Todo|Warning|Warnings|Methods)\s*:\s*$"
)


def _indent(line: str) -> int:
  return len(line) - len(line.lstrip())


def _is_table_line(line: str) -> bool:
  s = line.strip()
  return len(s) > 1 and s.startswith("|") and s.endswith("|")


def _escape_bars(line: str) -> str:
  """Escapes bars outside code spans; separates a code span from a word glued to it."""
  parts = _CODE_SPAN.split(line)
  for i in range(0, len(parts), 2):
    parts[i] = parts[i].replace("|", r"\|")
  for i in range(1, len(parts), 2):
    if parts[i + 1][:1].isalnum():  # `jax.Array`s
      parts[i + 1] = "\\ " + parts[i + 1]
    if parts[i - 1][-1:].isalnum():  # a`b`
      parts[i - 1] = parts[i - 1] + "\\ "
  return "".join(parts)


def _text_indent(line: str) -> int:
  """Where the text of a list item starts (its continuation lines align there)."""
  m = _BULLET.match(line)
  return m.end() if m else _indent(line)


def _block_end(lines: list[str], start: int, indent: int) -> int:
  """End of the block starting at `start`: lines indented >= `indent` (blank lines inside)."""
  end = start
  j = start
  while j < len(lines):
    if lines[j].strip():
      if _indent(lines[j]) < indent:
        break
      end = j + 1
    j += 1
  return end


def convert(lines: list[str]) -> list[str]:
  """The docstring `lines` rewritten as described in the module docstring."""
  out: list[str] = []
  section_indent: int | None = None  # Indent of the Google section header we are in.
  i = 0
  while i < len(lines):
    line = lines[i]
    blank = not line.strip()
    if section_indent is not None and not blank and _indent(line) <= section_indent:
      section_indent = None
    if blank or section_indent is not None:
      out.append(line if blank else _escape_bars(line))
      i += 1
      continue
    if _SECTION.match(line):
      section_indent = _indent(line)
      out.append(line)
      i += 1
      continue
    # Previous non-blank line of the output and whether a blank line separates them.
    k = len(out) - 1
    while k >= 0 and not out[k].strip():
      k -= 1
    prev = out[k] if k >= 0 else None
    adjacent = prev is not None and k == len(out) - 1
    indent = _indent(line)
    if _is_table_line(line):
      j = i
      while j < len(lines) and _is_table_line(lines[j]):
        j += 1
      if any(_TABLE_RULE.match(b.strip()) for b in lines[i:j]):
        pad = " " * indent
        out.extend(["", pad + "::", ""] + ["  " + b for b in lines[i:j]] + [""])
        i = j
        continue
    if prev is not None and indent > _indent(prev):
      continuation = _BULLET.match(prev) and indent == _text_indent(prev)
      literal = False
      if adjacent and not continuation:
        if _BULLET.match(line):
          out.append("")
        else:
          literal = True
      elif not adjacent and not prev.rstrip().endswith("::") and not _SECTION.match(prev):
        # Markdown: a block after a blank line is code when it follows a colon or is
        # indented by 4 or more; lists stay lists.
        code = prev.rstrip().endswith(":") or indent >= _indent(prev) + 4
        literal = code and not _BULLET.match(line)
      if literal:
        end = _block_end(lines, i, indent)
        out.extend(["", " " * _indent(prev) + "::", ""] + lines[i:end] + [""])
        i = end
        continue
    elif prev is not None and adjacent and indent < _indent(prev):
      out.append("")
    out.append(_escape_bars(line))
    if line.rstrip().endswith("::"):  # An explicit literal block: copy it verbatim.
      end = _block_end(lines, i + 1, indent + 1)
      out.extend(lines[i + 1 : end])
      i = end
      continue
    i += 1
  return out


def _process(app, what, name, obj, options, lines):
  lines[:] = convert(list(lines))


def setup(app):
  # Before napoleon (priority 500) so its sections see the converted text.
  app.connect("autodoc-process-docstring", _process, priority=400)
  return {"parallel_read_safe": True, "parallel_write_safe": True}
