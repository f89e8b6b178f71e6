"""Learning head roles on a frozen model: LycheeDecode's HardKuma gates or DuoAttention's alphas.

LycheeDecode ("LycheeDecode: Accelerating Long-Context LLM Inference via Hybrid-Head Sparse
Decoding", Lin et al., arXiv:2602.04541; `shared/methods/inference.md` section 8.3): one
HardKuma gate per (layer, KV head), `a, b` initialised to 1; each step samples `z`, runs the
role-distillation forward (`distill.RoleDistillContext`) and minimises

  L = L_distill + stopgrad(lambda) * c,   c from the density constraint on rho_hat,

with AdamW (lr 0.01, no weight decay, LycheeDecode's warm-up / decay factor) on `(a, b)` only.
Final roles: retrieval iff the Kuma mean > 0.5, layer 0 forced.

DuoAttention ("DuoAttention: Efficient Long-Context LLM Inference with Retrieval and Streaming
Heads", Xiao et al., arXiv:2410.10819; section 7.2): one alpha per KV head initialised to 1,
`L = L_distill + lambda_reg * sum |alpha|` (lambda_reg 0.05), lr 0.02, alpha clipped to [0, 1]
after every update; roles keep the top `duo_fraction` of heads (or alpha >= `duo_threshold`).

The model is never updated: gradients are taken with respect to the gate parameters alone, and
the teacher (full attention) hidden states are recomputed inside each jitted step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx

from reasoning_jax.layers.head_roles import DuoAttentionGates, HardKumaRoleGates
from reasoning_jax.ops.sparse_decode import (
  density_penalty,
  init_density_constraint,
  lycheedecode_schedule,
)
from reasoning_jax.sparse.distill import RoleDistillContext, distill_loss

DEFAULT_LR = {"lychee": 0.01, "duo": 0.02}


@dataclasses.dataclass(frozen=True)
class RoleTrainingConfig:
  """Role-learning settings (paper defaults; `steps` is the one to shrink at small scale).

  Attributes:
    method: "lychee" (HardKuma) or "duo" (DuoAttention alphas).
    steps: optimiser steps (paper: 3000 LycheeDecode, 2000 DuoAttention).
    lr: learning rate (None: 0.01 LycheeDecode, 0.02 DuoAttention).
    target_density: LycheeDecode's rho*, the expected share of retrieval heads outside the
      forced layer 0 (paper: 0.09375 for Llama-3-8B).
    lam0, eta: the density multiplier's start and step (2.0, 1e-3).
    ratio: the training selector's kept share of the causal prefix (0.3).
    sink_tokens, recent_tokens: anchors of the training masks (128, 256).
    duo_l1: DuoAttention's lambda_reg (0.05).
    duo_fraction / duo_threshold: how alphas become roles (exactly one; default fraction 0.5).
    seed: gate-sampling key.
    log_every: steps between log lines and history entries.
  """

  method: str = "lychee"
  steps: int = 3000
  lr: float | None = None
  target_density: float = 0.09375
  lam0: float = 2.0
  eta: float = 1e-3
  ratio: float = 0.3
  sink_tokens: int = 128
  recent_tokens: int = 256
  duo_l1: float = 0.05
  duo_fraction: float | None = 0.5
  duo_threshold: float | None = None
  seed: int = 0
  log_every: int = 50

  def __post_init__(self):
    if self.method not in DEFAULT_LR:
      raise ValueError(f"method must be one of {tuple(DEFAULT_LR)}, got {self.method!r}")
    if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
      raise ValueError(f"steps must be an int >= 1, got {self.steps!r}")
    if not 0.0 <= self.target_density <= 1.0:
      raise ValueError(f"target_density must be in [0, 1], got {self.target_density}")
    if self.method == "duo" and (self.duo_fraction is None) == (self.duo_threshold is None):
      raise ValueError("pass exactly one of duo_fraction or duo_threshold")

  @property
  def learning_rate(self) -> float:
    return DEFAULT_LR[self.method] if self.lr is None else float(self.lr)


@dataclasses.dataclass
class RoleTrainingResult:
  """`roles` `[L, K]` bool (True = retrieval), the gate parameters, the logged history."""

  roles: np.ndarray
  gates: dict[str, np.ndarray]
  history: list[dict[str, float]]
  module: nnx.Module


def _check_batch(batch: dict[str, Any], vocab_size: int) -> tuple[jax.Array, jax.Array]:
  if "input_ids" not in batch or "loss_mask" not in batch:
    raise ValueError(f"a batch needs 'input_ids' and 'loss_mask', got keys {sorted(batch)}")
  ids, mask = np.asarray(batch["input_ids"]), np.asarray(batch["loss_mask"])
  if ids.ndim != 2 or ids.shape != mask.shape:
    raise ValueError(
      f"input_ids and loss_mask must both be [B, T], got {ids.shape} and {mask.shape}"
    )
  if not mask.any():
    raise ValueError("loss_mask selects no token: the distillation loss needs answer tokens")
  if ids.min() < 0 or ids.max() >= vocab_size:
    raise ValueError(f"input_ids must be in [0, {vocab_size}), got [{ids.min()}, {ids.max()}]")
  return jnp.asarray(ids, jnp.int32), jnp.asarray(mask, bool)


def make_gates(model_config: Any, method: str) -> nnx.Module:
  layers, heads = model_config.num_layers, model_config.num_kv_heads
  if method == "lychee":
    return HardKumaRoleGates(layers, heads)
  return DuoAttentionGates(layers, heads)


def train_roles(
  model: nnx.Module, batches: Iterable[dict[str, Any]], config: RoleTrainingConfig
) -> RoleTrainingResult:
  """Learns head roles for `model` (frozen) from `batches` (see the module docstring).

  Args:
    model: a zoo `Transformer` with attention in every layer.
    batches: iterable of `{"input_ids": [B, T] int, "loss_mask": [B, T] bool}`; the loss is
      on `loss_mask` positions (answer tokens). A list is cycled when shorter than
      `config.steps`; an iterator must last `config.steps` batches (nothing is buffered).
    config: the settings.

  Returns:
    A `RoleTrainingResult`.
  """
  gates = make_gates(model.config, config.method)
  model_def, model_state = nnx.split(model)
  gates_def, gate_params = nnx.split(gates, nnx.Param)
  if config.method == "lychee":
    schedule = lycheedecode_schedule(config.learning_rate, config.steps)
  else:
    schedule = config.learning_rate
  tx = optax.adamw(schedule, weight_decay=0.0)
  opt_state = tx.init(gate_params)
  constraint = init_density_constraint(config.lam0)
  mix = dict(ratio=config.ratio, sink_tokens=config.sink_tokens, recent_tokens=config.recent_tokens)

  def loss_fn(params, ids, mask, key, constraint):
    g = nnx.merge(gates_def, params)
    m = nnx.merge(model_def, model_state)
    teacher = jax.lax.stop_gradient(m.forward(ids)[0])
    if config.method == "lychee":
      context = RoleDistillContext(g.sample(key), mode="lychee", **mix)
    else:
      context = RoleDistillContext(g.values(), mode="duo", **mix)
    student = m.forward(ids, attention_context=context)[0]
    distill = distill_loss(teacher, student, mask)
    metrics = {"distill": distill}
    if config.method == "lychee":
      density = g.expected_density()
      penalty, constraint, extra = density_penalty(
        density, config.target_density, constraint, eta=config.eta
      )
      metrics.update(density=density, lam=constraint.lam, penalty=penalty)
      metrics.update({k: v for k, v in extra.items() if k not in metrics})
      loss = distill + penalty
    else:
      l1 = g.l1()
      metrics.update(l1=l1)
      loss = distill + config.duo_l1 * l1
    metrics["loss"] = loss
    return loss, (constraint, metrics)

  @jax.jit
  def step(params, opt_state, ids, mask, key, constraint):
    grads, (constraint, metrics) = jax.grad(loss_fn, has_aux=True)(
      params, ids, mask, key, constraint
    )
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    if config.method == "duo":
      params = jax.tree_util.tree_map(lambda p: jnp.clip(p, 0.0, 1.0), params)
    return params, opt_state, constraint, metrics

  history: list[dict[str, float]] = []
  key = jax.random.key(config.seed)
  source = iter(batches)
  for s in range(config.steps):
    try:
      batch = next(source)
    except StopIteration:  # A finite re-iterable (a list) is cycled; a spent generator is not.
      source = iter(batches)
      try:
        batch = next(source)
      except StopIteration:
        raise ValueError(
          f"batches ran out after {s} steps of {config.steps}: pass a re-iterable (a list) "
          "or an endless iterator"
        ) from None
    ids, mask = _check_batch(batch, model.config.vocab_size)
    gate_params, opt_state, constraint, metrics = step(
      gate_params, opt_state, ids, mask, jax.random.fold_in(key, s), constraint
    )
    if s % config.log_every == 0 or s == config.steps - 1:
      row = {"step": float(s)} | {k: float(v) for k, v in metrics.items()}
      if not all(np.isfinite(v) for v in row.values()):
        raise FloatingPointError(f"role training diverged at step {s}: {row}")
      history.append(row)
      logging.info("roles[%s] step %d: %s", config.method, s, row)
  gates = nnx.merge(gates_def, gate_params)
  if config.method == "lychee":
    roles = np.asarray(gates.roles(), bool)
    params = {"a": np.asarray(gates.a[...]), "b": np.asarray(gates.b[...])}
  else:
    roles = np.asarray(
      gates.roles(threshold=config.duo_threshold, fraction=config.duo_fraction), bool
    )
    params = {"alpha": np.asarray(gates.alpha[...])}
  return RoleTrainingResult(roles=roles, gates=params, history=history, module=gates)
