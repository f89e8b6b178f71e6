"""Per-device memory of a training (or generation) setup, from abstract shapes only.

Nothing is allocated: the model is built with `nnx.eval_shape`, the optimizer state with
`jax.eval_shape(tx.init, ...)`, the KV cache with `jax.eval_shape(model.init_cache, ...)`.
Each array's bytes per device are its global bytes divided by the product of the mesh axes
its PartitionSpec (from the partition rules, fitted by `sharding.spec_for`) shards it over.
All figures are bytes per device.

Terms (see `MemoryEstimate`):

* params: the parameters (the frozen base plus the adapters with LoRA);
* grads: the trainable parameters' gradients (param dtype), twice with accumulation
  (`micro_batches > 1`: the running sum and the current micro-batch's);
* opt_state: the optimizer state, from `tx.init` on the trainable parameters;
* gathered: with fsdp, the all-gathered (unsharded) parameters and the unsharded trainable
  gradients before their reduce-scatter, less the local shards. The layer loop is unrolled
  (no `scan`), so XLA may keep every layer's gathered weights from the forward to the
  backward pass and reduce-scatter the gradients late; the host-CPU compile does, and all
  layers are counted (an upper bound where a scheduler frees them per layer; 0 without fsdp);
* update: the optimizer update's temporaries, two trainable-parameter-sized trees in the
  optimizer-state dtype (the updates and one intermediate);
* activations: the residuals the backward pass keeps, per remat policy (below), plus the
  float32 logits of the loss and their gradient;
* kv_cache: a generation cache (`kv_batch x kv_max_len x layers x kv_heads x head_dim x 2`
  in `kv_dtype`), batch-sharded over (data, fsdp).

Activations per block and token (`H` hidden, `I` FFN, `q = N*D`, `kv = K*D`, `c` compute
bytes; scores are float32 `N*T` per token with the "xla" attention, 0 with "flash"):

  none:          (5H + 3q + 4kv + 4I) * c + scores * (4 + c)
  dots_saveable: (3H + 2q + 2kv + 2I) * c + scores * 4     (matmul outputs only)
  full:          H * c per block, plus one block's "none" set while it is recomputed

and, for every policy, one block's attention backward (`scores * 8`: float32 dP and dS).

The step's peak is taken as `params + opt_state + grads + max(gathered + activations,
update)`: the forward/backward phase and the update phase do not overlap.

The estimate is an accounting of what must be live, not of XLA's schedule: the compiled
step's `memory_analysis()` (see `compiled.py`) differs by XLA temporaries (fusion buffers,
layout copies, the gathered weights' actual lifetime) and by the parameter update's
temporaries; `tests/train/test_memory.py` states the tolerance.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import PartitionSpec as P

from reasoning_jax import sharding as sharding_lib
from reasoning_jax.models.config import ModelConfig
from reasoning_jax.models.partition_rules import rules_for
from reasoning_jax.models.transformer import Transformer
from reasoning_jax.train.memory.policy import MemoryPolicy, make_optimizer
from reasoning_jax.validation import check_choice, check_positive_int

ATTENTION = ("xla", "flash")
DEFAULT_LORA_TARGETS = r".*mixer\.(q|k|v|o)_proj|.*ffn\.(gate|up|down)"


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlanSpec:
  """What to plan for (validated on build; errors name the field).

  Attributes:
    model: the model (its dtypes and remat are replaced by `policy`'s).
    policy: dtypes, remat, micro-batches.
    mesh: axis name -> size over `sharding.MESH_AXES` (missing axes: 1).
    batch_size: global sequences per step (divisible by data*fsdp*micro_batches).
    seq_len: tokens per sequence.
    optimizer: "adamw" (two moments) or "sgd".
    lora_rank: 0 for full fine-tuning; else adapters `A [d_in, r]`, `B [r, d_out]` on every
      >= 2-D parameter whose dotted name matches `lora_targets` (`re.fullmatch`), base frozen.
    lora_targets: regex over parameter names (`layers.3.mixer.q_proj`).
    lora_dtype: adapter (and adapter-gradient) dtype.
    kv_batch, kv_max_len: generation cache size (0: none).
    kv_dtype: cache dtype ("" = compute dtype).
    attention: "xla" (materialises [B, N, T, T] scores) or "flash" (does not).
    chunk_size: vocabulary-projection chunk of the loss (None: whole sequence).
    rules: partition rules (default: `rules_for(model.family)`).
  """

  model: ModelConfig
  policy: MemoryPolicy = MemoryPolicy()
  mesh: Mapping[str, int] = dataclasses.field(default_factory=lambda: {"fsdp": 1})
  batch_size: int = 1
  seq_len: int = 128
  optimizer: str = "adamw"
  lora_rank: int = 0
  lora_targets: str = DEFAULT_LORA_TARGETS
  lora_dtype: str = "float32"
  kv_batch: int = 0
  kv_max_len: int = 0
  kv_dtype: str = ""
  attention: str = "xla"
  chunk_size: int | None = None
  rules: Any = None

  def __post_init__(self):
    if not isinstance(self.model, ModelConfig):
      raise TypeError(f"model must be a ModelConfig, got {type(self.model).__name__}")
    if not isinstance(self.policy, MemoryPolicy):
      raise TypeError(f"policy must be a MemoryPolicy, got {type(self.policy).__name__}")
    if not isinstance(self.mesh, Mapping):
      raise ValueError(f"mesh must be a mapping axis -> size, got {self.mesh!r}")
    unknown = set(self.mesh) - set(sharding_lib.MESH_AXES)
    if unknown:
      raise ValueError(f"mesh: unknown axis {sorted(unknown)}; axes are {sharding_lib.MESH_AXES}")
    for axis, size in self.mesh.items():
      check_positive_int(size, f"mesh.{axis}")
    object.__setattr__(self, "mesh", {a: int(self.mesh.get(a, 1)) for a in sharding_lib.MESH_AXES})
    check_positive_int(self.batch_size, "batch_size")
    check_positive_int(self.seq_len, "seq_len")
    check_choice(self.optimizer, ("adamw", "sgd"), "optimizer")
    check_positive_int(self.lora_rank, "lora_rank", minimum=0)
    try:
      re.compile(self.lora_targets)
    except re.error as e:
      raise ValueError(f"lora_targets={self.lora_targets!r} is not a regex: {e}") from None
    check_positive_int(self.kv_batch, "kv_batch", minimum=0)
    check_positive_int(self.kv_max_len, "kv_max_len", minimum=0)
    check_choice(self.attention, ATTENTION, "attention")
    if self.chunk_size is not None:
      check_positive_int(self.chunk_size, "chunk_size")
    shards = self.batch_shards * self.policy.micro_batches
    if self.batch_size % shards:
      raise ValueError(
        f"batch_size={self.batch_size} must be divisible by data*fsdp*micro_batches={shards}"
      )

  @property
  def batch_shards(self) -> int:
    return self.mesh["data"] * self.mesh["fsdp"]

  @property
  def num_devices(self) -> int:
    return math.prod(self.mesh.values())

  @property
  def config(self) -> ModelConfig:
    """The model config with the policy applied."""
    return self.policy.apply(self.model)

  def partition_rules(self):
    return self.rules if self.rules is not None else rules_for(self.model.family)

  def abstract_mesh(self) -> jax.sharding.AbstractMesh:
    return jax.sharding.AbstractMesh(
      tuple(self.mesh[a] for a in sharding_lib.MESH_AXES), sharding_lib.MESH_AXES
    )


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
  """Bytes per device of each term (see the module docstring) and parameter counts."""

  params: int
  grads: int
  opt_state: int
  gathered: int
  activations: int
  update: int
  kv_cache: int
  num_params: int
  trainable_params: int

  @property
  def train_total(self) -> int:
    """The train step's peak (the KV cache is a generation-time figure, not included)."""
    phase = max(self.gathered + self.activations, self.update)
    return self.params + self.grads + self.opt_state + phase


def abstract_model(config: ModelConfig) -> Transformer:
  """The model with `ShapeDtypeStruct` parameters (nothing allocated)."""
  return nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))


def _shard_factor(spec: P, mesh) -> int:
  factor = 1
  for axes in spec:
    for axis in (axes,) if isinstance(axes, str) else axes or ():
      factor *= mesh.shape[axis]
  return factor


def device_bytes(tree: Any, specs: Any, mesh) -> int:
  """Sum over leaves of `nbytes / (product of the mesh axes the leaf's spec shards over)`."""
  leaves = jax.tree_util.tree_leaves(tree)
  spec_leaves = jax.tree_util.tree_leaves(specs, is_leaf=lambda x: isinstance(x, P))
  total = 0
  for leaf, spec in zip(leaves, spec_leaves, strict=True):
    nbytes = math.prod(leaf.shape) * jnp.dtype(leaf.dtype).itemsize
    total += nbytes // _shard_factor(spec, mesh)
  return total


def lora_shapes(params: Any, rank: int, targets: str) -> dict[str, tuple[tuple, tuple]]:
  """`{name: ((d_in, r), (r, d_out))}` for every >= 2-D parameter matching `targets`.

  The input side of a kernel is its first axis (`q/k/v [H, N, D]`, `gate/up [H, I]`,
  `down [I, H]`), except the attention output `o_proj [N, D, H]`, whose input is `N*D`.
  """
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    name = sharding_lib.path_to_name(path)
    if len(leaf.shape) < 2 or not re.fullmatch(targets, name):
      continue
    split = len(leaf.shape) - 1 if name.endswith("o_proj") else 1
    d_in, d_out = math.prod(leaf.shape[:split]), math.prod(leaf.shape[split:])
    out[name] = ((d_in, rank), (rank, d_out))
  return out


def lora_adapters(spec: PlanSpec, params: Any) -> dict[str, dict[str, jax.ShapeDtypeStruct]]:
  """Abstract adapters `{name: {"a": [d_in, r], "b": [r, d_out]}}` (replicated)."""
  shapes = lora_shapes(params, spec.lora_rank, spec.lora_targets)
  if not shapes:
    raise ValueError(f"lora_targets={spec.lora_targets!r} matches no parameter of the model")
  dtype = jnp.dtype(spec.lora_dtype)
  return {
    name: {"a": jax.ShapeDtypeStruct(a, dtype), "b": jax.ShapeDtypeStruct(b, dtype)}
    for name, (a, b) in shapes.items()
  }


def _tensor_split(n: int, tensor: int) -> float:
  return n / tensor if n % tensor == 0 else n


def activation_bytes(spec: PlanSpec) -> int:
  """Activation bytes per device of one micro-batch (formulas in the module docstring)."""
  cfg = spec.config
  c = jnp.dtype(cfg.dtype).itemsize
  tensor = spec.mesh["tensor"]
  h, d = cfg.hidden_size, cfg.head_dim
  q = _tensor_split(cfg.num_heads, tensor) * d
  kv = _tensor_split(cfg.num_kv_heads, tensor) * d
  i = _tensor_split(cfg.intermediate_size, tensor)
  scores = 0.0 if spec.attention == "flash" else _tensor_split(cfg.num_heads, tensor) * spec.seq_len
  per_token = {
    "none": (5 * h + 3 * q + 4 * kv + 4 * i) * c + scores * (4 + c),
    "dots_saveable": (3 * h + 2 * q + 2 * kv + 2 * i) * c + scores * 4,
    "full": h * c,
  }
  tokens = spec.batch_size // spec.batch_shards // spec.policy.micro_batches * spec.seq_len
  blocks = sum(per_token[cfg.layer_remat(li)] for li in range(cfg.num_layers))
  if any(cfg.layer_remat(li) != "none" for li in range(cfg.num_layers)):
    blocks += per_token["none"]  # The block being recomputed.
  blocks += scores * 8  # The attention backward's float32 dP and dS of one block.
  logit_positions = tokens if spec.chunk_size is None else min(tokens, spec.chunk_size)
  logits = 2 * logit_positions * cfg.vocab_size * 4  # float32 logits and their gradient.
  embed_and_head = 2 * h * c * tokens
  return int(blocks * tokens + embed_and_head + logits)


def _unsharded_bytes(tree: Any) -> int:
  return sum(
    math.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree)
  )


def kv_cache_bytes(spec: PlanSpec, model: Transformer | None = None) -> int:
  """Bytes per device of the generation cache (`model.init_cache`, batch-sharded)."""
  if not spec.kv_batch or not spec.kv_max_len:
    return 0
  model = abstract_model(spec.config) if model is None else model
  dtype = jnp.dtype(spec.kv_dtype or spec.config.dtype)
  cache = jax.eval_shape(lambda: model.init_cache(spec.kv_batch, spec.kv_max_len, dtype))
  total = sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(cache))
  return total // (spec.batch_shards if spec.kv_batch % spec.batch_shards == 0 else 1)


def estimate(spec: PlanSpec) -> MemoryEstimate:
  """The per-device memory estimate of `spec` (abstract shapes only)."""
  mesh = spec.abstract_mesh()
  model = abstract_model(spec.config)
  params = nnx.state(model, nnx.Param)
  specs = sharding_lib.param_specs(params, spec.partition_rules(), mesh)
  param_bytes = device_bytes(params, specs, mesh)
  num_params = int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))
  tx = make_optimizer(spec.optimizer, spec.policy)
  if spec.lora_rank:
    trainable = lora_adapters(spec, params)
    trainable_specs = jax.tree_util.tree_map(lambda _: P(), trainable)
  else:
    trainable, trainable_specs = params, specs
  trainable_bytes = device_bytes(trainable, trainable_specs, mesh)
  opt_state = jax.eval_shape(tx.init, trainable)
  opt_specs = optax.tree_map_params(
    tx,
    lambda _, s: s,
    opt_state,
    trainable_specs,
    transform_non_params=lambda _: P(),
    is_leaf=lambda x: isinstance(x, P),
  )
  accumulate = 2 if spec.policy.micro_batches > 1 else 1
  gathered = 0
  if spec.mesh["fsdp"] > 1:
    gathered = _unsharded_bytes(params) - param_bytes
    if not spec.lora_rank:
      gathered += _unsharded_bytes(params) - param_bytes
  as_opt = jax.tree_util.tree_map(
    lambda x: jax.ShapeDtypeStruct(x.shape, spec.policy.opt_state_dtype), trainable
  )
  update = 2 * device_bytes(as_opt, trainable_specs, mesh)
  return MemoryEstimate(
    params=param_bytes + (trainable_bytes if spec.lora_rank else 0),
    grads=accumulate * trainable_bytes,
    opt_state=device_bytes(opt_state, opt_specs, mesh),
    gathered=gathered,
    activations=activation_bytes(spec),
    update=update,
    kv_cache=kv_cache_bytes(spec, model),
    num_params=num_params,
    trainable_params=int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(trainable))),
  )
