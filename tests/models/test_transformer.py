"""The decoder: presets, config validation, input validation, cache consistency, dtypes."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.models import PRESETS, Transformer, count_params, get_preset

# Parameter counts of the published checkpoints (safetensors totals).
PUBLISHED = {
  "qwen2.5-0.5b": 494_032_768,
  "qwen2.5-7b": 7_615_616_512,
  "qwen3-0.6b": 596_049_920,
  "qwen3-8b": 8_190_735_360,
  "llama-3.2-1b": 1_235_814_400,
  "llama-3.2-3b": 3_212_749_824,
  "llama-3.1-8b": 8_030_261_248,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_parameter_counts(name):
  abstract = nnx.eval_shape(lambda: Transformer(get_preset(name), rngs=nnx.Rngs(0)))
  assert count_params(abstract) == PUBLISHED[name]


def test_every_preset_builds_abstractly():
  for name in PRESETS:
    abstract = nnx.eval_shape(lambda: Transformer(get_preset(name), rngs=nnx.Rngs(0)))
    assert count_params(abstract) > 0


def test_get_preset_overrides_and_unknown():
  assert get_preset("tiny-llama", dtype="bfloat16").dtype == "bfloat16"
  with pytest.raises(ValueError, match="unknown preset"):
    get_preset("gpt-5")


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(num_heads=4, num_kv_heads=3), "multiple of num_kv_heads"),
    (dict(head_dim=7), "even"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(mixer=("attention",)), "num_layers=2"),
    (dict(rope_theta=-1.0), "rope_theta"),
    (dict(sliding_window=0), "sliding_window"),
    (dict(family="gpt2"), "family"),
  ],
)
def test_config_validation(kwargs, match):
  with pytest.raises(ValueError, match=match):
    get_preset("tiny-qwen3").replace(**kwargs)


def test_unknown_mixer_named_at_build():
  config = get_preset("tiny-qwen3").replace(mixer=("attention", "nope"))
  with pytest.raises(ValueError, match=r"mixer\[1\]='nope'"):
    Transformer(config, rngs=nnx.Rngs(0))


def test_per_layer_mixers_from_registry():
  config = get_preset("tiny-qwen3").replace(
    mixer=("attention", "sliding_attention"), sliding_window=3
  )
  model = Transformer(config, rngs=nnx.Rngs(0))
  assert type(model.layers[1].mixer) is registry.MIXERS.get("sliding_attention")
  ids = jnp.arange(10)[None] % 7
  assert np.isfinite(np.asarray(model(ids))).all()


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-qwen2", "tiny-qwen3"])
def model(request):
  return Transformer(get_preset(request.param), rngs=nnx.Rngs(0))


def test_input_validation(model):
  with pytest.raises(TypeError, match="input_ids must be an integer"):
    model(jnp.ones((1, 3), jnp.float32))
  with pytest.raises(ValueError, match=r"\[B, T\]"):
    model(jnp.ones((3,), jnp.int32))
  with pytest.raises(ValueError, match="vocab_size=512"):
    model(jnp.array([[1, 512]]))
  with pytest.raises(ValueError, match="vocab_size"):
    model(jnp.array([[-1, 2]]))
  with pytest.raises(ValueError, match="attention_mask"):
    model(jnp.ones((1, 3), jnp.int32), attention_mask=jnp.ones((1, 4)))


def test_prefill_then_stepwise_cache_equals_full_forward(model):
  ids = jax.random.randint(jax.random.key(1), (2, 9), 0, model.config.vocab_size)
  full = model(ids)
  cache = model.init_cache(2, 12)
  hidden, cache = model.forward(ids[:, :5], cache=cache)
  outs = [model.unembed(hidden)]
  for t in range(5, 9):
    pos = jnp.full((2, 1), t, jnp.int32)
    hidden, cache = model.forward(ids[:, t : t + 1], positions=pos, cache=cache)
    outs.append(model.unembed(hidden))
  np.testing.assert_allclose(np.asarray(jnp.concatenate(outs, 1)), np.asarray(full), atol=1e-5)


def test_right_padding_does_not_change_valid_logits(model):
  ids = jax.random.randint(jax.random.key(2), (1, 6), 1, model.config.vocab_size)
  padded = jnp.concatenate([ids, jnp.zeros((1, 3), ids.dtype)], axis=1)
  mask = jnp.array([[1] * 6 + [0] * 3])
  np.testing.assert_allclose(
    np.asarray(model(padded, attention_mask=mask)[:, :6]), np.asarray(model(ids)), atol=1e-5
  )


def test_jit_and_grad(model):
  graphdef, state = nnx.split(model)
  ids = jnp.arange(8)[None]

  @jax.jit
  def loss(state):
    logits = nnx.merge(graphdef, state)(ids)
    return -jax.nn.log_softmax(logits)[0, jnp.arange(7), ids[0, 1:]].mean()

  grads = jax.grad(loss)(state)
  leaves = jax.tree_util.tree_leaves(grads)
  assert all(np.isfinite(np.asarray(g)).all() for g in leaves)
  assert any(np.abs(np.asarray(g)).max() > 0 for g in leaves)


def test_bf16_compute():
  m32 = Transformer(get_preset("tiny-qwen3"), rngs=nnx.Rngs(0))
  m16 = Transformer(get_preset("tiny-qwen3", dtype="bfloat16"), rngs=nnx.Rngs(0))
  ids = jnp.arange(12)[None]
  a, b = m32(ids), m16(ids)
  assert b.dtype == jnp.float32  # Logits are always float32.
  hidden, _ = m16.forward(ids)
  assert hidden.dtype == jnp.bfloat16
  stored = Transformer(get_preset("tiny-qwen3", param_dtype="bfloat16"), rngs=nnx.Rngs(0))
  assert stored.embed[...].dtype == jnp.bfloat16
  assert np.abs(np.asarray(a) - np.asarray(b)).max() < 0.05


def test_import_does_not_pull_torch_or_tensorflow():
  code = (
    "import sys, reasoning_jax, reasoning_jax.models, reasoning_jax.generate, "
    "reasoning_jax.logprobs, reasoning_jax.tokenizers; "
    "bad = [m for m in ('torch', 'tensorflow', 'transformers') if m in sys.modules]; "
    "print(bad); sys.exit(1 if bad else 0)"
  )
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert result.returncode == 0, result.stdout + result.stderr


def test_forward_from_input_embeddings(model):
  """`inputs_embeds=embed_tokens(ids)` is the ids path; exactly one of the two is accepted."""
  ids = jnp.asarray([[1, 5, 7, 9], [2, 4, 6, 8]], jnp.int32)
  embeds = model.embed_tokens(ids)
  hidden, _ = model.forward(ids)
  np.testing.assert_array_equal(model.forward(None, inputs_embeds=embeds)[0], hidden)
  with pytest.raises(ValueError, match="exactly one of input_ids"):
    model.forward(ids, inputs_embeds=embeds)
  with pytest.raises(ValueError, match=r"inputs_embeds must be \[B, T, H="):
    model.forward(None, inputs_embeds=embeds[..., :3])
