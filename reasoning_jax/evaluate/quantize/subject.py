"""The model the quantization experiment quantizes: trained here, or a Hugging Face folder.

Trained here (default): `config.model` is an ordinary SFT config (`configs/sft_arith.py`),
trained once in `<workdir>/model` (or its own workdir) and reused
(`evaluate.trained_model.train_or_load`). A folder: `config.hf_dir` (weights via `from_hf`,
tokenizer from the folder's `tokenizer.json`, or `config.tokenizer` = "byte" for folders
exported from models trained here, or a path). Either way the held-out data and the verifier
come from `config.model`'s task (e.g. `task="gsm8k"` with `manual_dir=` a local copy).
"""

from __future__ import annotations

import dataclasses
import os
import types
from typing import Any

import ml_collections
import numpy as np
from flax import nnx

from reasoning_jax.evaluate.trained_model import train_or_load
from reasoning_jax.models import count_params


@dataclasses.dataclass
class Subject:
  """The float model, its tokenizer and eos ids, the prepared task, and where it came from."""

  model: nnx.Module
  tokenizer: Any
  eos_ids: tuple[int, ...]
  task: Any
  source: str  # "trained" or the folder.

  def describe(self) -> dict[str, Any]:
    c = self.model.config
    return {
      "source": self.source,
      "parameters": count_params(self.model),
      "layers": c.num_layers,
      "hidden": c.hidden_size,
      "intermediate": c.intermediate_size,
      "heads": [c.num_heads, c.num_kv_heads, c.head_dim],
      "vocab": c.vocab_size,
    }


def model_workdir(config: ml_collections.ConfigDict) -> str:
  return config.model.workdir or os.path.join(config.workdir, "model")


def _task(config, tokenizer, workdir: str):
  from reasoning_jax.train.task import prepare_task

  task_config = ml_collections.ConfigDict(config.model.to_dict())
  return prepare_task(
    task_config, types.SimpleNamespace(tokenizer=tokenizer), workdir=workdir, check=False
  )


def load_subject(config: ml_collections.ConfigDict) -> Subject:
  """The model of `config.hf_dir`, or `config.model` trained here once."""
  if config.get("hf_dir", ""):
    return _hf_subject(config)
  from reasoning_jax.train.sft_config import model_source

  sft = ml_collections.ConfigDict(config.model.to_dict())
  sft.workdir = model_workdir(config)
  model, _ = train_or_load(sft, "model")
  source = model_source(config.model, prefix="config.model")
  task = _task(config, source.tokenizer, sft.workdir)
  return Subject(model, source.tokenizer, tuple(source.eos_ids), task, "trained")


def _hf_subject(config: ml_collections.ConfigDict) -> Subject:
  from reasoning_jax.models.source import SourceError, build_model, resolve_source

  path = config.hf_dir
  if config.get("tokenizer", "") == "byte":
    from reasoning_jax.models.hf import from_hf
    from reasoning_jax.tokenizers import ByteTokenizer, pad_vocab

    model = from_hf(path)
    tok = pad_vocab(ByteTokenizer(), model.config.vocab_size)
    eos: tuple[int, ...] = (tok.eos_id,)
  else:
    try:
      source = resolve_source(hf_dir=path, tokenizer=config.get("tokenizer", ""), flag="config")
    except SourceError as e:
      raise ValueError(f"config.hf_dir={path!r}: {e}") from None
    model, tok, eos = build_model(source), source.tokenizer, tuple(source.eos_ids)
  task = _task(config, tok, config.workdir)
  return Subject(model, tok, eos, task, os.path.abspath(path))


def _sft_batches(subject: Subject, config, source, **kwargs):
  """The grain SFT pipeline over `source` (prompt + solution text) with the task's format."""
  from reasoning_jax.data import make_sft_dataset

  return make_sft_dataset(
    source,
    subject.tokenizer,
    seq_len=config.calibration.seq_len,
    num_epochs=1,
    prompt_template=subject.task.prompt,
    target_field=config.model.target_field,
    target_format=subject.task.target_format,
    shard_index=0,
    shard_count=1,
    add_bos=subject.task.add_bos,
    truncate=True,
    **kwargs,
  )


def calibration_batches(subject: Subject, config, seed: int) -> list[dict[str, Any]]:
  """`config.calibration.num_batches` training-split batches drawn with `seed` (the grain SFT
  pipeline: prompt + solution text, padding masked out)."""
  ds = _sft_batches(
    subject,
    config,
    subject.task.train_source,
    batch_size=config.calibration.batch_size,
    seed=seed,
    shuffle=True,
  )
  out = []
  for batch in ds:
    mask = (np.asarray(batch["segment_ids"]) > 0).astype(np.int32)
    out.append({"input_ids": np.asarray(batch["tokens"]), "attention_mask": mask})
    if len(out) == config.calibration.num_batches:
      break
  if not out:
    raise ValueError("config.calibration: the training split gave no full batch")
  return out


def heldout_text_batches(subject: Subject, config) -> list[dict[str, Any]]:
  """The first `config.eval.ppl_examples` test examples as SFT batches (for perplexity on the
  solution tokens)."""
  ds = _sft_batches(
    subject,
    config,
    subject.task.test_source,
    batch_size=config.eval.batch_size,
    seed=0,
    shuffle=False,
    drop_remainder=False,
  )
  out, rows = [], 0
  for batch in ds:
    out.append({k: np.asarray(batch[k]) for k in ("tokens", "loss_mask", "segment_ids")})
    rows += len(batch["tokens"])
    if rows >= config.eval.ppl_examples:
      break
  return out


def heldout_prompts(subject: Subject, config) -> dict[str, Any]:
  """One batch of the first `config.eval.accuracy_prompts` test prompts (greedy accuracy)."""
  from reasoning_jax.data import make_prompt_dataset

  test = subject.task.test_source
  n = min(config.eval.accuracy_prompts, len(test))
  ds = make_prompt_dataset(
    [test[i] for i in range(n)],
    subject.tokenizer,
    batch_size=n,
    max_prompt_len=config.eval.max_prompt_len,
    prompt_template=subject.task.prompt,
    shard_index=0,
    shard_count=1,
    truncate=True,
    add_bos=subject.task.add_bos,
  )
  return next(iter(ds))
