"""Datasets and input pipelines for reasoning tasks.

* `builders`: TFDS builders (`arithmetic`, `countdown`, `modular`, `gsm8k`,
  `math`) written to ArrayRecord and read back with `as_data_source` (no
  TensorFlow); `build_dataset` / `data_source` helpers.
* `synthetic`: the seeded generators behind the synthetic builders.
* `parsing`: GSM8K `####` and MATH `\\boxed{}` answer extraction, JSONL reading.
* `pipeline`: grain SFT and prompt pipelines (`make_sft_dataset`, `make_prompt_dataset`),
  composed from `stages` (source, shuffle, repeat, host shard, worker processes),
  `transforms` (per-example tokenization) and `collate` (batch assembly).
* `prompts`: chat-template prompts (`ChatPrompt`: system prompt, instruction,
  `enable_thinking`), SFT target formats (`FormatTarget`) and `check_prompts`.
* `iterator_checkpoint`: `iterator_state` / `restore_iterator`.
* `global_batch`: `to_global_batch`.
* `recall`: synthetic recall tasks (import the module: `from reasoning_jax.data import recall`).

Names are imported lazily, so `from reasoning_jax.data import make_sft_dataset`
does not import tensorflow_datasets (nor `iterator_state` grain). The laziness is only for
import cost: no module here imports this package's `__init__` names, so eager imports would
work too.

Example:
  >>> from reasoning_jax.data import data_source, make_sft_dataset
  >>> from reasoning_jax.tokenizers import ByteTokenizer
  >>> src = data_source("arithmetic", "train", "/tmp/tfds", config="easy", num_train=1000)
  >>> ds = make_sft_dataset(src, ByteTokenizer(), seq_len=256, batch_size=8, seed=0)
  >>> batch = next(iter(ds))  # tokens, loss_mask, positions, segment_ids: [8, 256] int32
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
  "BUILDERS": "builders",
  "ArithmeticBuilder": "builders",
  "ArithmeticConfig": "builders",
  "CountdownBuilder": "builders",
  "CountdownConfig": "builders",
  "Gsm8kBuilder": "builders",
  "MathBuilder": "builders",
  "RftBuilder": "rft_builder",
  "RubricBuilder": "rubric_builder",
  "RubricConfig": "rubric_builder",
  "MultihopBuilder": "multihop_builder",
  "MultihopConfig": "multihop_builder",
  "load_longqa_jsonl": "longqa",
  "ModularBuilder": "builders",
  "ModularConfig": "builders",
  "build_dataset": "builders",
  "data_source": "builders",
  "get_builder": "builders",
  "decode_example": "examples",
  "extract_boxed_answer": "parsing",
  "gsm8k_final_answer": "parsing",
  "strip_calculator_annotations": "parsing",
  "read_jsonl": "parsing",
  "make_sft_dataset": "pipeline",
  "make_prompt_dataset": "pipeline",
  "iterator_state": "iterator_checkpoint",
  "restore_iterator": "iterator_checkpoint",
  "to_global_batch": "global_batch",
  "packing_available": "stages",
  "ChatPrompt": "prompts",
  "FormatTarget": "prompts",
  "PromptError": "prompts",
  "check_prompts": "prompts",
  "render_prompt": "prompts",
  "DEFAULT_INSTRUCTION": "prompts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
  module = _EXPORTS.get(name)
  if module is None:
    raise AttributeError(f"module 'reasoning_jax.data' has no attribute {name!r}")
  value = getattr(importlib.import_module(f"reasoning_jax.data.{module}"), name)
  globals()[name] = value
  return value


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_EXPORTS))
