"""LoRA I/O (reasoning_jax.lora.io): adapters-only orbax round trip, and merge -> `to_hf` ->
`transformers` giving the adapted model's logits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.lora import (
  LoRAConfig,
  apply_lora,
  export_merged,
  load_adapters,
  lora_kernels,
  save_adapters,
)
from reasoning_jax.models import Transformer, from_hf, get_preset

torch = pytest.importorskip("torch", reason="needs the `hf` extra (pip install -e .[hf])")
transformers = pytest.importorskip("transformers", reason="needs the `hf` extra")

from tests.models.test_hf import _hf_logits, _make_hf_model, _padded_batch  # noqa: E402


def _bump(model, seed, scale=0.05):
  for i, (_, k) in enumerate(lora_kernels(model)):
    key = jax.random.fold_in(jax.random.key(seed), i)
    k.lora_b.set_value(jax.random.normal(key, k.lora_b[...].shape) * scale)


def _adapted(seed=1):
  model = Transformer(get_preset("tiny-qwen3"), rngs=nnx.Rngs(0))
  apply_lora(model, LoRAConfig(rank=4, alpha=8.0), rngs=nnx.Rngs(seed))
  return model


def test_save_load_adapters_round_trip(tmp_path):
  model = _adapted(seed=1)
  _bump(model, seed=3)
  ids = jnp.arange(24, dtype=jnp.int32).reshape(2, 12)
  expected = np.asarray(model(ids))
  save_adapters(tmp_path / "adapters", model)
  fresh = _adapted(seed=2)  # Same base, other adapters.
  assert not np.array_equal(np.asarray(fresh(ids)), expected)
  load_adapters(tmp_path / "adapters", fresh)
  np.testing.assert_array_equal(np.asarray(fresh(ids)), expected)
  saved = jax.tree_util.tree_leaves(nnx.state(fresh, nnx.LoRAParam))
  assert len(saved) == 2 * len(lora_kernels(fresh))


def test_load_adapters_errors(tmp_path):
  model = _adapted()
  with pytest.raises(FileNotFoundError, match="no adapter checkpoint"):
    load_adapters(tmp_path / "missing", model)
  save_adapters(tmp_path / "a", model)
  other = Transformer(get_preset("tiny-qwen3"), rngs=nnx.Rngs(0))
  apply_lora(other, LoRAConfig(rank=2), rngs=nnx.Rngs(1))
  with pytest.raises(ValueError, match="do not match"):
    load_adapters(tmp_path / "a", other)


@pytest.mark.parametrize("family", ["qwen3", "llama"])
def test_merge_export_loads_in_transformers_with_same_logits(family, tmp_path):
  _make_hf_model(family, str(tmp_path / "src"))
  model = from_hf(str(tmp_path / "src"), dtype="float32")
  apply_lora(model, LoRAConfig(rank=4, alpha=8.0), rngs=nnx.Rngs(1))
  _bump(model, seed=5)
  ids, mask, lengths = _padded_batch(model.config.vocab_size, seed=7)
  ours = np.asarray(model(jnp.asarray(ids), attention_mask=jnp.asarray(mask)))
  out = export_merged(model, tmp_path / "merged")
  assert lora_kernels(model)  # The model itself keeps its adapters.
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
  theirs = _hf_logits(reloaded, ids, mask)
  base = _hf_logits(
    transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "src")).eval(), ids, mask
  )
  for b, n in enumerate(lengths):
    np.testing.assert_allclose(theirs[b, :n], ours[b, :n], atol=1e-4, rtol=0)
    assert np.abs(theirs[b, :n] - base[b, :n]).max() > 1e-3  # The adapters did change it.
