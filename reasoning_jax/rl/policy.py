"""One policy under RL outside the main trainer: its train state, compiled update, reference.

Drivers that run their own rollouts (CPMöbius' coach and player, InfMem's protocol episodes)
update a policy through the same pieces as `rl.trainer`: the RL loss library's `ppo_clip`
through the shared sharded train step (`make_rl_loss_fn`). `fixed_update_arrays` pads every
update batch to one shape, so each update compiles once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from reasoning_jax import rl
from reasoning_jax import sharding as sharding_lib
from reasoning_jax.rl.rollout import RolloutBatch, make_logprob_fn
from reasoning_jax.rl.trainer import make_rl_loss_fn
from reasoning_jax.train import lora_setup
from reasoning_jax.train.step import init_train_state, make_train_step, state_shardings

__all__ = ["Side", "fixed_update_arrays", "grpo_advantages", "make_side", "side_mesh"]


@dataclasses.dataclass
class Side:
  """One policy (a model of a game, an agent): its graphdef, train state, step function and reference."""

  graphdef: Any
  state: Any
  shardings: Any
  step_fn: Any
  ref_params: Any
  logprob_fn: Any


def _optimizer(learning_rate: float, grad_clip: float):
  return optax.chain(optax.clip_by_global_norm(grad_clip), optax.adamw(learning_rate))


def make_side(model, *, lr, grad_clip, loss_cfg: dict, window: int, mesh) -> Side:
  tx = _optimizer(lr, grad_clip)
  graphdef, state = init_train_state(model, tx)
  shardings = state_shardings(
    state, tx, lora_setup.partition_rules(model.config.family, None), mesh
  )
  state = sharding_lib.place(state, shardings)
  bound = rl.make_loss("ppo_clip", **loss_cfg)
  step_fn = make_train_step(
    graphdef,
    tx,
    make_rl_loss_fn(bound, window=window),
    mesh=mesh,
    shardings=shardings,
    aux_merge=rl.merge_aux,
    aux_finalize=lambda aux, denom: rl.summarize_aux(aux),
  )
  ref = None
  if loss_cfg.get("beta", 0.0) > 0:  # A copy: the step donates the policy buffers.
    ref = jax.jit(lambda p: jax.tree_util.tree_map(jnp.copy, p), out_shardings=shardings.params)(
      state.params
    )
  return Side(graphdef, state, shardings, step_fn, ref, make_logprob_fn(graphdef, window=window))


def fixed_update_arrays(
  batch: RolloutBatch, rows: int, width: int, advantages: np.ndarray, mesh
) -> dict:
  """The update arrays padded to `rows x width`, rows rounded up to a multiple of the mesh's
  batch shards (padding rows have an all-zero mask: they add nothing to any loss term)."""
  shards = int(np.prod([mesh.shape[a] for a in sharding_lib.BATCH_AXES if a in mesh.shape]))
  rows = -(-rows // shards) * shards
  n = batch.size
  if n > rows or batch.tokens.shape[1] > width:
    raise ValueError(f"batch {n}x{batch.tokens.shape[1]} exceeds the fixed {rows}x{width}")

  def pad(x, value=0):
    x = np.asarray(x)
    spec = [(0, rows - n)] + ([(0, width - x.shape[1])] if x.ndim == 2 else [])
    return np.pad(x, spec, constant_values=value)

  return {
    "tokens": pad(batch.tokens).astype(np.int32),
    "mask": pad(batch.mask).astype(np.float32),
    "sampler_logp": pad(batch.sampler_logp).astype(np.float32),
    "advantages": pad(np.asarray(advantages, np.float32)),
    **({"ref_logp": pad(batch.ref_logp).astype(np.float32)} if batch.ref_logp is not None else {}),
  }


def grpo_advantages(rewards: np.ndarray, group_ids: np.ndarray) -> np.ndarray:
  return np.asarray(
    rl.compute_advantages("grpo", jnp.asarray(rewards), group_ids=jnp.asarray(group_ids))
  )


def side_mesh(side: Side):
  leaf = jax.tree_util.tree_leaves(side.shardings.params)[0]
  return leaf.mesh
