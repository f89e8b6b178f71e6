"""The model zoo: config, presets, the decoder and Hugging Face import/export."""

from reasoning_jax.models.config import PRESETS, ModelConfig, RopeScaling, get_preset
from reasoning_jax.models.transformer import Transformer, count_params, validate_token_ids


def from_hf(*args, **kwargs):
  """See `reasoning_jax.models.hf.from_hf` (imported lazily)."""
  from reasoning_jax.models import hf

  return hf.from_hf(*args, **kwargs)


def to_hf(*args, **kwargs):
  """See `reasoning_jax.models.hf.to_hf` (imported lazily)."""
  from reasoning_jax.models import hf

  return hf.to_hf(*args, **kwargs)
