"""Training, saving and loading SemanticSpec probes (optax, orbax).

Spec `inference.md` section 2.2 step 6 ("Beyond Tokens", Dong et al., arXiv:2602.03708): MSE
between `probe(features)` (sigmoid outputs) and the cluster-share labels, Adam with learning
rate 1e-3, batch 64, at most 100 epochs, early stopping after 10 epochs without a
validation-MSE improvement (the best epoch's weights are kept), a random 70/20/10
train/validation/test split. Every number is a flag with that default.

  >>> probe, report = train_probe(features, labels, hidden_sizes=(1024, 512, 256))
  >>> save_probe("/ckpt/draft_probe", probe)
  >>> probe = load_probe("/ckpt/draft_probe")

A saved probe is a folder: `probe.json` (the constructor arguments, `Probe.config()`) and
`weights/` (an orbax pytree checkpoint of its parameters). `load_probe(path)` rebuilds it in
eval mode (dropout off).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

from reasoning_jax.speculative.probe import TARGET_HIDDEN, Probe


def split_indices(n: int, fractions: Sequence[float], seed: int) -> tuple[np.ndarray, ...]:
  """A random permutation of `range(n)` cut into train / validation / test by `fractions`."""
  fractions = tuple(float(f) for f in fractions)
  if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
    raise ValueError(f"split must be three fractions summing to 1, got {fractions}")
  order = np.random.default_rng(seed).permutation(n)
  n_train = int(round(fractions[0] * n))
  n_val = int(round(fractions[1] * n))
  return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


def _mse(probe: Probe, x: jax.Array, y: jax.Array, deterministic: bool) -> jax.Array:
  return jnp.mean((probe(x, deterministic=deterministic) - y) ** 2)


@nnx.jit
def _train_step(probe: Probe, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array):
  loss, grads = nnx.value_and_grad(lambda m: _mse(m, x, y, False))(probe)
  optimizer.update(probe, grads)
  return loss


@nnx.jit
def _eval_mse(probe: Probe, x: jax.Array, y: jax.Array) -> jax.Array:
  return _mse(probe, x, y, True)


def train_probe(
  features: Any,
  labels: Any,
  *,
  hidden_sizes: Sequence[int] = TARGET_HIDDEN,
  dropout: float = 0.3,
  pooling: str = "mean",
  learning_rate: float = 1e-3,
  batch_size: int = 64,
  max_epochs: int = 100,
  patience: int = 10,
  split: Sequence[float] = (0.7, 0.2, 0.1),
  seed: int = 0,
) -> tuple[Probe, dict[str, Any]]:
  """Trains a `Probe` on pooled states `features [N, H]` and labels `[N]` in [0, 1].

  `pooling` is recorded with the probe and must be the one the features were pooled with.
  Returns the probe (best validation epoch, eval mode) and a report: `train_mse` and `val_mse`
  per epoch, `best_epoch`, `best_val_mse`, `test_mse` and the split sizes.
  """
  x = np.asarray(features, np.float32)
  y = np.asarray(labels, np.float32)
  if x.ndim != 2:
    raise ValueError(f"features must be [N, H], got shape {x.shape}")
  if y.shape != (x.shape[0],):
    raise ValueError(f"labels must be [N] = [{x.shape[0]}], got shape {y.shape}")
  if not np.all((y >= 0) & (y <= 1)):
    raise ValueError("labels must be probabilities in [0, 1]")
  for name, value in (("batch_size", batch_size), ("max_epochs", max_epochs)):
    if int(value) < 1:
      raise ValueError(f"{name} must be >= 1, got {value}")
  train, val, test = split_indices(x.shape[0], split, seed)
  if train.size == 0:
    raise ValueError(f"no training rows: {x.shape[0]} examples split {tuple(split)}")
  rngs = nnx.Rngs(params=seed, dropout=seed + 1)
  probe = Probe(x.shape[1], hidden_sizes, dropout=dropout, pooling=pooling, rngs=rngs)
  optimizer = nnx.Optimizer(probe, optax.adam(learning_rate), wrt=nnx.Param)
  order_rng = np.random.default_rng(seed + 2)
  best = (np.inf, -1, nnx.state(probe, nnx.Param))
  history: dict[str, list[float]] = dict(train_mse=[], val_mse=[])
  x_val, y_val = (x[val], y[val]) if val.size else (x[train], y[train])
  for epoch in range(int(max_epochs)):
    perm = order_rng.permutation(train)
    losses = []
    for start in range(0, perm.size, int(batch_size)):
      idx = perm[start : start + int(batch_size)]
      losses.append(float(_train_step(probe, optimizer, x[idx], y[idx])))
    val_mse = float(_eval_mse(probe, x_val, y_val))
    history["train_mse"].append(float(np.mean(losses)))
    history["val_mse"].append(val_mse)
    if val_mse < best[0]:
      best = (val_mse, epoch, jax.tree.map(jnp.copy, nnx.state(probe, nnx.Param)))
    elif epoch - best[1] >= int(patience):
      break
  nnx.update(probe, best[2])
  probe.eval()
  test_mse = float(_eval_mse(probe, x[test], y[test])) if test.size else float("nan")
  report = dict(
    history,
    best_epoch=best[1],
    best_val_mse=best[0],
    test_mse=test_mse,
    sizes=(int(train.size), int(val.size), int(test.size)),
  )
  return probe, report


def save_probe(path: str | os.PathLike, probe: Probe) -> str:
  """Writes `probe` to the folder `path` (must not exist): `probe.json` + orbax `weights/`."""
  path = os.path.abspath(os.fspath(path))  # orbax refuses relative checkpoint paths.
  if os.path.exists(path):
    raise FileExistsError(f"{path} exists; save_probe writes a new folder")
  os.makedirs(path)
  with open(os.path.join(path, "probe.json"), "w") as f:
    json.dump(probe.config(), f, indent=2)
  ocp.v1.save(os.path.join(path, "weights"), nnx.to_pure_dict(nnx.state(probe, nnx.Param)))
  return path


def load_probe(path: str | os.PathLike) -> Probe:
  """Rebuilds the probe saved at `path` by `save_probe` (eval mode)."""
  path = os.path.abspath(os.fspath(path))
  config_path = os.path.join(path, "probe.json")
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"no saved probe at {path} (missing probe.json)")
  with open(config_path) as f:
    config = json.load(f)
  probe = Probe(**config, rngs=nnx.Rngs(0))
  device = jax.sharding.make_single_device_sharding(jax.devices()[0])
  abstract = jax.tree.map(
    lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
    nnx.to_pure_dict(nnx.state(probe, nnx.Param)),
  )
  loaded = ocp.v1.load(os.path.join(path, "weights"), abstract)
  nnx.update(probe, loaded)
  probe.eval()
  return probe
