"""Shared builders for the mixer-layer tests (GLA, OVQ, BaseConv): a jitted call, a small
`tiny-qwen3` config with a wide init, one layer, random inputs and positions."""

import jax.numpy as jnp
import numpy as np
from flax import nnx

from reasoning_jax import registry
from reasoning_jax.models import get_preset


@nnx.jit
def apply_mixer(layer, x, positions, cache=None, attention_mask=None, segment_ids=None):
  return layer(
    x, positions=positions, cache=cache, attention_mask=attention_mask, segment_ids=segment_ids
  )


def mixer_config(mixer, **kw):
  """`tiny-qwen3` with `mixer` (a name or one per layer) and initializer range 0.3."""
  return get_preset("tiny-qwen3", initializer_range=0.3, **kw).replace(mixer=mixer)


def make_mixer(mixer):
  """(layer 0 of registry mixer `mixer`, its config)."""
  config = mixer_config(mixer)
  return registry.MIXERS.get(mixer)(config, 0, rngs=nnx.Rngs(0)), config


def random_inputs(config, b, t, seed=0):
  return jnp.asarray(
    np.random.RandomState(seed).standard_normal((b, t, config.hidden_size)), jnp.float32
  )


def positions(b, t, start=0):
  return jnp.broadcast_to(jnp.arange(start, start + t, dtype=jnp.int32), (b, t))
