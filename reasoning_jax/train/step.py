"""Train state and a sharded, exactly-accumulating train step.

A loss is any `fn(model, batch) -> (loss_sum, denominator, aux)`: the summed
loss, the count it should be divided by (e.g. target tokens), and scalar
metrics. `make_train_step` turns it into one compiled step

  grads = d(sum_i loss_sum_i) / d(params) / sum_i denominator_i

over `micro_batches` slices of the batch (a `lax.scan`), so gradient
accumulation equals the full-batch gradient exactly, and the same holds across
devices and hosts (the sums are global). The step is `jax.jit` with explicit
`in_shardings` / `out_shardings` from the partition rules and the train state
donated.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from reasoning_jax import sharding as sharding_lib
from reasoning_jax.data import restore_iterator
from reasoning_jax.logprobs import sequence_logprobs

LossFn = Callable[[nnx.Module, Mapping[str, jax.Array]], tuple[jax.Array, jax.Array, dict]]


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class TrainState:
  """Everything a step carries: step counter, trained parameters (nnx.State), optimizer state,
  and `frozen`: parameters left out of training by a `trainable=` filter (None by default).
  """

  step: jax.Array
  params: Any
  opt_state: Any
  frozen: Any = None


def init_train_state(
  model: nnx.Module, tx: optax.GradientTransformation, *, trainable: Any = None
) -> tuple[nnx.GraphDef, TrainState]:
  """Splits `model` into (graphdef, TrainState) with a fresh optimizer state.

  `trainable`: an nnx filter (e.g. `nnx.LoRAParam`, `reasoning_jax.lora.TRAINABLE`). When set,
  only matching parameters are trained (and get optimizer state); the other parameters go to
  `TrainState.frozen` and pass through the step unchanged. Default None: every `nnx.Param`.
  """
  if trainable is None:
    graphdef, params = nnx.split(model, nnx.Param)
    frozen = None
  else:
    graphdef, params, frozen = nnx.split(model, trainable, nnx.Param)
  return graphdef, TrainState(
    step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), frozen=frozen
  )


def abstract_train_state(
  model_fn: Callable[[], nnx.Module], tx, *, trainable: Any = None
) -> tuple[nnx.GraphDef, Any]:
  """(graphdef, TrainState of ShapeDtypeStructs) without allocating anything."""
  return jax.eval_shape(lambda: init_train_state(model_fn(), tx, trainable=trainable))


def state_shardings(
  state: TrainState, tx: optax.GradientTransformation, rules, mesh: Mesh
) -> TrainState:
  """Shardings for a TrainState: params by the rules, optimizer moments like their params.

  `optax.tree_map_params` finds the parameter-shaped leaves of the optimizer
  state (Adam's mu/nu, ...); they take their parameter's sharding, and every
  other optimizer leaf (counts, scalars) is replicated.
  """
  param_shards = sharding_lib.param_shardings(state.params, rules, mesh)
  replicated = NamedSharding(mesh, P())
  opt_shards = optax.tree_map_params(
    tx,
    lambda _, shard: shard,
    state.opt_state,
    param_shards,
    transform_non_params=lambda _: replicated,
    is_leaf=lambda x: isinstance(x, NamedSharding),
  )
  frozen = None if state.frozen is None else sharding_lib.param_shardings(state.frozen, rules, mesh)
  return TrainState(step=replicated, params=param_shards, opt_state=opt_shards, frozen=frozen)


def restore_train_state(
  ckpt, state: TrainState, rng: jax.Array, data_iter: Any, mesh: Mesh, *, updates_per_step: int = 1
):
  """Restores (step, state, rng) from the newest good checkpoint, or returns None.

  Params and optimizer state come back on the shardings of `state`; the RNG key is
  replicated over `mesh`; the data iterator is restored in place so the run
  continues with exactly the next batch. Shared by the SFT and RL trainers.
  """
  target = jax.tree_util.tree_map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
    {"params": state.params, "opt_state": state.opt_state},
  )
  target["rng"] = rng
  restored = ckpt.restore(target=target)
  if restored is None:
    return None
  step, saved = restored
  state = TrainState(
    step=jnp.asarray(step * updates_per_step, jnp.int32),
    params=saved["params"],
    opt_state=saved["opt_state"],
    frozen=state.frozen,  # Not checkpointed: reloaded from its source (e.g. a frozen base).
  )
  # Restored on one device: made uncommitted again, as a fresh run's key is, so that jit places
  # it with the global-mesh update and with a per-host rollout engine alike (committed to the
  # mesh, a per-host engine rejects it; on several processes it could not even be placed).
  rng = sharding_lib.uncommitted(saved["rng"])
  restore_iterator(data_iter, saved["data_state"])
  return step, state, rng


def sft_loss(
  model: nnx.Module, batch: Mapping[str, jax.Array], *, chunk_size: int | None = None
) -> tuple[jax.Array, jax.Array, dict]:
  """Next-token cross-entropy on `loss_mask` tokens: (sum, token count, aux).

  batch: `tokens [B, T]`, `loss_mask [B, T]` (1 where the token is a target),
  optional `positions`, `segment_ids` (packing).
  """
  mask = batch["loss_mask"].astype(jnp.float32)
  logp, entropy = sequence_logprobs(
    model,
    batch["tokens"],
    mask,
    chunk_size=chunk_size,
    positions=batch.get("positions"),
    segment_ids=batch.get("segment_ids"),
  )
  count = mask.sum()
  return -logp.sum(), count, {"entropy_sum": entropy.sum()}


def _split_micro(batch, n):
  def split(x):
    if x.shape[0] % n:
      raise ValueError(f"batch size {x.shape[0]} is not divisible by micro_batches={n}")
    return x.reshape((n, x.shape[0] // n) + x.shape[1:])

  return jax.tree_util.tree_map(split, batch)


def _global_norm(tree):
  tree_lib = getattr(optax, "tree", None)  # optax.tree.norm replaces optax.global_norm.
  return (
    tree_lib.norm(tree)
    if tree_lib is not None and hasattr(tree_lib, "norm")
    else optax.global_norm(tree)
  )


def merge_aux(a: Mapping[str, jax.Array], b: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
  """Combines two micro-batches' raw aux: `*_min` by min, `*_max` by max, the rest add.

  The `aux_merge` of `make_train_step` for losses whose aux holds minima / maxima besides sums
  (the RL losses' clip statistics, ReMiT's weight range).
  """
  if set(a) != set(b):
    raise ValueError(f"merge_aux: aux keys differ: {sorted(set(a) ^ set(b))}")
  out = {}
  for k in a:
    if k.endswith("_min"):
      out[k] = jnp.minimum(a[k], b[k])
    elif k.endswith("_max"):
      out[k] = jnp.maximum(a[k], b[k])
    else:
      out[k] = a[k] + b[k]
  return out


def _default_finalize(aux, denom):
  return {k.replace("_sum", ""): v / denom for k, v in aux.items()}


def make_train_step(
  graphdef: nnx.GraphDef,
  tx: optax.GradientTransformation,
  loss_fn: LossFn,
  *,
  micro_batches: int = 1,
  mesh: Mesh | None = None,
  shardings: TrainState | None = None,
  donate: bool = True,
  aux_merge: Callable[[dict, dict], dict] | None = None,
  aux_finalize: Callable[[dict, jax.Array], dict] | None = None,
):
  """Compiles `step(state, batch) -> (state, metrics)`.

  Args:
    graphdef: from `init_train_state` (with its `trainable=` filter, only those parameters
      get gradients; `state.frozen` is merged in and returned unchanged).
    tx: the optax transformation.
    loss_fn: `fn(model, batch) -> (loss_sum, denominator, aux)`.
    micro_batches: gradient-accumulation slices of the batch (exact).
    mesh, shardings: when given, the step is compiled with
      `in_shardings=(shardings, batch)`, `out_shardings=(shardings, replicated)`.
    donate: donate the input state buffers.
    aux_merge: combines the aux of two micro-batches (default: add). RL losses pass
      `merge_aux` (min/max-aware).
    aux_finalize: `fn(aux, denominator) -> metrics` (default: every `*_sum` aux
      divided by the loss denominator). RL passes `summarize_aux`.
  """
  merge = aux_merge or (lambda a, b: jax.tree_util.tree_map(jnp.add, a, b))
  finalize = aux_finalize or _default_finalize
  if micro_batches < 1:
    raise ValueError(f"micro_batches must be >= 1, got {micro_batches}")

  def step(state: TrainState, batch):
    def summed(params, micro):
      # A fresh copy of the frozen state's Variables at this trace level: merged as they are,
      # they would belong to the outer (jit) trace, and `nnx.remat` blocks inside the forward
      # pass could not update them (TraceContextError).
      frozen = () if state.frozen is None else (jax.tree_util.tree_map(lambda x: x, state.frozen),)
      model = nnx.merge(graphdef, params, *frozen)
      loss_sum, denom, aux = loss_fn(model, micro)
      return loss_sum, (denom, aux)

    grad_fn = jax.value_and_grad(summed, has_aux=True)
    if micro_batches == 1:
      (loss_sum, (denom, aux)), grads = grad_fn(state.params, batch)
    else:
      micro = _split_micro(batch, micro_batches)

      first = jax.tree_util.tree_map(lambda x: x[0], micro)
      rest = jax.tree_util.tree_map(lambda x: x[1:], micro)
      (loss_sum, (denom, aux)), grads = grad_fn(state.params, first)

      def body(carry, mb):
        (l, (d, a)), g = grad_fn(state.params, mb)
        acc_g, acc_l, acc_d, acc_a = carry
        return (
          jax.tree_util.tree_map(jnp.add, acc_g, g),
          acc_l + l,
          acc_d + d,
          merge(acc_a, a),
        ), None

      (grads, loss_sum, denom, aux), _ = jax.lax.scan(body, (grads, loss_sum, denom, aux), rest)
    raw_denom = denom
    denom = jnp.maximum(denom, 1.0)
    grads = jax.tree_util.tree_map(lambda g: g / denom, grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss_sum / denom, "tokens": raw_denom, "grad_norm": _global_norm(grads)}
    metrics.update(finalize(aux, denom))
    new_state = TrainState(
      step=state.step + 1, params=params, opt_state=opt_state, frozen=state.frozen
    )
    return new_state, metrics

  if mesh is None:
    return jax.jit(step, donate_argnums=(0,) if donate else ())
  if shardings is None:
    raise ValueError("make_train_step: pass `shardings` together with `mesh`")
  replicated = NamedSharding(mesh, P())

  def batch_shardings(batch):
    return jax.tree_util.tree_map(lambda x: sharding_lib.batch_sharding(mesh, x.ndim), batch)

  compiled = {}

  def run(state, batch):
    key = tuple(sorted((k, v.shape) for k, v in batch.items()))
    if key not in compiled:
      compiled[key] = jax.jit(
        step,
        in_shardings=(shardings, batch_shardings(batch)),
        out_shardings=(shardings, replicated),
        donate_argnums=(0,) if donate else (),
      )
    with jax.set_mesh(mesh):
      return compiled[key](state, batch)

  return run
