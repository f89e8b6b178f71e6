"""SemanticSpec probes: an MLP from a pooled last-layer hidden state to a probability.

"Beyond Tokens: Semantic-Aware Speculative Decoding for Efficient Inference by Probing Internal
States" (Dong et al., arXiv:2602.03708), spec `inference.md` section 2.2 steps 5-6. A probe
predicts, from a model's hidden states over one reasoning step, the probability mass of the
step's meaning-cluster under that model; one probe per model.

Pooling (`pool_hidden`, DESIGN CHOICE `pooling`, default "mean"): over the positions that
*predicted* the step's tokens. With the context of length `c` and a step of `T` tokens at
positions `c .. c + T - 1`, the predicting positions are `c - 1 .. c + T - 2` (the last context
position through the second-to-last step token), `h_bar = (1/T) sum_{t=c-1}^{c+T-2} h_t`, with
`h` the final layer after the model's last norm (`Transformer.forward`'s output, HF's
`hidden_states[-1]`). "last" takes `h_{c+T-2}` only (the paper's ablation).

Architecture (`Probe`, DESIGN CHOICE `hidden_sizes`): the released decoding script's
`in -> H1 -> 512 -> 256 -> 1`, ReLU between layers, dropout 0.3 after the first two hidden
layers, sigmoid output; `H1` = 2048 for the target (`TARGET_HIDDEN`), 1024 for the draft
(`DRAFT_HIDDEN`). The earlier training script's `in -> 2048 -> 256 -> 1` is
`hidden_sizes=(2048, 256)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

TARGET_HIDDEN = (2048, 512, 256)
DRAFT_HIDDEN = (1024, 512, 256)
POOLINGS = ("mean", "last")


class Probe(nnx.Module):
  """MLP probe `[..., in_features] -> [...]` probabilities in (0, 1).

  Args:
    in_features: the probed model's hidden size (checked against it by `check_probe`).
    hidden_sizes: widths of the hidden layers (depth = `len(hidden_sizes)`).
    dropout: dropout rate after each of the first `dropout_layers` hidden layers (train mode
      only; `probe.eval()` turns it off).
    dropout_layers: how many leading hidden layers are followed by dropout (default 2).
    pooling: "mean" or "last"; stored with the probe so that training and decoding pool alike.
    rngs: `nnx.Rngs` with `params` (and `dropout` for training).
  """

  def __init__(
    self,
    in_features: int,
    hidden_sizes: Sequence[int] = TARGET_HIDDEN,
    *,
    dropout: float = 0.3,
    dropout_layers: int = 2,
    pooling: str = "mean",
    rngs: nnx.Rngs,
  ):
    if isinstance(in_features, bool) or not isinstance(in_features, (int, np.integer)):
      raise TypeError(f"in_features must be an int, got {type(in_features).__name__}")
    if in_features < 1:
      raise ValueError(f"in_features must be >= 1, got {in_features}")
    hidden_sizes = tuple(int(h) for h in hidden_sizes)
    if any(h < 1 for h in hidden_sizes):
      raise ValueError(f"hidden_sizes must be positive ints, got {hidden_sizes}")
    if not 0.0 <= dropout < 1.0:
      raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if pooling not in POOLINGS:
      raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    self.in_features = int(in_features)
    self.hidden_sizes = hidden_sizes
    self.dropout_rate = float(dropout)
    self.dropout_layers = int(dropout_layers)
    self.pooling = pooling
    widths = (self.in_features, *hidden_sizes, 1)
    self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])
    self.dropouts = nnx.List(
      [nnx.Dropout(dropout, rngs=rngs) for _ in range(min(dropout_layers, len(hidden_sizes)))]
    )

  def logits(self, x: jax.Array, *, deterministic: bool | None = None) -> jax.Array:
    """Pre-sigmoid scores `[...]` of pooled states `x [..., in_features]`.

    `deterministic=True` turns dropout off whatever the module's train/eval mode (decoding
    always does); None follows the mode (`probe.train()` / `probe.eval()`).
    """
    x = x.astype(jnp.float32)
    for i, layer in enumerate(self.layers[:-1]):
      x = jax.nn.relu(layer(x))
      if i < len(self.dropouts):
        x = self.dropouts[i](x, deterministic=deterministic)
    return self.layers[-1](x)[..., 0]

  def __call__(self, x: jax.Array, *, deterministic: bool | None = None) -> jax.Array:
    """Probabilities `[...]` = `sigmoid(logits(x))`."""
    return jax.nn.sigmoid(self.logits(x, deterministic=deterministic))

  def config(self) -> dict[str, Any]:
    """The constructor arguments (saved next to the weights by `save_probe`)."""
    return dict(
      in_features=self.in_features,
      hidden_sizes=list(self.hidden_sizes),
      dropout=self.dropout_rate,
      dropout_layers=self.dropout_layers,
      pooling=self.pooling,
    )


def check_probe(probe: Any, hidden_size: int, argument: str, model_argument: str) -> None:
  """ValueError naming `argument` unless `probe` reads `hidden_size`-wide states."""
  if not isinstance(probe, Probe):
    raise TypeError(f"{argument} must be a speculative.Probe, got {type(probe).__name__}")
  if probe.in_features != hidden_size:
    raise ValueError(
      f"{argument} reads hidden states of size {probe.in_features}, but {model_argument} has "
      f"hidden_size {hidden_size} ({model_argument}.config.hidden_size): train the probe on "
      f"{model_argument}'s states"
    )


def pool_hidden(
  hidden: jax.Array, context_lengths: jax.Array, step_lengths: jax.Array, pooling: str = "mean"
) -> jax.Array:
  """Pooled states `[B, H]` over the positions that predicted each row's step tokens.

  Args:
    hidden: `[B, S, H]` final-layer states of `context + step` sequences (position == index).
    context_lengths: `[B]` int `c`, the step's first token sits at position `c` (`c >= 1`).
    step_lengths: `[B]` int `T >= 1`: the window is positions `c - 1 .. c + T - 2`.
    pooling: "mean" (average over the window) or "last" (`h_{c+T-2}`).
  """
  if pooling not in POOLINGS:
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
  s = hidden.shape[1]
  start = context_lengths - 1
  stop = start + step_lengths  # Exclusive.
  if pooling == "last":
    return jnp.take_along_axis(hidden, (stop - 1)[:, None, None], axis=1)[:, 0].astype(jnp.float32)
  index = jnp.arange(s)[None, :]
  window = (index >= start[:, None]) & (index < stop[:, None])
  total = jnp.einsum("bs,bsh->bh", window.astype(jnp.float32), hidden.astype(jnp.float32))
  return total / jnp.maximum(step_lengths, 1)[:, None].astype(jnp.float32)
