"""The compiled train step's memory analysis, on abstract inputs (nothing allocated).

The step is compiled for the real devices of the mesh with explicit `in_shardings` /
`out_shardings` and the state donated, from `ShapeDtypeStruct`s only:

  jax.jit(step, in_shardings=..., out_shardings=...).lower(*abstract).compile()
     .memory_analysis()

Full fine-tuning compiles exactly the step of `reasoning_jax.train.step.make_train_step`
(its jitted function's `__wrapped__`, re-jitted with shardings) on `sft_loss`. LoRA has no
model-level implementation here, so its check compiles a stand-in: the base parameters are
a frozen (non-donated) input, the adapters `A [d_in, r] @ B [r, d_out]` are added to their
targeted kernels before the forward pass (`W + A @ B`), and only the adapters get gradients
and optimizer state. The stand-in's peak is an upper bound of a LoRA that applies
`x @ A @ B` beside `x @ W`: the merged kernels can be live as residuals, up to one more
(sharded) copy of the targeted weights.

Figures are per device (XLA compiles one SPMD program per device).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from reasoning_jax import sharding as sharding_lib
from reasoning_jax.models.transformer import Transformer
from reasoning_jax.train.memory.estimate import PlanSpec, abstract_model, lora_adapters
from reasoning_jax.train.memory.policy import make_optimizer
from reasoning_jax.train.step import (
  abstract_train_state,
  make_train_step,
  sft_loss,
  state_shardings,
)


@dataclasses.dataclass(frozen=True)
class CompiledMemory:
  """`memory_analysis()` of the compiled step, bytes per device.

  peak = arguments + outputs - aliased (donated) + temporaries.
  """

  arguments: int
  outputs: int
  aliased: int
  temporaries: int

  @property
  def peak(self) -> int:
    return self.arguments + self.outputs - self.aliased + self.temporaries


def _mesh(spec: PlanSpec):
  devices = jax.devices()
  if spec.num_devices != len(devices):
    raise ValueError(
      f"mesh {spec.mesh} needs {spec.num_devices} devices but there are {len(devices)}; "
      f"set XLA_FLAGS=--xla_force_host_platform_device_count={spec.num_devices} before "
      "importing jax (the plan experiment does) or change mesh"
    )
  return sharding_lib.make_mesh(spec.mesh, devices=devices)


def _abstract(tree, shardings):
  return jax.tree_util.tree_map(
    lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
  )


def _abstract_batch(spec: PlanSpec, mesh):
  shape = (spec.batch_size, spec.seq_len)
  batch_sharding = sharding_lib.batch_sharding(mesh, 2)
  return {
    "tokens": jax.ShapeDtypeStruct(shape, jnp.int32, sharding=batch_sharding),
    "loss_mask": jax.ShapeDtypeStruct(shape, jnp.int32, sharding=batch_sharding),
  }


def _analysis(compiled) -> CompiledMemory:
  stats = compiled.memory_analysis()
  if stats is None:
    raise RuntimeError("this backend's compiled executables report no memory_analysis()")
  return CompiledMemory(
    arguments=int(stats.argument_size_in_bytes),
    outputs=int(stats.output_size_in_bytes),
    aliased=int(stats.alias_size_in_bytes),
    temporaries=int(stats.temp_size_in_bytes),
  )


def _full_step(spec: PlanSpec, mesh):
  tx = make_optimizer(spec.optimizer, spec.policy)
  config = spec.config
  graphdef, state = abstract_train_state(lambda: Transformer(config, rngs=nnx.Rngs(0)), tx)
  shardings = state_shardings(state, tx, spec.partition_rules(), mesh)
  loss = functools.partial(sft_loss, chunk_size=spec.chunk_size)
  jitted = make_train_step(graphdef, tx, loss, micro_batches=spec.policy.micro_batches)
  step = getattr(jitted, "__wrapped__", jitted)
  batch = _abstract_batch(spec, mesh)
  fn = jax.jit(
    step,
    in_shardings=(shardings, jax.tree_util.tree_map(lambda x: x.sharding, batch)),
    out_shardings=(shardings, NamedSharding(mesh, P())),
    donate_argnums=(0,),
  )
  return fn, (_abstract(state, shardings), batch)


def _merge_adapters(params, adapters, shardings):
  """`W + A @ B` for each targeted kernel, in W's dtype and on W's sharding."""

  def merge(path, w, sharding):
    adapter = adapters.get(sharding_lib.path_to_name(path))
    if adapter is None:
      return w
    delta = (adapter["a"].astype(w.dtype) @ adapter["b"].astype(w.dtype)).reshape(w.shape)
    return w + jax.lax.with_sharding_constraint(delta, sharding)

  return jax.tree_util.tree_map_with_path(merge, params, shardings)


def _lora_step(spec: PlanSpec, mesh):
  tx = make_optimizer(spec.optimizer, spec.policy)
  graphdef, params = nnx.split(abstract_model(spec.config), nnx.Param)
  params = nnx.state(params)
  adapters = lora_adapters(spec, params)
  opt_state = jax.eval_shape(tx.init, adapters)
  replicated = NamedSharding(mesh, P())
  param_shards = sharding_lib.param_shardings(params, spec.partition_rules(), mesh)
  adapter_shards = jax.tree_util.tree_map(lambda _: replicated, adapters)
  opt_shards = jax.tree_util.tree_map(lambda _: replicated, opt_state)
  micro = spec.policy.micro_batches

  def step(params, trainable, batch):
    adapters, opt_state = trainable

    def loss(adapters, mb):
      model = nnx.merge(graphdef, _merge_adapters(params, adapters, param_shards))
      loss_sum, denom, _ = sft_loss(model, mb, chunk_size=spec.chunk_size)
      return loss_sum, denom

    grad_fn = jax.grad(loss, has_aux=True)
    mbs = jax.tree_util.tree_map(lambda x: x.reshape((micro, -1) + x.shape[1:]), batch)

    def body(carry, mb):
      g, d = grad_fn(adapters, mb)
      return (jax.tree_util.tree_map(jnp.add, carry[0], g), carry[1] + d), None

    zeros = jax.tree_util.tree_map(jnp.zeros_like, adapters)
    (grads, denom), _ = jax.lax.scan(body, (zeros, jnp.zeros((), jnp.float32)), mbs)
    grads = jax.tree_util.tree_map(lambda g: g / jnp.maximum(denom, 1.0), grads)
    updates, opt_state = tx.update(grads, opt_state, adapters)
    return optax.apply_updates(adapters, updates), opt_state

  batch = _abstract_batch(spec, mesh)
  trainable_shards = (adapter_shards, opt_shards)
  fn = jax.jit(
    step,
    in_shardings=(
      param_shards,
      trainable_shards,
      jax.tree_util.tree_map(lambda x: x.sharding, batch),
    ),
    out_shardings=trainable_shards,
    donate_argnums=(1,),
  )
  args = (
    _abstract(params, param_shards),
    (_abstract(adapters, adapter_shards), _abstract(opt_state, opt_shards)),
    batch,
  )
  return fn, args


def compiled_memory(spec: PlanSpec) -> CompiledMemory:
  """Compiles the train step of `spec` on abstract inputs and returns its memory analysis.

  Raises:
    ValueError: naming `mesh` when its size is not the number of devices.
  """
  mesh = _mesh(spec)
  with jax.set_mesh(mesh):
    fn, args = (_lora_step if spec.lora_rank else _full_step)(spec, mesh)
    return _analysis(fn.lower(*args).compile())
