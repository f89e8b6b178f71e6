"""Model configuration and presets for the decoder-only transformer zoo.

One `ModelConfig` describes Llama-3.x, Qwen2/2.5 and Qwen3 models exactly:

* Llama 3 ("The Llama 3 Herd of Models", arXiv:2407.21783): GQA, RMSNorm,
  SwiGLU, RoPE with the `llama3` frequency scaling, optional tied embeddings.
* Qwen2 / Qwen2.5 ("Qwen2 Technical Report", arXiv:2407.10671; "Qwen2.5
  Technical Report", arXiv:2412.15115): as Llama plus a bias on q/k/v.
* Qwen3 ("Qwen3 Technical Report", arXiv:2505.09388): no q/k/v bias, per-head
  RMSNorm on queries and keys, `head_dim` independent of `hidden_size`.

Each layer's token mixer and feed-forward block are chosen by registry name
(`mixer`, `ffn`; one name for all layers or a tuple with one per layer), so new
attention variants and FFNs plug in without touching the decoder.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

FAMILIES = ("llama", "qwen2", "qwen3")
ROPE_TYPES = ("default", "linear", "llama3", "yarn")
# Rematerialisation of each block's activations in the backward pass (see
# `reasoning_jax.models.transformer.REMAT_POLICIES`): "none" keeps every residual,
# "full" keeps only the block input and recomputes the rest, "dots_saveable" keeps
# matmul outputs and recomputes the elementwise ops (norms, RoPE, activations).
REMAT_POLICIES = ("none", "full", "dots_saveable")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RopeScaling:
  """RoPE frequency schedule, as in Hugging Face's `rope_scaling`/`rope_parameters`.

  Attributes:
    rope_type: "default" (plain RoPE), "linear" (positions divided by `factor`),
      "llama3" (wavelength-dependent smoothing of Llama 3.1) or "yarn" (YaRN,
      the long-context extension Qwen2.5/Qwen3 model cards prescribe beyond 32k).
    factor: scaling factor (linear, llama3, yarn).
    low_freq_factor: llama3 only.
    high_freq_factor: llama3 only.
    original_max_position_embeddings: llama3 and yarn: the pre-training context.
    beta_fast: yarn only: dimensions turning more than this many times over the
      pre-training context keep their frequency (extrapolation).
    beta_slow: yarn only: dimensions turning fewer times are divided by `factor`
      (interpolation); a linear ramp joins the two.
    attention_factor: yarn only: multiplier of the cos/sin tables (hence of the
      attention logits, squared). None: 0.1 ln(factor) + 1 (YaRN's Eq. 21), or the
      ratio of the two `mscale` terms when both `mscale` and `mscale_all_dim` are set.
    mscale: yarn only: see `attention_factor` (DeepSeek-style configs).
    mscale_all_dim: yarn only: see `attention_factor`.
    truncate: yarn only: round the correction range outwards to whole dimensions
      (Hugging Face's default; False keeps it fractional).
  """

  rope_type: str = "default"
  factor: float = 1.0
  low_freq_factor: float = 1.0
  high_freq_factor: float = 4.0
  original_max_position_embeddings: int = 8192
  beta_fast: float = 32.0
  beta_slow: float = 1.0
  attention_factor: float | None = None
  mscale: float | None = None
  mscale_all_dim: float | None = None
  truncate: bool = True

  def __post_init__(self):
    if self.rope_type not in ROPE_TYPES:
      raise ValueError(
        f"rope_scaling.rope_type={self.rope_type!r} is not supported; expected one of {ROPE_TYPES}"
      )
    if self.factor <= 0:
      raise ValueError(f"rope_scaling.factor must be > 0, got {self.factor}")
    if self.original_max_position_embeddings <= 0:
      raise ValueError(
        "rope_scaling.original_max_position_embeddings must be > 0, got "
        f"{self.original_max_position_embeddings}"
      )
    if self.rope_type == "llama3" and not self.high_freq_factor > self.low_freq_factor:
      raise ValueError(
        "rope_scaling: llama3 needs high_freq_factor > low_freq_factor, got "
        f"{self.high_freq_factor} <= {self.low_freq_factor}"
      )
    if self.rope_type == "yarn":
      if not self.beta_fast > self.beta_slow > 0:
        raise ValueError(
          "rope_scaling: yarn needs beta_fast > beta_slow > 0, got "
          f"beta_fast={self.beta_fast}, beta_slow={self.beta_slow}"
        )
      if self.attention_factor is not None and self.attention_factor <= 0:
        raise ValueError(
          f"rope_scaling.attention_factor must be > 0 or None, got {self.attention_factor}"
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
  """Hyper-parameters of one decoder-only transformer.

  Shapes in the code use B (batch), T (query length), S (key length),
  H (hidden_size), N (num_heads), K (num_kv_heads), D (head_dim), V (vocab).
  """

  family: str = "llama"
  vocab_size: int
  hidden_size: int
  intermediate_size: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int | None = None  # None: hidden_size // num_heads.
  rms_norm_eps: float = 1e-6
  rope_theta: float = 10000.0
  rope_scaling: RopeScaling | None = None
  max_position_embeddings: int = 4096
  tie_word_embeddings: bool = False
  attention_bias: bool = False  # Bias on q/k/v projections (Qwen2).
  attention_out_bias: bool = False  # Bias on the output projection.
  mlp_bias: bool = False
  qk_norm: bool = False  # Per-head RMSNorm on q and k before RoPE (Qwen3).
  mixer: str | tuple[str, ...] = "attention"
  ffn: str | tuple[str, ...] = "swiglu"
  sliding_window: int | None = None  # Window for sliding-window mixers.
  dtype: str = "float32"  # Compute dtype of activations.
  param_dtype: str = "float32"  # Storage dtype of parameters.
  remat: str | tuple[str, ...] = "none"  # REMAT_POLICIES name, for all blocks or one per block.
  initializer_range: float = 0.02
  bos_token_id: int | None = None
  eos_token_id: int | tuple[int, ...] | None = None
  pad_token_id: int | None = None

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(f"family={self.family!r}; expected one of {FAMILIES}")
    for name in (
      "vocab_size",
      "hidden_size",
      "intermediate_size",
      "num_layers",
      "num_heads",
      "num_kv_heads",
      "max_position_embeddings",
    ):
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    if self.head_dim is None:
      if self.hidden_size % self.num_heads:
        raise ValueError(
          f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}; "
          "set head_dim explicitly"
        )
      object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
    if self.head_dim <= 0 or self.head_dim % 2:
      raise ValueError(f"head_dim must be a positive even int (RoPE), got {self.head_dim}")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(
        f"num_heads={self.num_heads} must be a multiple of num_kv_heads={self.num_kv_heads} "
        "(grouped-query attention)"
      )
    if self.rms_norm_eps <= 0:
      raise ValueError(f"rms_norm_eps must be > 0, got {self.rms_norm_eps}")
    if self.rope_theta <= 0:
      raise ValueError(f"rope_theta must be > 0, got {self.rope_theta}")
    if self.sliding_window is not None and self.sliding_window <= 0:
      raise ValueError(f"sliding_window must be a positive int or None, got {self.sliding_window}")
    if isinstance(self.rope_scaling, dict):
      object.__setattr__(self, "rope_scaling", RopeScaling(**self.rope_scaling))
    for name in ("dtype", "param_dtype"):
      object.__setattr__(self, name, jnp.dtype(getattr(self, name)).name)
    for name in ("mixer", "ffn", "remat"):
      value = getattr(self, name)
      if isinstance(value, list):
        value = tuple(value)
        object.__setattr__(self, name, value)
      if isinstance(value, tuple) and len(value) != self.num_layers:
        raise ValueError(
          f"{name} has {len(value)} entries but num_layers={self.num_layers}; "
          "give one name for all layers or one per layer"
        )
    for policy in (self.remat,) if isinstance(self.remat, str) else self.remat:
      if policy not in REMAT_POLICIES:
        raise ValueError(f"remat={policy!r}; expected one of {REMAT_POLICIES}")
    if isinstance(self.eos_token_id, list):
      object.__setattr__(self, "eos_token_id", tuple(self.eos_token_id))

  def layer_mixer(self, layer_idx: int) -> str:
    return self.mixer if isinstance(self.mixer, str) else self.mixer[layer_idx]

  def layer_ffn(self, layer_idx: int) -> str:
    return self.ffn if isinstance(self.ffn, str) else self.ffn[layer_idx]

  def layer_remat(self, layer_idx: int) -> str:
    return self.remat if isinstance(self.remat, str) else self.remat[layer_idx]

  def replace(self, **changes: Any) -> "ModelConfig":
    return dataclasses.replace(self, **changes)

  @property
  def compute_dtype(self):
    return jnp.dtype(self.dtype)

  @property
  def params_dtype(self):
    return jnp.dtype(self.param_dtype)


_LLAMA31_ROPE = RopeScaling(
  rope_type="llama3",
  factor=8.0,
  low_freq_factor=1.0,
  high_freq_factor=4.0,
  original_max_position_embeddings=8192,
)
_LLAMA32_ROPE = RopeScaling(
  rope_type="llama3",
  factor=32.0,
  low_freq_factor=1.0,
  high_freq_factor=4.0,
  original_max_position_embeddings=8192,
)


def _qwen2(**kw) -> ModelConfig:
  base = dict(
    family="qwen2",
    attention_bias=True,
    rms_norm_eps=1e-6,
    rope_theta=1e6,
    bos_token_id=151643,
    eos_token_id=151643,
  )
  base.update(kw)
  return ModelConfig(**base)


def _qwen3(**kw) -> ModelConfig:
  base = dict(
    family="qwen3",
    qk_norm=True,
    head_dim=128,
    rms_norm_eps=1e-6,
    rope_theta=1e6,
    vocab_size=151936,
    max_position_embeddings=40960,
    num_kv_heads=8,
    bos_token_id=151643,
    eos_token_id=151645,
  )
  base.update(kw)
  return ModelConfig(**base)


def _llama3(**kw) -> ModelConfig:
  base = dict(
    family="llama",
    vocab_size=128256,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
    max_position_embeddings=131072,
    num_kv_heads=8,
    bos_token_id=128000,
    eos_token_id=128001,
  )
  base.update(kw)
  return ModelConfig(**base)


# Published dimensions (config.json of each Hugging Face release).
PRESETS: dict[str, ModelConfig] = {
  "qwen2.5-0.5b": _qwen2(
    vocab_size=151936,
    hidden_size=896,
    intermediate_size=4864,
    num_layers=24,
    num_heads=14,
    num_kv_heads=2,
    max_position_embeddings=32768,
    tie_word_embeddings=True,
  ),
  "qwen2.5-1.5b": _qwen2(
    vocab_size=151936,
    hidden_size=1536,
    intermediate_size=8960,
    num_layers=28,
    num_heads=12,
    num_kv_heads=2,
    max_position_embeddings=131072,
    tie_word_embeddings=True,
  ),
  "qwen2.5-7b": _qwen2(
    vocab_size=152064,
    hidden_size=3584,
    intermediate_size=18944,
    num_layers=28,
    num_heads=28,
    num_kv_heads=4,
    max_position_embeddings=131072,
    tie_word_embeddings=False,
  ),
  "qwen3-0.6b": _qwen3(
    hidden_size=1024, intermediate_size=3072, num_layers=28, num_heads=16, tie_word_embeddings=True
  ),
  "qwen3-1.7b": _qwen3(
    hidden_size=2048, intermediate_size=6144, num_layers=28, num_heads=16, tie_word_embeddings=True
  ),
  "qwen3-4b": _qwen3(
    hidden_size=2560, intermediate_size=9728, num_layers=36, num_heads=32, tie_word_embeddings=True
  ),
  "qwen3-8b": _qwen3(
    hidden_size=4096,
    intermediate_size=12288,
    num_layers=36,
    num_heads=32,
    tie_word_embeddings=False,
  ),
  "qwen3-14b": _qwen3(
    hidden_size=5120,
    intermediate_size=17408,
    num_layers=40,
    num_heads=40,
    tie_word_embeddings=False,
  ),
  "llama-3.2-1b": _llama3(
    hidden_size=2048,
    intermediate_size=8192,
    num_layers=16,
    num_heads=32,
    head_dim=64,
    tie_word_embeddings=True,
    rope_scaling=_LLAMA32_ROPE,
  ),
  "llama-3.2-3b": _llama3(
    hidden_size=3072,
    intermediate_size=8192,
    num_layers=28,
    num_heads=24,
    head_dim=128,
    tie_word_embeddings=True,
    rope_scaling=_LLAMA32_ROPE,
  ),
  "llama-3.1-8b": _llama3(
    hidden_size=4096,
    intermediate_size=14336,
    num_layers=32,
    num_heads=32,
    head_dim=128,
    tie_word_embeddings=False,
    rope_scaling=_LLAMA31_ROPE,
  ),
  # Tiny presets for tests and CPU demos (vocab covers the byte tokenizer's 259 ids).
  "tiny-llama": ModelConfig(
    family="llama",
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
    rope_scaling=RopeScaling(rope_type="llama3", factor=8.0, original_max_position_embeddings=64),
    max_position_embeddings=512,
  ),
  "tiny-qwen2": ModelConfig(
    family="qwen2",
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    attention_bias=True,
    rope_theta=1e6,
    tie_word_embeddings=True,
    max_position_embeddings=512,
  ),
  "tiny-qwen3": ModelConfig(
    family="qwen3",
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=24,
    qk_norm=True,
    rope_theta=1e6,
    tie_word_embeddings=True,
    max_position_embeddings=512,
  ),
  # ~50M parameters: CPU benchmarks and demos.
  "small-50m": ModelConfig(
    family="qwen3",
    vocab_size=32000,
    hidden_size=512,
    intermediate_size=1536,
    num_layers=8,
    num_heads=8,
    num_kv_heads=4,
    head_dim=64,
    qk_norm=True,
    rope_theta=1e6,
    tie_word_embeddings=True,
    max_position_embeddings=4096,
  ),
}


def get_preset(name: str, **overrides: Any) -> ModelConfig:
  """Returns the preset `name` with `overrides` applied (e.g. `dtype="bfloat16"`)."""
  key = name.lower()
  if key not in PRESETS:
    raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
  config = PRESETS[key]
  return config.replace(**overrides) if overrides else config
