"""reasoning_jax.evaluate.monotone_attack: the summary task, embedding forward, conversion."""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from configs import monotone_attack as monotone_config  # noqa: E402
from reasoning_jax.evaluate import monotone_attack  # noqa: E402


def test_summary_task_layout():
  d = monotone_attack.summary_task(
    50, num_filler=6, num_content=8, source_len=10, num_keywords=3, seed=0
  )
  assert d["inputs"].shape == (50, 14)
  for row in range(50):
    x, y, alt = d["inputs"][row], d["targets"][row], d["alt_targets"][row]
    content = [t for t in x[:10] if 8 <= t < 16]
    assert len(content) == 3 and x[10] == monotone_attack.SEP
    assert np.all(y[:10] == -100) and y[-1] == monotone_attack.EOS
    summary = y[10:13]
    np.testing.assert_array_equal((summary - 16) // 2, np.array(content) - 8)
    assert np.all(np.abs(alt[10:13] - summary) == 1) and alt[-1] == y[-1]
    np.testing.assert_array_equal(x[11:], y[10:13])  # Teacher forcing.
  assert d["filler_mask"].sum() == 50 * 7
  with pytest.raises(ValueError, match="num_keywords"):
    monotone_attack.summary_task(2, num_content=2, num_keywords=3)


def test_forward_from_embeddings_matches_model():
  config = monotone_config.get_config()
  from reasoning_jax.models.transformer import Transformer

  mc = monotone_attack.model_config_for(config, "monotone")
  model = Transformer(mc, rngs=nnx.Rngs(0))
  ids = jax.random.randint(jax.random.key(0), (2, 7), 0, mc.vocab_size)
  graphdef, params = nnx.split(model)

  @jax.jit
  def both(params, ids):
    m = nnx.merge(graphdef, params)
    return m(ids), monotone_attack.forward_from_embeddings(m, jnp.take(m.embed[...], ids, 0))

  want, got = both(params, ids)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_convert_to_monotone_keeps_magnitudes_and_other_params():
  from reasoning_jax.models.transformer import Transformer

  config = monotone_config.get_config()
  dense = Transformer(monotone_attack.model_config_for(config, "relu"), rngs=nnx.Rngs(0))
  mono = monotone_attack.convert_to_monotone(
    dense, monotone_attack.model_config_for(config, "monotone"), eps=1e-4, seed=1
  )
  for d_block, m_block in zip(dense.layers, mono.layers):
    w = m_block.ffn.weights()
    np.testing.assert_allclose(w["up"], jnp.abs(d_block.ffn.up[...]) + 1e-4, atol=2e-4)
    np.testing.assert_allclose(w["down"], jnp.abs(d_block.ffn.down[...]) + 1e-4, atol=2e-4)
    np.testing.assert_array_equal(m_block.mixer.q_proj[...], d_block.mixer.q_proj[...])
  np.testing.assert_array_equal(mono.embed[...], dense.embed[...])
