"""Putting LoRA adapters on a model: config, validation, target regex, trainable split, merge.

"LoRA: Low-Rank Adaptation of Large Language Models" (Hu et al., arXiv:2106.09685). The
adapter itself is `reasoning_jax.layers.lora.LoRAKernel` (why not `qwix`: see that module).

  >>> model = Transformer(get_preset("tiny-qwen3"), rngs=nnx.Rngs(0))
  >>> apply_lora(model, LoRAConfig(rank=8, alpha=16.0), rngs=nnx.Rngs(1))
  >>> graphdef, state = init_train_state(model, tx, trainable=TRAINABLE)   # adapters only
  >>> with adapters_off(model): ref = model(ids)                           # the base model
  >>> merge_adapters(model)                                                # W + alpha/r A B

Targets are a regex (`re.fullmatch`) over the dotted parameter paths of the model's kernels,
e.g. `layers.3.mixer.q_proj`, `layers.3.ffn.gate` (see `kernel_paths(model)`).
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import PartitionSpec as P

from reasoning_jax.layers.lora import LoRAKernel, lora_kernels, merged_kernel
from reasoning_jax.validation import check_float_in, check_positive_int

# Every attention and MLP projection of the Llama / Qwen decoder (`layers.ffn` names them
# gate / up / down; HF's gate_proj / up_proj / down_proj).
DEFAULT_TARGETS = r"layers\.\d+\.(mixer\.(q|k|v|o)_proj|ffn\.(gate|up|down))"

# Kernels whose first two axes are contracted (`o_proj` `[N, D, H]`); every other kernel
# contracts its first axis (`[H, N, D]`, `[H, I]`, `[I, H]`).
TWO_INPUT_AXES = ("o_proj",)

# Filters for `nnx.split` / `init_train_state(..., trainable=...)`.
TRAINABLE = nnx.LoRAParam
FROZEN = nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam))


@dataclasses.dataclass(frozen=True)
class LoRAConfig:
  """LoRA hyper-parameters (flags `lora_rank`, `lora_alpha`, `lora_targets`, `lora_dropout`).

  Attributes:
    rank: r > 0, the adapter rank (default 8).
    alpha: > 0; the update is scaled by `alpha / rank` (default 16, i.e. 2x).
    targets: regex fullmatched against kernel paths (default: all q/k/v/o and MLP kernels).
    dropout: in [0, 1), on the adapter input only, active under `dropout_rng(key)` (default 0).
    adapter_dtype: dtype of A and B (default float32, whatever the base dtype).
  """

  rank: int = 8
  alpha: float = 16.0
  targets: str = DEFAULT_TARGETS
  dropout: float = 0.0
  adapter_dtype: str = "float32"

  def validate(self) -> None:
    """Raises ValueError naming the flag for a bad rank, alpha, dropout or regex."""
    check_positive_int(self.rank, "lora_rank")
    check_float_in(self.alpha, "lora_alpha", 0.0, None, low_inclusive=False)
    check_float_in(self.dropout, "lora_dropout", 0.0, 1.0, high_inclusive=False)
    try:
      re.compile(self.targets)
    except (re.error, TypeError) as e:
      raise ValueError(f"lora_targets={self.targets!r} is not a valid regex: {e}") from None


def _name(path) -> str:
  return ".".join(map(str, path))


def kernel_paths(model: nnx.Module) -> list[str]:
  """Dotted paths of the model's plain (not yet adapted) parameters with >= 2 dims."""
  return [
    _name(path)
    for path, node in nnx.iter_graph(model)
    if type(node) is nnx.Param and node[...].ndim >= 2
  ]


def _parent(model: nnx.Module, path):
  node = model
  for key in path[:-1]:
    node = node[key] if isinstance(key, int) else getattr(node, key)
  return node


def apply_lora(
  model: nnx.Module,
  config: LoRAConfig | None = None,
  *,
  rngs: nnx.Rngs,
  base_dtype=None,
) -> list[str]:
  """Replaces every kernel whose path fullmatches `config.targets` by a `LoRAKernel`, in place.

  Args:
    model: e.g. a `Transformer` (from a preset or `from_hf`).
    config: the hyper-parameters (default `LoRAConfig()`).
    rngs: draws the A matrices.
    base_dtype: if set (e.g. `jnp.bfloat16`), every frozen base parameter is cast to it to save
      memory; the layers still compute in `config.compute_dtype` (default: keep as loaded).

  Returns:
    The adapted paths.

  Raises:
    ValueError: bad hyper-parameters (naming the flag); `lora_targets` matching no kernel
      (listing a few real paths); a model that already has adapters.
  """
  config = LoRAConfig() if config is None else config
  config.validate()
  if lora_kernels(model):
    raise ValueError("apply_lora: the model already has LoRA adapters")
  candidates = [
    (path, node)
    for path, node in nnx.iter_graph(model)
    if type(node) is nnx.Param and node[...].ndim >= 2
  ]
  chosen = [(p, n) for p, n in candidates if re.fullmatch(config.targets, _name(p))]
  if not chosen:
    names = [_name(p) for p, _ in candidates]
    raise ValueError(
      f"lora_targets={config.targets!r} matches no parameter; kernel paths look like "
      f"{names[:8]} ({len(names)} in all)"
    )
  if base_dtype is not None:
    for _, node in nnx.iter_graph(model):
      if isinstance(node, nnx.Param) and not isinstance(node, nnx.LoRAParam):
        node.set_value(node[...].astype(base_dtype))
  for index, (path, param) in enumerate(chosen):
    in_dims = 2 if str(path[-1]) in TWO_INPUT_AXES else 1
    kernel = LoRAKernel(
      param,
      in_dims=in_dims,
      rank=config.rank,
      alpha=config.alpha,
      dropout=config.dropout,
      index=index,
      rngs=rngs,
      adapter_dtype=jnp.dtype(config.adapter_dtype),
    )
    setattr(_parent(model, path), str(path[-1]), kernel)
  return [_name(p) for p, _ in chosen]


def split_trainable(model: nnx.Module):
  """`(graphdef, adapters, frozen)`: `nnx.split(model, TRAINABLE, FROZEN)`."""
  return nnx.split(model, TRAINABLE, FROZEN)


def lora_rules(rules):
  """Partition rules for an adapted model, from the base model's `rules`.

  A kernel's frozen `base` takes its kernel's rule. DESIGN CHOICE: A and B are replicated
  (`P()`): they hold r (in + out) values per kernel (< 1% of the weights at r = 16), so
  sharding them would save little and add collectives on the rank-r intermediates.
  """
  out = []
  for pattern, spec in rules:
    out.append((pattern + r"\.base", spec))
    out.append((pattern + r"\.lora_(a|b)", P()))
  return tuple(out) + tuple(rules)


def merge_adapters(model: nnx.Module) -> nnx.Module:
  """Replaces each `LoRAKernel` by `nnx.Param(W + alpha/r A B)` (fp32 sum, base dtype), in place.

  The merged model has the plain parameter tree again (so `to_hf`, the partition rules and
  `from_hf`-shaped code apply). Merging ignores `adapters_off`. Returns `model`.

  Each kernel is merged by one compiled program whose output keeps its base's sharding, and
  waited for before the next: the device holds one merged kernel more than the model at a
  time, and on several processes (`jax.distributed`) no queue of cross-process programs
  builds up. Merging with eager ops did queue them (reshape, matmul, add per kernel), and on
  CPU (gloo, jax 0.10) about one run in five of the two-process export test hung inside
  them (see reasoning_jax/distributed.py).
  """
  for name, kernel in lora_kernels(model):
    w = kernel.base[...]
    merge = jax.jit(merged_kernel, static_argnums=3, out_shardings=w.sharding)
    value = jax.block_until_ready(merge(w, kernel.lora_a[...], kernel.lora_b[...], kernel.scale))
    path = tuple(int(k) if k.isdigit() else k for k in name.split("."))
    setattr(_parent(model, path), path[-1], nnx.Param(value))
  return model
