"""Chat-template rendering: ChatML, and HF jinja templates in a transformers-like sandbox."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any, Mapping, Sequence


def render_chatml(
  messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True
) -> str:
  """Renders messages as ChatML (the Qwen format), without a default system prompt.

  Args:
    messages: Dicts with str `role` and `content`.
    add_generation_prompt: Append `<|im_start|>assistant\\n`.

  Returns:
    `<|im_start|>{role}\\n{content}<|im_end|>\\n` per message, then the prompt.
  """
  parts = []
  for i, m in enumerate(check_messages(messages)):
    content = m.get("content")
    if not isinstance(content, str):
      raise ValueError(
        f"messages[{i}]['content'] must be a str for the ChatML fallback, got "
        f"{type(content).__name__}"
      )
    parts.append(f"<|im_start|>{m['role']}\n{content}<|im_end|>\n")
  if add_generation_prompt:
    parts.append("<|im_start|>assistant\n")
  return "".join(parts)


def check_messages(messages: Any) -> list[Mapping[str, Any]]:
  """Returns `messages` as a list after checking it is a list of dicts with a str `role`."""
  if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
    raise TypeError(f"messages must be a list of dicts, got {type(messages).__name__}")
  for i, m in enumerate(messages):
    if not isinstance(m, Mapping):
      raise TypeError(f"messages[{i}] must be a dict, got {type(m).__name__}")
    if not isinstance(m.get("role"), str):
      raise ValueError(f"messages[{i}] needs a str 'role', got {m.get('role')!r}")
  return list(messages)


@functools.lru_cache(maxsize=16)
def compile_chat_template(template: str) -> Any:
  """Compiles a chat template the way transformers does (sandboxed jinja2)."""
  try:
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment
  except ImportError as e:  # pragma: no cover - jinja2 is a declared dependency.
    raise ImportError("apply_chat_template needs jinja2: pip install jinja2") from e

  class _GenerationTag(jinja2.ext.Extension):
    """Accepts `{% generation %}...{% endgeneration %}` and renders the body."""

    tags = {"generation"}

    def parse(self, parser):
      lineno = next(parser.stream).lineno
      body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
      return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
      return caller()

  def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)

  def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # Like transformers: no HTML escaping, unlike jinja's builtin filter.
    return json.dumps(
      x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )

  def strftime_now(fmt):
    return datetime.now().strftime(fmt)

  env = ImmutableSandboxedEnvironment(
    trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, jinja2.ext.loopcontrols]
  )
  env.filters["tojson"] = tojson
  env.globals["raise_exception"] = raise_exception
  env.globals["strftime_now"] = strftime_now
  return env.from_string(template)
