"""SemanticSpec offline side: clustering labels, sampled steps and features, probe training,
saving and loading."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.models.config import get_preset
from reasoning_jax.models.transformer import Transformer
from reasoning_jax.speculative import (
  Probe,
  build_probe_dataset,
  cluster_share_labels,
  greedy_clusters,
  load_probe,
  sample_steps,
  save_probe,
  semantic_speculative_generate,
  step_features,
  train_probe,
)
from reasoning_jax.speculative.probe_labels import same_text
from reasoning_jax.speculative.probe_train import split_indices
from reasoning_jax.tokenizers import ByteTokenizer


def test_greedy_clusters_and_shares():
  items = ["x = 2", "y", "x  =  2", "z", "y"]
  assert greedy_clusters(items, same_text) == [0, 1, 0, 2, 1]
  np.testing.assert_allclose(cluster_share_labels(items, same_text), [0.4, 0.4, 0.4, 0.2, 0.4])
  # A pluggable equivalence: the first sample opens the cluster and absorbs later ones.
  first_char = lambda a, b: a[0] == b[0]
  assert greedy_clusters(["ab", "ac", "b", "ad"], first_char) == [0, 0, 1, 0]


@pytest.fixture(scope="module")
def byte_models():
  config = get_preset("tiny-llama").replace(
    vocab_size=ByteTokenizer().vocab_size,
    hidden_size=32,
    intermediate_size=64,
    num_layers=1,
    num_heads=2,
    num_kv_heads=1,
    head_dim=16,
  )
  return Transformer(config, rngs=nnx.Rngs(0)), Transformer(config, rngs=nnx.Rngs(1))


def test_sampled_steps_end_at_boundaries_and_features_are_pooled(byte_models):
  target, _ = byte_models
  tok = ByteTokenizer()
  prefix = tok.encode("1+1=2\n")
  boundary = tuple(range(3, 259))[::2]  # Many boundary ids: most samples end early.
  steps, feats, valid = sample_steps(
    target, prefix, num_samples=6, boundary_ids=boundary, max_step_tokens=5, key=jax.random.key(0)
  )
  assert feats.shape == (6, 32) and valid.shape == (6,)
  for s, v in zip(steps, valid):
    assert (s[-1] in boundary) == bool(v) and all(t not in boundary for t in s[:-1])
  s = steps[0]
  ids = jnp.asarray([prefix + s])
  hidden = np.asarray(target.forward(ids)[0])[0]
  c = len(prefix)
  np.testing.assert_allclose(feats[0], hidden[c - 1 : c + len(s) - 1].mean(0), atol=1e-5)
  again = step_features(target, ids, [c], [len(s)])
  np.testing.assert_allclose(again[0], feats[0], atol=1e-6)


@pytest.mark.parametrize("label_mode", ["cluster", "verifier"])
def test_build_probe_dataset(byte_models, label_mode):
  target, draft = byte_models
  tok = ByteTokenizer()
  data = build_probe_dataset(
    target,
    draft,
    [tok.encode("2+2=4\n"), tok.encode("3*3=9\n")],
    tokenizer=tok,
    boundary_ids=tuple(range(3, 259))[::2],
    num_samples=4,
    max_step_tokens=4,
    label_mode=label_mode,
    answers=["4", "9"],
    reward="math_exact",
    num_continuations=2,
    max_continuation_tokens=4,
    key=jax.random.key(0),
  )
  for name in ("target", "draft"):
    x, y = data[name]
    assert x.shape[1] == 32 and y.shape == (x.shape[0],) and x.shape[0] <= 8
    assert np.all((y >= 0) & (y <= 1))
    if label_mode == "cluster":
      assert np.all(y > 0)  # Every sample is in its own cluster at least.
  with pytest.raises(ValueError, match="answers"):
    build_probe_dataset(
      target,
      draft,
      [[5]],
      tokenizer=tok,
      boundary_ids=(13,),
      label_mode="verifier",
      key=jax.random.key(0),
    )


def test_train_save_load_and_use_a_probe(tmp_path, byte_models, monkeypatch):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(400, 32)).astype(np.float32)
  y = 1.0 / (1.0 + np.exp(-2.0 * x[:, 0]))
  probe, report = train_probe(x, y, hidden_sizes=(32, 16), max_epochs=40, batch_size=64)
  assert report["sizes"] == (280, 80, 40)
  assert report["best_val_mse"] < 0.5 * np.var(y)  # It learned the signal.
  assert report["test_mse"] < 0.5 * np.var(y)
  assert len(report["val_mse"]) <= 40
  path = save_probe(tmp_path / "probe", probe)
  loaded = load_probe(path)
  assert loaded.config() == probe.config()
  np.testing.assert_allclose(loaded(x), probe(x), atol=1e-6)
  with pytest.raises(FileExistsError):
    save_probe(path, probe)
  with pytest.raises(FileNotFoundError):
    load_probe(tmp_path / "nothing")
  monkeypatch.chdir(tmp_path)  # A relative folder (orbax alone refuses one).
  np.testing.assert_allclose(load_probe(save_probe("relative", probe))(x), probe(x), atol=1e-6)
  # A loaded probe drives the online loop.
  target, draft = byte_models
  out = semantic_speculative_generate(
    target,
    draft,
    loaded,
    loaded,
    np.array([[40, 41]]),
    np.array([2]),
    boundary_ids=(13,),
    max_new_tokens=6,
    max_step_tokens=3,
    key=jax.random.key(0),
  )
  assert int(out.lengths[0]) == 6


def test_early_stopping_and_split():
  a, b, c = split_indices(10, (0.7, 0.2, 0.1), seed=0)
  assert (len(a), len(b), len(c)) == (7, 2, 1)
  assert sorted(np.concatenate([a, b, c]).tolist()) == list(range(10))
  with pytest.raises(ValueError, match="split"):
    split_indices(10, (0.5, 0.2), seed=0)
  x = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
  y = np.full((64,), 0.5, np.float32)  # Nothing to learn beyond the bias: stops early.
  _, report = train_probe(x, y, hidden_sizes=(4,), max_epochs=100, patience=2, learning_rate=0.1)
  assert len(report["val_mse"]) < 100
  assert report["best_epoch"] == len(report["val_mse"]) - 3
  with pytest.raises(ValueError, match="labels must be"):
    train_probe(x, y + 1.0)
  with pytest.raises(ValueError, match="features must be"):
    train_probe(x[0], y)


def test_probe_default_hidden_for_draft():
  from reasoning_jax.speculative import DRAFT_HIDDEN, TARGET_HIDDEN

  assert TARGET_HIDDEN == (2048, 512, 256) and DRAFT_HIDDEN == (1024, 512, 256)
  assert Probe(8, DRAFT_HIDDEN, rngs=nnx.Rngs(0)).layers[0].kernel.shape == (8, 1024)
