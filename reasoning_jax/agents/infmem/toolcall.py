r"""PreThink's output -> STOP or a `retrievesearch(query, top_k)` call, never an exception.

Two call formats are recognised whatever the instruction asked for (whitespace between the
pieces is free, so text decoded from a word-level vocabulary parses too):

* Qwen-Agent markers (the released code): `✿FUNCTION✿: retrievesearch` then
  `✿ARGS✿: {"query": ..., "top_k": ...}`;
* Hermes / Qwen3: `<tool_call>{"name": "retrievesearch", "arguments": {...}}</tool_call>`.

As in the released code: any "STOP" in the text is a stop; text without a usable call also
counts as a stop; arguments that are not a JSON object fall back to the question as the query
and the default top_k (counted as malformed: the RL shaping term `tool_ok` is 0 then); a
top_k that is not an integer falls back to the default (counted); top_k is clamped to
[min_top_k, max_top_k]; an empty query falls back to the question. Several calls in one
output: all enter the retrieval history and the last one is searched (the released code
searched each and kept the last result).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from reasoning_jax.agents.infmem.config import InfMemConfig

TOOL_NAME = "retrievesearch"
_QWEN = re.compile(
  r"✿\s*FUNCTION\s*✿\s*:\s*(?P<name>[^\n✿]*?)\s*✿\s*ARGS\s*✿\s*:\s*(?P<args>[^✿]*?)\s*"
  r"(?=✿\s*(?:RESULT|RETURN|FUNCTION)\s*✿|$)",
  re.DOTALL,
)
_HERMES = re.compile(r"<\s*tool_call\s*>(?P<body>.*?)(?:<\s*/\s*tool_call\s*>|$)", re.DOTALL)
_THINK = re.compile(r"<\s*think\s*>.*?<\s*/\s*think\s*>", re.DOTALL)


def strip_thinking(text: str) -> str:
  """Drops `<think>...</think>` blocks and a dangling `<think>` prefix; strips whitespace."""
  text = _THINK.sub("", text)
  text = re.sub(r"^\s*<\s*think\s*>", "", text)
  text = re.sub(r"<\s*/\s*think\s*>", "", text)
  return text.strip()


@dataclasses.dataclass(frozen=True)
class Decision:
  """What one PreThink output asks for.

  Attributes:
    stop: True for STOP or for an output with no usable call (counts toward patience).
    explicit_stop: the output said STOP.
    calls: `(query, top_k)` of every usable call, in order (the last one is searched).
    malformed: calls whose arguments were not a JSON object (defaults used).
    unknown_tool: calls naming another tool (ignored).
    bad_top_k: calls whose top_k was not an integer (default used).
  """

  stop: bool
  explicit_stop: bool = False
  calls: tuple[tuple[str, int], ...] = ()
  malformed: int = 0
  unknown_tool: int = 0
  bad_top_k: int = 0

  @property
  def query(self) -> str | None:
    return self.calls[-1][0] if self.calls else None

  @property
  def top_k(self) -> int | None:
    return self.calls[-1][1] if self.calls else None


def normalize_query(query: Any, fallback: str) -> str:
  if not isinstance(query, str):
    return fallback
  query = re.sub(r"\s+", " ", query).strip()
  return query or fallback


def _as_int(value: Any) -> int | None:
  if isinstance(value, bool):
    return None
  if isinstance(value, int):
    return value
  if isinstance(value, float) and value.is_integer():
    return int(value)
  if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
    return int(value)
  return None


def _raw_calls(text: str) -> list[tuple[str, Any]]:
  """(tool name, parsed arguments or None when they are not a JSON object) in text order."""
  found: list[tuple[int, str, Any]] = []
  for m in _QWEN.finditer(text):
    found.append((m.start(), m.group("name").strip(), _json_object(m.group("args"))))
  for m in _HERMES.finditer(text):
    body = _json_object(m.group("body"))
    if body is None:
      found.append((m.start(), TOOL_NAME, None))
      continue
    name = body.get("name", TOOL_NAME)
    args = body.get("arguments", body.get("parameters", {}))
    if isinstance(args, str):
      args = _json_object(args)
    found.append((m.start(), str(name), args if isinstance(args, dict) else None))
  return [(name, args) for _, name, args in sorted(found, key=lambda f: f[0])]


def _json_object(text: str) -> dict | None:
  text = text.strip()
  if text.startswith("```"):
    text = re.sub(r"^```\w*|```$", "", text).strip()
  end = text.rfind("}")
  if text.startswith("{") and end > 0:
    text = text[: end + 1]
  try:
    value = json.loads(text)
  except (ValueError, RecursionError):
    return None
  if not isinstance(value, dict):
    return None
  # Text decoded from a word-level vocabulary has spaces inside the quotes: `" query "`.
  return _clean(value)


def _clean(value: Any) -> Any:
  if isinstance(value, dict):
    return {str(k).strip(): _clean(v) for k, v in value.items()}
  return value.strip() if isinstance(value, str) else value


def parse_prethink(text: str, *, question: str, config: InfMemConfig) -> Decision:
  """Reads one PreThink output (see the module docstring for every fallback)."""
  text = strip_thinking(text if isinstance(text, str) else "")
  if "STOP" in text:
    return Decision(stop=True, explicit_stop=True)
  calls, malformed, unknown, bad_k = [], 0, 0, 0
  for name, args in _raw_calls(text):
    if name != TOOL_NAME:
      unknown += 1
      continue
    if args is None:
      malformed += 1
      args = {}
    query = normalize_query(args.get("query", question), question)
    top_k = _as_int(args.get("top_k", config.top_k))
    if top_k is None:
      bad_k += 1
      top_k = config.top_k
    calls.append((query, max(config.min_top_k, min(config.max_top_k, top_k))))
  return Decision(
    stop=not calls,
    calls=tuple(calls),
    malformed=malformed,
    unknown_tool=unknown,
    bad_top_k=bad_k,
  )


def format_tool_call(query: str, top_k: int, tool_format: str = "qwen_agent") -> str:
  """The text of a well-formed call in `tool_format` (what the oracle controller writes)."""
  args = json.dumps({"query": query, "top_k": int(top_k)})
  if tool_format == "hermes":
    return f'<tool_call>{{"name": "{TOOL_NAME}", "arguments": {args}}}</tool_call>'
  return f"✿FUNCTION✿: {TOOL_NAME}\n✿ARGS✿: {args}"
