"""`ModelConfig.remat`: rematerialised blocks give the same loss and gradients as plain ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.train.step import sft_loss


def _loss_and_grads(config):
  model = Transformer(config, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model, nnx.Param)
  tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, config.vocab_size)
  batch = {"tokens": tokens, "loss_mask": jnp.ones_like(tokens)}

  def loss(p):
    return sft_loss(nnx.merge(graphdef, p), batch)[0]

  return jax.jit(jax.value_and_grad(loss))(params)


@pytest.mark.parametrize("remat", ["full", "dots_saveable", ("full", "none")])
def test_remat_matches_no_remat(remat):
  base_loss, base_grads = _loss_and_grads(get_preset("tiny-qwen3"))
  loss, grads = _loss_and_grads(get_preset("tiny-qwen3", remat=remat))
  np.testing.assert_allclose(loss, base_loss, rtol=1e-6)
  for g, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(base_grads)):
    np.testing.assert_allclose(g, b, rtol=1e-4, atol=1e-5)  # Recompute reorders f32 sums.


def test_remat_default_is_none_and_bad_names_raise():
  assert get_preset("tiny-qwen3").remat == "none"
  with pytest.raises(ValueError, match="remat"):
    get_preset("tiny-qwen3", remat="everything")
  with pytest.raises(ValueError, match="remat has 1 entries"):
    get_preset("tiny-qwen3", remat=("full",))
