"""The ROSA mixer in the zoo: the zero-table no-op over a window model, decoding equal to the
full forward (prefill, ragged prompts, generate), packed segments, gradients, refusals."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.generate import generate
from reasoning_jax.layers.rosa import RosaAttention, RosaCache, make_rosa_mixer
from reasoning_jax.models.config import get_preset
from reasoning_jax.models.convert import with_mixers
from reasoning_jax.models.transformer import Transformer

WINDOW = ("attention", "sliding_attention", "sliding_attention")
_forward = nnx.jit(lambda model, ids: model(ids))
_grads = nnx.jit(lambda model, ids: nnx.grad(lambda m: jnp.mean(m(ids) ** 2))(model))


def _window_model(seed=0, **overrides):
  config = get_preset("tiny-qwen3", num_layers=3, mixer=WINDOW, sliding_window=6, **overrides)
  return Transformer(config, rngs=nnx.Rngs(seed))


def _with_tables(model, seed=1):
  """Non-zero e0 / e1 so the branch contributes."""
  for i, block in enumerate(model.layers):
    if isinstance(block.mixer, RosaAttention):
      c = block.mixer.rosa_e0[...].shape[0]
      keys = jax.random.split(jax.random.PRNGKey(seed + i), 2)
      block.mixer.rosa_e0[...] = jax.random.normal(keys[0], (c,))
      block.mixer.rosa_e1[...] = jax.random.normal(keys[1], (c,))
  return model


def _ids(b=2, t=36, seed=0, period=None):
  ids = jax.random.randint(jax.random.PRNGKey(seed), (b, t), 1, 512)
  if period:  # Repeats make the automaton match.
    ids = jnp.tile(ids[:, :period], (1, t // period + 1))[:, :t]
  return ids


def test_fresh_branch_is_an_exact_no_op_over_the_window_model():
  """Test (c): e0 = e1 = 0, W_out = I -> the ROSA model computes the window model exactly."""
  window = _window_model()
  rosa = with_mixers(window, ("attention", "rosa", "rosa"))
  ids = _ids(period=9)
  np.testing.assert_array_equal(np.asarray(_forward(rosa, ids)), np.asarray(_forward(window, ids)))
  block = rosa.layers[1].mixer
  np.testing.assert_array_equal(np.asarray(block.rosa_out[...]), np.eye(64))
  assert not np.any(np.asarray(block.rosa_e0[...])) and not np.any(np.asarray(block.rosa_e1[...]))
  # ... and the projections get no gradient until the tables move (theta = 0).
  grads = _grads(rosa, ids)
  assert not np.any(np.asarray(grads.layers[1].mixer.rosa_q[...]))
  assert np.any(np.asarray(grads.layers[1].mixer.rosa_e1[...]))
  # With tables, the branch changes the output and every ROSA parameter gets a gradient.
  _with_tables(rosa)
  assert not np.allclose(np.asarray(_forward(rosa, ids)), np.asarray(_forward(window, ids)))
  grads = _grads(rosa, ids)
  for name in ("rosa_q", "rosa_k", "rosa_v", "rosa_e0", "rosa_e1", "rosa_out"):
    assert np.any(np.asarray(getattr(grads.layers[2].mixer, name)[...])), name


@pytest.mark.parametrize("mixer", ["rosa", "rosa_released", "rosa_pre_attn_test"])
def test_decode_continuation_equals_the_full_forward(mixer):
  if mixer == "rosa_pre_attn_test":
    make_rosa_mixer(mixer, inject="pre_attn", override=True)
  model = _with_tables(with_mixers(_window_model(), ("attention", mixer, mixer)))
  ids = _ids(period=7)
  full = np.asarray(_forward(model, ids))
  cache = model.init_cache(2, 40)
  assert isinstance(cache[1], RosaCache)
  hidden, cache = model.forward(
    ids[:, :20], positions=jnp.broadcast_to(jnp.arange(20), (2, 20)), cache=cache
  )
  steps = [model.unembed(hidden)]
  for t in range(20, 36):
    hidden, cache = model.forward(ids[:, t : t + 1], positions=jnp.full((2, 1), t), cache=cache)
    steps.append(model.unembed(hidden))
  np.testing.assert_allclose(np.asarray(jnp.concatenate(steps, axis=1)), full, atol=2e-5)


def test_generate_with_ragged_prompts_matches_greedy_full_forwards():
  """Greedy tokens from the cache path == argmax of one full forward over prompt + output."""
  model = _with_tables(with_mixers(_window_model(), ("attention", "rosa", "rosa")))
  prompts = np.asarray(_ids(t=14, period=5))
  lengths = np.array([14, 9])
  out = generate(model, prompts, lengths, max_new_tokens=8, temperature=0.0)
  tokens = np.asarray(out.tokens)
  for row in range(2):
    seq = np.concatenate([prompts[row, : lengths[row]], tokens[row]])[None]
    greedy = np.asarray(jnp.argmax(_forward(model, jnp.asarray(seq)), axis=-1))[0]
    np.testing.assert_array_equal(greedy[lengths[row] - 1 : -1], tokens[row])
  again = generate(model, prompts, lengths, max_new_tokens=8, temperature=0.0)
  np.testing.assert_array_equal(np.asarray(again.tokens), tokens)


def test_packed_segments_equal_separate_sequences():
  model = _with_tables(with_mixers(_window_model(), ("attention", "rosa", "rosa")))
  a, b = _ids(b=1, t=20, seed=1, period=6), _ids(b=1, t=16, seed=2, period=5)
  packed = jnp.concatenate([a, b], axis=1)
  seg = jnp.asarray([[0] * 20 + [1] * 16])
  pos = jnp.asarray([list(range(20)) + list(range(16))])
  out = np.asarray(model(packed, positions=pos, segment_ids=seg))
  np.testing.assert_allclose(out[:, :20], np.asarray(model(a)), atol=2e-5)
  np.testing.assert_allclose(out[:, 20:], np.asarray(model(b)), atol=2e-5)


def test_refusals_name_the_argument():
  with pytest.raises(ValueError, match="hidden_size=64 divisible by bits_per_route=3"):
    make_rosa_mixer("rosa_bits3_test", bits_per_route=3, override=True)
    Transformer(
      get_preset("tiny-qwen3", mixer="rosa_bits3_test", sliding_window=4), rngs=nnx.Rngs(0)
    )
  with pytest.raises(ValueError, match="needs config.sliding_window"):
    Transformer(get_preset("tiny-qwen3", mixer="rosa"), rngs=nnx.Rngs(0))
  model = with_mixers(_window_model(), ("attention", "rosa", "rosa"))
  cache = model.init_cache(2, 8)
  ids = _ids(t=4)
  pos = jnp.broadcast_to(jnp.arange(4), (2, 4))
  with pytest.raises(ValueError, match="segment_ids .* cannot be combined with a generation cache"):
    model.forward(ids, positions=pos, segment_ids=jnp.zeros((2, 4), jnp.int32), cache=cache)
  _, cache = model.forward(ids, positions=pos, cache=model.init_cache(2, 8))
  with pytest.raises(Exception, match="beyond the capacity max_length=8"):
    more = jnp.broadcast_to(jnp.arange(4, 10), (2, 6))
    jax.block_until_ready(model.forward(_ids(t=6), positions=more, cache=cache))
  with pytest.raises(Exception, match="no rollback"):
    jax.block_until_ready(model.forward(ids[:, :1], positions=jnp.full((2, 1), 2), cache=cache))
  assert RosaCache.rollback_by_length is False  # Speculative decoding refuses it.


def test_speculative_decoding_refuses_a_rosa_model():
  from reasoning_jax.speculative.decode import _recurrent_layer

  model = with_mixers(_window_model(), ("attention", "rosa", "rosa"))
  assert _recurrent_layer(model) == (1, "RosaCache")


def test_overlapped_schedule_equals_serial_in_values_and_gradients():
  """The host matching submitted before the attention and awaited after it (`schedule=
  "overlap"`, the default) computes exactly what the serial branch computes."""
  window = _window_model()
  ids = _ids(period=7)
  models = {
    name: _with_tables(with_mixers(window, ("attention", name, name)))
    for name in ("rosa", "rosa_serial")
  }
  assert models["rosa"].layers[1].mixer.schedule == "overlap"
  outs = {name: np.asarray(_forward(m, ids)) for name, m in models.items()}
  np.testing.assert_array_equal(outs["rosa"], outs["rosa_serial"])
  grads = {name: nnx.state(_grads(m, ids)) for name, m in models.items()}
  for a, b in zip(
    jax.tree_util.tree_leaves(grads["rosa"]), jax.tree_util.tree_leaves(grads["rosa_serial"])
  ):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
  assert np.any(np.asarray(grads["rosa"]["layers"][1]["mixer"]["rosa_q"][...]))
