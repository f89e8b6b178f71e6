"""`write_fresh_folder`: a random model written as a Hugging Face folder that the trainers'
`model.hf_dir` path (and `transformers`) read back as the same model and tokenizer."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.models.fresh_folder import write_fresh_folder
from reasoning_jax.models.source import build_model, resolve_source
from reasoning_jax.tokenizers.bpe import train_bpe

TEXTS = [f"Make {a + b} from [{a}, {b}]." for a in range(1, 10) for b in range(1, 10)]


def _config(vocab):
  return get_preset(
    "tiny-qwen3",
    vocab_size=vocab,
    hidden_size=32,
    intermediate_size=64,
    num_layers=2,
    num_heads=2,
    num_kv_heads=1,
    head_dim=16,
    dtype="float32",
    param_dtype="float32",
  )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  tok = train_bpe(TEXTS, vocab_size=280)
  directory = tmp_path_factory.mktemp("fresh")
  write_fresh_folder(directory, _config(tok.vocab_size), tok, seed=3)
  return directory, tok


def test_the_trainers_source_reads_the_same_model_tokenizer_and_generation_settings(folder):
  directory, tok = folder
  source = resolve_source(hf_dir=str(directory))
  assert source.kind == "hf" and source.eos_ids == (tok.eos_id,)
  assert source.sampling == {"temperature": 1.0, "top_p": 1.0, "top_k": 0}
  assert source.tokenizer.encode(TEXTS[5]) == tok.encode(TEXTS[5])
  assert source.tokenizer.chat_template == tok.chat_template
  config = json.loads((directory / "config.json").read_text())
  assert (config["eos_token_id"], config["pad_token_id"]) == (tok.eos_id, tok.pad_id)
  expected = Transformer(_config(tok.vocab_size), rngs=nnx.Rngs(3))  # The same init.
  loaded = build_model(source)
  ids = jnp.asarray([tok.encode(TEXTS[7])])
  np.testing.assert_array_equal(np.asarray(loaded(ids)), np.asarray(expected(ids)))


def test_transformers_loads_the_folder_with_the_same_logits(folder):
  torch = pytest.importorskip("torch", reason="needs the `hf` extra")
  transformers = pytest.importorskip("transformers", reason="needs the `hf` extra")
  directory, tok = folder
  ref = transformers.AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.float32)
  ids = tok.encode(TEXTS[11])
  with torch.no_grad():
    want = ref.eval()(input_ids=torch.tensor([ids])).logits.numpy()
  got = np.asarray(build_model(resolve_source(hf_dir=str(directory)))(jnp.asarray([ids])))
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=0)
  assert transformers.GenerationConfig.from_pretrained(str(directory)).eos_token_id == [2]


def test_a_vocabulary_smaller_than_the_tokenizer_is_refused(tmp_path):
  tok = train_bpe(TEXTS, vocab_size=280)
  with pytest.raises(ValueError, match=f"tokenizer has {tok.vocab_size} ids but config.vocab"):
    write_fresh_folder(tmp_path, _config(tok.vocab_size - 1), tok)
