"""Speculative decoding: a cheap draft proposes, the target verifies, the output stays exact.

A room of its own above `generate` (whose validation, sampling and output type it reuses)
and below `rl` (whose rollouts may call it in place of `generate`):

  * `acceptance`: the pure accept/reject step of token-level speculative sampling
    (Leviathan et al., arXiv:2211.17192; Chen et al., arXiv:2302.01318) and its cost model;
  * `decode`: `speculative_generate`, the batched static-shape decoder on two zoo models.

  >>> from reasoning_jax.speculative import speculative_generate
  >>> out = speculative_generate(target, draft, prompts, lengths, max_new_tokens=64,
  ...                            num_draft=4, temperature=0.0)
"""

from reasoning_jax.speculative.acceptance import (
  Acceptance,
  accept_drafts,
  expected_speedup,
  expected_tokens_per_call,
)
from reasoning_jax.speculative.decode import check_pair, check_tokenizers, speculative_generate

__all__ = [
  "Acceptance",
  "accept_drafts",
  "check_pair",
  "check_tokenizers",
  "expected_speedup",
  "expected_tokens_per_call",
  "speculative_generate",
]
