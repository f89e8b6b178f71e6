"""reasoning_jax.evaluate.monotone_attack.models: the forward from embeddings and the conversion."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reasoning_jax.evaluate.monotone_attack import (
  IGNORE,
  convert_to_monotone,
  example_losses,
  forward_from_embeddings,
  model_config_for,
)
from tests.evaluate.monotone_attack.helpers import tiny_config, tiny_model


def test_forward_from_embeddings_matches_model():
  model = tiny_model("monotone")
  ids = jax.random.randint(jax.random.key(0), (2, 7), 0, model.config.vocab_size)
  graphdef, params = nnx.split(model)

  @jax.jit
  def both(params, ids):
    m = nnx.merge(graphdef, params)
    return m(ids), forward_from_embeddings(m, jnp.take(m.embed[...], ids, 0))

  want, got = both(params, ids)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_convert_to_monotone_keeps_magnitudes_and_other_params():
  dense = tiny_model("relu")
  mono = convert_to_monotone(dense, model_config_for(tiny_config(), "monotone"), eps=1e-4, seed=1)
  for d_block, m_block in zip(dense.layers, mono.layers):
    w = m_block.ffn.weights()
    np.testing.assert_allclose(w["up"], jnp.abs(d_block.ffn.up[...]) + 1e-4, atol=2e-4)
    np.testing.assert_allclose(w["down"], jnp.abs(d_block.ffn.down[...]) + 1e-4, atol=2e-4)
    np.testing.assert_array_equal(m_block.ffn.up_bias[...], d_block.ffn.up_bias[...])
    np.testing.assert_array_equal(m_block.mixer.q_proj[...], d_block.mixer.q_proj[...])
  np.testing.assert_array_equal(mono.embed[...], dense.embed[...])


def test_example_losses_by_hand():
  # Two positions scored, both predicting token 1: right at position 1 (the target), right
  # at position 2 too (1 is the alternative synonym of the target 2); a second example
  # misses at position 2 (its alternative is 0).
  probs = jnp.array([[0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.1, 0.6, 0.3]])
  logits = jnp.log(jnp.stack([probs, probs]))
  targets = jnp.array([[IGNORE, 1, 2], [IGNORE, 1, 2]])
  alt = jnp.array([[IGNORE, 1, 1], [IGNORE, 1, 0]])
  loss, acc = example_losses(logits, targets, alt)
  want = -(np.log(0.6) + np.log(0.3)) / 2
  np.testing.assert_allclose(loss, [want, want], rtol=1e-5)
  np.testing.assert_allclose(acc, [1.0, 0.5])
