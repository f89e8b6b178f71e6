"""`write_fresh_folder`: a randomly initialised model written as a complete Hugging Face folder.

What a downloaded checkpoint holds, for a model that starts here: `config.json` and
`model.safetensors` (`to_hf`), the tokenizer files (`save_tokenizer`: `tokenizer.json`,
`tokenizer_config.json` with the chat template, `special_tokens_map.json`) and
`generation_config.json` (eos ids and sampling defaults). Every trainer and evaluator then
reads it through `config.model.hf_dir`, the path a user's Qwen or Llama folder takes: its
tokenizer, chat template, eos ids and sampling settings, weights placed shard by shard.
Used by the experiments that check a method through that path without downloading weights
(e.g. `configs/compare_rl.py:countdown_hf`). On several processes (`jax.distributed`) every
process calls it (`to_hf` gathers the weights), process 0 writes and the others wait.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from flax import nnx

from reasoning_jax import distributed
from reasoning_jax.models.config import ModelConfig
from reasoning_jax.models.source import GENERATION_CONFIG_FILE
from reasoning_jax.models.transformer import Transformer
from reasoning_jax.tokenizers.hf import HFTokenizer
from reasoning_jax.tokenizers.saving import save_tokenizer

__all__ = ["write_fresh_folder"]


def write_fresh_folder(
  directory: str | os.PathLike,
  config: ModelConfig,
  tokenizer: HFTokenizer,
  *,
  seed: int = 0,
  sampling: Mapping[str, Any] | None = None,
) -> str:
  """Writes a random `config` model with `tokenizer` as a Hugging Face folder; returns it.

  Args:
    directory: The folder (created; files of an earlier folder there are replaced).
    config: The model; its `vocab_size` must be at least the tokenizer's.
    tokenizer: An `HFTokenizer` with an eos token (e.g. `train_bpe`'s).
    seed: Initialisation seed.
    sampling: `generation_config.json` sampling settings (`temperature`, `top_p`, `top_k`);
      None: `do_sample` with temperature 1, top-p 1, no top-k.

  Raises:
    ValueError: the tokenizer has more ids than the model has embedding rows, or no eos.
  """
  if tokenizer.vocab_size > config.vocab_size:
    raise ValueError(
      f"the tokenizer has {tokenizer.vocab_size} ids but config.vocab_size is "
      f"{config.vocab_size}; use vocab_size >= {tokenizer.vocab_size}"
    )
  if tokenizer.eos_id is None:
    raise ValueError(f"tokenizer {tokenizer.name} has no eos token; a checkpoint needs one")
  from reasoning_jax.models.hf import to_hf

  directory = os.fspath(directory)
  to_hf(Transformer(config, rngs=nnx.Rngs(seed)), directory)  # A collective on many processes.
  if distributed.is_coordinator():  # Process 0 writes; the others wait at the barrier below.
    _write_metadata(directory, tokenizer, sampling)
  distributed.barrier(f"write_fresh_folder {os.path.abspath(directory)}")
  return directory


def _write_metadata(
  directory: str, tokenizer: HFTokenizer, sampling: Mapping[str, Any] | None
) -> None:
  """The special ids in config.json, the tokenizer files and generation_config.json."""
  # config.json names the special ids as a downloaded checkpoint's does.
  config_path = os.path.join(directory, "config.json")
  with open(config_path) as f:
    hf_config = json.load(f)
  hf_config.update(
    bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id
  )
  with open(config_path, "w") as f:
    json.dump(hf_config, f, indent=2)
  save_tokenizer(tokenizer, directory)
  generation = {
    "eos_token_id": [int(tokenizer.eos_id)],
    "pad_token_id": None if tokenizer.pad_id is None else int(tokenizer.pad_id),
    "do_sample": True,
    **dict(sampling or {"temperature": 1.0, "top_p": 1.0, "top_k": 0}),
  }
  with open(os.path.join(directory, GENERATION_CONFIG_FILE), "w") as f:
    json.dump(generation, f, indent=2)
