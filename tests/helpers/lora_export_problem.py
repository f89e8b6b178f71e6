"""A fixed tiny LoRA-adapted model shared by the single- and two-process export tests.

Building it eagerly costs seconds of small compilations per process, so the test builds it
once, `save`s its parameters and the two processes `load` them straight onto their mesh.
"""

import jax
import numpy as np
from flax import nnx
from jax.sharding import PartitionSpec as P

from reasoning_jax import sharding
from reasoning_jax.lora import LoRAConfig, apply_lora, lora_kernels, lora_rules
from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.models.partition_rules import rules_for

# Small enough that the export needs several files (the model is ~610 kB in float32).
SHARD_BYTES = 150_000
# The A factors are split across processes too (the trainers' rules replicate A and B), so
# the merge multiplies a cross-process A by a replicated B into a cross-process kernel.
RULES = ((r".*\.lora_a", P("fsdp")),) + lora_rules(rules_for("qwen3"))


def build() -> Transformer:
  """The tiny Qwen3 (untied lm_head) with rank-4 adapters on every kernel, B non-zero."""
  config = get_preset("tiny-qwen3").replace(tie_word_embeddings=False)
  model = Transformer(config, rngs=nnx.Rngs(0))
  apply_lora(model, LoRAConfig(rank=4, alpha=8.0), rngs=nnx.Rngs(1))
  for i, (_, kernel) in enumerate(lora_kernels(model)):
    key = jax.random.fold_in(jax.random.key(3), i)
    kernel.lora_b.set_value(jax.random.normal(key, kernel.lora_b[...].shape) * 0.05)
  return model


def save(model: Transformer, path: str) -> None:
  """Writes the model's parameters (base and adapters) to an `.npz` file."""
  leaves = jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))
  np.savez(path, **{sharding.path_to_name(p): np.asarray(v) for p, v in leaves})


def load(path: str, mesh: jax.sharding.Mesh) -> Transformer:
  """The model of `save`, each parameter placed on `mesh` by `RULES` (no eager init)."""
  model = nnx.eval_shape(build)
  state = nnx.state(model, nnx.Param)
  shardings = sharding.param_shardings(state, RULES, mesh)
  with np.load(path) as values:
    placed = jax.tree_util.tree_map_with_path(
      lambda p, s: jax.device_put(values[sharding.path_to_name(p)], s), shardings
    )
  nnx.update(model, placed)
  return model


def token_ids() -> np.ndarray:
  return np.random.default_rng(0).integers(0, 512, (2, 12)).astype(np.int32)
