r"""Prompts the way real users write them: chat template, system prompt, instruction.

A prompt is either a `str.format` template over the example's fields (`"{question}\n"`,
what the synthetic tasks use) or a `ChatPrompt`: the user turn is the template's text plus an
instruction (e.g. "Please reason step by step, and put your final answer within \boxed{}."),
optionally after a system prompt, rendered with the tokenizer's chat template
(`enable_thinking` is passed to it, as Qwen3's template expects). Both pipelines accept
either (`transforms.format_prompt`).

`FormatTarget` rewrites an SFT target's final answer into the format the instruction asks
for (GSM8K's `#### 72` -> `\boxed{72}`), so SFT teaches what the verifier extracts.
`check_prompts` renders and tokenizes every prompt of a source once, before training, and
raises `PromptError` for a template that fails to render or a prompt over the limit.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Optional, Union

from reasoning_jax.data.examples import decode_example
from reasoning_jax.tokenizers.base import Tokenizer

# What the instruction asks for -> how the final answer is written in targets.
ANSWER_FORMATS = ("boxed", "gsm8k", "last_number")
DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
_FINAL_GSM8K = re.compile(r"\n?####\s*(.+?)\s*$", re.DOTALL)


class PromptError(ValueError):
  """A prompt that cannot be rendered or is too long; the message names the flag."""


def format_template(template: str, example: Mapping[str, Any]) -> str:
  """`template.format_map(example)`, ValueError naming the missing field."""
  try:
    return template.format_map(example)
  except KeyError as e:
    raise ValueError(
      f"prompt_template {template!r} uses field {e.args[0]!r}, which the "
      f"example does not have; fields: {sorted(example)}"
    ) from None


class ChatPrompt:
  """Example dict -> chat-template prompt text ending with the assistant header.

  Picklable (grain workers): holds the tokenizer and plain settings.
  """

  def __init__(
    self,
    tokenizer: Tokenizer,
    *,
    template: str = "{question}",
    instruction: str = DEFAULT_INSTRUCTION,
    system_prompt: str = "",
    enable_thinking: Optional[bool] = None,
  ):
    """Args:
    tokenizer: A tokenizer with `apply_chat_template` (HFTokenizer; ChatML without one).
    template: `str.format` template of the user turn over the example's fields.
    instruction: Appended to the user turn on its own line ("" for none).
    system_prompt: A system turn first ("" for none).
    enable_thinking: Passed to the chat template when not None (Qwen3).
    """
    if not hasattr(tokenizer, "apply_chat_template"):
      raise TypeError(f"{type(tokenizer).__name__} has no chat template (use an HFTokenizer)")
    self.tokenizer = tokenizer
    self.template = template
    self.instruction = instruction
    self.system_prompt = system_prompt
    self.enable_thinking = enable_thinking

  def messages(self, example: Mapping[str, Any]) -> list[dict[str, str]]:
    user = format_template(self.template, example).strip()
    if self.instruction:
      user = f"{user}\n{self.instruction}"
    system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
    return system + [{"role": "user", "content": user}]

  def __call__(self, example: Mapping[str, Any]) -> str:
    kwargs = {} if self.enable_thinking is None else {"enable_thinking": self.enable_thinking}
    return self.tokenizer.apply_chat_template(
      self.messages(example), add_generation_prompt=True, **kwargs
    )


PromptFormat = Union[str, Callable[[Mapping[str, Any]], str]]


def render_prompt(prompt: PromptFormat, example: Mapping[str, Any]) -> str:
  """The prompt text of `example`: a `str.format` template or a callable (`ChatPrompt`)."""
  if callable(prompt):
    return prompt(example)
  return format_template(prompt, example)


class FormatTarget:
  r"""SFT target text with its final answer written as `answer_format` asks.

  A GSM8K solution ends `#### 72`: "boxed" rewrites that line to
  `The final answer is \boxed{72}.`, "last_number" to `The final answer is 72.`, "gsm8k"
  keeps it. Targets without a `####` line are returned unchanged.
  """

  def __init__(self, answer_format: str):
    if answer_format not in ANSWER_FORMATS:
      raise ValueError(f"answer_format={answer_format!r}; choose one of {ANSWER_FORMATS}")
    self.answer_format = answer_format

  def __call__(self, target: str) -> str:
    match = _FINAL_GSM8K.search(target)
    if match is None or self.answer_format == "gsm8k":
      return target
    answer = match.group(1)
    final = f"\\boxed{{{answer}}}" if self.answer_format == "boxed" else answer
    return f"{target[: match.start()].rstrip()}\nThe final answer is {final}."


def check_prompts(
  source: Any,
  tokenizer: Tokenizer,
  prompt: PromptFormat,
  *,
  max_prompt_len: int,
  add_bos: bool,
  flag: str,
  limit: Optional[int] = None,
) -> int:
  """Renders and tokenizes the prompts of `source` (the first `limit`); returns the longest.

  Raises:
    PromptError: The chat template fails to render (naming the flag and the tokenizer), or a
      prompt is longer than `max_prompt_len` tokens (naming the example and `flag`).
  """
  n = len(source) if limit is None else min(limit, len(source))
  longest = 0
  texts: list[str] = []
  for i in range(n):
    example = decode_example(source[i])
    try:
      texts.append(render_prompt(prompt, example))
    except Exception as e:  # jinja2 TemplateError, TypeError, ... from a user template.
      where = getattr(tokenizer, "name", type(tokenizer).__name__)
      raise PromptError(
        f"the prompt of example {i} failed to render ({type(e).__name__}: {e}); check the chat "
        f"template of {where} (tokenizer_config.json / chat_template.jinja) and {flag}"
      ) from None
  bos = 1 if add_bos else 0
  for start in range(0, len(texts), 512):
    chunk = texts[start : start + 512]
    for j, ids in enumerate(tokenizer._encode_texts(chunk)):
      length = len(ids) + bos
      if length > max_prompt_len:
        raise PromptError(
          f"the prompt of example {start + j} is {length} tokens, longer than the configured "
          f"limit {flag}={max_prompt_len}; raise it or shorten the prompt"
        )
      longest = max(longest, length)
  return longest
