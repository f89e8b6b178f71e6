"""Quality heads of R2-Router: one predictor per (LLM, budget), all trained together.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue et al., arXiv:2602.02823),
`shared/methods/inference.md` section 6.2: `Q_hat(x, M_i, b_k) = sigmoid(g_{i,k}(z_x))` on a
frozen query embedding `z_x`. Two head kinds (`RouterConfig.head`):

  * "mlp" (paper): `D -> 256 -> 128 -> 64 -> 1`, ReLU, sigmoid output, MSE to the judge score,
    Adam. The heads are independent networks; here their parameters are stacked on a leading
    head axis `[H, ...]` and one jitted step updates all of them (`jax.vmap` over heads of the
    single-head Adam step), so head h follows exactly the trajectory it would follow alone;
  * "ridge" (released code): ridge regression (alpha = 10, unpenalised intercept) per head,
    clipped to [0, 1]. The heads share the design matrix, so all of them come from one
    closed-form solve `(Zc^T Zc + alpha I) W = Zc^T Yc` with H right-hand sides.

The released code's "unlimited" option also predicts each LLM's output length `T_hat_i(x)`
with ridge heads (`fit_length_predictor`). Shapes: `Z [N, D]`, targets `[N, n_models, K]`,
predictions `Q_hat [N, n_models, K]`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from reasoning_jax.routing.config import RouterConfig
from reasoning_jax.validation import as_array, check_finite

__all__ = [
  "MLPHeads",
  "QualityHeads",
  "RidgeHeads",
  "fit_length_predictor",
  "fit_quality_heads",
  "fit_ridge_heads",
  "init_mlp_heads",
  "mlp_heads_apply",
  "predict_lengths",
  "predict_quality",
  "ridge_heads_apply",
  "train_mlp_heads",
]


# ------------------------------------------------------------------------------ validation


def _check_features(Z: Any, name: str = "Z") -> jax.Array:
  Z = as_array(Z, name, ndim=2)
  if Z.shape[0] == 0:
    raise ValueError(f"{name} must hold at least one query, got shape {tuple(Z.shape)}")
  check_finite(Z, name)
  return Z


def _check_targets(Y: Any, name: str, n: int, ndim: int, unit: bool) -> jax.Array:
  Y = as_array(Y, name, ndim=ndim)
  if Y.shape[0] != n:
    raise ValueError(f"{name} must have {n} rows (one per query of Z), got shape {tuple(Y.shape)}")
  check_finite(Y, name)
  values = np.asarray(Y)
  if unit and values.size and (values.min() < 0 or values.max() > 1):
    raise ValueError(
      f"{name} must hold quality scores in [0, 1], got values in "
      f"[{values.min():.4g}, {values.max():.4g}]"
    )
  if not unit and values.size and values.min() < 0:
    raise ValueError(f"{name} must hold token counts >= 0, got a minimum of {values.min():.4g}")
  return Y


# ------------------------------------------------------------------------------ ridge heads


@dataclasses.dataclass(frozen=True)
class RidgeHeads:
  """H ridge regressions on the same features: `y_h = Z @ weights[h] + bias[h]`.

  Attributes:
    weights: `[H, D]`.
    bias: `[H]` (the unpenalised intercept).
  """

  weights: jax.Array
  bias: jax.Array


def fit_ridge_heads(Z: Any, Y: Any, alpha: float) -> RidgeHeads:
  """Closed-form ridge regressions of every column of `Y` on `Z`, in one solve.

  Minimises `||Y[:, h] - Z w_h - c_h||^2 + alpha ||w_h||^2` (the intercept `c_h` is not
  penalised, as scikit-learn's `Ridge`): centre `Z` and `Y`, solve
  `(Zc^T Zc + alpha I) W = Zc^T Yc` for all H right-hand sides with `jnp.linalg.solve`, and
  set `c = mean(Y) - mean(Z) @ W`.

  Args:
    Z: `[N, D]` features.
    Y: `[N, H]` targets.
    alpha: the penalty (>= 0; 0 needs `Zc^T Zc` invertible).
  """
  Z = _check_features(Z)
  Y = as_array(Y, "Y", ndim=2)
  if Y.shape[0] != Z.shape[0]:
    raise ValueError(f"Y must have {Z.shape[0]} rows (one per row of Z), got {tuple(Y.shape)}")
  check_finite(Y, "Y")
  if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
    raise ValueError(f"alpha must be a float >= 0, got {alpha!r}")
  return _fit_ridge(Z.astype(jnp.float32), Y.astype(jnp.float32), float(alpha))


@jax.jit
def _fit_ridge(Z: jax.Array, Y: jax.Array, alpha: float) -> RidgeHeads:
  z_mean, y_mean = Z.mean(0), Y.mean(0)
  Zc, Yc = Z - z_mean, Y - y_mean
  gram = Zc.T @ Zc + alpha * jnp.eye(Z.shape[1], dtype=Z.dtype)
  W = jnp.linalg.solve(gram, Zc.T @ Yc)  # [D, H]
  return RidgeHeads(weights=W.T, bias=y_mean - z_mean @ W)


def ridge_heads_apply(heads: RidgeHeads, Z: jax.Array) -> jax.Array:
  """`[N, H]` raw ridge predictions (unclipped)."""
  return Z @ heads.weights.T + heads.bias


jax.tree_util.register_dataclass(RidgeHeads, data_fields=["weights", "bias"], meta_fields=[])


# ------------------------------------------------------------------------------ MLP heads


@dataclasses.dataclass(frozen=True)
class MLPHeads:
  """H stacked MLPs and their training record.

  Attributes:
    params: `{"w": [W_1 [H, D, h_1], ..., W_L [H, h_{L-1}, 1]], "b": [b_1 [H, h_1], ...]}`.
    losses: `[epochs, H]` mean training MSE of each head per epoch (empty before training).
  """

  params: Any
  losses: np.ndarray


def init_mlp_heads(key: jax.Array, num_heads: int, in_dim: int, hidden_sizes) -> Any:
  """Stacked parameters of `num_heads` MLPs `in_dim -> hidden_sizes -> 1` (LeCun normal
  kernels, zero biases; head h is initialised from `split(key, num_heads)[h]`)."""
  sizes = (int(in_dim), *map(int, hidden_sizes), 1)
  kernel_init = jax.nn.initializers.lecun_normal()

  def init_one(k):
    keys = jax.random.split(k, len(sizes) - 1)
    ws = [kernel_init(kk, (a, b), jnp.float32) for kk, a, b in zip(keys, sizes[:-1], sizes[1:])]
    bs = [jnp.zeros((b,), jnp.float32) for b in sizes[1:]]
    return {"w": ws, "b": bs}

  return jax.vmap(init_one)(jax.random.split(key, num_heads))


def _apply_one(params: Any, Z: jax.Array) -> jax.Array:
  """One head: `[N, D] -> [N]` in (0, 1)."""
  h = Z
  for w, b in zip(params["w"][:-1], params["b"][:-1]):
    h = jax.nn.relu(h @ w + b)
  return jax.nn.sigmoid(h @ params["w"][-1] + params["b"][-1])[:, 0]


@jax.jit
def mlp_heads_apply(params: Any, Z: jax.Array) -> jax.Array:
  """`[N, H]` predictions of every stacked head."""
  return jax.vmap(_apply_one, in_axes=(0, None), out_axes=1)(params, Z)


@functools.lru_cache(maxsize=8)
def _make_epoch(learning_rate: float):
  """The jitted epoch (a scan of the all-heads Adam step), cached per step size."""
  optimizer = optax.adam(learning_rate)

  def loss_one(p, z, y):
    return jnp.mean((_apply_one(p, z) - y) ** 2)

  def step_one(p, s, z, y):  # one head, one batch: y [B]
    loss, grad = jax.value_and_grad(loss_one)(p, z, y)
    updates, s = optimizer.update(grad, s, p)
    return optax.apply_updates(p, updates), s, loss

  step_all = jax.vmap(step_one, in_axes=(0, 0, None, 1))  # every head on the same batch

  @jax.jit
  def epoch(params, state, Z, Y, batches):  # batches [nb, B] int rows of Z
    def body(carry, rows):
      p, s = carry
      p, s, loss = step_all(p, s, Z[rows], Y[rows])
      return (p, s), loss

    (params, state), losses = jax.lax.scan(body, (params, state), batches)
    return params, state, losses  # losses [nb, H]

  return epoch


def train_mlp_heads(
  Z: Any,
  Y: Any,
  config: RouterConfig | None = None,
  *,
  params: Any = None,
  key: jax.Array | None = None,
  epochs: int | None = None,
) -> MLPHeads:
  """Trains H independent MLP heads (one per column of `Y`) together with Adam on the MSE.

  Every head sees the same mini-batches (one shuffle per epoch from `config.seed`); each has
  its own Adam state, so stacking does not couple them. Batches have `config.batch_size` rows;
  the epoch's remainder rows form one shorter batch.

  Args:
    Z: `[N, D]` query embeddings.
    Y: `[N, H]` targets in [0, 1].
    config: `hidden_sizes`, `learning_rate`, `epochs`, `batch_size`, `seed` (None: defaults).
    params: stacked initial parameters (`init_mlp_heads`); None initialises from `key`.
    key: the initialisation key (None: `PRNGKey(config.seed)`).
    epochs: overrides `config.epochs`.
  """
  config = RouterConfig() if config is None else config
  Z = _check_features(Z)
  Y = _check_targets(Y, "Y", Z.shape[0], 2, unit=True)
  n, num_heads = Y.shape
  epochs = config.epochs if epochs is None else int(epochs)
  if params is None:
    key = jax.random.PRNGKey(config.seed) if key is None else key
    params = init_mlp_heads(key, num_heads, Z.shape[1], config.hidden_sizes)
  state = jax.vmap(optax.adam(config.learning_rate).init)(params)
  epoch_fn = _make_epoch(float(config.learning_rate))
  Z, Y = Z.astype(jnp.float32), Y.astype(jnp.float32)
  batch = min(config.batch_size, n)
  full = n // batch
  rng = np.random.default_rng(config.seed)
  history = []
  for _ in range(epochs):
    order = rng.permutation(n)
    losses, counts = [], []
    if full:
      rows = jnp.asarray(order[: full * batch].reshape(full, batch))
      params, state, loss = epoch_fn(params, state, Z, Y, rows)
      losses.append(np.asarray(loss).sum(0) * batch)
      counts.append(full * batch)
    if n - full * batch:
      rest = jnp.asarray(order[full * batch :][None])
      params, state, loss = epoch_fn(params, state, Z, Y, rest)
      losses.append(np.asarray(loss)[0] * (n - full * batch))
      counts.append(n - full * batch)
    history.append(np.sum(losses, 0) / np.sum(counts))
  losses = np.asarray(history, np.float32).reshape(len(history), num_heads)
  return MLPHeads(params=params, losses=losses)


# ------------------------------------------------------------------------------ quality heads


@dataclasses.dataclass(frozen=True)
class QualityHeads:
  """Trained quality heads for every (LLM, option): `predict_quality` gives `[N, M, K]`.

  Attributes:
    kind: "mlp" or "ridge".
    model: `MLPHeads` or `RidgeHeads` over the `M * K` flattened heads (model-major).
    num_models: M.
    num_options: K (the anchors, plus "default" with `RouterConfig.unlimited`).
    in_dim: D, the embedding width the heads take.
  """

  kind: str
  model: MLPHeads | RidgeHeads
  num_models: int
  num_options: int
  in_dim: int


def fit_quality_heads(
  Z: Any, quality: Any, config: RouterConfig | None = None, *, key: jax.Array | None = None
) -> QualityHeads:
  """Fits one head per (LLM, option) of `quality [N, M, K]` (judge scores in [0, 1]) on the
  embeddings `Z [N, D]`: all heads at once, by `config.head`."""
  config = RouterConfig() if config is None else config
  Z = _check_features(Z)
  quality = _check_targets(quality, "quality", Z.shape[0], 3, unit=True)
  n, m, k = quality.shape
  flat = quality.reshape(n, m * k)
  if config.head == "ridge":
    model = fit_ridge_heads(Z, flat, config.ridge_alpha)
  else:
    model = train_mlp_heads(Z, flat, config, key=key)
  return QualityHeads(config.head, model, m, k, int(Z.shape[1]))


def predict_quality(heads: QualityHeads, Z: Any) -> jax.Array:
  """`Q_hat [N, M, K]` in [0, 1] (ridge predictions clipped, as the released code does)."""
  Z = _check_features(Z)
  if Z.shape[1] != heads.in_dim:
    raise ValueError(f"Z must have {heads.in_dim} features (the heads' input), got {Z.shape[1]}")
  Z = Z.astype(jnp.float32)
  if heads.kind == "ridge":
    flat = jnp.clip(ridge_heads_apply(heads.model, Z), 0.0, 1.0)
  else:
    flat = mlp_heads_apply(heads.model.params, Z)
  return flat.reshape(Z.shape[0], heads.num_models, heads.num_options)


def fit_length_predictor(Z: Any, lengths: Any, alpha: float = 10.0) -> RidgeHeads:
  """Ridge heads of each LLM's output token count `lengths [N, M]` (the released code's
  predictor for the "unlimited" option); integer counts (a bench's `output_len`) are taken
  as floats."""
  Z = _check_features(Z)
  if hasattr(lengths, "dtype") and jnp.issubdtype(lengths.dtype, jnp.integer):
    lengths = jnp.asarray(lengths, jnp.float32)
  lengths = _check_targets(lengths, "lengths", Z.shape[0], 2, unit=False)
  return fit_ridge_heads(Z, lengths.astype(jnp.float32), alpha)


def predict_lengths(predictor: RidgeHeads, Z: Any) -> jax.Array:
  """`T_hat [N, M]` predicted output tokens, clipped at 0."""
  Z = _check_features(Z)
  if Z.shape[1] != predictor.weights.shape[1]:
    raise ValueError(
      f"Z must have {predictor.weights.shape[1]} features (the predictor's input), got {Z.shape[1]}"
    )
  return jnp.maximum(ridge_heads_apply(predictor, Z.astype(jnp.float32)), 0.0)
