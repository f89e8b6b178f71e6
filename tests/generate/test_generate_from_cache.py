"""`generate_from_cache`: continuing on a KV cache equals generating from scratch, rows with
budget 0 leave their cache alone, per-row budgets bound the writes, bad input is named."""

import jax
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.generate import generate, generate_from_cache
from reasoning_jax.models import Transformer, get_preset

LENGTHS = np.array([6, 9, 4], np.int32)
P, N, SLOTS = 9, 6, 32


@pytest.fixture(scope="module")
def model():
  return Transformer(get_preset("tiny-qwen3", initializer_range=0.3), rngs=nnx.Rngs(0))


def _prompts():
  prompts = np.random.RandomState(1).randint(1, 512, (3, P)).astype(np.int32)
  prompts[np.arange(P)[None] >= LENGTHS[:, None]] = 0
  return prompts


def _tail(prompts, starts, width):
  return np.stack([np.pad(row[s:], (0, width))[:width] for row, s in zip(prompts, starts)])


def _prefix_cache(model, prompts, starts):
  """A cache holding positions `< starts` (fed through a budget-0 call)."""
  cache = model.init_cache(3, SLOTS)
  ends = np.maximum(starts, 1)
  _, cache = generate_from_cache(
    model,
    cache,
    prompts[:, : ends.max()],
    np.zeros(3, np.int32),
    ends,
    max_new_tokens=1,
    budgets=np.zeros(3, np.int32),
    temperature=0.0,
  )
  return cache


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_continuing_on_a_cache_equals_generate(model, temperature):
  prompts = _prompts()
  key = jax.random.key(3) if temperature else None
  want = generate(model, prompts, LENGTHS, max_new_tokens=N, temperature=temperature, key=key)
  starts = np.array([2, 5, 1], np.int32)  # Positions < starts are cached; the rest is fed.
  cache = _prefix_cache(model, prompts, starts)
  got, _ = generate_from_cache(
    model,
    cache,
    _tail(prompts, starts, 8),
    starts,
    LENGTHS,
    max_new_tokens=N,
    temperature=temperature,
    key=key,
  )
  np.testing.assert_array_equal(np.asarray(got.tokens), np.asarray(want.tokens))
  np.testing.assert_array_equal(np.asarray(got.lengths), np.asarray(want.lengths))
  np.testing.assert_allclose(np.asarray(got.logprobs), np.asarray(want.logprobs), atol=2e-5)
  np.testing.assert_allclose(
    np.asarray(got.sampling_logprobs), np.asarray(want.sampling_logprobs), atol=2e-5
  )


def test_refeeding_cached_positions_is_a_no_op_and_budgets_bound_writes(model):
  prompts = _prompts()
  cache = _prefix_cache(model, prompts, LENGTHS)  # Every prompt position is cached.
  before = [np.asarray(x) for x in jax.tree_util.tree_leaves(cache)]
  budgets = np.array([0, 3, 1], np.int32)
  starts = LENGTHS - 2  # Re-feed two cached positions.
  out, cache = generate_from_cache(
    model,
    cache,
    _tail(prompts, starts, 4),
    starts,
    LENGTHS,
    max_new_tokens=N,
    budgets=budgets,
    temperature=0.0,
  )
  np.testing.assert_array_equal(np.asarray(out.lengths), budgets)  # No EOS: budgets used.
  assert np.all(np.asarray(out.tokens[0]) == 0)  # Row 0 was only fed.
  after = [np.asarray(x) for x in jax.tree_util.tree_leaves(cache)]
  for old, new in zip(before, after):  # KV leaves are [B, S, K, D].
    for row in range(3):
      keep = LENGTHS[row]
      np.testing.assert_allclose(new[row, :keep], old[row, :keep], atol=1e-5)
      # The block writes positions < start + W (its padding is garbage past the context);
      # a decoded row then feeds its first budget - 1 tokens and re-feeds the last one in
      # place: nothing is written at or past max(start + W, L + budget).
      untouched = max(int(starts[row]) + 4, keep + int(budgets[row]))
      np.testing.assert_array_equal(new[row, untouched:], old[row, untouched:])
  # The continuation of row 1 equals plain generation with the same budget.
  want = generate(model, prompts, LENGTHS, max_new_tokens=3, temperature=0.0)
  np.testing.assert_array_equal(np.asarray(out.tokens[1, :3]), np.asarray(want.tokens[1]))


def test_bad_input_is_named(model):
  prompts = _prompts()

  def call(**kw):
    args = dict(
      cache=model.init_cache(3, SLOTS),
      block=prompts,
      block_starts=np.zeros(3, np.int32),
      context_lengths=LENGTHS,
      max_new_tokens=N,
      temperature=0.0,
    )
    args.update(kw)
    return generate_from_cache(model, **args)

  with pytest.raises(ValueError, match="context_lengths - block_starts must be in"):
    call(context_lengths=np.array([6, 9, 10], np.int32))
  with pytest.raises(ValueError, match="block_starts must be"):
    call(block_starts=np.zeros(2, np.int32))
  with pytest.raises(ValueError, match="budgets must be in"):
    call(budgets=np.array([0, 7, 1], np.int32))
  with pytest.raises(ValueError, match="the block does not fit in the cache"):
    call(block_starts=np.full(3, 24, np.int32), context_lengths=np.full(3, 26, np.int32))
  with pytest.raises(ValueError, match="context plus budget does not fit"):
    call(
      block_starts=np.full(3, 20, np.int32),
      context_lengths=np.full(3, 28, np.int32),
      max_new_tokens=6,
    )
  with pytest.raises(ValueError, match="block has token ids in"):
    call(block=np.full((3, P), 10**6, np.int32))
  with pytest.raises(TypeError, match="block must be an integer array"):
    call(block=prompts.astype(np.float32))
  with pytest.raises(ValueError, match="key is required"):
    call(temperature=1.0)
