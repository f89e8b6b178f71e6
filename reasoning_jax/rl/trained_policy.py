"""The policy an RL run trained, loaded from its workdir (for evaluation, export, reuse).

`load_rl_policy(workdir)` restores the newest checkpoint of `python -m experiments.rl_train`
under the config saved with it: a full fine-tune's checkpoint holds every parameter, so the
model is restored onto its abstract structure; a LoRA run's holds only the adapters, so its
frozen base is rebuilt first (the model source, or the SFT warm start's checkpoint, which must
still be there: nothing is trained here) and the adapters are restored into it.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections
from absl import logging
from flax import nnx

from reasoning_jax.models.source import abstract_model
from reasoning_jax.rl.recipes import ConfigError, sft_config
from reasoning_jax.rl.warm_start import warm_start
from reasoning_jax.train import lora_setup

__all__ = ["is_rl_config", "load_rl_policy", "load_run"]


def is_rl_config(config: Any) -> bool:
  """Whether a saved run config is an RL run's (it has a loss and an SFT block)."""
  config = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
  return "loss" in config and "sft" in config and "group_size" in config


def load_rl_policy(
  workdir: str, config: ml_collections.ConfigDict | None = None
) -> tuple[nnx.Module, ml_collections.ConfigDict, int]:
  """(policy, RL config, step) from the newest checkpoint in an RL run's `workdir`.

  Args:
    workdir: the run's `config.workdir` (with `checkpoints/`).
    config: the run's config; default the one saved with the checkpoint.

  Raises:
    FileNotFoundError: no checkpoint in `workdir`.
    ValueError: not an RL run's checkpoint, or a LoRA run whose warm start is gone.
  """
  from reasoning_jax.checkpoint import TrainCheckpointer
  from reasoning_jax.train.sft_config import model_source

  ckpt_dir = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(ckpt_dir):
    raise FileNotFoundError(f"{workdir}: no checkpoints/ folder (not a run's workdir?)")
  with TrainCheckpointer(ckpt_dir) as ckpt:
    step = ckpt.latest_step()
    if step is None:
      raise FileNotFoundError(f"{ckpt_dir}: no finished checkpoint")
    if config is None:
      config = ml_collections.ConfigDict(ckpt.restore(step=step, target={})[1].get("config"))
    if not is_rl_config(config):
      raise ValueError(f"{workdir}: the checkpoint's config is not an RL run's")
    if step < int(config.get("num_steps", step)):
      logging.warning(
        "%s: loading step %d of %d (an interrupted run)", workdir, step, config.num_steps
      )
    source = model_source(sft_config(config))
    lora = lora_setup.lora_spec(config, error=ConfigError)
    if lora is None:
      model = abstract_model(source)
    else:
      model = warm_start(config, source, train_missing=False)  # The frozen base.
      lora_setup.adapt(model, lora, seed=config.seed, error=ConfigError)
    model = lora_setup.restore_params(ckpt, step, model, lora)
  return model, config, int(step)


def load_run(workdir: str) -> tuple[nnx.Module, ml_collections.ConfigDict, dict[str, Any]]:
  """(model, SFT-style config, description) of the newest checkpoint of an SFT or RL run.

  The config is the run's own (an RL run's `config.sft` with its model source): its task,
  prompt and verifier are the ones the run trained and evaluated with.

  Raises:
    FileNotFoundError: `workdir` holds no checkpoint.
    ValueError: see `load_rl_policy`.
  """
  from reasoning_jax.train.sft import load_sft_params, newest_checkpoint

  newest = newest_checkpoint(workdir)
  if newest is None:
    raise FileNotFoundError(f"{workdir}: no checkpoint (the workdir of an SFT or RL run?)")
  step, saved = newest
  if is_rl_config(saved):
    model, config, step = load_rl_policy(workdir, ml_collections.ConfigDict(saved))
    return model, sft_config(config), {"run": workdir, "run_kind": "rl", "step": step}
  model, config = load_sft_params(workdir)
  return model, config, {"run": workdir, "run_kind": "sft", "step": int(step)}
