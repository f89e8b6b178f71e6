"""Per-example transforms: one example dict -> tokenized, padded rows for SFT or for prompts.

They are module-level classes so that grain worker processes can unpickle them.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from reasoning_jax.data.examples import decode_example
from reasoning_jax.data.prompts import PromptFormat, render_prompt
from reasoning_jax.tokenizers.base import Tokenizer


def pad_value(tokenizer: Tokenizer) -> int:
  """The id rows are padded with: the tokenizer's `pad_id`, or 0 if it has none."""
  return tokenizer.pad_id if tokenizer.pad_id is not None else 0


def resolve_bos(tokenizer: Tokenizer, add_bos: Optional[bool]) -> bool:
  """`add_bos`, with None meaning "if the tokenizer has a bos token"."""
  if add_bos is None:
    return tokenizer.bos_id is not None
  if add_bos and tokenizer.bos_id is None:
    raise ValueError("add_bos=True but the tokenizer has no bos token")
  return add_bos


class TokenizeSFT:
  """Example dict -> `tokens`/`loss_mask` (+ `positions`/`segment_ids` when padding)."""

  def __init__(
    self,
    tokenizer: Tokenizer,
    *,
    seq_len: int,
    prompt_template: PromptFormat,
    target_field: str,
    add_bos: bool,
    truncate: bool,
    pad: bool,
    target_format: Optional[Callable[[str], str]] = None,
  ):
    self.tokenizer = tokenizer
    self.seq_len = seq_len
    self.prompt_template = prompt_template
    self.target_field = target_field
    self.add_bos = add_bos
    self.truncate = truncate
    self.pad = pad
    self.target_format = target_format
    self.pad_value = pad_value(tokenizer)

  def __call__(self, example: Mapping[str, Any]) -> dict[str, np.ndarray]:
    ex = decode_example(example)
    if self.target_field not in ex:
      raise ValueError(
        f"target_field {self.target_field!r} is not a field of the example; fields: {sorted(ex)}"
      )
    target = ex[self.target_field]
    if not isinstance(target, str):
      target = str(target)
    if self.target_format is not None:
      target = self.target_format(target)
    tok = self.tokenizer
    prompt_ids = tok.encode(render_prompt(self.prompt_template, ex), add_bos=self.add_bos)
    target_ids = tok.encode(target, add_eos=tok.eos_id is not None)
    n = len(prompt_ids) + len(target_ids)
    if n > self.seq_len and not self.truncate:
      raise ValueError(
        f"example encodes to {n} tokens, more than seq_len={self.seq_len}; "
        "raise seq_len or pass truncate=True"
      )
    ids = np.asarray(prompt_ids + target_ids, dtype=np.int32)[: self.seq_len]
    mask = np.zeros((n,), dtype=np.int32)
    mask[len(prompt_ids) :] = 1
    mask = mask[: self.seq_len]
    if not self.pad:
      return {"tokens": ids, "loss_mask": mask}
    m = len(ids)
    tokens = np.full((self.seq_len,), self.pad_value, dtype=np.int32)
    tokens[:m] = ids
    loss_mask = np.zeros((self.seq_len,), dtype=np.int32)
    loss_mask[:m] = mask
    positions = np.zeros((self.seq_len,), dtype=np.int32)
    positions[:m] = np.arange(m, dtype=np.int32)
    segment_ids = np.zeros((self.seq_len,), dtype=np.int32)
    segment_ids[:m] = 1
    return {
      "tokens": tokens,
      "loss_mask": loss_mask,
      "positions": positions,
      "segment_ids": segment_ids,
    }


class TokenizePrompt:
  """(index, example) -> right-padded `prompts`, `prompt_lengths` and raw fields."""

  def __init__(
    self,
    tokenizer: Tokenizer,
    *,
    max_prompt_len: int,
    prompt_template: PromptFormat,
    add_bos: bool,
    truncate: bool,
    fields: Optional[Sequence[str]],
  ):
    self.tokenizer = tokenizer
    self.max_prompt_len = max_prompt_len
    self.prompt_template = prompt_template
    self.add_bos = add_bos
    self.truncate = truncate
    self.fields = None if fields is None else tuple(fields)
    self.pad_value = pad_value(tokenizer)

  def __call__(self, index: int, example: Mapping[str, Any]) -> dict[str, Any]:
    ex = decode_example(example)
    ids = self.tokenizer.encode(render_prompt(self.prompt_template, ex), add_bos=self.add_bos)
    if len(ids) > self.max_prompt_len:
      if not self.truncate:
        raise ValueError(
          f"prompt encodes to {len(ids)} tokens, more than max_prompt_len="
          f"{self.max_prompt_len}; raise it or pass truncate=True"
        )
      ids = ids[-self.max_prompt_len :]  # Keep the end, next to where generation starts.
    prompts = np.full((self.max_prompt_len,), self.pad_value, dtype=np.int32)
    prompts[: len(ids)] = ids
    out: dict[str, Any] = {
      "prompts": prompts,
      "prompt_lengths": np.asarray(len(ids), dtype=np.int32),
      "source_index": np.asarray(index, dtype=np.int64),
    }
    names = sorted(ex) if self.fields is None else self.fields
    for name in names:
      if name not in ex:
        raise ValueError(
          f"fields names {name!r}, which the example does not have; fields: {sorted(ex)}"
        )
      if name in out:
        raise ValueError(f"fields may not include the reserved name {name!r}")
      out[name] = ex[name]
    return out


class WithIndex:
  """`(index, example)` -> `(index, example)`: remembers the source index."""

  def __call__(self, index, example):
    return index, example


class ApplyIndexed:
  """`(index, example)` -> `fn(index, example)`."""

  def __init__(self, fn):
    self.fn = fn

  def __call__(self, pair):
    return self.fn(*pair)
