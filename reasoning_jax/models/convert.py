"""Re-mixing a model: the same weights under new per-layer mixers.

Methods that add a branch to a pre-trained network (ROSA-Tuning adds a suffix-automaton branch
to a sliding-window model) start from a model trained here or imported with `from_hf`, swap
the layers' mixers, keep every weight both mixers share (same parameter paths) and initialise
only the new ones. Nothing here knows a particular mixer.

  >>> window = from_hf(path)                                    # all "attention" layers
  >>> rosa = with_mixers(window, ("attention",) + ("rosa",) * (L - 1), sliding_window=1024)
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from reasoning_jax.models.transformer import Transformer


def with_mixers(
  model: Transformer, mixer: str | tuple[str, ...], *, seed: int = 0, **config_changes: Any
) -> Transformer:
  """A new `Transformer` with `config.mixer = mixer` (and `config_changes`, e.g.
  `sliding_window=`), holding `model`'s weights wherever the parameter paths and shapes agree;
  parameters the new mixers add are initialised from `seed`.

  Raises:
    ValueError: a parameter exists in both models with different shapes (the mixers do not
      share it).
  """
  config = model.config.replace(mixer=mixer, **config_changes)
  new = Transformer(config, rngs=nnx.Rngs(seed))
  old_flat = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
  new_state = nnx.state(new, nnx.Param)
  updates = []
  for path, variable in nnx.to_flat_state(new_state):
    if path in old_flat:
      value = old_flat[path][...]
      if value.shape != variable[...].shape:
        raise ValueError(
          f"parameter {'/'.join(map(str, path))} has shape {value.shape} in model and "
          f"{variable[...].shape} under mixer={mixer!r}: the mixers do not share it"
        )
      updates.append((path, jax.numpy.asarray(value)))
  for path, value in updates:
    target = new_state
    for key in path:
      target = target[key]
    target[...] = value
  nnx.update(new, new_state)
  return new
