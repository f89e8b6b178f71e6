"""The model a sparse-decoding sweep decodes with: trained here on multi-needle passkey, or an HF
folder.

Trained here: a small RoPE attention-only transformer (`config.model`, a `train.recall` spec
such as "attention@4" on the tiny-llama block, 4 query / 2 KV heads) trained from scratch with
`train.recall.train_model` on `data.passkey.multi_needle` examples (loss on the answer's value
tokens only). The parameters are saved as `<workdir>/model/params.npz` with a fingerprint of
the settings that made them, so a rerun with the same settings reuses the model.

HF folder (`config.hf.dir`): `models.source.resolve_source` + `build_model` (the folder's own
weights and tokenizer), unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Any

import numpy as np
from absl import logging

from reasoning_jax.data import passkey
from reasoning_jax.data.recall import IGNORE
from reasoning_jax.data.skipwise_positions import skipwise_positions
from reasoning_jax.evaluate.outputs import read_json, write_json

MODEL_DIR = "model"


def task_kwargs(config) -> dict[str, Any]:
  """The `multi_needle` arguments shared by training, role learning and evaluation."""
  return dict(
    num_needles=int(config.task.num_needles),
    value_len=int(config.task.value_len),
    vocab_size=int(config.task.vocab_size),
    depth_range=tuple(float(x) for x in config.task.depth_range),
    filler_period=int(config.task.get("filler_period", 0)),
  )


def model_config(config):
  """The `ModelConfig` of the model trained here (RoPE; max positions cover every eval)."""
  from reasoning_jax.train import recall

  longest = max(
    int(x)
    for x in (*config.eval_lens, config.train.seq_len, config.train.get("pose_target_len", 0))
  )
  model = dict(config.model)
  model["overrides"] = {
    **dict(model.get("overrides", {})),
    "max_position_embeddings": longest + int(config.task.value_len) + 64,
  }
  return recall.build_model_config(
    model.pop("spec"), vocab_size=int(config.task.vocab_size), max_len=longest, model=model
  )


def train_data(config, num: int, seq_len: int, seed: int, *, min_len: int | None = None):
  """In-memory `{"inputs", "targets"}` next-token data; targets are IGNORE except the answer
  (or every token, `train.loss_on="all"`). With `train.pose_target_len > 0` also "positions":
  PoSE skip-wise ids (`data.skipwise_positions`) reaching that prompt length."""
  data = passkey.multi_needle(
    num, prompt_len=seq_len, min_prompt_len=min_len, seed=seed, **task_kwargs(config)
  )
  tokens, mask = passkey.training_examples(
    data, all_needles=True, loss_on=str(config.train.get("loss_on", "all")), seed=seed
  )
  targets = np.where(mask[:, 1:], tokens[:, 1:], IGNORE).astype(np.int32)
  out = {"inputs": tokens[:, :-1], "targets": targets}
  target_len = int(config.train.get("pose_target_len", 0) or 0)
  if target_len:
    width = out["inputs"].shape[1]
    out["positions"] = skipwise_positions(
      num,
      width,
      target_len=target_len + width - seq_len,
      num_chunks=int(config.train.get("pose_chunks", 2)),
      seed=seed + 1,
    )
  return out


def _fingerprint(config) -> str:
  blob = {
    "model": config.model.to_dict(),
    "train": config.train.to_dict(),
    "task": config.task.to_dict(),
    "eval_lens": list(config.eval_lens),
    "seed": int(config.model_seed),
  }
  return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _save(model, directory: str, record: dict[str, Any]) -> None:
  import jax
  from flax import nnx

  os.makedirs(directory, exist_ok=True)
  leaves = jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))
  tmp = os.path.join(directory, "params.tmp.npz")
  np.savez(tmp, *[np.asarray(x) for x in leaves])
  os.replace(tmp, os.path.join(directory, "params.npz"))
  write_json(os.path.join(directory, "model.json"), record, indent=1)


def _load(model, directory: str):
  import jax
  import jax.numpy as jnp
  from flax import nnx

  state = nnx.state(model, nnx.Param)
  leaves, treedef = jax.tree_util.tree_flatten(state)
  with np.load(os.path.join(directory, "params.npz")) as f:
    saved = [f[f"arr_{i}"] for i in range(len(f.files))]
  if len(saved) != len(leaves) or any(a.shape != b.shape for a, b in zip(saved, leaves)):
    raise ValueError(f"{directory}/params.npz does not match the configured model")
  nnx.update(model, jax.tree_util.tree_unflatten(treedef, [jnp.asarray(x) for x in saved]))
  return model


def trained_model(config, workdir: str):
  """`(model, record)`: the passkey model of `config`, trained now or reused from `workdir`."""
  from flax import nnx

  from reasoning_jax.models.transformer import Transformer, count_params
  from reasoning_jax.train import recall

  mc = model_config(config)
  seed = int(config.model_seed)
  model = Transformer(mc, rngs=nnx.Rngs(seed))
  directory = os.path.join(workdir, MODEL_DIR)
  fingerprint = _fingerprint(config)
  saved = read_json(os.path.join(directory, "model.json"))
  if saved and saved.get("fingerprint") == fingerprint:
    logging.info("reusing the passkey model in %s", directory)
    return _load(model, directory), saved
  train = config.train
  start = time.time()
  data = train_data(
    config,
    int(train.num_steps) * int(train.batch_size),
    int(train.seq_len),
    seed,
    min_len=int(train.min_len) if train.get("min_len") else None,
  )
  model, losses = recall.train_model(model, mc, data, dict(train), seed=seed, label="passkey model")
  record = {
    "fingerprint": fingerprint,
    "train_loss": losses,
    "num_params": int(count_params(model)),
    "wall_s": time.time() - start,
    "model_config": {k: str(v) for k, v in dataclasses.asdict(mc).items()},
  }
  _save(model, directory, record)
  logging.info("trained the passkey model in %.0f s: %s", record["wall_s"], losses[-3:])
  return model, record


def hf_model(config):
  """`(model, source)` of the HF folder `config.hf.dir` (its own weights and tokenizer)."""
  from reasoning_jax.models.source import build_model, resolve_source

  source = resolve_source(
    hf_dir=str(config.hf.dir), dtype=str(config.hf.get("dtype", "") or ""), flag="config.hf"
  )
  return build_model(source, seed=0), source
