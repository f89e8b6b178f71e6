"""Batched sampling / generation with a preallocated KV cache.

`reasoning_jax.generate.generate` is the function (not the submodule of the same
name):

  >>> from reasoning_jax.generate import generate
  >>> out = generate(model, prompts, prompt_lengths, max_new_tokens=16, temperature=0.0)

Importing this package never imports torch.
"""

from reasoning_jax.generate.cache import cache_bytes, init_cache
from reasoning_jax.generate.sequences import assemble_sequences
from reasoning_jax.generate.sampling import (
  sample_logits,
  truncated_log_probs,
  validate_sampling_params,
)

# Imported last and by name so that the package attribute `generate` is the
# function, shadowing the submodule `reasoning_jax.generate.generate`.
from reasoning_jax.generate.generate import GenerateOutput, generate, generate_from_cache

__all__ = [
  "GenerateOutput",
  "assemble_sequences",
  "cache_bytes",
  "generate",
  "generate_from_cache",
  "init_cache",
  "sample_logits",
  "truncated_log_probs",
  "validate_sampling_params",
]
