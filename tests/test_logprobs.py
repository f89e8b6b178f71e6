"""Tests for reasoning_jax.logprobs (tiny fp32 presets on CPU)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.logprobs import chunked_token_logprobs, sequence_logprobs
from reasoning_jax.models import Transformer, get_preset

B, T = 2, 13
CHUNK_SIZES = (1, 4, 5, 13, 64)  # 4 and 5 do not divide T; 64 > T.


@pytest.fixture(scope="module", params=["tiny-qwen3", "tiny-llama"])
def model(request) -> Transformer:
  return Transformer(get_preset(request.param), rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def qwen() -> Transformer:
  return Transformer(get_preset("tiny-qwen3"), rngs=nnx.Rngs(0))


def _tokens(vocab_size: int, shape=(B, T), seed: int = 1) -> jax.Array:
  return jax.random.randint(jax.random.key(seed), shape, 0, vocab_size, dtype=jnp.int32)


def _direct(model: Transformer, tokens: jax.Array, temperature: float = 1.0):
  """Reference: log_softmax over the full `model(tokens)` logits, shifted by one."""
  logits = model(tokens)[:, :-1] / temperature
  logprobs = jax.nn.log_softmax(logits, axis=-1)
  logp = jnp.take_along_axis(logprobs, tokens[:, 1:, None], axis=-1)[..., 0]
  entropy = -jnp.sum(jnp.exp(logprobs) * logprobs, axis=-1)
  pad = jnp.zeros((tokens.shape[0], 1), jnp.float32)
  return jnp.concatenate([pad, logp], axis=1), jnp.concatenate([pad, entropy], axis=1)


def _max_rel_diff(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


# -- Values ----------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_sequence_logprobs_chunked_matches_unchunked_and_direct(model, chunk_size):
  tokens = _tokens(model.config.vocab_size)
  mask = jnp.ones((B, T), jnp.float32)
  ref_logp, ref_entropy = sequence_logprobs(model, tokens, mask)
  logp, entropy = sequence_logprobs(model, tokens, mask, chunk_size=chunk_size)
  assert logp.shape == entropy.shape == (B, T)
  assert logp.dtype == entropy.dtype == jnp.float32
  np.testing.assert_allclose(logp, ref_logp, atol=1e-5, rtol=0)
  np.testing.assert_allclose(entropy, ref_entropy, atol=1e-5, rtol=0)
  direct_logp, direct_entropy = _direct(model, tokens)
  np.testing.assert_allclose(logp, direct_logp, atol=1e-5, rtol=0)
  np.testing.assert_allclose(entropy, direct_entropy, atol=1e-5, rtol=0)
  assert np.all(np.asarray(logp[:, 0]) == 0) and np.all(np.asarray(entropy[:, 0]) == 0)
  assert np.all(np.asarray(logp[:, 1:]) < 0)


@pytest.mark.parametrize("chunk_size", [None, 3, 8, 16])
def test_chunked_token_logprobs_matches_direct(chunk_size):
  h, v = 16, 40
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  hidden = jax.random.normal(k1, (3, 10, h))
  kernel = jax.random.normal(k2, (h, v))
  targets = jax.random.randint(k3, (3, 10), 0, v)
  logp, entropy = chunked_token_logprobs(hidden, kernel, targets, chunk_size=chunk_size)
  log_probs = jax.nn.log_softmax(hidden @ kernel, axis=-1)
  np.testing.assert_allclose(
    logp, jnp.take_along_axis(log_probs, targets[..., None], -1)[..., 0], atol=1e-5, rtol=0
  )
  np.testing.assert_allclose(
    entropy, -jnp.sum(jnp.exp(log_probs) * log_probs, -1), atol=1e-5, rtol=0
  )


def test_entropy_against_direct_computation(qwen):
  tokens = _tokens(qwen.config.vocab_size, seed=7)
  _, entropy = sequence_logprobs(qwen, tokens, jnp.ones((B, T)), chunk_size=4)
  probs = jax.nn.softmax(qwen(tokens)[:, :-1], axis=-1)
  expected = -jnp.sum(jnp.where(probs > 0, probs * jnp.log(probs), 0.0), axis=-1)
  np.testing.assert_allclose(entropy[:, 1:], expected, atol=1e-5, rtol=0)
  vocab_size = qwen.config.vocab_size
  assert np.all(np.asarray(entropy[:, 1:]) > 0)
  assert np.all(np.asarray(entropy) <= np.log(vocab_size) + 1e-5)


@pytest.mark.parametrize("temperature", [0.5, 2.0])
@pytest.mark.parametrize("chunk_size", [None, 5])
def test_temperature(qwen, temperature, chunk_size):
  tokens = _tokens(qwen.config.vocab_size, seed=3)
  mask = jnp.ones((B, T))
  logp, entropy = sequence_logprobs(
    qwen, tokens, mask, chunk_size=chunk_size, temperature=temperature
  )
  direct_logp, direct_entropy = _direct(qwen, tokens, temperature)
  np.testing.assert_allclose(logp, direct_logp, atol=1e-5, rtol=0)
  np.testing.assert_allclose(entropy, direct_entropy, atol=1e-5, rtol=0)
  # A traced temperature (under jit) gives the same values.
  jitted = jax.jit(
    lambda hid, w, tgt, temp: chunked_token_logprobs(
      hid, w, tgt, chunk_size=chunk_size, temperature=temp
    )
  )
  hidden, _ = qwen.forward(tokens)
  eager = chunked_token_logprobs(
    hidden, qwen.unembed_kernel(), tokens, chunk_size=chunk_size, temperature=temperature
  )
  traced = jitted(hidden, qwen.unembed_kernel(), tokens, jnp.float32(temperature))
  np.testing.assert_allclose(traced[0], eager[0], atol=1e-5, rtol=0)
  np.testing.assert_allclose(traced[1], eager[1], atol=1e-5, rtol=0)
  # Higher temperature -> higher entropy, lower -> lower.
  _, entropy_1 = sequence_logprobs(qwen, tokens, mask, chunk_size=chunk_size)
  if temperature > 1:
    assert np.all(np.asarray(entropy[:, 1:]) > np.asarray(entropy_1[:, 1:]))
  else:
    assert np.all(np.asarray(entropy[:, 1:]) < np.asarray(entropy_1[:, 1:]))


def test_bfloat16_hidden_uses_float32_logits():
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  hidden = jax.random.normal(k1, (2, 9, 32)).astype(jnp.bfloat16)
  kernel = jax.random.normal(k2, (32, 300)).astype(jnp.bfloat16)
  targets = jax.random.randint(k3, (2, 9), 0, 300)
  ref = chunked_token_logprobs(hidden, kernel, targets)
  out = chunked_token_logprobs(hidden, kernel, targets, chunk_size=4)
  assert out[0].dtype == out[1].dtype == jnp.float32
  np.testing.assert_allclose(out[0], ref[0], atol=1e-5, rtol=0)
  np.testing.assert_allclose(out[1], ref[1], atol=1e-5, rtol=0)
  logits = hidden.astype(jnp.float32) @ kernel.astype(jnp.float32)
  direct = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), targets[..., None], -1)[..., 0]
  np.testing.assert_allclose(out[0], direct, atol=1e-4, rtol=0)


# -- Mask, padding, packing ------------------------------------------------------------------


def test_mask_zeros_and_weights(qwen):
  tokens = _tokens(qwen.config.vocab_size, seed=4)
  bool_mask = jnp.arange(T)[None, :] < jnp.array([[9], [T]])
  full_logp, full_entropy = sequence_logprobs(qwen, tokens, jnp.ones((B, T), bool))
  for mask in (bool_mask, bool_mask.astype(jnp.int32), bool_mask.astype(jnp.float32) * 0.5):
    logp, entropy = sequence_logprobs(qwen, tokens, mask, chunk_size=4)
    weights = np.asarray(mask, np.float32)
    assert np.all(np.asarray(logp)[weights == 0] == 0.0)
    assert np.all(np.asarray(entropy)[weights == 0] == 0.0)
    np.testing.assert_allclose(logp, full_logp * weights, atol=1e-5, rtol=0)
    np.testing.assert_allclose(entropy, full_entropy * weights, atol=1e-5, rtol=0)


def test_right_padding_does_not_affect_valid_positions(qwen):
  tokens = _tokens(qwen.config.vocab_size, seed=5)
  mask = jnp.arange(T)[None, :] < jnp.array([[7], [10]])
  other = jnp.where(mask, tokens, _tokens(qwen.config.vocab_size, seed=6))
  a = sequence_logprobs(qwen, tokens, mask, chunk_size=3)
  b = sequence_logprobs(qwen, other, mask, chunk_size=3)
  np.testing.assert_allclose(a[0], b[0], atol=1e-6, rtol=0)
  np.testing.assert_allclose(a[1], b[1], atol=1e-6, rtol=0)


def test_packed_segments_match_separate_sequences(qwen):
  vocab_size = qwen.config.vocab_size
  first, second = _tokens(vocab_size, (1, 5), seed=8), _tokens(vocab_size, (1, 8), seed=9)
  packed = jnp.concatenate([first, second], axis=1)
  segment_ids = jnp.array([[1] * 5 + [2] * 8], jnp.int32)
  positions = jnp.array([list(range(5)) + list(range(8))], jnp.int32)
  logp, entropy = sequence_logprobs(
    qwen, packed, jnp.ones((1, 13)), chunk_size=4, positions=positions, segment_ids=segment_ids
  )
  lp1, e1 = sequence_logprobs(qwen, first, jnp.ones((1, 5)))
  lp2, e2 = sequence_logprobs(qwen, second, jnp.ones((1, 8)))
  np.testing.assert_allclose(logp, jnp.concatenate([lp1, lp2], 1), atol=1e-5, rtol=0)
  np.testing.assert_allclose(entropy, jnp.concatenate([e1, e2], 1), atol=1e-5, rtol=0)
  assert float(logp[0, 5]) == 0.0 and float(entropy[0, 5]) == 0.0  # Segment start.


def test_single_token_sequence(qwen):
  tokens = _tokens(qwen.config.vocab_size, (3, 1))
  logp, entropy = sequence_logprobs(qwen, tokens, jnp.ones((3, 1)), chunk_size=4)
  assert logp.shape == entropy.shape == (3, 1)
  assert np.all(np.asarray(logp) == 0) and np.all(np.asarray(entropy) == 0)


# -- Gradients -------------------------------------------------------------------------------


def test_param_gradients_chunked_match_unchunked(model):
  tokens = _tokens(model.config.vocab_size, seed=11)
  mask = (jax.random.uniform(jax.random.key(12), (B, T)) > 0.3).astype(jnp.float32)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def loss(params, chunk_size, objective):
    m = nnx.merge(graphdef, params, rest)
    logp, entropy = sequence_logprobs(m, tokens, mask, chunk_size=chunk_size)
    return jnp.sum(logp if objective == "logp" else entropy)

  @functools.partial(jax.jit, static_argnums=1)
  def grads(params, chunk_size):
    return {
      objective: jax.grad(loss)(params, chunk_size, objective) for objective in ("logp", "entropy")
    }

  ref = grads(params, None)
  for chunk_size in (5, 13):  # 5 pads T = 13 to 15; 13 is a single chunk.
    got = grads(params, chunk_size)
    for objective in ("logp", "entropy"):
      ref_leaves = jax.tree_util.tree_leaves(ref[objective])
      assert any(float(jnp.max(jnp.abs(r))) > 0 for r in ref_leaves)
      assert jax.tree_util.tree_structure(got[objective]) == jax.tree_util.tree_structure(
        ref[objective]
      )
      for g, r in zip(jax.tree_util.tree_leaves(got[objective]), ref_leaves):
        assert g.shape == r.shape
        assert _max_rel_diff(g, r) <= 1e-5, (objective, chunk_size, _max_rel_diff(g, r))


def test_padding_gets_no_gradient():
  k1, k2, k3 = jax.random.split(jax.random.key(2), 3)
  hidden = jax.random.normal(k1, (2, 11, 8))
  kernel = jax.random.normal(k2, (8, 50))
  targets = jax.random.randint(k3, (2, 11), 0, 50)

  def loss(hidden, kernel, chunk_size):
    logp, entropy = chunked_token_logprobs(
      hidden, kernel, targets, chunk_size=chunk_size, temperature=0.8
    )
    return jnp.sum(logp) + 0.5 * jnp.sum(entropy)

  ref = jax.grad(loss, argnums=(0, 1))(hidden, kernel, None)
  for chunk_size in (4, 11, 32):
    got = jax.grad(loss, argnums=(0, 1))(hidden, kernel, chunk_size)
    assert got[0].shape == hidden.shape
    assert _max_rel_diff(got[0], ref[0]) <= 1e-5
    assert _max_rel_diff(got[1], ref[1]) <= 1e-5


# -- Memory ----------------------------------------------------------------------------------


def test_chunked_uses_less_temp_memory():
  b, t, h, v = 2, 512, 64, 8192
  hidden = jax.ShapeDtypeStruct((b, t, h), jnp.float32)
  kernel = jax.ShapeDtypeStruct((h, v), jnp.float32)
  targets = jax.ShapeDtypeStruct((b, t), jnp.int32)

  def temp_bytes(chunk_size):
    def loss(hidden, kernel, targets):
      logp, entropy = chunked_token_logprobs(hidden, kernel, targets, chunk_size=chunk_size)
      return jnp.sum(logp) + jnp.sum(entropy)

    compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(hidden, kernel, targets).compile()
    analysis = compiled.memory_analysis()
    return None if analysis is None else analysis.temp_size_in_bytes

  unchunked, chunked = temp_bytes(None), temp_bytes(64)
  if unchunked is None or chunked is None:
    pytest.skip("memory_analysis() is not available on this backend")
  full_logits_bytes = b * t * v * 4
  assert chunked < unchunked
  assert unchunked >= full_logits_bytes  # The unchunked gradient holds [B, T, V] logits.
  assert chunked < full_logits_bytes


# -- Validation ------------------------------------------------------------------------------


def test_bad_inputs_raise_naming_the_argument(qwen):
  tokens = _tokens(qwen.config.vocab_size)
  mask = jnp.ones((B, T))
  with pytest.raises(TypeError, match="tokens"):
    sequence_logprobs(qwen, tokens.astype(jnp.float32), mask)
  with pytest.raises(ValueError, match="tokens"):
    sequence_logprobs(qwen, tokens[0], mask)
  with pytest.raises(ValueError, match="tokens"):
    sequence_logprobs(qwen, tokens.at[0, 0].set(qwen.config.vocab_size), mask)
  with pytest.raises(ValueError, match="mask"):
    sequence_logprobs(qwen, tokens, jnp.ones((B, T + 1)))
  with pytest.raises(TypeError, match="mask"):
    sequence_logprobs(qwen, tokens, mask.astype(jnp.complex64))
  for bad in (0, -3, 2.0, True):
    with pytest.raises(ValueError, match="chunk_size"):
      sequence_logprobs(qwen, tokens, mask, chunk_size=bad)
  for bad in (0.0, -1.0, float("inf")):
    with pytest.raises(ValueError, match="temperature"):
      sequence_logprobs(qwen, tokens, mask, temperature=bad)
  with pytest.raises(ValueError, match="positions"):
    sequence_logprobs(qwen, tokens, mask, positions=jnp.zeros((B, T + 1), jnp.int32))
  with pytest.raises(TypeError, match="segment_ids"):
    sequence_logprobs(qwen, tokens, mask, segment_ids=jnp.zeros((B, T), jnp.float32))

  hidden, kernel = jnp.zeros((B, T, 8)), jnp.zeros((8, 16))
  targets = jnp.zeros((B, T), jnp.int32)
  with pytest.raises(ValueError, match="hidden"):
    chunked_token_logprobs(hidden[0], kernel, targets)
  with pytest.raises(TypeError, match="hidden"):
    chunked_token_logprobs(hidden.astype(jnp.int32), kernel, targets)
  with pytest.raises(ValueError, match="unembed_kernel"):
    chunked_token_logprobs(hidden, jnp.zeros((9, 16)), targets)
  with pytest.raises(TypeError, match="targets"):
    chunked_token_logprobs(hidden, kernel, targets.astype(jnp.float32))
  with pytest.raises(ValueError, match="targets"):
    chunked_token_logprobs(hidden, kernel, targets[:, :-1])
  with pytest.raises(ValueError, match="targets"):
    chunked_token_logprobs(hidden, kernel, targets + 16)
  with pytest.raises(ValueError, match="chunk_size"):
    chunked_token_logprobs(hidden, kernel, targets, chunk_size=0)


def _completion_batch(vocab_size, prompt_lengths, completion_lengths, width):
  """Left-aligned prompt + completion rows and their completion mask (as RL rollouts)."""
  n = len(prompt_lengths)
  tokens = np.array(_tokens(vocab_size, (n, width), seed=3))
  mask = np.zeros((n, width), np.float32)
  for i, (p, c) in enumerate(zip(prompt_lengths, completion_lengths)):
    mask[i, p : p + c] = 1.0
    tokens[i, p + c :] = 0
  return jnp.asarray(tokens), jnp.asarray(mask)


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_window_equals_full_head_values_and_gradients(qwen, chunk_size):
  """Only the completion window goes through the head: same log-probs, entropies, grads."""
  window = 5
  tokens, mask = _completion_batch(
    qwen.config.vocab_size, [1, 4, 9, 2], [5, 3, 5, 0], width=14
  )  # Row 0's window starts at position 1; row 2 ends at the last position; row 3 is empty.
  graphdef, params = nnx.split(qwen)
  weights = jnp.linspace(0.5, 1.5, tokens.size).reshape(tokens.shape)

  def run(params, win):
    logp, ent = sequence_logprobs(
      nnx.merge(graphdef, params), tokens, mask, chunk_size=chunk_size, window=win
    )
    return jnp.sum(logp * weights) + 0.3 * jnp.sum(ent), (logp, ent)

  (full_loss, (lp, ent)), full_grads = jax.value_and_grad(run, has_aux=True)(params, None)
  (win_loss, (lp_w, ent_w)), win_grads = jax.jit(
    jax.value_and_grad(run, has_aux=True), static_argnums=1
  )(params, window)
  np.testing.assert_allclose(lp_w, lp, atol=1e-5)
  np.testing.assert_allclose(ent_w, ent, atol=1e-5)
  np.testing.assert_allclose(win_loss, full_loss, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(win_grads), jax.tree_util.tree_leaves(full_grads)):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def test_window_broken_promise_is_nan_and_large_window_falls_back(qwen):
  tokens, mask = _completion_batch(qwen.config.vocab_size, [2, 3], [6, 2], width=10)
  logp, ent = sequence_logprobs(qwen, tokens, mask, window=4)  # Row 0 spans 6 positions.
  assert np.isnan(np.asarray(logp)[0, 6:8]).all() and np.isnan(np.asarray(ent)[0, 6:8]).all()
  assert np.isfinite(np.asarray(logp)[0, :6]).all() and np.isfinite(np.asarray(logp)[1]).all()
  full, _ = sequence_logprobs(qwen, tokens, mask)
  np.testing.assert_allclose(np.asarray(logp)[0, :6], np.asarray(full)[0, :6], atol=1e-6)
  wide, _ = sequence_logprobs(qwen, tokens, mask, window=9)  # >= T - 1: the full head.
  np.testing.assert_array_equal(wide, full)
  for bad in (0, -1, 2.5, True):
    with pytest.raises(ValueError, match="window"):
      sequence_logprobs(qwen, tokens, mask, window=bad)
