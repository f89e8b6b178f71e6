"""A tiny model and task for the monotone_attack tests (the `quick` config's shapes)."""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from configs import monotone_attack as monotone_config  # noqa: E402


def tiny_config():
  """The `quick` config: vocab 2 + 6 filler + 18 content/summary ids, width 16, source 16."""
  return monotone_config.get_config("quick")


def tiny_model(ffn: str = "relu", seed: int = 0):
  from flax import nnx

  from reasoning_jax.evaluate.monotone_attack import model_config_for
  from reasoning_jax.models.transformer import Transformer

  return Transformer(model_config_for(tiny_config(), ffn), rngs=nnx.Rngs(seed))


def tiny_data(num_examples: int = 6, seed: int = 0):
  from reasoning_jax.evaluate.monotone_attack import frequency_summary_task

  return frequency_summary_task(num_examples, seed=seed, **dict(tiny_config().task))
