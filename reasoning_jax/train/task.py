r"""The task side of a trainer config: data, prompt format, SFT target format and verifier.

`prepare_task(config, source)` is shared by the SFT and RL trainers. It builds the TFDS
dataset (`config.task`, from `config.manual_dir` for gsm8k / math), chooses the prompt
format and checks every prompt before any training step:

* without `config.prompt` (or with `prompt.chat=False`): `config.prompt_template` as a
  `str.format` template, prompts truncated to the limit as before (the synthetic tasks);
* with `prompt.chat=True`: `ChatPrompt` over the tokenizer's chat template with
  `prompt.system_prompt`, `prompt.instruction` and `prompt.enable_thinking`; the template
  emits any bos itself. A template that fails to render, or a prompt longer than
  `prompt.max_prompt_len` (0: `config.seq_len`) tokens, is a `ConfigError` naming the flag.

`prompt.answer_format` (boxed | gsm8k | last_number) rewrites SFT targets to that format and,
with `config.reward="auto"`, picks the matching verifier.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import ml_collections

from reasoning_jax.models.source import ModelSource

# `prompt.answer_format` -> the verifier that extracts that format (`reasoning_jax.rewards`).
ANSWER_REWARDS = {"boxed": "boxed", "gsm8k": "gsm8k", "last_number": "gsm8k"}
# Keys of `config.prompt` with their types.
PROMPT_KEYS: dict[str, Any] = {
  "chat": bool,
  "system_prompt": str,
  "instruction": str,
  "enable_thinking": (bool, type(None)),
  "answer_format": str,
  "max_prompt_len": int,
}


class TaskError(ValueError):
  """A task/prompt configuration problem; the message names the key (a ConfigError upstream)."""


@dataclasses.dataclass
class Task:
  """What the trainers need of the task: sources, prompt format, target format, verifier."""

  train_source: Any
  test_source: Any
  prompt: Any  # str template or ChatPrompt.
  target_format: Callable[[str], str] | None
  add_bos: bool | None  # None: the tokenizer decides.
  truncate: bool
  max_prompt_len: int
  reward: str
  # What SFT reads: train plus the builder's SFT-only splits (the rubric task's judge
  # demonstrations); RL prompts come from `train_source`.
  sft_source: Any = None

  def __post_init__(self):
    if self.sft_source is None:
      self.sft_source = self.train_source


def validate_prompt_config(config: ml_collections.ConfigDict) -> None:
  """Types of `config.prompt` and `config.reward`; TaskError naming the key."""
  prompt = config.get("prompt")
  if prompt is not None:
    prompt = prompt.to_dict() if hasattr(prompt, "to_dict") else dict(prompt)
    unknown = set(prompt) - set(PROMPT_KEYS)
    if unknown:
      raise TaskError(f"unknown config.prompt keys: {sorted(unknown)}; known: {list(PROMPT_KEYS)}")
    for key, kind in PROMPT_KEYS.items():
      if key in prompt and not isinstance(prompt[key], kind):
        raise TaskError(f"config.prompt.{key} must be {kind}, got {prompt[key]!r}")
    fmt = prompt.get("answer_format", "")
    if fmt and fmt not in ANSWER_REWARDS:
      raise TaskError(
        f"config.prompt.answer_format={fmt!r}; choose one of {sorted(ANSWER_REWARDS)} or ''"
      )
    if prompt.get("max_prompt_len", 0) < 0:
      raise TaskError("config.prompt.max_prompt_len must be >= 0 (0: config.seq_len)")
  if config.reward == "auto" and not (prompt or {}).get("answer_format"):
    raise TaskError("config.reward='auto' needs config.prompt.answer_format")


def reward_name(config: ml_collections.ConfigDict) -> str:
  """`config.reward`, with "auto" resolved from `config.prompt.answer_format`."""
  if config.reward != "auto":
    return config.reward
  return ANSWER_REWARDS[config.prompt.answer_format]


def prepare_task(
  config: ml_collections.ConfigDict, source: ModelSource, *, workdir: str, check: bool = True
) -> Task:
  """Builds the dataset and the prompt format of `config`; checks every prompt.

  Raises:
    TaskError: A dataset that cannot be built (a missing or malformed file in
      `config.manual_dir`, naming the file and line; bad task options), a chat template that
      fails to render or a prompt over the limit (naming the flag), before any training step.
  """
  from reasoning_jax.data import ChatPrompt, FormatTarget, PromptError, build_dataset
  from reasoning_jax.data.stages import ConcatSource
  from reasoning_jax.data import check_prompts as check_all

  data_dir = config.get("data_dir") or os.path.join(workdir, "data")
  manual_dir = config.get("manual_dir") or None
  try:
    builder = build_dataset(
      config.task,
      data_dir,
      config=config.task_config or None,  # "": the builder's default (gsm8k, math).
      manual_dir=manual_dir,
      **dict(config.task_overrides),
    )
  except (ValueError, TypeError, FileNotFoundError) as e:  # Bad files name their line.
    raise TaskError(
      f"could not build config.task={config.task!r} (config.manual_dir={manual_dir!r}): {e}"
    ) from None
  train_source, test_source = builder.as_data_source("train"), builder.as_data_source("test")
  extra = getattr(builder, "SFT_EXTRA_SPLITS", ())
  sft_source = (
    ConcatSource([train_source] + [builder.as_data_source(split) for split in extra])
    if extra
    else train_source
  )
  p = config.get("prompt") or ml_collections.ConfigDict()
  limit = p.get("max_prompt_len", 0) or config.seq_len
  fmt = p.get("answer_format", "")
  target_format = FormatTarget(fmt) if fmt else None
  if not p.get("chat", False):
    return Task(
      train_source,
      test_source,
      config.prompt_template,
      target_format,
      None,
      True,
      limit,
      reward_name(config),
      sft_source,
    )
  prompt = ChatPrompt(
    source.tokenizer,
    template=config.prompt_template,
    instruction=p.get("instruction", ""),
    system_prompt=p.get("system_prompt", ""),
    enable_thinking=p.get("enable_thinking", None),
  )
  if check:
    flag = "config.prompt.max_prompt_len" if p.get("max_prompt_len") else "config.seq_len"
    try:
      for split in (train_source, test_source):
        check_all(split, source.tokenizer, prompt, max_prompt_len=limit, add_bos=False, flag=flag)
    except PromptError as e:
      raise TaskError(str(e)) from None
  return Task(
    train_source,
    test_source,
    prompt,
    target_format,
    False,
    False,
    limit,
    reward_name(config),
    sft_source,
  )
