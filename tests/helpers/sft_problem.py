"""A fixed tiny SFT problem shared by the multi-device and multi-host tests."""

import numpy as np
import optax
from flax import nnx

from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.train import init_train_state, sft_loss


def build():
  model = Transformer(get_preset("tiny-qwen3"), rngs=nnx.Rngs(0))
  tx = optax.sgd(0.5, momentum=0.9)
  graphdef, state = init_train_state(model, tx)
  rng = np.random.default_rng(0)
  batch = {
    "tokens": rng.integers(0, 512, (8, 16)).astype(np.int32),
    "loss_mask": (rng.random((8, 16)) > 0.3).astype(np.float32),
  }
  return graphdef, state, tx, batch


def loss_fn(model, batch):
  return sft_loss(model, batch)
