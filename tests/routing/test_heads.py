"""Quality heads (shared/methods/inference.md section 6.2): ridge heads equal a NumPy closed
form, MLP heads learn a synthetic target, stacked vmap training equals training one head
alone, and the output-length predictor of the "unlimited" option."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from reasoning_jax.routing import (
  RouterConfig,
  fit_length_predictor,
  fit_quality_heads,
  fit_ridge_heads,
  init_mlp_heads,
  mlp_heads_apply,
  predict_lengths,
  predict_quality,
  train_mlp_heads,
)


def _data(n=200, d=16, m=3, k=4, seed=0):
  rng = np.random.default_rng(seed)
  Z = rng.normal(size=(n, d)).astype(np.float32)
  W = rng.normal(size=(d, m * k)) / np.sqrt(d)
  Y = 1 / (1 + np.exp(-(Z @ W)))  # a smooth target in (0, 1)
  return Z, Y.reshape(n, m, k).astype(np.float32)


def _numpy_ridge(Z, Y, alpha):
  Z, Y = Z.astype(np.float64), Y.astype(np.float64)
  zm, ym = Z.mean(0), Y.mean(0)
  W = np.linalg.solve((Z - zm).T @ (Z - zm) + alpha * np.eye(Z.shape[1]), (Z - zm).T @ (Y - ym))
  return W.T, ym - zm @ W


def test_ridge_heads_equal_numpy_closed_form():
  Z, Y = _data()
  flat = Y.reshape(len(Y), -1)
  heads = fit_ridge_heads(Z, flat, 10.0)
  W, b = _numpy_ridge(Z, flat, 10.0)
  np.testing.assert_allclose(np.asarray(heads.weights), W, atol=2e-5)
  np.testing.assert_allclose(np.asarray(heads.bias), b, atol=2e-5)


def test_ridge_quality_heads_predict_clipped_table():
  Z, Y = _data()
  heads = fit_quality_heads(Z, Y, RouterConfig(head="ridge"))
  Q = np.asarray(predict_quality(heads, Z))
  assert Q.shape == Y.shape and Q.min() >= 0 and Q.max() <= 1
  W, b = _numpy_ridge(Z, Y.reshape(len(Y), -1), 10.0)
  expected = np.clip(Z @ W.T + b, 0, 1).reshape(Y.shape)
  np.testing.assert_allclose(Q, expected, atol=1e-4)


def test_mlp_heads_learn_a_synthetic_target():
  Z, Y = _data(n=256)
  cfg = RouterConfig(hidden_sizes=(32, 16), learning_rate=3e-3, epochs=30, batch_size=48)
  heads = fit_quality_heads(Z, Y, cfg)
  losses = heads.model.losses
  assert losses.shape == (30, 12)
  assert np.all(losses[-1] < 0.5 * losses[0])
  Q = np.asarray(predict_quality(heads, Z))
  assert Q.shape == Y.shape
  assert np.mean((Q - Y) ** 2) < np.mean((Y - Y.mean()) ** 2) * 0.5


def test_vmap_training_equals_one_head_alone():
  Z, Y = _data(n=64)
  flat = Y.reshape(len(Y), -1)[:, :3]
  cfg = RouterConfig(hidden_sizes=(8, 4), learning_rate=1e-2, epochs=2, batch_size=32)
  params = init_mlp_heads(jax.random.PRNGKey(1), 3, Z.shape[1], cfg.hidden_sizes)
  together = train_mlp_heads(Z, flat, cfg, params=params)
  for h in range(3):
    alone = train_mlp_heads(
      Z, flat[:, h : h + 1], cfg, params=jax.tree.map(lambda a: a[h : h + 1], params)
    )
    for a, b in zip(jax.tree.leaves(together.params), jax.tree.leaves(alone.params)):
      np.testing.assert_allclose(np.asarray(a)[h], np.asarray(b)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(together.losses[:, h], alone.losses[:, 0], rtol=1e-5)
  assert np.asarray(mlp_heads_apply(together.params, Z)).shape == (64, 3)


def test_length_predictor_recovers_linear_lengths():
  rng = np.random.default_rng(0)
  Z = rng.normal(size=(300, 8)).astype(np.float32)
  lengths = np.maximum(0, 200 + 40 * Z[:, :2]).astype(np.float32)  # [N, 2]
  T = np.asarray(predict_lengths(fit_length_predictor(Z, lengths, alpha=1e-3), Z))
  assert T.shape == (300, 2) and T.min() >= 0
  assert np.corrcoef(T[:, 0], lengths[:, 0])[0, 1] > 0.95
  # Token counts as a bench stores them (int64) give the same predictor.
  counts = np.round(lengths).astype(np.int64)
  from_ints = fit_length_predictor(Z, counts, alpha=1e-3)
  from_floats = fit_length_predictor(Z, counts.astype(np.float32), alpha=1e-3)
  np.testing.assert_allclose(from_ints.weights, from_floats.weights, rtol=1e-6)
  np.testing.assert_allclose(from_ints.bias, from_floats.bias, rtol=1e-6)


def test_bad_head_inputs_raise_naming_the_argument():
  Z, Y = _data(n=10)
  with pytest.raises(ValueError, match="quality"):
    fit_quality_heads(Z, Y * 3, RouterConfig(head="ridge"))
  with pytest.raises(ValueError, match="quality"):
    fit_quality_heads(Z, Y[:5], RouterConfig(head="ridge"))
  with pytest.raises(ValueError, match="Z"):
    fit_quality_heads(Z[0], Y, RouterConfig(head="ridge"))
  heads = fit_quality_heads(Z, Y, RouterConfig(head="ridge"))
  with pytest.raises(ValueError, match="Z must have 16 features"):
    predict_quality(heads, Z[:, :4])
  with pytest.raises(ValueError, match="lengths"):
    fit_length_predictor(Z, -np.ones((10, 2), np.float32))
  with pytest.raises(ValueError, match="alpha"):
    fit_ridge_heads(Z, Y.reshape(10, -1), -1.0)
