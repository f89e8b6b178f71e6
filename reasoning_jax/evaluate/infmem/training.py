"""Protocol SFT: the warm start of a reader, trained with the project's SFT trainer."""

from __future__ import annotations

import os
from typing import Any

import ml_collections


def sft_config(
  config: ml_collections.ConfigDict,
  *,
  folder: str,
  tokenizer: str,
  seed: int,
  workdir: str,
  seq_len: int | None = None,
) -> ml_collections.ConfigDict:
  """`config.sft` (an ordinary SFT config, `configs/sft_arith.sized`) over the protocol SFT
  `folder`, with the experiment's tokenizer; the prompt is the rendered call as it is.
  `seq_len` overrides `config.sft.seq_len` (MemAgent's calls are shorter: no retrieval)."""
  c = ml_collections.ConfigDict(config.sft.to_dict())
  if seq_len:
    c.seq_len = int(seq_len)
  c.workdir = workdir
  c.seed = int(seed)
  c.task, c.task_config, c.task_overrides = "rft", "", {}
  c.manual_dir, c.data_dir = folder, os.path.join(folder, "tfds")
  c.prompt_template = "{question}"
  c.target_field = "solution"
  c.reward = "qa_exact"
  c.model = ml_collections.ConfigDict(
    {"hf_dir": "", "tokenizer": tokenizer, "dtype": "", "param_dtype": "", "eos_ids": ()}
  )
  c.eval_every = c.checkpoint_every = int(c.num_steps)
  c.log_every = min(50, int(c.num_steps))
  c.keep_checkpoints, c.plot = 1, False
  return c


def train_reader(sft: ml_collections.ConfigDict, role: str) -> tuple[Any, bool]:
  """The SFT model (trained now unless its workdir has a checkpoint of the same config)."""
  from reasoning_jax.evaluate.trained_model import train_or_load

  return train_or_load(sft, role)
