"""`config.lora` in the trainers: validation, adapting the built model, dropout keys, export.

Both trainers (`reasoning_jax.train.sft.run_sft`, `reasoning_jax.rl.trainer.run_rl`) take an
optional `config.lora`: None / False (full fine-tuning, the default) or a ConfigDict

  rank        int > 0            adapter rank r
  alpha       float > 0          the update is scaled by alpha / r
  targets     str (regex)        fullmatched against kernel paths (`layers.3.mixer.q_proj`)
  dropout     float in [0, 1)    adapter-input dropout during training (per-step key)
  base_dtype  "float32" | "bfloat16"   storage of the frozen base
  export_dir  str (optional)     where the merged model is written at the end (`to_hf`)

The wiring, shared by both trainers:

  spec = lora_spec(config, error=ConfigError)        # at launch: errors name config.lora.<key>
  check_targets(spec, source.model_config, ...)      # targets vs the model's kernel paths
  model = build_model(source, ...)                   # the frozen base, from the source
  adapt(model, spec, seed=config.seed)               # apply_lora (B = 0: base logits)
  rules = partition_rules(family, spec)              # lora_rules(rules_for(family))
  init_train_state(model, tx, trainable=trainable(spec))  # only adapters train

The base is not checkpointed (`TrainState.frozen`): on resume it is rebuilt from the source
(and `adapt` redraws the same A) and the adapters come back from the checkpoint. Adapter
dropout keys travel in the batch (`DROPOUT_SEED` rows, see `with_dropout`), so the step
keeps its `fn(model, batch)` loss signature and a resumed run draws the same masks.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reasoning_jax.lora import (
  DEFAULT_TARGETS,
  TRAINABLE,
  LoRAConfig,
  adapters_off,
  apply_lora,
  dropout_rng,
  export_merged,
  lora_rules,
)
from reasoning_jax.models.config import ModelConfig
from reasoning_jax.models.partition_rules import rules_for
from reasoning_jax.validation import check_float_in, check_positive_int

# Keys of `config.lora` with their types (`export_dir` optional).
LORA_KEYS: dict[str, Any] = {
  "rank": int,
  "alpha": (float, int),
  "targets": str,
  "dropout": (float, int),
  "base_dtype": str,
  "export_dir": str,
}
BASE_DTYPES = ("float32", "bfloat16")
# The batch key holding one int per row; row 0 of each micro-batch seeds its dropout key.
DROPOUT_SEED = "lora_dropout_seed"


@dataclasses.dataclass(frozen=True)
class LoRASpec:
  """A validated `config.lora`: the adapter hyper-parameters plus base dtype and export."""

  lora: LoRAConfig
  base_dtype: str = "float32"
  export_dir: str = ""
  prefix: str = "config"

  @property
  def dropout(self) -> float:
    return self.lora.dropout


def lora_spec(config: Any, *, prefix: str = "config", error: type = ValueError) -> LoRASpec | None:
  """The validated `config.lora` (None when absent, None or False); `error` naming the key.

  Every problem raises `error(...)` naming `{prefix}.lora.<key>`: unknown keys, wrong types,
  rank < 1, alpha <= 0, dropout outside [0, 1), a base dtype other than float32 / bfloat16,
  a targets string that is not a regex.
  """
  value = config.get("lora") if hasattr(config, "get") else None
  if value is None or value is False:
    return None
  if value is True:
    raise error(
      f"{prefix}.lora=True: give a dict of {sorted(LORA_KEYS)} (e.g. the ':lora' config "
      "variant) or None for full fine-tuning"
    )
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if not isinstance(value, dict):
    raise error(f"{prefix}.lora must be None or a dict, got {type(value).__name__} {value!r}")
  name = f"{prefix}.lora"
  unknown = set(value) - set(LORA_KEYS)
  if unknown:
    raise error(f"unknown {name} keys: {sorted(unknown)}; known: {list(LORA_KEYS)}")
  for key, kind in LORA_KEYS.items():
    if key in value and value[key] is not None:
      if not isinstance(value[key], kind) or isinstance(value[key], bool):
        raise error(f"{name}.{key} must be {kind}, got {value[key]!r}")
  defaults = LoRAConfig()
  rank = value.get("rank", defaults.rank)
  alpha = value.get("alpha", defaults.alpha)
  dropout = value.get("dropout", defaults.dropout)
  targets = value.get("targets") or DEFAULT_TARGETS
  base_dtype = value.get("base_dtype") or "float32"
  try:
    check_positive_int(rank, f"{name}.rank")
    check_float_in(alpha, f"{name}.alpha", 0.0, None, low_inclusive=False)
    check_float_in(dropout, f"{name}.dropout", 0.0, 1.0, high_inclusive=False)
  except ValueError as e:
    raise error(str(e)) from None
  try:
    re.compile(targets)
  except re.error as e:
    raise error(f"{name}.targets={targets!r} is not a valid regex: {e}") from None
  if base_dtype not in BASE_DTYPES:
    raise error(f"{name}.base_dtype={base_dtype!r}; choose one of {list(BASE_DTYPES)}")
  lora = LoRAConfig(rank=rank, alpha=float(alpha), targets=targets, dropout=float(dropout))
  return LoRASpec(lora, base_dtype, value.get("export_dir") or "", prefix)


def check_targets(spec: LoRASpec, model_config: ModelConfig, *, error: type = ValueError):
  """Raises `error` naming `<prefix>.lora.targets` when the regex matches no kernel of the
  model (checked on an abstract model: nothing is allocated or read)."""
  from reasoning_jax.models.transformer import Transformer

  abstract = nnx.eval_shape(lambda: Transformer(model_config, rngs=nnx.Rngs(0)))
  paths = [  # What apply_lora can adapt: plain parameters with >= 2 dims.
    ".".join(map(str, path))
    for path, node in nnx.iter_graph(abstract)
    if type(node) is nnx.Param and len(node.get_value().shape) >= 2
  ]
  if not any(re.fullmatch(spec.lora.targets, p) for p in paths):
    raise error(
      f"{spec.prefix}.lora.targets={spec.lora.targets!r} matches no parameter; kernel paths "
      f"look like {paths[:8]} ({len(paths)} in all)"
    )


def adapt(model: nnx.Module, spec: LoRASpec, *, seed: int, error: type = ValueError) -> list[str]:
  """`apply_lora(model, ...)` in place (A drawn from `seed`); returns the adapted paths.

  The library's ValueError (e.g. targets matching nothing) is re-raised as `error` naming
  `<prefix>.lora.targets`.
  """
  try:
    return apply_lora(
      model,
      spec.lora,
      rngs=nnx.Rngs(params=jax.random.fold_in(jax.random.key(seed), 0x10A)),
      base_dtype=jnp.dtype(spec.base_dtype),
    )
  except ValueError as e:
    raise error(f"{spec.prefix}.lora.targets: {e}") from None


def trainable(spec: LoRASpec | None):
  """The `trainable=` filter of `init_train_state` (None: every parameter)."""
  return None if spec is None else TRAINABLE


def restore_params(ckpt, step: int, model: nnx.Module, spec: LoRASpec | None) -> nnx.Module:
  """`model` with the params a trainer checkpointed at `step` (`ckpt`: a TrainCheckpointer).

  Full fine-tuning checkpoints every parameter: `model` may be abstract (`abstract_model`).
  A LoRA run checkpoints only the adapters: `model` is the adapted base (built, `adapt`ed),
  whose frozen part is kept as it is.
  """
  if spec is None:
    graphdef, params = nnx.split(model, nnx.Param)
    rest: tuple = ()
  else:
    graphdef, params, frozen = nnx.split(model, TRAINABLE, nnx.Param)
    rest = (frozen,)
  target = {
    "params": jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
  }
  _, saved = ckpt.restore(step=step, target=target)
  return nnx.merge(graphdef, saved["params"], *rest)


def partition_rules(family: str, spec: LoRASpec | None):
  """The family's rules, extended for adapted kernels (`lora_rules`) under LoRA."""
  rules = rules_for(family)
  return rules if spec is None else lora_rules(rules)


def all_params(state) -> Any:
  """The whole parameter state of a `TrainState` (trained + frozen), for `nnx.merge` with the
  step's graphdef (rollouts, log-probs, evaluation)."""
  if state.frozen is None:
    return state.params
  return nnx.merge_state(state.params, state.frozen)


def reference_graphdef(model: nnx.Module) -> nnx.GraphDef:
  """A graphdef of `model` with every adapter switched off, to merge with `all_params(state)`:
  the base model on the same weights (the RL reference, no second copy)."""
  with adapters_off(model):
    graphdef, _ = nnx.split(model, nnx.Param)
  return graphdef


def with_dropout(loss_fn: Callable, spec: LoRASpec | None, seed: int) -> Callable:
  """`loss_fn` with adapter dropout on, keyed by the batch's `DROPOUT_SEED` rows.

  Unchanged without LoRA or with dropout 0. The key is `fold_in(key(seed), batch[DROPOUT_SEED]
  [0])`, entered inside the traced loss (`dropout_rng`), so each micro-batch (its first row)
  and each step gets its own masks.
  """
  if spec is None or spec.dropout <= 0:
    return loss_fn

  def loss(model, batch):
    batch = dict(batch)
    row_seeds = batch.pop(DROPOUT_SEED)
    key = jax.random.fold_in(jax.random.key(seed), row_seeds[0])
    with dropout_rng(key):
      return loss_fn(model, batch)

  return loss


def add_dropout_seeds(arrays: dict, spec: LoRASpec | None, step: int, update: int = 0) -> dict:
  """Adds `DROPOUT_SEED` (`[rows]` int32, distinct per step, update and row) to a host batch
  when adapter dropout is on; returns `arrays` (unchanged otherwise)."""
  if spec is None or spec.dropout <= 0:
    return arrays
  rows = len(next(iter(arrays.values())))
  base = ((step * 1024 + update) * 64 + jax.process_index()) * rows
  arrays[DROPOUT_SEED] = ((base + np.arange(rows, dtype=np.int64)) % (2**31 - 1)).astype(np.int32)
  return arrays


def export(graphdef: nnx.GraphDef, state, spec: LoRASpec | None) -> str | None:
  """Writes the merged model (`W + alpha/r A B`, `export_merged`) to `spec.export_dir`, if set.

  Every process calls it (the merge runs on the sharded params, the export gathers them one
  tensor at a time and process 0 writes); returns the directory or None.
  """
  if spec is None or not spec.export_dir:
    return None
  return export_merged(nnx.merge(graphdef, all_params(state)), spec.export_dir)
