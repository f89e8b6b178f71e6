"""Shared check for mixer tests: batched `generate` equals a full forward per row."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reasoning_jax.generate import generate


@nnx.jit
def full_logits(model, ids):
  return model(ids)


def assert_greedy_generate_matches_recompute(
  model, *, high: int, n_new: int, lengths=(3, 7, 5), seed: int = 0
) -> None:
  """Ragged right-padded prompts (ids in [1, high)) decoded greedily in one batch: every token
  is the argmax, and every log-prob the log-softmax, of a full forward over that row's real
  sequence (so prefill of the padded block and step-wise decode are both exercised)."""
  lengths = np.asarray(lengths, np.int32)
  rows, width = len(lengths), int(lengths.max())
  prompts = np.random.RandomState(seed).randint(1, high, (rows, width)).astype(np.int32)
  prompts[np.arange(width)[None] >= lengths[:, None]] = 0
  out = generate(model, prompts, lengths, max_new_tokens=n_new, temperature=0.0)
  seq = np.zeros((rows, width + n_new), np.int32)
  for row in range(rows):
    full = np.concatenate([prompts[row, : lengths[row]], np.asarray(out.tokens[row])])
    seq[row, : full.size] = full
  logits = np.asarray(full_logits(model, jnp.asarray(seq)))
  log_probs = np.asarray(jax.nn.log_softmax(jnp.asarray(logits), axis=-1))
  for row in range(rows):
    for k in range(n_new):
      pos = lengths[row] - 1 + k
      token = int(out.tokens[row, k])
      assert token == int(np.argmax(logits[row, pos])), (row, k)
      assert abs(float(out.logprobs[row, k]) - log_probs[row, pos, token]) <= 1e-4, (row, k)
