"""The draft/target pair of the speculative-decoding experiment: trained here, or two HF folders.

Trained here (the default): two zoo presets trained from scratch with the SFT trainer
(`reasoning_jax.train.sft.run_sft`) on the synthetic task of the main job, with the byte
tokenizer; `config.target` and `config.draft` are ordinary SFT configs. Each is trained once
in its workdir (default `<workdir>/pair/target`, `<workdir>/pair/draft`) and loaded from its
checkpoint afterwards; a checkpoint written under another model, task or training budget is
refused (ValueError naming the keys). Both are then exported as Hugging Face folders
(`<workdir>/pair/target_hf`, `.../draft_hf`, `to_hf`) for `benchmarks/speculative.py` and the
notebook.

Two folders (`config.target_hf_dir` and `config.draft_hf_dir`, e.g. a 0.5B draft and a 7B
target): loaded with the model-source code of the trainers (`resolve_source` /
`build_model`), with `config.tokenizer` ("": each folder's own `tokenizer.json`; "byte": the
byte tokenizer, for folders exported from models trained here; or a path). The two
tokenizers must agree (`check_tokenizers`) and both models must keep position-indexed caches
(`check_pair`). Nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections
from flax import nnx

from reasoning_jax.models import count_params
from reasoning_jax.evaluate.trained_model import train_or_load
from reasoning_jax.models.source import SourceError, build_model, resolve_source
from reasoning_jax.speculative import check_pair, check_tokenizers


@dataclasses.dataclass
class Pair:
  """A target, a draft that shares its tokenizer, and where they came from.

  Attributes:
    target: the zoo `Transformer` whose distribution the output follows.
    draft: the cheaper zoo `Transformer` (attention layers only, same vocabulary).
    tokenizer: the shared tokenizer.
    eos_ids: ids that end a completion (the target's).
    source: "trained" or "hf".
    dirs: "target" / "draft" -> the SFT workdir (trained) or the HF folder.
    hf_dirs: "target" / "draft" -> HF folders holding the models (exported when trained).
    extras: decoder-specific state (e.g. SemanticSpec's probes), filled by whoever needs it.
  """

  target: nnx.Module
  draft: nnx.Module
  tokenizer: Any
  eos_ids: tuple[int, ...]
  source: str
  dirs: dict[str, str]
  hf_dirs: dict[str, str]
  extras: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def eos_id(self) -> int | tuple[int, ...] | None:
    if not self.eos_ids:
      return None
    return self.eos_ids[0] if len(self.eos_ids) == 1 else self.eos_ids

  def describe(self) -> dict[str, Any]:
    """Sizes and origins, for results.json: params and per-token FLOPs of both models."""
    t, d = per_token_flops(self.target.config), per_token_flops(self.draft.config)
    return {
      "source": self.source,
      "dirs": dict(self.dirs),
      "hf_dirs": dict(self.hf_dirs),
      "target_params": count_params(self.target),
      "draft_params": count_params(self.draft),
      "target_flops_per_token": t,
      "draft_flops_per_token": d,
      "flops_ratio": t / d,
    }


def per_token_flops(config: Any) -> int:
  """2 x the matmul parameters one decoded token touches (projections, FFN, unembedding).

  Attention over the cache is left out (short sequences here); the embedding lookup is free.
  """
  h, d = config.hidden_size, config.head_dim
  attn = h * d * (2 * config.num_heads + 2 * config.num_kv_heads)
  ffn = 3 * h * config.intermediate_size
  return 2 * (config.num_layers * (attn + ffn) + h * config.vocab_size)


def sft_workdirs(config: ml_collections.ConfigDict) -> dict[str, str]:
  """The SFT workdirs of the pair: `config.<role>.workdir`, or `<workdir>/pair/<role>`."""
  return {
    role: config[role].workdir or os.path.join(config.workdir, "pair", role)
    for role in ("target", "draft")
  }


def _export(model: nnx.Module, directory: str) -> str:
  from reasoning_jax.models.hf import to_hf

  if not os.path.isfile(os.path.join(directory, "config.json")):
    to_hf(model, directory)
  return directory


def trained_pair(config: ml_collections.ConfigDict) -> Pair:
  """The pair of `config.target` / `config.draft`, trained once and reused."""
  dirs = sft_workdirs(config)
  models = {}
  for role in ("target", "draft"):
    sft = ml_collections.ConfigDict(config[role].to_dict())
    sft.workdir = dirs[role]
    models[role], _ = train_or_load(sft, role)
  from reasoning_jax.train.sft_config import model_source

  source = model_source(config.target, prefix="config.target")
  check_tokenizers(source.tokenizer, model_source(config.draft, "config.draft").tokenizer)
  check_pair(models["target"], models["draft"])
  hf_dirs = {}
  if config.get("export_hf", True):
    for role in ("target", "draft"):
      hf_dirs[role] = _export(models[role], os.path.join(config.workdir, "pair", f"{role}_hf"))
  return Pair(
    models["target"],
    models["draft"],
    source.tokenizer,
    source.eos_ids,
    "trained",
    dirs,
    hf_dirs,
  )


def hf_pair(target_dir: str, draft_dir: str, tokenizer: str = "") -> Pair:
  """Two local Hugging Face folders as a pair (no network), checked against each other."""
  if tokenizer == "byte":  # Folders exported from byte-tokenizer models trained here.
    from reasoning_jax.models.hf import from_hf
    from reasoning_jax.tokenizers import ByteTokenizer, pad_vocab

    target, draft = from_hf(target_dir), from_hf(draft_dir)
    tok = pad_vocab(ByteTokenizer(), target.config.vocab_size)
    check_tokenizers(tok, pad_vocab(ByteTokenizer(), draft.config.vocab_size))
    eos_ids: tuple[int, ...] = (tok.eos_id,)
  else:
    sources = {}
    for role, path in (("target", target_dir), ("draft", draft_dir)):
      try:
        sources[role] = resolve_source(hf_dir=path, tokenizer=tokenizer, flag="config")
      except SourceError as e:  # Name the experiment's own flag for the folder.
        raise ValueError(f"config.{role}_hf_dir={path!r}: {e}") from None
    check_tokenizers(sources["target"].tokenizer, sources["draft"].tokenizer)
    target, draft = build_model(sources["target"]), build_model(sources["draft"])
    tok, eos_ids = sources["target"].tokenizer, tuple(sources["target"].eos_ids)
  check_pair(target, draft)
  dirs = {"target": os.path.abspath(target_dir), "draft": os.path.abspath(draft_dir)}
  return Pair(target, draft, tok, eos_ids, "hf", dirs, dict(dirs))


def load_pair(config: ml_collections.ConfigDict) -> Pair:
  """`hf_pair` when `config.target_hf_dir` and `config.draft_hf_dir` are set, else
  `trained_pair`; ValueError when only one folder is given."""
  target_dir, draft_dir = config.get("target_hf_dir", ""), config.get("draft_hf_dir", "")
  if bool(target_dir) != bool(draft_dir):
    raise ValueError(
      "give both config.target_hf_dir and config.draft_hf_dir (two HF folders), or neither "
      f"(the pair trained here); got target_hf_dir={target_dir!r}, draft_hf_dir={draft_dir!r}"
    )
  if target_dir:
    return hf_pair(target_dir, draft_dir, config.get("tokenizer", ""))
  return trained_pair(config)
