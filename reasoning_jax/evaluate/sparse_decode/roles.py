"""Head roles for the sweep: LycheeDecode (HardKuma gates) and DuoAttention (alpha gates), each
learned with `reasoning_jax.sparse.train_roles` on the task's training batches (the model
frozen, only the gates train), saved as `roles.json` (`sparse.roles.save_roles`) under
`<workdir>/roles/<method>_s<seed>/` and reused by a rerun with the same settings.

Batches are `{"input_ids" [B, T], "loss_mask" [B, T]}` with the loss on the answer tokens:
for the model trained here, multi-needle prompts + answers (`data.passkey.training_examples`,
data seed `seed + 1000`, disjoint from the evaluation's); for an HF folder, text passkey
prompts followed by the key's tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable, Iterator

import numpy as np
from absl import logging

from reasoning_jax.data import passkey
from reasoning_jax.evaluate.outputs import read_json
from reasoning_jax.evaluate.sparse_decode.setup import task_kwargs

ROLE_METHODS = ("lychee", "duo")


def passkey_batches(config, seed: int) -> Iterator[dict[str, np.ndarray]]:
  """Endless multi-needle training batches for role learning (seeded, `config.roles`)."""
  r = config.roles
  step = 0
  while True:
    data = passkey.multi_needle(
      int(r.batch_size),
      prompt_len=int(r.seq_len),
      seed=seed * 100_003 + 1000 + step,
      **task_kwargs(config),
    )
    tokens, mask = passkey.training_examples(data)
    yield {"input_ids": tokens, "loss_mask": mask}
    step += 1


def text_batches(tokenizer, config, seed: int) -> Iterator[dict[str, np.ndarray]]:
  """Endless text passkey batches: prompt + " <key>." with the loss on the key's tokens."""
  r, hf = config.roles, config.hf
  step = 0
  while True:
    rows, masks = [], []
    for i in range(int(r.batch_size)):
      item, ids = passkey.text_passkey_tokens(
        tokenizer,
        int(hf.role_seq_len),
        digits=int(hf.digits),
        seed=seed * 100_003 + 1000 + step * 97 + i,
      )
      answer = tokenizer.encode(" " + item.passkey + ".")
      rows.append(ids + answer)
      masks.append([False] * len(ids) + [True] * len(answer))
    width = max(len(x) for x in rows)
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    tokens = np.full((len(rows), width), pad, np.int32)
    mask = np.zeros((len(rows), width), bool)
    for i, (row, m) in enumerate(zip(rows, masks)):
      tokens[i, : len(row)] = row
      mask[i, : len(m)] = m
    yield {"input_ids": tokens, "loss_mask": mask}
    step += 1


def role_training_config(config, method: str, seed: int):
  """`RoleTrainingConfig` of `method` from `config.roles` (lr None: the method's default)."""
  from reasoning_jax.sparse.train_roles import RoleTrainingConfig

  r = config.roles
  extra = dict(r.get(method, {}) or {})
  fields = dict(
    method=method,
    steps=int(r.steps),
    lr=r.get("lr", None),
    target_density=float(r.target_density),
    ratio=float(r.ratio),
    sink_tokens=int(config.sink_tokens),
    recent_tokens=int(config.recent_tokens),
    duo_fraction=float(r.duo_fraction),
    seed=int(seed),
    log_every=int(r.log_every),
  )
  fields.update(extra)
  return RoleTrainingConfig(**fields)


def _fingerprint(config, method: str, seed: int, model_id: str) -> str:
  blob = {
    "roles": config.roles.to_dict(),
    "sink": config.sink_tokens,
    "recent": config.recent_tokens,
    "method": method,
    "seed": seed,
    "model": model_id,
  }
  return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def learn_roles(
  model,
  config,
  method: str,
  seed: int,
  batches: Callable[[], Iterator[dict[str, np.ndarray]]],
  *,
  directory: str,
  model_id: str,
) -> dict[str, Any]:
  """`{"roles" [L, K] bool, "history", "retrieval_heads", "path"}` for `method` and `seed`:
  learned now with `train_roles` or reused from `directory/roles.json`."""
  from reasoning_jax.sparse.roles import ROLES_FILE, load_roles, save_roles

  if method not in ROLE_METHODS:
    raise ValueError(f"method must be one of {ROLE_METHODS}, got {method!r}")
  fingerprint = _fingerprint(config, method, seed, model_id)
  path = os.path.join(directory, ROLES_FILE)
  saved = read_json(path)
  if saved and saved.get("metadata", {}).get("fingerprint") == fingerprint:
    roles, record = load_roles(path, model.config)
    logging.info("reusing %s roles from %s", method, path)
    return {
      "roles": roles,
      "history": record["metadata"].get("history", []),
      "retrieval_heads": int(roles.sum()),
      "path": path,
    }
  from reasoning_jax.sparse.train_roles import train_roles

  cfg = role_training_config(config, method, seed)
  result = train_roles(model, batches(), cfg)
  roles = np.asarray(result.roles, bool)
  history = [{k: _plain(v) for k, v in h.items()} for h in (result.history or [])]
  save_roles(
    directory,
    roles,
    method=method,
    model_config=model.config,
    gates=result.gates,
    metadata={"fingerprint": fingerprint, "seed": seed, "history": history},
  )
  logging.info(
    "%s roles (seed %d): %d of %d heads retrieval", method, seed, roles.sum(), roles.size
  )
  return {"roles": roles, "history": history, "retrieval_heads": int(roles.sum()), "path": path}


def _plain(value):
  try:
    return float(value)
  except (TypeError, ValueError):
    return str(value)
