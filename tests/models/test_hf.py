"""Hugging Face parity: logits, export round trip, greedy generation, loader errors.

The `transformers` side runs on CPU torch and is the reference. Tests needing it
skip only when the `hf` extra (torch, transformers) is not installed.
"""

import json
import os
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.models import Transformer, from_hf, get_preset, to_hf
from reasoning_jax.models.hf import CheckpointError, config_from_hf

torch = pytest.importorskip("torch", reason="needs the `hf` extra (pip install -e .[hf])")
transformers = pytest.importorskip("transformers", reason="needs the `hf` extra")

TOL = 1e-4

_COMMON = dict(
  vocab_size=300,
  hidden_size=64,
  intermediate_size=96,
  num_hidden_layers=2,
  num_attention_heads=4,
  num_key_value_heads=2,
  max_position_embeddings=256,
)


def _hf_config(family: str):
  if family == "llama":
    return transformers.LlamaConfig(
      **_COMMON,
      rms_norm_eps=1e-5,
      tie_word_embeddings=False,
      rope_parameters={
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32,
      },
    )
  if family == "llama_tied_bias":
    return transformers.LlamaConfig(
      **_COMMON,
      rms_norm_eps=1e-5,
      tie_word_embeddings=True,
      attention_bias=True,
      mlp_bias=True,
      rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
  if family == "qwen2":
    return transformers.Qwen2Config(
      **_COMMON,
      rms_norm_eps=1e-6,
      tie_word_embeddings=True,
      rope_parameters={"rope_type": "default", "rope_theta": 1e6},
    )
  if family == "qwen3":
    # head_dim 24 is independent of hidden_size / heads (= 16) and not a power of two.
    return transformers.Qwen3Config(
      **_COMMON,
      head_dim=24,
      rms_norm_eps=1e-6,
      tie_word_embeddings=False,
      rope_parameters={"rope_type": "default", "rope_theta": 1e6},
    )
  if family == "qwen3_yarn":
    # The long-context setting Qwen3's model card prescribes (rope_type yarn, factor 4 over
    # the pre-training context), scaled down: 8x over 32 positions, so the ramp between
    # kept and interpolated frequencies falls inside head_dim and attention_factor != 1.
    return transformers.Qwen3Config(
      **_COMMON,
      rms_norm_eps=1e-6,
      tie_word_embeddings=True,
      rope_parameters={
        "rope_type": "yarn",
        "rope_theta": 1e4,
        "factor": 8.0,
        "original_max_position_embeddings": 32,
      },
    )
  raise ValueError(family)


FAMILIES = ["llama", "llama_tied_bias", "qwen2", "qwen3", "qwen3_yarn"]


def _make_hf_model(family: str, directory: str, seed: int = 0):
  torch.manual_seed(seed)
  config = _hf_config(family)
  model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
  with torch.no_grad():  # Non-trivial norms and biases so every tensor matters.
    for name, p in model.named_parameters():
      if name.endswith("norm.weight"):
        p.copy_(1.0 + 0.2 * torch.randn_like(p))
      elif name.endswith("bias"):
        p.copy_(0.1 * torch.randn_like(p))
  model.eval()
  model.save_pretrained(directory)
  return model


def _padded_batch(vocab: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  lengths = np.array([11, 7, 3], dtype=np.int32)
  ids = rng.integers(0, vocab, size=(3, 11)).astype(np.int32)
  mask = (np.arange(11)[None] < lengths[:, None]).astype(np.int32)
  ids = np.where(mask, ids, 0)
  return ids, mask, lengths


def _hf_logits(model, ids, mask):
  with torch.no_grad():
    out = model(
      input_ids=torch.from_numpy(ids).long(), attention_mask=torch.from_numpy(mask).long()
    )
  return out.logits.float().numpy()


@pytest.fixture(scope="module", params=FAMILIES)
def hf_pair(request, tmp_path_factory):
  directory = str(tmp_path_factory.mktemp(request.param))
  hf_model = _make_hf_model(request.param, directory)
  return request.param, directory, hf_model


def test_logits_parity_padded_batch(hf_pair):
  _, directory, hf_model = hf_pair
  model = from_hf(directory, dtype="float32")
  ids, mask, lengths = _padded_batch(model.config.vocab_size)
  expected = _hf_logits(hf_model, ids, mask)
  got = np.asarray(model(jnp.asarray(ids), attention_mask=jnp.asarray(mask)))
  for b, n in enumerate(lengths):
    np.testing.assert_allclose(got[b, :n], expected[b, :n], atol=TOL, rtol=0)


def test_logits_parity_beyond_pretraining_context(hf_pair):
  # 120 positions: past the rope scalings' original context (32), where llama3 and YaRN
  # frequencies matter most, for every family.
  _, directory, hf_model = hf_pair
  model = from_hf(directory, dtype="float32")
  ids = np.random.default_rng(5).integers(0, model.config.vocab_size, size=(1, 120))
  expected = _hf_logits(hf_model, ids.astype(np.int32), np.ones_like(ids, dtype=np.int32))
  np.testing.assert_allclose(np.asarray(model(jnp.asarray(ids))), expected, atol=TOL, rtol=0)


def test_export_reload_same_logits(hf_pair, tmp_path):
  _, directory, hf_model = hf_pair
  model = from_hf(directory, dtype="float32")
  out = to_hf(model, tmp_path / "export")
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
  ids, mask, lengths = _padded_batch(model.config.vocab_size, seed=1)
  a, b = _hf_logits(hf_model, ids, mask), _hf_logits(reloaded, ids, mask)
  for row, n in enumerate(lengths):
    np.testing.assert_allclose(b[row, :n], a[row, :n], atol=1e-5, rtol=0)


def test_greedy_generation_matches_transformers(hf_pair):
  from reasoning_jax.generate import generate

  _, directory, hf_model = hf_pair
  model = from_hf(directory, dtype="float32")
  ids, _, lengths = _padded_batch(model.config.vocab_size, seed=2)
  out = generate(model, jnp.asarray(ids), jnp.asarray(lengths), max_new_tokens=8, temperature=0.0)
  for b, n in enumerate(lengths):
    with torch.no_grad():
      ref = hf_model.generate(
        torch.from_numpy(ids[b : b + 1, :n]).long(),
        max_new_tokens=8,
        do_sample=False,
        min_new_tokens=8,
        pad_token_id=0,
      )
    np.testing.assert_array_equal(np.asarray(out.tokens[b]), ref[0, n:].numpy())


def test_old_config_layout_and_sharded_index(hf_pair, tmp_path):
  family, directory, hf_model = hf_pair
  model = from_hf(directory, dtype="float32")
  out = Path(to_hf(model, tmp_path / "sharded", max_shard_bytes=20_000))
  assert os.path.exists(out / "model.safetensors.index.json")
  # Rewrite config.json in the layout of published checkpoints (rope_theta + rope_scaling).
  with open(out / "config.json") as f:
    cfg = json.load(f)
  rope = cfg.pop("rope_parameters")
  cfg["rope_theta"] = rope.pop("rope_theta")
  cfg["rope_scaling"] = (
    None
    if rope["rope_type"] == "default"
    else {**{k: v for k, v in rope.items() if k != "rope_type"}, "type": rope["rope_type"]}
  )
  cfg["torch_dtype"] = cfg.pop("dtype")
  with open(out / "config.json", "w") as f:
    json.dump(cfg, f)
  again = from_hf(out)
  assert again.config == model.config
  ids, mask, lengths = _padded_batch(model.config.vocab_size, seed=3)
  np.testing.assert_array_equal(
    np.asarray(again(jnp.asarray(ids))), np.asarray(model(jnp.asarray(ids)))
  )


def test_bf16_load_close_to_fp32(hf_pair):
  _, directory, _ = hf_pair
  m32 = from_hf(directory, dtype="float32")
  m16 = from_hf(directory, dtype="bfloat16")
  assert m16.embed[...].dtype == jnp.bfloat16
  ids, _, _ = _padded_batch(m32.config.vocab_size, seed=4)
  a = np.asarray(m32(jnp.asarray(ids)))
  b = np.asarray(m16(jnp.asarray(ids)))
  assert np.abs(a - b).max() < 0.1 * max(1.0, np.abs(a).max())


def test_sharded_load_places_on_mesh(hf_pair):
  _, directory, _ = hf_pair
  if jax.device_count() < 4:
    pytest.skip("needs 4 host devices (tests/conftest.py sets 8)")
  mesh = jax.make_mesh((4,), ("tensor",), axis_types=(jax.sharding.AxisType.Auto,))
  P = jax.sharding.PartitionSpec

  def sharding(path, shape):
    if path.endswith("q_proj") or path.endswith("gate") or path.endswith("up"):
      return jax.sharding.NamedSharding(mesh, P(None, "tensor"))
    return jax.sharding.NamedSharding(mesh, P())

  model = from_hf(directory, dtype="float32", sharding=sharding)
  q = model.layers[0].mixer.q_proj[...]
  assert q.sharding.spec == P(None, "tensor")
  assert len(q.addressable_shards) == 4
  ref = from_hf(directory, dtype="float32")
  ids, _, _ = _padded_batch(ref.config.vocab_size, seed=5)
  np.testing.assert_allclose(
    np.asarray(model(jnp.asarray(ids))), np.asarray(ref(jnp.asarray(ids))), atol=1e-5
  )


# ----------------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def qwen3_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("qwen3_err"))
  _make_hf_model("qwen3", directory)
  return directory


def _copy(src, dst):
  shutil.copytree(src, dst)
  return dst


def test_unknown_architecture(qwen3_dir, tmp_path):
  d = _copy(qwen3_dir, tmp_path / "m")
  cfg = json.loads((d / "config.json").read_text())
  cfg["architectures"] = ["GPT2LMHeadModel"]
  (d / "config.json").write_text(json.dumps(cfg))
  with pytest.raises(CheckpointError, match="GPT2LMHeadModel"):
    from_hf(d)


def test_missing_config_key(qwen3_dir, tmp_path):
  d = _copy(qwen3_dir, tmp_path / "m")
  cfg = json.loads((d / "config.json").read_text())
  del cfg["num_hidden_layers"]
  (d / "config.json").write_text(json.dumps(cfg))
  with pytest.raises(CheckpointError, match="num_hidden_layers"):
    from_hf(d)


def test_missing_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json"):
    from_hf(tmp_path)


def test_corrupt_safetensors(qwen3_dir, tmp_path):
  d = _copy(qwen3_dir, tmp_path / "m")
  path = d / "model.safetensors"
  path.write_bytes(path.read_bytes()[:1000])
  with pytest.raises(CheckpointError, match="model.safetensors"):
    from_hf(d)
  path.write_bytes(b"\x00" * 3)
  with pytest.raises(CheckpointError, match="corrupt"):
    from_hf(d)


def test_missing_unexpected_and_mismatched_tensors(qwen3_dir, tmp_path):
  from safetensors.numpy import load_file, save_file

  d = _copy(qwen3_dir, tmp_path / "m")
  tensors = load_file(d / "model.safetensors")
  dropped = dict(tensors)
  del dropped["model.layers.1.mlp.up_proj.weight"]
  dropped["model.layers.9.extra.weight"] = np.zeros(3, np.float32)
  save_file(dropped, d / "model.safetensors", metadata={"format": "pt"})
  with pytest.raises(CheckpointError) as err:
    from_hf(d)
  assert "model.layers.1.mlp.up_proj.weight" in str(err.value)
  assert "model.layers.9.extra.weight" in str(err.value)
  bad = dict(tensors)
  bad["model.layers.0.self_attn.q_proj.weight"] = np.zeros((8, 64), np.float32)
  save_file(bad, d / "model.safetensors", metadata={"format": "pt"})
  with pytest.raises(CheckpointError, match=r"q_proj.weight.*\(8, 64\).*\(96, 64\)"):
    from_hf(d)


def test_config_from_hf_rejects_unsupported():
  base = {
    "architectures": ["LlamaForCausalLM"],
    "vocab_size": 10,
    "hidden_size": 8,
    "intermediate_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
  }
  assert config_from_hf(base).family == "llama"
  with pytest.raises(CheckpointError, match="hidden_act"):
    config_from_hf({**base, "hidden_act": "gelu"})
  with pytest.raises(CheckpointError, match="dynamic"):
    config_from_hf({**base, "rope_scaling": {"rope_type": "dynamic", "factor": 4.0}})
  with pytest.raises(CheckpointError, match="max_position_embeddings"):
    config_from_hf({**base, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}})
  with pytest.raises(CheckpointError, match="use_sliding_window"):
    config_from_hf({**base, "architectures": ["Qwen2ForCausalLM"], "use_sliding_window": True})


def test_to_hf_rejects_non_hf_layers(tmp_path):
  from reasoning_jax import registry

  assert "sliding_attention" in registry.MIXERS
  config = get_preset("tiny-qwen3").replace(mixer="sliding_attention", sliding_window=4)
  model = Transformer(config, rngs=nnx.Rngs(0))
  with pytest.raises(CheckpointError, match="sliding_attention"):
    to_hf(model, tmp_path / "x")
