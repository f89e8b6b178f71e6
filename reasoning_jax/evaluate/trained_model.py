"""A model trained here once with the SFT trainer and reused: the subject of the experiments.

`train_or_load(sft_config, role)` trains `sft_config` (an ordinary SFT config,
`configs/sft_arith.py`) in its workdir when that has no checkpoint, loads it when its newest
checkpoint is the last step, and otherwise resumes the training from that checkpoint (a run
killed or preempted mid-SFT leaves one: it is never taken for the finished model); a
checkpoint written under another model, task or training budget (`MODEL_KEYS`) is refused with
a ValueError naming the keys. Used by the experiments that train their own subject: the
speculative-decoding pair, the quantization subject, the router's pool, InfMem's readers and
TrajFusion's teacher and students.
"""

from __future__ import annotations

from typing import Any

import ml_collections
from absl import logging
from flax import nnx

from reasoning_jax.train.config_match import same_value

# Keys of an SFT config that define the trained model: a checkpoint written under other values
# is another model.
MODEL_KEYS = (
  "task",
  "task_config",
  "task_overrides",
  "prompt_template",
  "target_field",
  "preset",
  "model_overrides",
  "num_steps",
  "learning_rate",
  "batch_size",
  "seq_len",
  "pack",
  "seed",
)

# `train_or_load` checkpoints the SFT runs it starts at least this often, so a run killed
# mid-SFT resumes from its last checkpoint instead of starting over.
RESUME_EVERY = 100


def resume_every(num_steps: int) -> int:
  """The longest checkpoint interval `train_or_load` lets a `num_steps`-step SFT run have."""
  return max(1, min(RESUME_EVERY, int(num_steps)))


def check_saved(saved: dict[str, Any], wanted: ml_collections.ConfigDict, workdir: str) -> None:
  """ValueError when `saved` (a checkpoint's config) differs from `wanted` in `MODEL_KEYS`."""
  want = wanted.to_dict()
  differ = [k for k in MODEL_KEYS if k in saved and k in want and not same_value(saved[k], want[k])]
  if differ:
    details = "; ".join(f"{k}: saved {saved[k]!r}, config {want[k]!r}" for k in differ)
    raise ValueError(
      f"the checkpoint in {workdir!r} was trained under another config ({details}); point "
      "the pair's workdir elsewhere (it is trained there) or restore those values"
    )


def saved_config(workdir: str) -> dict[str, Any] | None:
  """The config stored with the newest checkpoint in `workdir`, None without one."""
  from reasoning_jax.train.sft import newest_checkpoint

  saved = newest_checkpoint(workdir)
  return None if saved is None else saved[1]


def saved_step(workdir: str) -> int | None:
  """The step of the newest good checkpoint in `workdir`, None without one."""
  from reasoning_jax.train.sft import newest_checkpoint

  saved = newest_checkpoint(workdir)
  return None if saved is None else saved[0]


def train_or_load(sft: ml_collections.ConfigDict, role: str) -> tuple[nnx.Module, bool]:
  """The SFT model of `sft` (trained first when its workdir has no checkpoint), and whether
  it was trained now."""
  from reasoning_jax.train.sft import load_sft_params, newest_checkpoint, run_sft

  saved = newest_checkpoint(sft.workdir)
  if saved is not None:
    check_saved(saved[1], sft, sft.workdir)
  step = None if saved is None else saved[0]
  trained = step is None or step < int(sft.num_steps)
  loaded = None if trained else load_sft_params(sft.workdir, sft)
  if trained:
    sft = ml_collections.ConfigDict(sft.to_dict())
    sft.checkpoint_every = min(int(sft.checkpoint_every), resume_every(sft.num_steps))
    if step is None:
      logging.info("%s: no checkpoint in %s, training it (SFT)", role, sft.workdir)
    else:
      logging.info(
        "%s: %s holds step %d of %d (an interrupted run), resuming the SFT",
        role,
        sft.workdir,
        step,
        int(sft.num_steps),
      )
    result = run_sft(sft)
    logging.info(
      "%s: trained in %.0f s, held-out accuracy %s", role, result["seconds"], result.get("accuracy")
    )
    loaded = load_sft_params(sft.workdir, sft)
  else:
    logging.info("%s: loaded from %s", role, sft.workdir)
  return loaded[0], trained
