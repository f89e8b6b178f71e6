"""Where a trainer's model comes from: a preset trained from scratch, or a local HF folder.

`resolve_source(...)` reads only small files (config.json, tokenizer files,
generation_config.json) and checks them against each other, so that bad input fails
before any weights are read or any step runs; `build_model(source, ...)` then makes the
`Transformer`: random initialisation for a preset, or `from_hf` with every tensor placed
on the mesh shard by shard by the family's partition rules.

  >>> src = resolve_source(hf_dir="/data/Qwen3-0.6B", flag="config.model")
  >>> src.tokenizer, src.eos_ids, src.sampling  # HFTokenizer, (151645, 151643), {...}
  >>> model = build_model(src, seed=0, mesh=mesh)

Errors are `SourceError`s naming the file and the config flag (`flag`) to change.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from reasoning_jax import sharding as sharding_lib
from reasoning_jax.models.config import REMAT_POLICIES, ModelConfig, get_preset
from reasoning_jax.models.partition_rules import rules_for
from reasoning_jax.models.transformer import Transformer
from reasoning_jax.tokenizers import TOKENIZER_FILE, Tokenizer, load_tokenizer, pad_vocab

GENERATION_CONFIG_FILE = "generation_config.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
# Sampling settings a generation_config.json may carry, with the defaults used without one.
SAMPLING_DEFAULTS: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "top_k": 0}


class SourceError(ValueError):
  """A model source that cannot be used; the message names the file and the flag."""


@dataclasses.dataclass(frozen=True)
class ModelSource:
  """A resolved model source.

  Attributes:
    kind: "preset" (random initialisation) or "hf" (weights from `hf_dir`).
    model_config: The `ModelConfig` of the model `build_model` makes.
    tokenizer: The tokenizer (byte or a `tokenizer.json`; the folder's own for "hf"), as a
      `PaddedVocab` when the embedding has more rows than it has ids.
    eos_ids: Ids that end a completion (generation_config.json, else the tokenizer's eos).
    sampling: Default `temperature`, `top_p`, `top_k` (generation_config.json where present).
    hf_dir: The folder for "hf", else None.
  """

  kind: str
  model_config: ModelConfig
  tokenizer: Tokenizer
  eos_ids: tuple[int, ...]
  sampling: Mapping[str, Any]
  hf_dir: str | None = None

  @property
  def eos_id(self) -> int | tuple[int, ...] | None:
    """`eos_id` for `generate`: one id, several, or None."""
    if not self.eos_ids:
      return None
    return self.eos_ids[0] if len(self.eos_ids) == 1 else self.eos_ids


def _read_generation_config(directory: str, flag: str) -> dict[str, Any]:
  path = os.path.join(directory, GENERATION_CONFIG_FILE)
  if not os.path.isfile(path):
    return {}
  try:
    with open(path) as f:
      data = json.load(f)
  except json.JSONDecodeError as e:
    raise SourceError(f"{path}: invalid JSON ({e}); fix the file or {flag}.hf_dir") from None
  if not isinstance(data, dict):
    raise SourceError(f"{path}: must hold a JSON object")
  return data


def _as_ids(value: Any) -> tuple[int, ...]:
  if value is None:
    return ()
  if isinstance(value, (list, tuple)):
    return tuple(int(v) for v in value)
  return (int(value),)


def _check_vocab(tokenizer: Tokenizer, config: ModelConfig, where: str, flag: str) -> None:
  """The tokenizer's largest id must have a row in the embedding."""
  if tokenizer.vocab_size > config.vocab_size:
    raise SourceError(
      f"{where}: the tokenizer has {tokenizer.vocab_size} ids (max id + 1) but the model's "
      f"embedding has only vocab_size={config.vocab_size} rows; use the tokenizer that belongs "
      f"to the checkpoint ({flag}.tokenizer) or a larger vocab_size"
    )


def _hf_source(
  hf_dir: str, *, dtype: str, param_dtype: str, tokenizer: str, flag: str
) -> tuple[ModelConfig, Tokenizer, dict[str, Any]]:
  from reasoning_jax.models.hf import CheckpointError, load_hf_config

  directory = os.path.abspath(os.path.expanduser(hf_dir))
  if not os.path.isdir(directory):
    raise SourceError(f"{flag}.hf_dir={hf_dir!r} is not a directory")
  if not os.path.isfile(os.path.join(directory, "config.json")):
    raise SourceError(
      f"{os.path.join(directory, 'config.json')} not found: {flag}.hf_dir must be a Hugging "
      "Face checkpoint folder (config.json + safetensors weights + tokenizer.json)"
    )
  if not any(os.path.isfile(os.path.join(directory, f)) for f in WEIGHT_FILES):
    raise SourceError(
      f"{directory}: no weights ({' or '.join(WEIGHT_FILES)}) in {flag}.hf_dir "
      "(only safetensors checkpoints are read)"
    )
  try:
    config = load_hf_config(directory, dtype=dtype or None)
  except CheckpointError as e:
    raise SourceError(f"{e} ({flag}.hf_dir)") from None
  if param_dtype:
    config = config.replace(param_dtype=jnp.dtype(param_dtype).name)
  tok_path = tokenizer or directory
  if not os.path.exists(os.path.join(tok_path, TOKENIZER_FILE)) and not os.path.isfile(tok_path):
    raise SourceError(
      f"{os.path.join(tok_path, TOKENIZER_FILE)} not found: the checkpoint's tokenizer is "
      f"needed ({flag}.hf_dir, or {flag}.tokenizer for a tokenizer elsewhere)"
    )
  try:
    tok = load_tokenizer(tok_path)
  except (ValueError, FileNotFoundError) as e:
    raise SourceError(f"{e} ({flag}.tokenizer / {flag}.hf_dir)") from None
  _check_vocab(tok, config, f"{tok_path} vs {os.path.join(directory, 'config.json')}", flag)
  return config, tok, _read_generation_config(directory, flag)


def _parse_remat(remat: str, flag: str) -> str | tuple[str, ...]:
  """`remat` as `ModelConfig.remat`: "" (unset), one name, or a tuple from "a,b,...";
  SourceError naming `flag`.remat for an unknown name."""
  if not remat:
    return ""
  names = tuple(name.strip() for name in remat.split(","))
  bad = [name for name in names if name not in REMAT_POLICIES]
  if bad:
    raise SourceError(
      f"{flag}.remat={remat!r}: {bad} unknown; expected one of {REMAT_POLICIES} for every "
      "block, or one per block separated by commas (or '')"
    )
  return names[0] if len(names) == 1 else names


def _with_remat(config: ModelConfig, remat: str | tuple[str, ...], flag: str) -> ModelConfig:
  try:
    return config.replace(remat=remat)
  except ValueError as e:  # One entry per block: the count must match.
    raise SourceError(f"{flag}.remat: {e}") from None


def resolve_source(
  *,
  hf_dir: str = "",
  preset: str = "",
  model_overrides: Mapping[str, Any] | None = None,
  tokenizer: str = "",
  dtype: str = "",
  param_dtype: str = "",
  remat: str = "",
  eos_ids: Sequence[int] = (),
  flag: str = "config.model",
) -> ModelSource:
  """Resolves a model source from config values, reading only small files.

  Args:
    hf_dir: A local Hugging Face folder; empty for a preset.
    preset: Preset name (`get_preset`) when `hf_dir` is empty.
    model_overrides: `ModelConfig` fields changed on the preset (vocab_size defaults to the
      tokenizer's).
    tokenizer: "byte", a `tokenizer.json` path or a folder holding one; empty: the folder's
      own for `hf_dir`, the byte tokenizer for a preset.
    dtype: Compute dtype ("" = the checkpoint's / the preset's).
    param_dtype: Parameter storage dtype ("" = `dtype`).
    remat: Rematerialisation in the backward pass: a `ModelConfig.remat` name ("none" |
      "full" | "dots_saveable") for every block, or one per block separated by commas
      ("full,full,none,..."); "" = the preset's / "none" for a folder.
    eos_ids: Ids ending a completion; empty = generation_config.json's `eos_token_id`, else
      the tokenizer's eos.
    flag: The config prefix named in error messages.

  Raises:
    SourceError: A folder without config.json or weights, an unsupported architecture, a
      missing tokenizer, a tokenizer with more ids than the embedding has rows, or an
      unknown `remat` or one with another number of entries than the model has blocks.
  """
  remat = _parse_remat(remat, flag)
  generation: dict[str, Any] = {}
  if hf_dir:
    config, tok, generation = _hf_source(
      hf_dir, dtype=dtype, param_dtype=param_dtype, tokenizer=tokenizer, flag=flag
    )
    if remat:
      config = _with_remat(config, remat, flag)
    kind, hf_dir = "hf", os.path.abspath(os.path.expanduser(hf_dir))
  else:
    try:
      tok = load_tokenizer(tokenizer or "byte")
    except (ValueError, FileNotFoundError) as e:
      raise SourceError(f"{flag}.tokenizer: {e}") from None
    overrides = dict(model_overrides or {})
    overrides.setdefault("vocab_size", tok.vocab_size)
    if dtype:
      overrides["dtype"] = jnp.dtype(dtype).name
    if param_dtype:
      overrides["param_dtype"] = jnp.dtype(param_dtype).name
    try:
      config = get_preset(preset, **overrides)
    except (ValueError, TypeError) as e:
      raise SourceError(f"config.preset / config.model_overrides: {e}") from None
    if remat:
      config = _with_remat(config, remat, flag)
    _check_vocab(tok, config, f"preset {preset!r}", flag)
    kind, hf_dir = "preset", None
  ids = tuple(int(i) for i in eos_ids) or _as_ids(generation.get("eos_token_id"))
  if not ids and tok.eos_id is not None:
    ids = (tok.eos_id,)
  bad = [i for i in ids if not 0 <= i < config.vocab_size]
  if bad:
    raise SourceError(f"{flag}.eos_ids: {bad} outside [0, vocab_size={config.vocab_size})")
  sampling = dict(SAMPLING_DEFAULTS)
  if generation.get("do_sample", True):  # Greedy checkpoints keep the neutral defaults.
    sampling.update({k: generation[k] for k in SAMPLING_DEFAULTS if generation.get(k) is not None})
  return ModelSource(kind, config, pad_vocab(tok, config.vocab_size), ids, sampling, hf_dir)


def resolve_from_config(config: Any, flag: str = "config.model") -> ModelSource:
  """`resolve_source` from a trainer config: `config.model` (optional) + `preset` fields."""
  model = config.get("model") or {}
  get = model.get if hasattr(model, "get") else dict(model).get
  return resolve_source(
    hf_dir=get("hf_dir", "") or "",
    preset=config.get("preset", ""),
    model_overrides=dict(config.get("model_overrides") or {}),
    tokenizer=get("tokenizer", "") or "",
    dtype=get("dtype", "") or "",
    param_dtype=get("param_dtype", "") or "",
    remat=get("remat", "") or "",
    eos_ids=tuple(get("eos_ids", ()) or ()),
    flag=flag,
  )


def build_model(source: ModelSource, *, seed: int = 0, mesh: Any = None) -> Transformer:
  """The model of `source`: random init (preset) or the folder's weights, placed on `mesh`.

  HF weights are read tensor by tensor and, with a mesh, assembled shard by shard with the
  family's partition rules, so the full model is never materialised on one device.
  """
  if source.kind == "preset":
    return Transformer(source.model_config, rngs=nnx.Rngs(seed))
  from reasoning_jax.models.hf import from_hf

  sharding = None
  if mesh is not None:
    rules = rules_for(source.model_config.family)

    def sharding(name: str, shape: tuple[int, ...]) -> jax.sharding.Sharding:
      spec = sharding_lib.spec_for(name, shape, rules, mesh)
      return jax.sharding.NamedSharding(mesh, spec)

  return from_hf(
    source.hf_dir,
    dtype=source.model_config.dtype,
    param_dtype=source.model_config.param_dtype,
    sharding=sharding,
    config_overrides={"remat": source.model_config.remat},
  )


def place_model(model: Transformer, mesh: Any) -> Transformer:
  """`model` with its parameters laid out on `mesh` by its family's partition rules (in place;
  parameters no rule names, e.g. LoRA adapters, are replicated). Returns `model`."""
  params = nnx.state(model, nnx.Param)
  rules = rules_for(model.config.family)
  shardings = sharding_lib.param_shardings(params, rules, mesh, strict=False)
  nnx.update(model, sharding_lib.place(params, shardings))
  return model


def abstract_model(source: ModelSource) -> Transformer:
  """The model's structure with `jax.ShapeDtypeStruct` leaves (for restoring checkpoints)."""
  return nnx.eval_shape(lambda: Transformer(source.model_config, rngs=nnx.Rngs(0)))
