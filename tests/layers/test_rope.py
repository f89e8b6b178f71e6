"""RoPE frequency schedules: YaRN by hand and against transformers, the attention factor.

The hand cases follow the YaRN paper ("YaRN: Efficient Context Window Extension of Large
Language Models", arXiv:2309.00071) and Hugging Face's rounding of the correction range;
model-level logits parity with transformers for a YaRN Qwen3 is in tests/models/test_hf.py.
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import reasoning_jax.models  # noqa: F401  (first: importing layers first hits the layers<->models cycle)
from reasoning_jax.layers.rope import attention_factor, inverse_frequencies, rope_tables
from reasoning_jax.models import ModelConfig, RopeScaling


def _yarn(**kw):
  return RopeScaling(rope_type="yarn", **kw)


def test_yarn_by_hand_small_head():
  # head_dim 8, theta 1e4, context 32: pair i has wavelength 2 pi 1e4^(i/4). The pair index
  # turning r times over 32 positions is 8 ln(32 / (2 pi r)) / (2 ln 1e4): -0.798 for
  # r = beta_fast = 32 (-> 0), 0.707 for r = beta_slow = 1 (-> 1). So pair 0 keeps its
  # frequency and pairs 1..3 are divided by the factor 4.
  got = inverse_frequencies(8, 1e4, _yarn(factor=4.0, original_max_position_embeddings=32))
  np.testing.assert_allclose(got, [1.0, 0.1 / 4, 0.01 / 4, 0.001 / 4], rtol=1e-6)


@pytest.mark.parametrize("truncate", [True, False])
def test_yarn_ramp_between_correction_dims(truncate):
  # head_dim 64, theta 1e4, context 4096: correction dims 10.47 (beta_fast 32) and 22.51
  # (beta_slow 1); truncated outwards to 10 and 23. Between them the weight of the
  # interpolated frequency rises linearly in the pair index.
  low, high = (10.0, 23.0) if truncate else (10.4725, 22.5137)
  scaling = _yarn(factor=4.0, original_max_position_embeddings=4096, truncate=truncate)
  got = np.asarray(inverse_frequencies(64, 1e4, scaling))
  base = 1e4 ** (-np.arange(32) / 32)
  ramp = np.clip((np.arange(32) - low) / (high - low), 0, 1)
  np.testing.assert_allclose(got, base / 4 * ramp + base * (1 - ramp), rtol=2e-4)
  np.testing.assert_allclose(got[:10], base[:10], rtol=1e-6)  # Fast pairs: extrapolated.
  np.testing.assert_allclose(got[23:], base[23:] / 4, rtol=1e-6)  # Slow pairs: interpolated.


def test_yarn_factor_one_is_plain_rope():
  plain = inverse_frequencies(16, 1e4, None)
  yarn = _yarn(factor=1.0, original_max_position_embeddings=64)
  np.testing.assert_allclose(inverse_frequencies(16, 1e4, yarn), plain, rtol=1e-6)
  assert attention_factor(yarn) == 1.0


def test_attention_factor():
  assert attention_factor(None) == 1.0
  assert attention_factor(RopeScaling(rope_type="linear", factor=4.0)) == 1.0
  assert attention_factor(_yarn(factor=4.0)) == pytest.approx(0.1 * math.log(4.0) + 1)
  assert attention_factor(_yarn(factor=4.0, attention_factor=0.5)) == 0.5
  # DeepSeek-style: the ratio of the two mscale terms (1 when they are equal).
  assert attention_factor(_yarn(factor=40.0, mscale=1.0, mscale_all_dim=1.0)) == 1.0
  assert attention_factor(_yarn(factor=40.0, mscale=2.0, mscale_all_dim=1.0)) == pytest.approx(
    (0.2 * math.log(40.0) + 1) / (0.1 * math.log(40.0) + 1)
  )


def test_rope_tables_scale_both_tables():
  positions = jnp.arange(6)[None]
  inv = inverse_frequencies(8, 1e4, None)
  cos, sin = rope_tables(positions, inv)
  cos2, sin2 = rope_tables(positions, inv, 1.25)
  np.testing.assert_allclose(cos2, 1.25 * cos, rtol=1e-6)
  np.testing.assert_allclose(sin2, 1.25 * sin, rtol=1e-6)


def test_yarn_config_errors():
  with pytest.raises(ValueError, match="beta_fast > beta_slow"):
    _yarn(factor=4.0, beta_fast=1.0, beta_slow=2.0)
  with pytest.raises(ValueError, match="attention_factor"):
    _yarn(factor=4.0, attention_factor=-1.0)
  with pytest.raises(ValueError, match="original_max_position_embeddings"):
    _yarn(factor=4.0, original_max_position_embeddings=0)
  with pytest.raises(ValueError, match="'dynamic'"):
    RopeScaling(rope_type="dynamic", factor=2.0)
  # A dict in a saved config becomes the dataclass (checkpoints store the config as JSON).
  config = ModelConfig(
    vocab_size=8,
    hidden_size=8,
    intermediate_size=8,
    num_layers=1,
    num_heads=2,
    num_kv_heads=1,
    rope_scaling={"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 16},
  )
  assert config.rope_scaling == _yarn(factor=2.0, original_max_position_embeddings=16)


@pytest.mark.parametrize(
  "params",
  [
    {"factor": 4.0, "original_max_position_embeddings": 32768},  # Qwen3's model card.
    {"factor": 8.0, "original_max_position_embeddings": 64, "truncate": False},
    {"factor": 8.0, "original_max_position_embeddings": 64, "beta_fast": 16, "beta_slow": 2},
    {
      "factor": 40.0,
      "original_max_position_embeddings": 4096,
      "mscale": 1.0,
      "mscale_all_dim": 0.5,
    },
    {"factor": 4.0, "original_max_position_embeddings": 512, "attention_factor": 0.9},
  ],
)
def test_yarn_matches_transformers(params):
  transformers = pytest.importorskip("transformers", reason="needs the `hf` extra")
  from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

  head_dim, theta = 128, 1e6
  config = transformers.Qwen3Config(
    hidden_size=256,
    num_attention_heads=2,
    head_dim=head_dim,
    max_position_embeddings=131072,
    rope_parameters={"rope_type": "yarn", "rope_theta": theta, **params},
  )
  inv_ref, factor_ref = ROPE_INIT_FUNCTIONS["yarn"](config, "cpu")
  scaling = _yarn(**{k: float(v) if k != "truncate" else v for k, v in params.items()})
  got = inverse_frequencies(head_dim, theta, scaling)
  np.testing.assert_allclose(got, inv_ref.numpy(), rtol=1e-5)
  assert attention_factor(scaling) == pytest.approx(factor_ref, rel=1e-6)
