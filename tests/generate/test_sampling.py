"""Sampling from logits: truncation sets, log-probabilities, frequencies, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reasoning_jax.generate import sample_logits, truncated_log_probs


def reference_probs(logits: np.ndarray, temperature: float, top_k, top_p: float) -> np.ndarray:
  """Independent NumPy (float64) sampling distribution of one row `[V]`."""
  logits = np.asarray(logits, np.float64)
  vocab = logits.shape[-1]
  if temperature == 0:
    out = np.zeros(vocab)
    out[np.argmax(logits)] = 1.0
    return out
  z = logits / temperature
  order = np.argsort(-z, kind="stable")
  k = vocab if not top_k else min(top_k, vocab)
  cand = order[:k]
  p = np.exp(z[cand] - z[cand].max())
  p /= p.sum()
  before = np.cumsum(p) - p
  # top_p == 1 is "off" (documented): keep every candidate, even one whose preceding mass
  # rounds to 1.0 in float64 (hypothesis found such a row: seed 21451, T = 0.3).
  kept = cand if top_p >= 1.0 else cand[before < top_p]
  out = np.zeros(vocab)
  q = np.exp(z[kept] - z[kept].max())
  out[kept] = q / q.sum()
  return out


def chi_square_pvalue(observed: np.ndarray, expected: np.ndarray) -> float:
  stat = float(np.sum((observed - expected) ** 2 / expected))
  dof = len(observed) - 1
  if dof == 0:
    return 1.0
  return float(jax.scipy.special.gammaincc(dof / 2.0, stat / 2.0))


LOGITS = np.array([2.0, 1.5, 1.2, 1.0, 0.7, 0.3, 0.0, -0.4, -0.9, -1.5], np.float32)


@pytest.mark.parametrize(
  "temperature,top_k,top_p",
  [
    (1.0, None, 1.0),
    (0.5, 5, 1.0),
    (1.3, 0, 0.8),
    (0.8, 6, 0.7),
    (2.0, 3, 0.95),
  ],
)
def test_sampled_frequencies_match_truncated_softmax(temperature, top_k, top_p):
  expected_p = reference_probs(LOGITS, temperature, top_k, top_p)
  n = 20_000
  keys = jax.random.split(jax.random.key(1234), n)

  @jax.jit
  def draw(keys):
    return jax.vmap(
      lambda k: sample_logits(
        jnp.asarray(LOGITS)[None], k, temperature=temperature, top_k=top_k, top_p=top_p
      )
    )(keys)

  tokens, raw, sampling = draw(keys)
  tokens = np.asarray(tokens[:, 0])
  counts = np.bincount(tokens, minlength=LOGITS.size)
  kept = expected_p > 0
  assert counts[~kept].sum() == 0, "drew a token outside the top-k / top-p set"
  assert chi_square_pvalue(counts[kept], n * expected_p[kept]) > 1e-3
  # Per-draw log-probabilities: raw = log_softmax at T=1, sampling = log of the truncated prob.
  raw_ref = LOGITS - np.log(np.sum(np.exp(LOGITS.astype(np.float64))))
  np.testing.assert_allclose(np.asarray(raw[:, 0]), raw_ref[tokens], atol=1e-5)
  np.testing.assert_allclose(np.asarray(sampling[:, 0]), np.log(expected_p[tokens]), atol=1e-5)


def test_greedy_is_argmax_with_zero_sampling_logprob():
  logits = jax.random.normal(jax.random.key(0), (4, 37)) * 3
  token, raw, sampling = sample_logits(logits, None, temperature=0.0, top_k=5, top_p=0.5)
  assert token.dtype == jnp.int32 and token.shape == (4,)
  np.testing.assert_array_equal(token, jnp.argmax(logits, -1))
  np.testing.assert_allclose(raw, jnp.max(jax.nn.log_softmax(logits), -1), atol=1e-6)
  np.testing.assert_array_equal(sampling, np.zeros(4))
  lp = truncated_log_probs(logits, 0.0)
  np.testing.assert_array_equal(np.isfinite(lp), jax.nn.one_hot(token, 37, dtype=bool))


def test_top_k_keeps_exactly_k_even_with_ties():
  logits = jnp.array([[1.0, 3.0, 3.0, 3.0, 0.0, 2.0]])
  lp = truncated_log_probs(logits, 1.0, top_k=2)
  np.testing.assert_array_equal(np.isfinite(lp[0]), [False, True, True, False, False, False])
  np.testing.assert_allclose(np.exp(lp[0, 1:3]), [0.5, 0.5], atol=1e-6)


def test_top_p_keeps_smallest_set_reaching_mass():
  probs = np.array([0.5, 0.3, 0.15, 0.05])
  logits = jnp.asarray(np.log(probs)[None], jnp.float32)
  kept = lambda p: np.isfinite(np.asarray(truncated_log_probs(logits, 1.0, None, p)[0]))
  np.testing.assert_array_equal(kept(0.4), [True, False, False, False])
  np.testing.assert_array_equal(kept(0.79), [True, True, False, False])
  np.testing.assert_array_equal(kept(0.81), [True, True, True, False])
  np.testing.assert_array_equal(kept(1.0), [True, True, True, True])
  # A tiny top_p still keeps the top token.
  np.testing.assert_array_equal(kept(1e-9), [True, False, False, False])


def test_top_k_larger_than_vocab_is_off():
  logits = jax.random.normal(jax.random.key(3), (2, 7))
  np.testing.assert_allclose(
    truncated_log_probs(logits, 1.0, top_k=100), jax.nn.log_softmax(logits), atol=1e-6
  )


@settings(max_examples=25, deadline=None)
@given(
  seed=st.integers(0, 2**31 - 1),
  vocab=st.sampled_from([1, 23]),
  temperature=st.sampled_from([0.0, 0.3, 1.0, 1.7]),
  top_k=st.sampled_from([None, 0, 1, 3, 10, 50]),
  top_p=st.sampled_from([1.0, 0.95, 0.6, 0.2]),
)
@example(seed=21451, vocab=23, temperature=0.3, top_k=None, top_p=1.0)  # mass rounds to 1.0
def test_truncated_log_probs_matches_reference(seed, vocab, temperature, top_k, top_p):
  logits = np.random.RandomState(seed).normal(size=(3, vocab)).astype(np.float32) * 2
  lp = np.asarray(truncated_log_probs(jnp.asarray(logits), temperature, top_k, top_p))
  for row in range(3):
    ref = reference_probs(logits[row], temperature, top_k, top_p)
    np.testing.assert_array_equal(np.isfinite(lp[row]), ref > 0)
    np.testing.assert_allclose(np.exp(lp[row]), ref, atol=1e-5)


def test_sample_logits_is_jittable_and_deterministic():
  logits = jax.random.normal(jax.random.key(0), (5, 50))
  fn = jax.jit(lambda x, k: sample_logits(x, k, temperature=0.9, top_k=10, top_p=0.9))
  a, b = fn(logits, jax.random.key(7)), fn(logits, jax.random.key(7))
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  # Raw (typed=False) keys work too.
  sample_logits(logits, jax.random.PRNGKey(0), temperature=1.0)


@pytest.mark.parametrize(
  "kwargs,error,match",
  [
    (dict(temperature=-0.1), ValueError, "temperature"),
    (dict(temperature=float("nan")), ValueError, "temperature"),
    (dict(temperature="hot"), TypeError, "temperature"),
    (dict(top_k=-1), ValueError, "top_k"),
    (dict(top_k=2.5), TypeError, "top_k"),
    (dict(top_p=0.0), ValueError, "top_p"),
    (dict(top_p=1.5), ValueError, "top_p"),
    (dict(top_p=-0.2), ValueError, "top_p"),
  ],
)
def test_bad_settings_raise(kwargs, error, match):
  logits = jnp.zeros((2, 5))
  with pytest.raises(error, match=match):
    sample_logits(logits, jax.random.key(0), **kwargs)
  settings_ = dict(temperature=1.0, top_k=None, top_p=1.0) | kwargs
  with pytest.raises(error, match=match):
    truncated_log_probs(logits, settings_["temperature"], settings_["top_k"], settings_["top_p"])


def test_missing_key_and_bad_logits_raise():
  with pytest.raises(ValueError, match="key is required"):
    sample_logits(jnp.zeros((2, 5)), None, temperature=1.0)
  with pytest.raises(TypeError, match="logits must be a floating array"):
    sample_logits(jnp.zeros((2, 5), jnp.int32), jax.random.key(0))


def test_first_argmax_equals_jnp_argmax_with_ties_nan_and_inf():
  from reasoning_jax.generate.sampling import first_argmax

  rows = np.array(
    [
      [0.0, 3.0, 3.0, 1.0],  # tie: first index
      [-np.inf, -np.inf, -np.inf, -np.inf],  # all -inf: index 0
      [1.0, np.nan, 5.0, np.nan],  # NaN wins, first one
      [np.inf, 2.0, np.inf, 0.0],
      [-2.0, -1.0, -3.0, -1.0],
    ],
    np.float32,
  )
  got = np.asarray(jax.jit(first_argmax)(jnp.asarray(rows)))
  np.testing.assert_array_equal(got, np.asarray(jnp.argmax(jnp.asarray(rows), axis=-1)))
  assert got.dtype == np.int32
  x = jax.random.normal(jax.random.key(0), (3, 5, 1000))
  np.testing.assert_array_equal(first_argmax(x), jnp.argmax(x, axis=-1))


@pytest.mark.parametrize("vocab", [7, 256, 700])
def test_categorical_sample_matches_distribution_across_blocks(vocab):
  """The two-level inverse-CDF draw: frequencies match softmax, -inf entries never drawn."""
  from reasoning_jax.generate import sampling

  rng = np.random.default_rng(vocab)
  logits = rng.normal(size=vocab).astype(np.float32) * 1.5
  # Zero-probability entries at block edges and whole blocks of them.
  dead = rng.random(vocab) < 0.3
  dead[: min(vocab, 3)] = True
  if vocab > sampling.SAMPLE_BLOCK:
    dead[sampling.SAMPLE_BLOCK : 2 * sampling.SAMPLE_BLOCK] = True
    dead[sampling.SAMPLE_BLOCK - 1] = False
  logits = np.where(dead, -np.inf, logits)
  log_probs = jax.nn.log_softmax(jnp.asarray(logits))
  n = 40_000
  draws = jax.jit(
    lambda k: sampling.categorical_sample(k, jnp.broadcast_to(log_probs, (n, vocab)))
  )(jax.random.key(7))
  counts = np.bincount(np.asarray(draws), minlength=vocab)
  assert counts[dead].sum() == 0
  p = np.exp(np.asarray(log_probs, np.float64))
  # Pool rare tokens so the chi-square expectation per cell is >= 5.
  order = np.argsort(-p)
  observed, expected, acc_o, acc_e = [], [], 0.0, 0.0
  for i in order[p[order] > 0]:
    acc_o, acc_e = acc_o + counts[i], acc_e + n * p[i]
    if acc_e >= 5:
      observed.append(acc_o)
      expected.append(acc_e)
      acc_o = acc_e = 0.0
  if acc_e:
    observed[-1] += acc_o
    expected[-1] += acc_e
  assert chi_square_pvalue(np.array(observed), np.array(expected)) > 1e-3
  # Leading axes are kept; one-hot rows always give their token.
  one_hot = jnp.where(jnp.eye(vocab, dtype=bool)[:4], 0.0, -jnp.inf).reshape(2, 2, vocab)
  np.testing.assert_array_equal(
    sampling.categorical_sample(jax.random.key(0), one_hot), np.arange(4).reshape(2, 2)
  )
