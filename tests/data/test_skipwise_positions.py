"""PoSE skip-wise position ids (Zhu et al., arXiv:2309.10400) and their use in training."""

import numpy as np
import pytest

from configs.sparse_decode import get_config
from reasoning_jax.data.skipwise_positions import skipwise_positions
from reasoning_jax.evaluate.sparse_decode.setup import model_config, train_data


def test_ids_increase_stay_below_the_target_and_skip_once_per_cut():
  pos = skipwise_positions(200, 64, target_len=512, num_chunks=3, seed=1)
  assert pos.shape == (200, 64) and pos.dtype == np.int32
  steps = np.diff(pos, axis=1)
  assert (steps >= 1).all() and (pos >= 0).all() and (pos < 512).all()
  assert (pos[:, 0] == 0).all()  # the first chunk is never shifted
  assert ((steps > 1).sum(axis=1) <= 2).all()  # at most one jump per cut
  # Contiguous content within a chunk: all but two steps are exactly 1.
  assert ((steps == 1).sum(axis=1) >= 61).all()
  # The skips reach the target: distances far beyond the 64-token window occur.
  assert (pos[:, -1] - pos[:, 0]).max() > 400


def test_distances_cover_the_target_range():
  pos = skipwise_positions(2000, 32, target_len=1024, num_chunks=2, seed=0)
  span = pos[:, -1] - pos[:, 0]
  hist = np.histogram(span, bins=4, range=(31, 1024))[0]
  assert (hist > 100).all(), hist  # every quarter of the range is seen often


def test_target_equal_to_window_is_arange_and_seeded():
  np.testing.assert_array_equal(
    skipwise_positions(3, 16, target_len=16, seed=0), np.tile(np.arange(16), (3, 1))
  )
  a = skipwise_positions(5, 16, target_len=100, seed=7)
  np.testing.assert_array_equal(a, skipwise_positions(5, 16, target_len=100, seed=7))
  assert not np.array_equal(a, skipwise_positions(5, 16, target_len=100, seed=8))


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(seq_len=16, target_len=8), r"^target_len=8 must be at least seq_len=16"),
    (dict(seq_len=1, target_len=8), r"^seq_len=1 must be at least num_chunks=2"),
    (dict(seq_len=16, target_len=32, num_chunks=0), r"^num_chunks must be a positive int"),
  ],
)
def test_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    skipwise_positions(2, **kwargs)


def test_sparse_decode_pose_variant_trains_on_skipped_positions():
  config = get_config("pose")
  assert config.train.pose_target_len == max(config.eval_lens) == 2048
  data = train_data(config, 8, 256, seed=0, min_len=64)
  width = data["inputs"].shape[1]
  assert data["positions"].shape == data["inputs"].shape
  # Prompt ids reach 2048 plus the answer blocks after the 256-token window.
  assert data["positions"].max() < 2048 + width - 256
  assert data["positions"].max() > 256
  assert model_config(config).max_position_embeddings >= 2048 + width - 256
  plain = train_data(get_config(""), 8, 256, seed=0, min_len=64)
  assert "positions" not in plain
  np.testing.assert_array_equal(plain["inputs"], data["inputs"])  # same rows, new ids only


def test_recall_loss_uses_the_given_positions():
  import jax
  import jax.numpy as jnp
  from flax import nnx

  from reasoning_jax.models.transformer import Transformer
  from reasoning_jax.train.recall import masked_cross_entropy, recall_loss

  config = get_config("quick")
  config.train.update(pose_target_len=512)
  config.eval_lens = (256,)
  model = Transformer(model_config(config), rngs=nnx.Rngs(0))
  data = train_data(config, 2, 128, seed=0, min_len=64)
  batch = {
    "inputs": jnp.asarray(data["inputs"]),
    "targets": jnp.asarray(np.maximum(data["targets"], 0)),
    "loss_weights": jnp.asarray(data["targets"] >= 0, jnp.float32),
  }

  def loss(b):
    total, count, _ = recall_loss(model, b)
    return total / count

  plain = loss(batch)
  arange = jnp.broadcast_to(jnp.arange(batch["inputs"].shape[1]), batch["inputs"].shape)
  same = loss({**batch, "positions": arange})
  skipped = loss({**batch, "positions": jnp.asarray(data["positions"])})
  np.testing.assert_allclose(float(plain), float(same), rtol=1e-6)
  # The skipped ids reach the model: the loss is the cross-entropy of its logits at those ids.
  pos = jnp.asarray(data["positions"])
  total, count, _ = masked_cross_entropy(
    model(batch["inputs"], positions=pos), batch["targets"], batch["loss_weights"]
  )
  np.testing.assert_allclose(float(skipped), float(total / count), rtol=1e-6)
  assert float(skipped) != float(plain)
  assert jax.numpy.isfinite(skipped)
