"""LoRA: low-rank adapters on chosen projections (Hu et al., arXiv:2106.09685).

The adapter module lives in `reasoning_jax.layers.lora`; this room applies it to a model by
a regex over parameter paths, splits trainable from frozen parameters, merges, saves and
exports.
"""

from reasoning_jax.layers.lora import LoRAKernel, adapters_off, dropout_rng, lora_kernels
from reasoning_jax.lora.adapters import (
  DEFAULT_TARGETS,
  FROZEN,
  TRAINABLE,
  LoRAConfig,
  apply_lora,
  kernel_paths,
  lora_rules,
  merge_adapters,
  split_trainable,
)
from reasoning_jax.lora.io import export_merged, load_adapters, save_adapters
