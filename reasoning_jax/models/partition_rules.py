"""Partition rules: parameter-path regex -> PartitionSpec, per model family.

Kept as data beside the model, never inside module code. Paths are the dotted
nnx state paths of `Transformer` (e.g. `layers.3.mixer.q_proj`). The first rule
whose regex matches (`re.fullmatch`) wins. Mesh axes follow
`reasoning_jax.sharding`: `data` (pure data parallel, params replicated),
`fsdp` (params and optimizer state sharded, gathered per layer by XLA) and
`tensor` (Megatron-style: heads and FFN hidden units split).

Kernel layouts: embed `[V, H]`, lm_head `[H, V]`, q `[H, N, D]`, k/v
`[H, K, D]`, o `[N, D, H]`, gate/up `[H, I]`, down `[I, H]`.
"""

from __future__ import annotations

from jax.sharding import PartitionSpec as P

Rules = tuple[tuple[str, P], ...]

_COMMON: Rules = (
  (r"embed", P("tensor", "fsdp")),
  (r"lm_head", P("fsdp", "tensor")),
  (r"layers\.\d+\.mixer\.(q|k|v|r)_proj", P("fsdp", "tensor", None)),
  (r"layers\.\d+\.mixer\.gate_a", P("fsdp", None)),  # GLA low-rank gate.
  (r"layers\.\d+\.mixer\.gate_b", P(None, "tensor", None)),
  (r"layers\.\d+\.mixer\.gate_bias", P("tensor", None)),
  (r"layers\.\d+\.mixer\.(q|k|v)_bias", P("tensor", None)),
  (r"layers\.\d+\.mixer\.o_proj", P("tensor", None, "fsdp")),
  (r"layers\.\d+\.mixer\.o_bias", P()),
  (r"layers\.\d+\.mixer\.gamma_(q|k)", P()),  # Momentum attention (learnable gamma).
  (r"layers\.\d+\.mixer\.log_beta", P()),  # OVQ inverse temperature per head.
  # BaseConv (Zoology's short convolution): depthwise taps [K, H], projection [H, H].
  (r"layers\.\d+\.mixer\.conv_weight", P(None, "tensor")),
  (r"layers\.\d+\.mixer\.(conv|proj)_bias", P("tensor")),
  (r"layers\.\d+\.mixer\.proj", P("fsdp", "tensor")),
  (r"layers\.\d+\.ffn\.(gate|up)", P("fsdp", "tensor")),
  (r"layers\.\d+\.ffn\.(gate|up)_bias", P("tensor")),
  (r"layers\.\d+\.ffn\.down", P("tensor", "fsdp")),
  (r"layers\.\d+\.ffn\.down_bias", P()),
  (r".*norm\.weight", P()),
)

PARTITION_RULES: dict[str, Rules] = {
  "llama": _COMMON,
  "qwen2": _COMMON,
  "qwen3": _COMMON,
}

# Activations: batch over (data, fsdp), everything else replicated.
BATCH_AXES = ("data", "fsdp")


def rules_for(family: str) -> Rules:
  if family not in PARTITION_RULES:
    raise ValueError(f"no partition rules for family={family!r}; known: {sorted(PARTITION_RULES)}")
  return PARTITION_RULES[family]
