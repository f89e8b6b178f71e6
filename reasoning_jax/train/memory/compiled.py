"""The compiled train step's memory analysis, on abstract inputs (nothing allocated).

The step is compiled for the real devices of the mesh with explicit `in_shardings` /
`out_shardings` and the state donated, from `ShapeDtypeStruct`s only:

  jax.jit(step, in_shardings=..., out_shardings=...).lower(*abstract).compile()
     .memory_analysis()

Both compile exactly the step of `reasoning_jax.train.step.make_train_step` (its jitted
function's `__wrapped__`, re-jitted with shardings) on `sft_loss`. LoRA is the model the
trainers train: `reasoning_jax.lora.apply_lora` on the abstract model (targets
`spec.lora_targets`, rank `spec.lora_rank`, adapters in `spec.lora_dtype`, the base in the
policy's parameter dtype), split with `trainable=TRAINABLE` (only adapters get gradients and
optimizer state; the base is `TrainState.frozen`, donated and returned unchanged) and
sharded with `lora_rules` (base as its kernel, A and B replicated). The forward pass is the
factored `x W + s (x A) B`: no `[d_in, d_out]` delta and no full-size kernel gradient.

Figures are per device (XLA compiles one SPMD program per device).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from reasoning_jax import sharding as sharding_lib
from reasoning_jax.lora import TRAINABLE, LoRAConfig, apply_lora, lora_rules
from reasoning_jax.models.transformer import Transformer
from reasoning_jax.train.memory.estimate import PlanSpec
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
  return _jit_step(spec, mesh, graphdef, tx, state, shardings)


def _jit_step(spec: PlanSpec, mesh, graphdef, tx, state, shardings):
  """`make_train_step`'s step on `sft_loss`, re-jitted with shardings and the state donated."""
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


def _lora_step(spec: PlanSpec, mesh):
  """The real LoRA step: `apply_lora` on the abstract model (bf16 or f32 base per the policy,
  adapters in `lora_dtype`), `trainable=TRAINABLE` through `make_train_step`."""
  tx = make_optimizer(spec.optimizer, spec.policy)
  lora = LoRAConfig(
    rank=spec.lora_rank,
    alpha=2.0 * spec.lora_rank,
    targets=spec.lora_targets,
    adapter_dtype=spec.lora_dtype,
  )

  def model_fn():
    model = Transformer(spec.config, rngs=nnx.Rngs(0))
    apply_lora(model, lora, rngs=nnx.Rngs(1))  # The base keeps the policy's param dtype.
    return model

  graphdef, state = abstract_train_state(model_fn, tx, trainable=TRAINABLE)
  shardings = state_shardings(state, tx, lora_rules(spec.partition_rules()), mesh)
  return _jit_step(spec, mesh, graphdef, tx, state, shardings)


def compiled_memory(spec: PlanSpec) -> CompiledMemory:
  """Compiles the train step of `spec` on abstract inputs and returns its memory analysis.

  Raises:
    ValueError: naming `mesh` when its size is not the number of devices.
  """
  mesh = _mesh(spec)
  with jax.set_mesh(mesh):
    fn, args = (_lora_step if spec.lora_rank else _full_step)(spec, mesh)
    return _analysis(fn.lower(*args).compile())
