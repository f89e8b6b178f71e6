"""The model source: a preset or a local HF folder (tiny random checkpoints written here)."""

import json
import os
import pathlib
import shutil

import jax
import numpy as np
import pytest

from reasoning_jax.models import from_hf
from reasoning_jax.models.source import SourceError, build_model, resolve_source
from reasoning_jax.tokenizers import ByteTokenizer, PaddedVocab

pytest.importorskip("transformers", reason="needs the `hf` extra (pip install -e .[hf])")
from tests.helpers.tiny_hf import write_tiny_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def qwen3_dir(tmp_path_factory):
  return write_tiny_checkpoint(str(tmp_path_factory.mktemp("qwen3")), "qwen3")


def test_preset_source_is_todays_default():
  src = resolve_source(preset="tiny-qwen3", model_overrides={"num_layers": 1})
  assert src.kind == "preset" and isinstance(src.tokenizer, ByteTokenizer)
  assert src.model_config.vocab_size == 259 and src.eos_ids == (2,)
  assert dict(src.sampling) == {"temperature": 1.0, "top_p": 1.0, "top_k": 0}


def test_hf_source_reads_tokenizer_generation_config_and_places_on_mesh(qwen3_dir):
  src = resolve_source(hf_dir=qwen3_dir)
  tok = src.tokenizer
  assert isinstance(tok, PaddedVocab) and tok.vocab_size == 512 and tok.inner.vocab_size == 400
  assert src.eos_ids == (tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>"))
  assert src.sampling == {"temperature": 0.7, "top_p": 0.9, "top_k": 20}
  assert tok.decode(tok.encode("hi") + [450]) == "hi"  # Padding rows decode to nothing.
  mesh = jax.make_mesh((2, 4, 1), ("data", "fsdp", "tensor"))
  model = build_model(src, mesh=mesh)
  from flax import nnx

  params = jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))
  assert any(not x.sharding.is_fully_replicated for x in params)  # fsdp-sharded by the rules.
  ref = jax.tree_util.tree_leaves(nnx.state(from_hf(qwen3_dir), nnx.Param))
  for x, y in zip(params, ref):  # The same weights, placed shard by shard.
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  overridden = resolve_source(hf_dir=qwen3_dir, eos_ids=(3,))
  assert overridden.eos_ids == (3,)


def test_remat_flag_reaches_both_kinds(qwen3_dir):
  src = resolve_source(hf_dir=qwen3_dir, remat="full")
  assert src.model_config.remat == "full"
  assert build_model(src).config.remat == "full"  # from_hf gets it as a config override.
  assert resolve_source(hf_dir=qwen3_dir).model_config.remat == "none"  # The folder's: none.
  preset = resolve_source(preset="tiny-qwen3", remat="dots_saveable")
  assert build_model(preset).config.remat == "dots_saveable"
  with pytest.raises(SourceError, match="config.model.remat='all'"):
    resolve_source(hf_dir=qwen3_dir, remat="all")
  layers = src.model_config.num_layers
  per_block = ",".join(["full"] + ["none"] * (layers - 1))  # One policy per block.
  assert resolve_source(hf_dir=qwen3_dir, remat=per_block).model_config.remat == (
    ("full",) + ("none",) * (layers - 1)
  )
  too_many = ",".join(["full"] * (layers + 1))
  with pytest.raises(SourceError, match=f"remat has {layers + 1} entries but num_layers={layers}"):
    resolve_source(hf_dir=qwen3_dir, remat=too_many)
  with pytest.raises(SourceError, match=r"\[''\] unknown"):
    resolve_source(hf_dir=qwen3_dir, remat="full,")


def _copy(src, dst, skip=()):
  os.makedirs(dst)
  for name in os.listdir(src):
    if name not in skip:
      shutil.copy(os.path.join(src, name), dst)
  return str(dst)


def test_bad_folders_name_the_file_and_the_flag(qwen3_dir, tmp_path):
  with pytest.raises(SourceError, match="config.json not found.*config.model.hf_dir"):
    resolve_source(hf_dir=_copy(qwen3_dir, tmp_path / "a", skip=("config.json",)))
  with pytest.raises(SourceError, match="no weights.*config.model.hf_dir"):
    resolve_source(hf_dir=_copy(qwen3_dir, tmp_path / "b", skip=("model.safetensors",)))
  with pytest.raises(SourceError, match="tokenizer.json not found"):
    resolve_source(hf_dir=_copy(qwen3_dir, tmp_path / "c", skip=("tokenizer.json",)))
  with pytest.raises(SourceError, match="not a directory"):
    resolve_source(hf_dir=str(tmp_path / "missing"))
  d = _copy(qwen3_dir, tmp_path / "d")
  cfg = json.loads(pathlib.Path(os.path.join(d, "config.json")).read_text())
  pathlib.Path(os.path.join(d, "config.json")).write_text(
    json.dumps(dict(cfg, architectures=["MistralForCausalLM"]))
  )
  with pytest.raises(SourceError, match="MistralForCausalLM.*not supported.*config.model.hf_dir"):
    resolve_source(hf_dir=d)
  e = _copy(qwen3_dir, tmp_path / "e")
  pathlib.Path(os.path.join(e, "config.json")).write_text(json.dumps(dict(cfg, vocab_size=300)))
  with pytest.raises(SourceError, match=r"tokenizer has 400 ids.*vocab_size=300.*config.model"):
    resolve_source(hf_dir=e)
