"""Hugging Face import/export: `config.json` + safetensors <-> `Transformer`.

Reads a local folder only (never the hub): `model.safetensors` or a sharded
`model.safetensors.index.json`, and both config layouts (`rope_theta` +
`rope_scaling` of published checkpoints, `rope_parameters` of transformers 5).

  >>> model = from_hf("/data/Qwen3-0.6B", dtype="bfloat16")
  >>> logits = model(input_ids)          # [B, T, V]
  >>> to_hf(model, "/tmp/export")        # loads with transformers.AutoModelForCausalLM

Tensors are read one at a time into host memory and, when a `sharding` callable
is given, placed straight onto the mesh shard by shard, so the full model never
has to fit on one device or be materialised twice (the module is built with
`nnx.eval_shape`, no random initialisation happens). `to_hf` goes the other way one tensor at
a time too, gathering tensors split across processes (multi-host) and writing on process 0.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reasoning_jax.models.config import ROPE_TYPES, ModelConfig, RopeScaling
from reasoning_jax.models.hf_files import (  # noqa: F401  (ExportError: part of this API)
  ExportError,
  agree,
  plan_shards,
  prepare_directory,
  save_safetensors,
  to_host,
  write_json,
)
from reasoning_jax.models.transformer import Transformer

ARCHITECTURES = {
  "LlamaForCausalLM": "llama",
  "Qwen2ForCausalLM": "qwen2",
  "Qwen3ForCausalLM": "qwen3",
}
_FAMILY_TO_ARCH = {family: arch for arch, family in ARCHITECTURES.items()}
_FAMILY_TO_MODEL_TYPE = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}
# Tensors that some checkpoints carry but that are derived, not learned.
_IGNORED_TENSORS = re.compile(r".*\.rotary_emb\.inv_freq$")

Sharding = jax.sharding.Sharding
ShardingFn = Callable[[str, tuple[int, ...]], "Sharding | None"]


class CheckpointError(ValueError):
  """A checkpoint folder that does not match what the config says it should hold."""


# --------------------------------------------------------------------------------------------
# config.json <-> ModelConfig
# --------------------------------------------------------------------------------------------


def _require(hf: dict[str, Any], key: str, source: str) -> Any:
  if key not in hf:
    raise CheckpointError(f"{source}: missing required key {key!r}")
  return hf[key]


# The `rope_parameters` keys each rope type writes on export (as transformers validates them).
_ROPE_KEYS = {
  "default": ("rope_type",),
  "linear": ("rope_type", "factor"),
  "llama3": (
    "rope_type",
    "factor",
    "low_freq_factor",
    "high_freq_factor",
    "original_max_position_embeddings",
  ),
  "yarn": (
    "rope_type",
    "factor",
    "original_max_position_embeddings",
    "beta_fast",
    "beta_slow",
    "attention_factor",
    "mscale",
    "mscale_all_dim",
    "truncate",
  ),
}


def _rope_from_hf(hf: dict[str, Any], source: str) -> tuple[float, RopeScaling | None]:
  """Reads RoPE settings from either config layout."""
  params = hf.get("rope_parameters")
  if isinstance(params, dict) and "rope_theta" in params:  # transformers >= 5 layout.
    theta = params["rope_theta"]
    scaling = dict(params)
  else:
    theta = hf.get("rope_theta", 10000.0)
    scaling = dict(hf.get("rope_scaling") or {})
  rope_type = scaling.get("rope_type", scaling.get("type", "default"))
  if rope_type in (None, "default"):
    return float(theta), None
  if rope_type not in ROPE_TYPES:
    raise CheckpointError(
      f"{source}: rope type {rope_type!r} is not supported (supported: {', '.join(ROPE_TYPES)})"
    )
  kwargs: dict[str, Any] = {"rope_type": rope_type}
  if rope_type in ("llama3", "yarn"):
    # As transformers: a top-level `original_max_position_embeddings` wins, then the
    # rope dict's, then `max_position_embeddings`.
    for where in (hf, scaling):
      if where.get("original_max_position_embeddings") is not None:
        kwargs["original_max_position_embeddings"] = int(where["original_max_position_embeddings"])
        break
    else:
      kwargs["original_max_position_embeddings"] = int(
        _require(hf, "max_position_embeddings", source)
      )
  if rope_type == "yarn" and scaling.get("factor") is None:
    # transformers' rule: the ratio of the extended to the pre-training context.
    kwargs["factor"] = (
      _require(hf, "max_position_embeddings", source) / kwargs["original_max_position_embeddings"]
    )
  else:
    kwargs["factor"] = float(_require(scaling, "factor", source))
  if rope_type == "llama3":
    for key in ("low_freq_factor", "high_freq_factor"):
      kwargs[key] = _require(scaling, key, source + " rope scaling")
  if rope_type == "yarn":
    for key in ("beta_fast", "beta_slow"):  # transformers treats None (and 0) as the default.
      if scaling.get(key):
        kwargs[key] = float(scaling[key])
    for key in ("attention_factor", "mscale", "mscale_all_dim"):
      if scaling.get(key) is not None:
        kwargs[key] = float(scaling[key])
    if scaling.get("truncate") is not None:
      kwargs["truncate"] = bool(scaling["truncate"])
  return float(theta), RopeScaling(**kwargs)


def config_from_hf(
  hf: dict[str, Any], *, dtype: str | None = None, source: str = "config.json"
) -> ModelConfig:
  """Builds a `ModelConfig` from a Hugging Face `config.json` dict."""
  archs = hf.get("architectures") or []
  family = None
  for arch in archs:
    family = ARCHITECTURES.get(arch, family)
  if family is None:
    if archs:
      raise CheckpointError(
        f"{source}: architectures={archs} is not supported; supported: {sorted(ARCHITECTURES)}"
      )
    model_type = hf.get("model_type")
    if model_type not in _FAMILY_TO_MODEL_TYPE.values():
      raise CheckpointError(
        f"{source}: no 'architectures' and model_type={model_type!r}; supported model types: "
        f"{sorted(_FAMILY_TO_MODEL_TYPE.values())}"
      )
    family = model_type
  act = hf.get("hidden_act", "silu")
  if act != "silu":
    raise CheckpointError(f"{source}: hidden_act={act!r} is not supported (expected 'silu')")
  if hf.get("use_sliding_window", False):
    raise CheckpointError(
      f"{source}: use_sliding_window=true is not supported by the {family} importer yet"
    )
  theta, scaling = _rope_from_hf(hf, source)
  num_heads = _require(hf, "num_attention_heads", source)
  hidden = _require(hf, "hidden_size", source)
  attention_bias = bool(hf.get("attention_bias", False))
  if dtype is None:
    dtype = hf.get("dtype") or hf.get("torch_dtype") or "float32"
  return ModelConfig(
    family=family,
    vocab_size=_require(hf, "vocab_size", source),
    hidden_size=hidden,
    intermediate_size=_require(hf, "intermediate_size", source),
    num_layers=_require(hf, "num_hidden_layers", source),
    num_heads=num_heads,
    num_kv_heads=hf.get("num_key_value_heads") or num_heads,
    head_dim=hf.get("head_dim") or hidden // num_heads,
    rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
    rope_theta=theta,
    rope_scaling=scaling,
    max_position_embeddings=hf.get("max_position_embeddings", 4096),
    tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
    # Qwen2 always has q/k/v bias and never an output bias; Llama and Qwen3 put
    # `attention_bias` on all four projections.
    attention_bias=True if family == "qwen2" else attention_bias,
    attention_out_bias=False if family == "qwen2" else attention_bias,
    mlp_bias=bool(hf.get("mlp_bias", False)),
    qk_norm=family == "qwen3",
    dtype=str(dtype),
    param_dtype=str(dtype),
    initializer_range=float(hf.get("initializer_range", 0.02)),
    bos_token_id=hf.get("bos_token_id"),
    eos_token_id=hf.get("eos_token_id"),
    pad_token_id=hf.get("pad_token_id"),
  )


def config_to_hf(config: ModelConfig, *, dtype: str | None = None) -> dict[str, Any]:
  """The `config.json` dict for `config` (both RoPE layouts are written)."""
  if config.family == "qwen2" and (not config.attention_bias or config.attention_out_bias):
    raise CheckpointError("qwen2 checkpoints need attention_bias=True, attention_out_bias=False")
  if config.family != "qwen2" and config.attention_bias != config.attention_out_bias:
    raise CheckpointError(
      f"{config.family} checkpoints use one attention_bias for q/k/v/o; got "
      f"attention_bias={config.attention_bias}, attention_out_bias={config.attention_out_bias}"
    )
  if config.qk_norm != (config.family == "qwen3"):
    raise CheckpointError(
      f"qk_norm={config.qk_norm} cannot be expressed as a {config.family} "
      "checkpoint (only qwen3 has q/k norms)"
    )
  rope: dict[str, Any] = {"rope_type": "default"}
  if config.rope_scaling is not None:
    keys = _ROPE_KEYS[config.rope_scaling.rope_type]
    rope = {
      k: v
      for k, v in dataclasses.asdict(config.rope_scaling).items()
      if k in keys and v is not None
    }
  eos = config.eos_token_id
  hf = {
    "architectures": [_FAMILY_TO_ARCH[config.family]],
    "model_type": _FAMILY_TO_MODEL_TYPE[config.family],
    "vocab_size": config.vocab_size,
    "hidden_size": config.hidden_size,
    "intermediate_size": config.intermediate_size,
    "num_hidden_layers": config.num_layers,
    "num_attention_heads": config.num_heads,
    "num_key_value_heads": config.num_kv_heads,
    "head_dim": config.head_dim,
    "hidden_act": "silu",
    "max_position_embeddings": config.max_position_embeddings,
    "rms_norm_eps": config.rms_norm_eps,
    "rope_theta": config.rope_theta,
    "rope_scaling": None if config.rope_scaling is None else rope,
    "rope_parameters": {**rope, "rope_theta": config.rope_theta},
    "tie_word_embeddings": config.tie_word_embeddings,
    "attention_dropout": 0.0,
    "initializer_range": config.initializer_range,
    "bos_token_id": config.bos_token_id,
    "eos_token_id": list(eos) if isinstance(eos, tuple) else eos,
    "pad_token_id": config.pad_token_id,
    "dtype": dtype or config.param_dtype,
    "use_cache": True,
  }
  if config.family == "llama":
    hf["attention_bias"] = config.attention_bias
    hf["mlp_bias"] = config.mlp_bias
  elif config.mlp_bias:
    raise CheckpointError(f"{config.family} checkpoints have no MLP bias")
  if config.family == "qwen3":
    hf["attention_bias"] = config.attention_bias
  if config.family in ("qwen2", "qwen3"):
    hf["use_sliding_window"] = False
  return hf


# --------------------------------------------------------------------------------------------
# Tensor name maps: (HF name, our state path, HF -> ours, ours -> HF)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TensorMap:
  hf_name: str
  path: tuple[Any, ...]
  to_ours: Callable[[np.ndarray], np.ndarray]
  to_hf: Callable[[np.ndarray], np.ndarray]


def _same(x):
  return x


def _transpose(x):
  return x.T


def _in_heads(heads: int, dim: int):
  """[heads * dim, in] (torch Linear) <-> [in, heads, dim]."""
  return (
    lambda w: w.T.reshape(w.shape[1], heads, dim),
    lambda w: w.reshape(w.shape[0], heads * dim).T,
  )


def _out_heads(heads: int, dim: int):
  """[out, heads * dim] (torch Linear) <-> [heads, dim, out]."""
  return (
    lambda w: w.T.reshape(heads, dim, w.shape[0]),
    lambda w: w.reshape(heads * dim, w.shape[2]).T,
  )


def _bias_heads(heads: int, dim: int):
  return (lambda b: b.reshape(heads, dim), lambda b: b.reshape(heads * dim))


def tensor_maps(config: ModelConfig) -> list[TensorMap]:
  """Every tensor of the HF checkpoint for `config`, with its place in our state."""
  n, kh, d = config.num_heads, config.num_kv_heads, config.head_dim
  maps = [
    TensorMap("model.embed_tokens.weight", ("embed",), _same, _same),
    TensorMap("model.norm.weight", ("final_norm", "weight"), _same, _same),
  ]
  if not config.tie_word_embeddings:
    maps.append(TensorMap("lm_head.weight", ("lm_head",), _transpose, _transpose))
  for i in range(config.num_layers):
    if config.layer_mixer(i) != "attention" or config.layer_ffn(i) != "swiglu":
      raise CheckpointError(
        f"layer {i} uses mixer={config.layer_mixer(i)!r}, ffn={config.layer_ffn(i)!r}; "
        "Hugging Face checkpoints exist only for 'attention' + 'swiglu' layers"
      )
    pre, layer = f"model.layers.{i}.", ("layers", i)
    att, mlp = layer + ("mixer",), layer + ("ffn",)
    maps += [
      TensorMap(pre + "input_layernorm.weight", layer + ("input_norm", "weight"), _same, _same),
      TensorMap(
        pre + "post_attention_layernorm.weight", layer + ("post_mixer_norm", "weight"), _same, _same
      ),
      TensorMap(pre + "self_attn.q_proj.weight", att + ("q_proj",), *_in_heads(n, d)),
      TensorMap(pre + "self_attn.k_proj.weight", att + ("k_proj",), *_in_heads(kh, d)),
      TensorMap(pre + "self_attn.v_proj.weight", att + ("v_proj",), *_in_heads(kh, d)),
      TensorMap(pre + "self_attn.o_proj.weight", att + ("o_proj",), *_out_heads(n, d)),
      TensorMap(pre + "mlp.gate_proj.weight", mlp + ("gate",), _transpose, _transpose),
      TensorMap(pre + "mlp.up_proj.weight", mlp + ("up",), _transpose, _transpose),
      TensorMap(pre + "mlp.down_proj.weight", mlp + ("down",), _transpose, _transpose),
    ]
    if config.attention_bias:
      maps += [
        TensorMap(pre + "self_attn.q_proj.bias", att + ("q_bias",), *_bias_heads(n, d)),
        TensorMap(pre + "self_attn.k_proj.bias", att + ("k_bias",), *_bias_heads(kh, d)),
        TensorMap(pre + "self_attn.v_proj.bias", att + ("v_bias",), *_bias_heads(kh, d)),
      ]
    if config.attention_out_bias:
      maps.append(TensorMap(pre + "self_attn.o_proj.bias", att + ("o_bias",), _same, _same))
    if config.qk_norm:
      maps += [
        TensorMap(pre + "self_attn.q_norm.weight", att + ("q_norm", "weight"), _same, _same),
        TensorMap(pre + "self_attn.k_norm.weight", att + ("k_norm", "weight"), _same, _same),
      ]
    if config.mlp_bias:
      maps += [
        TensorMap(pre + f"mlp.{name}_proj.bias", mlp + (f"{name}_bias",), _same, _same)
        for name in ("gate", "up", "down")
      ]
  return maps


# --------------------------------------------------------------------------------------------
# Reading safetensors
# --------------------------------------------------------------------------------------------


class _SafetensorsFolder:
  """Lazy access to the tensors of `model.safetensors` or a sharded index."""

  def __init__(self, directory: str):
    from safetensors import safe_open  # Imported lazily: optional at package import.

    single = os.path.join(directory, "model.safetensors")
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
      try:
        with open(index) as f:
          weight_map = json.load(f)["weight_map"]
      except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{index}: not a valid safetensors index ({e})") from e
      files = sorted(set(weight_map.values()))
    elif os.path.exists(single):
      weight_map, files = None, ["model.safetensors"]
    else:
      raise FileNotFoundError(
        f"{directory}: neither model.safetensors nor model.safetensors.index.json found"
      )
    self._handles = {}
    for name in files:
      path = os.path.join(directory, name)
      if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: listed in the safetensors index but missing")
      try:
        self._handles[name] = safe_open(path, framework="numpy")
      except Exception as e:  # safetensors raises its own error types for corrupt files.
        raise CheckpointError(f"{path}: corrupt or unreadable safetensors file ({e})") from e
    self.location: dict[str, str] = {}
    for name, handle in self._handles.items():
      for key in handle.keys():
        self.location[key] = name
    if weight_map is not None:
      for key, name in weight_map.items():
        if self.location.get(key) != name:
          raise CheckpointError(
            f"{directory}: index says {key!r} is in {name} but that file does not hold it"
          )

  def names(self) -> set[str]:
    return set(self.location)

  def shape(self, name: str) -> tuple[int, ...]:
    return tuple(self._handles[self.location[name]].get_slice(name).get_shape())

  def read(self, name: str) -> np.ndarray:
    file = self.location[name]
    try:
      return self._handles[file].get_tensor(name)
    except Exception as e:
      raise CheckpointError(f"{file}: tensor {name!r} could not be read ({e})") from e


def _format_names(names: Iterable[str], limit: int = 20) -> str:
  names = sorted(names)
  shown = ", ".join(names[:limit])
  return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _set_path(tree: dict, path: tuple[Any, ...], value: Any) -> None:
  for key in path[:-1]:
    tree = tree[key]
  tree[path[-1]] = value


def _get_path(tree: Any, path: tuple[Any, ...]) -> Any:
  for key in path:
    tree = tree[key]
  return tree


def path_name(path: tuple[Any, ...]) -> str:
  """'layers.3.mixer.q_proj' for ("layers", 3, "mixer", "q_proj")."""
  return ".".join(str(p) for p in path)


def load_hf_config(directory: str, *, dtype: str | None = None) -> ModelConfig:
  path = os.path.join(directory, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found (from_hf reads a local folder only)")
  try:
    with open(path) as f:
      hf = json.load(f)
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{path}: invalid JSON ({e})") from e
  return config_from_hf(hf, dtype=dtype, source=path)


def from_hf(
  directory: str | os.PathLike,
  *,
  dtype: Any = None,
  param_dtype: Any = None,
  sharding: ShardingFn | None = None,
  config_overrides: dict[str, Any] | None = None,
) -> Transformer:
  """Loads a Llama-3 / Qwen2 / Qwen3 checkpoint from a local Hugging Face folder.

  Args:
    directory: folder with `config.json` and `model.safetensors` or
      `model.safetensors.index.json` + shards.
    dtype: compute dtype (default: the checkpoint's `dtype`/`torch_dtype`).
    param_dtype: storage dtype of the parameters (default: `dtype`).
    sharding: optional `fn(param_path, shape) -> jax.sharding.Sharding | None`;
      each tensor is then assembled on the mesh shard by shard
      (`jax.make_array_from_callback`) instead of on the default device.
    config_overrides: fields of `ModelConfig` to change (e.g. `mixer`).

  Returns:
    The `Transformer`, callable as `model(input_ids)` -> logits `[B, T, V]`.

  Raises:
    FileNotFoundError: missing config or weights.
    CheckpointError: unknown architecture, missing config keys, missing or
      unexpected tensors (listed), shape mismatches (name, expected, got),
      corrupt safetensors files.
  """
  directory = os.fspath(directory)
  config = load_hf_config(directory, dtype=None if dtype is None else jnp.dtype(dtype).name)
  if param_dtype is not None:
    config = config.replace(param_dtype=jnp.dtype(param_dtype).name)
  if config_overrides:
    config = config.replace(**config_overrides)
  folder = _SafetensorsFolder(directory)
  maps = tensor_maps(config)
  expected = {m.hf_name for m in maps}
  available = folder.names()
  missing = expected - available
  unexpected = {name for name in available - expected if not _IGNORED_TENSORS.match(name)}
  if config.tie_word_embeddings:
    unexpected.discard("lm_head.weight")  # Some exports keep the tied copy.
  if missing or unexpected:
    parts = []
    if missing:
      parts.append(f"missing tensors: {_format_names(missing)}")
    if unexpected:
      parts.append(f"unexpected tensors: {_format_names(unexpected)}")
    raise CheckpointError(
      f"{directory}: checkpoint does not match config.json; " + "; ".join(parts)
    )

  abstract = nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(abstract)
  pure = nnx.to_pure_dict(state)
  for m in maps:
    target = _get_path(pure, m.path)
    expected_hf_shape = m.to_hf(np.empty(target.shape, dtype=np.uint8)).shape
    got = folder.shape(m.hf_name)
    if tuple(got) != tuple(expected_hf_shape):
      raise CheckpointError(
        f"{directory}: tensor {m.hf_name!r} has shape {tuple(got)}, expected "
        f"{tuple(expected_hf_shape)} for this config.json"
      )
    value = np.ascontiguousarray(m.to_ours(folder.read(m.hf_name))).astype(target.dtype)
    target_sharding = None if sharding is None else sharding(path_name(m.path), value.shape)
    if target_sharding is None:
      array = jnp.asarray(value)
    else:
      array = jax.make_array_from_callback(
        value.shape, target_sharding, lambda index, v=value: v[index]
      )
    _set_path(pure, m.path, array)
  nnx.replace_by_pure_dict(state, pure)
  return nnx.merge(graphdef, state)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def to_hf(
  model: Transformer,
  directory: str | os.PathLike,
  *,
  dtype: Any = None,
  max_shard_bytes: int | None = None,
) -> str:
  """Writes `model` as a Hugging Face folder that `transformers` loads.

  Tensors go to the host one at a time and are written file by file, so the host holds at most
  the file being written plus one tensor (the whole model when it is one file). On several
  processes (`jax.distributed`) every process must call this with the same model: a tensor
  split across processes is gathered (a collective), only process 0 writes (to its file
  system; use a shared one), and no process returns before the folder is complete. A failure
  (e.g. the folder is not writable) raises `ExportError` on every process.

  Args:
    model: a `Transformer` whose layers are all `attention` + `swiglu`.
    directory: output folder (created; weight files of an earlier export in it are replaced).
    dtype: tensor dtype in the files (default: the parameter dtype).
    max_shard_bytes: if set and the weights exceed it, write
      `model-0000i-of-0000n.safetensors` shards plus `model.safetensors.index.json`.

  Returns:
    The directory.

  Raises:
    CheckpointError: the model has layers that no Hugging Face checkpoint describes.
    ExportError: the folder or a file in it could not be written.
  """
  directory = os.fspath(directory)
  config: ModelConfig = model.config
  out_dtype = jnp.dtype(dtype if dtype is not None else config.param_dtype)
  hf_config = config_to_hf(config, dtype=out_dtype.name)
  maps = {m.hf_name: m for m in tensor_maps(config)}
  pure = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  sizes = []
  for m in maps.values():
    target = _get_path(pure, m.path)
    shape = jax.eval_shape(m.to_hf, jax.ShapeDtypeStruct(target.shape, target.dtype)).shape
    sizes.append((m.hf_name, math.prod(shape) * out_dtype.itemsize))
  shards = plan_shards(sizes, max_shard_bytes)
  if len(shards) == 1:
    files = ["model.safetensors"]
  else:
    files = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
  writer = jax.process_index() == 0

  def attempt(step: Callable[[], None]) -> BaseException | None:
    if not writer:
      return None
    try:
      step()
    except Exception as e:  # pylint: disable=broad-exception-caught  (reported to every process)
      return e
    return None

  agree(attempt(lambda: prepare_directory(directory)), f"cannot write to {directory}")
  for names, file in zip(shards, files):
    tensors: dict[str, np.ndarray] = {}
    for name in names:
      m = maps[name]
      value = to_host(_get_path(pure, m.path))  # Every process joins the gather.
      if writer:
        tensors[name] = np.ascontiguousarray(m.to_hf(value).astype(out_dtype))
      del value

    path = os.path.join(directory, file)
    error = attempt(lambda: save_safetensors(path, tensors))
    tensors = {}  # Frees the file's tensors before the next gathers.
    agree(error, f"could not write {path}")

  def write_index_and_config() -> None:
    if len(shards) > 1:
      index = {
        "metadata": {"total_size": int(sum(nbytes for _, nbytes in sizes))},
        "weight_map": {name: file for names, file in zip(shards, files) for name in names},
      }
      write_json(os.path.join(directory, "model.safetensors.index.json"), index)
    write_json(os.path.join(directory, "config.json"), hf_config)

  agree(attempt(write_index_and_config), f"could not write the index or config.json in {directory}")
  return directory
