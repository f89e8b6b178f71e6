"""An RL run through the Hugging Face path without downloaded weights: a fresh folder.

`config.fresh_hf` (used when `config.rl.model.hf_dir` is empty) describes a model that starts
here but is handed to the trainers as a Hugging Face folder, as a user's Qwen checkpoint is:

* a byte-level BPE (`tokenizers.bpe.train_bpe`, Qwen2 pre-tokenization, ChatML specials and
  chat template) trained on the task's own SFT text, each example rendered as the ChatML
  conversation the trainers will feed it;
* a randomly initialised `preset` + `model_overrides` model with that vocabulary, written by
  `models.fresh_folder.write_fresh_folder` (config.json, safetensors, tokenizer files,
  generation_config.json).

The SFT warm start then trains from the folder's weights with its tokenizer and chat
template, and RL starts from that (the trainers' `model.hf_dir` path end to end). The
folder records the spec it was built from (`fresh_hf.json`); a folder built from another spec
is refused, not silently reused. On several processes (`jax.distributed`) every process trains
the (deterministic) BPE and takes part in `to_hf`; process 0 writes the files and every process
then reads the folder: give it a path all hosts share. With `--config.rl.model.hf_dir=/m/Qwen2.5-0.5B` the same
comparison runs on a real checkpoint instead and nothing is built.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

import ml_collections
from absl import logging

from reasoning_jax import distributed
from reasoning_jax.rl.recipes import ConfigError

__all__ = ["SPEC_FILE", "fresh_corpus", "prepare_fresh_start"]

SPEC_FILE = "fresh_hf.json"
_SPEC_KEYS = ("vocab_size", "preset", "model_overrides", "corpus_examples", "seed")


def fresh_corpus(sft: ml_collections.ConfigDict, limit: int) -> Iterator[str]:
  """The first `limit` SFT examples of `sft.task` as ChatML conversations (the BPE corpus)."""
  from reasoning_jax.data import build_dataset
  from reasoning_jax.data.examples import decode_example
  from reasoning_jax.data.prompts import format_template

  data_dir = sft.get("data_dir") or os.path.join(sft.workdir, "data")  # As the SFT trainer.
  builder = build_dataset(
    sft.task,
    data_dir,
    config=sft.task_config or None,
    manual_dir=sft.get("manual_dir") or None,
    **dict(sft.task_overrides),
  )
  source = builder.as_data_source("train")
  instruction = (sft.get("prompt") or {}).get("instruction", "")
  for i in range(min(limit, len(source))):
    example = decode_example(source[i])
    user = format_template(sft.prompt_template, example).strip()
    if instruction:
      user = f"{user}\n{instruction}"
    yield (
      f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
      f"{example[sft.target_field]}<|im_end|>\n"
    )


def _spec(fresh: Any, sft: ml_collections.ConfigDict) -> dict[str, Any]:
  fresh = fresh.to_dict() if hasattr(fresh, "to_dict") else dict(fresh)
  spec = {k: fresh[k] for k in _SPEC_KEYS if k in fresh}
  instruction = (sft.get("prompt") or {}).get("instruction", "")
  spec["task"] = [
    sft.task,
    sft.task_config,
    dict(sft.task_overrides),
    sft.prompt_template,
    instruction,
    sft.target_field,
  ]
  return json.loads(json.dumps(spec, default=list))


def prepare_fresh_start(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` with `rl.model.hf_dir` pointing at the fresh folder (built when missing).

  A no-op (returns `config`) when `config.fresh_hf` is unset or `rl.model.hf_dir` is given.

  Raises:
    reasoning_jax.rl.recipes.ConfigError: `fresh_hf.dir` holds a folder built from another
      spec, or the spec is bad.
  """
  fresh = config.get("fresh_hf")
  rl = config.rl
  if not fresh or (rl.get("model") and rl.model.get("hf_dir")):
    return config
  if rl.get("model") is None:
    raise ConfigError("config.fresh_hf needs config.rl.model (a model_source block) to point at")
  directory = os.path.abspath(fresh.dir or os.path.join(config.workdir, "fresh_hf"))
  spec = _spec(fresh, rl.sft)
  spec_path = os.path.join(directory, SPEC_FILE)
  # On several processes process 0 decides, so that every process takes the same branch.
  if distributed.broadcast_json(os.path.isfile(spec_path)):
    with open(spec_path) as f:
      saved = json.load(f)
    if saved != spec:
      differ = sorted(k for k in set(saved) | set(spec) if saved.get(k) != spec.get(k))
      raise ConfigError(
        f"config.fresh_hf.dir={directory!r} holds a folder built from another spec (differs "
        f"in {differ}); delete it or point config.fresh_hf.dir at a new directory"
      )
    logging.info("fresh HF folder: reusing %s", directory)
  else:
    _build(directory, fresh, rl.sft, spec)
  out = ml_collections.ConfigDict(config.to_dict())
  out.rl.model.hf_dir = directory
  return out


def _build(directory: str, fresh: Any, sft: ml_collections.ConfigDict, spec: dict) -> None:
  from reasoning_jax.models.config import get_preset
  from reasoning_jax.models.fresh_folder import write_fresh_folder
  from reasoning_jax.tokenizers.bpe import train_bpe

  try:
    tokenizer = train_bpe(
      fresh_corpus(sft, int(fresh.corpus_examples)), vocab_size=int(fresh.vocab_size)
    )
    overrides = dict(fresh.model_overrides)
    overrides.setdefault("vocab_size", tokenizer.vocab_size)
    model_config = get_preset(fresh.preset, **overrides)
    write_fresh_folder(directory, model_config, tokenizer, seed=int(fresh.seed))
  except (ValueError, TypeError) as e:
    raise ConfigError(f"config.fresh_hf: {e}") from None
  if distributed.is_coordinator():
    with open(os.path.join(directory, SPEC_FILE), "w") as f:
      json.dump(spec, f, indent=2)
  distributed.barrier(f"fresh_hf {directory}")
  logging.info(
    "fresh HF folder: %s (BPE %d ids, %s %s)",
    directory,
    tokenizer.vocab_size,
    fresh.preset,
    dict(fresh.model_overrides),
  )
