"""SemanticSpec components: step segmentation, the probe, pooling alignment, the step test."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import stats

from reasoning_jax.models.config import get_preset
from reasoning_jax.models.transformer import Transformer
from reasoning_jax.speculative import (
  Probe,
  accept_steps,
  boundary_ids_from_tokenizer,
  fast_path_ok,
  pool_hidden,
  split_steps,
  step_output_distribution,
  step_prefix_lengths,
)
from reasoning_jax.speculative.steps import first_boundary
from reasoning_jax.tokenizers import ByteTokenizer


# --- segmentation ---------------------------------------------------------------------------


def test_segmenter_splits_a_known_string_at_the_newline_ids():
  tok = ByteTokenizer()
  boundary = boundary_ids_from_tokenizer(tok, rule="newline")
  assert boundary == (ord("\n") + 3,)
  ids = tok.encode("12+30=42.\nSo x=2\n\nDone")
  steps = split_steps(ids, boundary)
  assert [tok.decode(s) for s in steps] == ["12+30=42.\n", "So x=2\n", "\n", "Done"]
  assert all(s[-1] in boundary for s in steps[:-1])  # The boundary stays in its step.
  assert sum(steps, []) == ids
  cuts = step_prefix_lengths(ids, boundary)
  assert cuts == [10, 17, 18]
  assert [ids[c - 1] for c in cuts] == [13, 13, 13]
  np.testing.assert_array_equal(
    first_boundary(np.array([[5, 13, 13], [5, 6, 7]]), boundary), [1, 3]
  )


class _QwenLike:
  """A vocabulary with the blank-line tokens of spec 2.2 (ids 5..7) among ordinary ones."""

  texts = ["a", "b", ".", "\n", " x", "\n\n", ".\n\n", ")\n\n", "c\n"]
  vocab_size = len(texts)

  def decode(self, ids):
    return "".join(self.texts[i] for i in ids)


def test_blank_line_rule_finds_the_blank_line_tokens():
  assert boundary_ids_from_tokenizer(_QwenLike()) == (5, 6, 7)
  assert boundary_ids_from_tokenizer(_QwenLike(), rule="newline") == (3, 5, 6, 7, 8)
  with pytest.raises(ValueError, match="rule='newline'"):
    boundary_ids_from_tokenizer(ByteTokenizer())  # Bytes: no blank-line token.
  with pytest.raises(ValueError, match="rule must be"):
    boundary_ids_from_tokenizer(ByteTokenizer(), rule="paragraph")


# --- probe ----------------------------------------------------------------------------------


def _numpy_probe(probe, x):
  for layer in probe.layers[:-1]:
    x = np.maximum(x @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...]), 0.0)
  last = probe.layers[-1]
  z = (x @ np.asarray(last.kernel[...]) + np.asarray(last.bias[...]))[..., 0]
  return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("hidden_sizes", [(64, 32, 16), (48, 8)])
def test_probe_forward_matches_numpy(hidden_sizes):
  probe = Probe(24, hidden_sizes, rngs=nnx.Rngs(0))
  assert len(probe.layers) == len(hidden_sizes) + 1 and len(probe.dropouts) == 2
  x = np.random.default_rng(0).normal(size=(5, 24)).astype(np.float32)
  got = np.asarray(probe(x, deterministic=True))
  np.testing.assert_allclose(got, _numpy_probe(probe, x.astype(np.float64)), atol=1e-5)
  assert got.shape == (5,) and np.all((got > 0) & (got < 1))


def test_probe_default_architecture_and_dropout_mode():
  probe = Probe(16, rngs=nnx.Rngs(0))  # in -> 2048 -> 512 -> 256 -> 1
  widths = [layer.kernel.shape for layer in probe.layers]
  assert widths == [(16, 2048), (2048, 512), (512, 256), (256, 1)]
  x = np.ones((3, 16), np.float32)
  a, b = probe(x, deterministic=False), probe(x, deterministic=False)
  assert not np.allclose(a, b)  # Dropout 0.3 is active in training.
  probe.eval()
  np.testing.assert_array_equal(probe(x), probe(x))
  with pytest.raises(ValueError, match="pooling"):
    Probe(16, pooling="max", rngs=nnx.Rngs(0))


# --- hidden-state alignment -----------------------------------------------------------------


def _tiny(vocab=11, hidden=32, layers=2, seed=0):
  config = get_preset("tiny-llama").replace(
    vocab_size=vocab,
    hidden_size=hidden,
    intermediate_size=64,
    num_layers=layers,
    num_heads=2,
    num_kv_heads=1,
    head_dim=16,
  )
  return Transformer(config, rngs=nnx.Rngs(seed))


def test_pooling_window_is_the_predicting_positions():
  model = _tiny()
  ids = np.array([[3, 4, 5, 6, 7, 8, 9, 0], [5, 6, 7, 8, 0, 0, 0, 0]], np.int32)
  context = np.array([3, 2], np.int32)  # Steps: [6, 7, 8, 9] and [7, 8].
  steps = np.array([4, 2], np.int32)
  hidden = np.asarray(model.forward(jnp.asarray(ids))[0])
  pooled = np.asarray(pool_hidden(jnp.asarray(hidden), context, steps))
  for b in range(2):
    c, t = context[b], steps[b]
    # Fresh forward of the unpadded sequence; positions c-1 .. c+T-2 predicted the step.
    fresh = np.asarray(model.forward(jnp.asarray(ids[b : b + 1, : c + t]))[0])[0]
    np.testing.assert_allclose(pooled[b], fresh[c - 1 : c + t - 1].mean(0), atol=1e-5)
    for shift in (-1, 1):  # An off-by-one window pools a different vector.
      wrong = fresh[c - 1 + shift : c + t - 1 + shift].mean(0)
      assert np.abs(pooled[b] - wrong).max() > 1e-3
  last = np.asarray(pool_hidden(jnp.asarray(hidden), context, steps, "last"))
  np.testing.assert_allclose(last[0], hidden[0, 5], atol=1e-6)  # c + T - 2 = 5.


# --- the step test --------------------------------------------------------------------------


def test_fast_path_needs_every_token_in_the_top2():
  logits = jnp.asarray(
    [[[5.0, 4.0, 0.0, 0.0], [0.0, 1.0, 3.0, 2.0]], [[5.0, 4.0, 0.0, 0.0], [9.0, 0.0, 0.0, 0.0]]]
  )
  tokens = jnp.asarray([[1, 3], [0, 2]])
  np.testing.assert_array_equal(fast_path_ok(logits, tokens, jnp.asarray([2, 2]), 2), [1, 0])
  # Row 1's second token is padding when its step has one token.
  np.testing.assert_array_equal(fast_path_ok(logits, tokens, jnp.asarray([2, 1]), 2), [1, 1])
  np.testing.assert_array_equal(fast_path_ok(logits, tokens, jnp.asarray([2, 1]), 0), [0, 0])


def test_accept_steps_ratio_floor_and_zero_draft_prob():
  key = jax.random.key(0)
  n = 20000
  acc = accept_steps(key, jnp.full((n,), 0.3), jnp.full((n,), 0.6))
  assert abs(float(acc.accepted.mean()) - 0.5) < 0.02
  assert not accept_steps(key, jnp.full((n,), 0.3), jnp.full((n,), 0.6), tau_min=0.6).accepted.any()
  assert accept_steps(key, jnp.full((n,), 0.7), jnp.full((n,), 0.6)).accepted.all()
  assert not accept_steps(key, jnp.full((4,), 0.5), jnp.zeros((4,))).accepted.any()
  fast = jnp.asarray([True, False, False, False])
  np.testing.assert_array_equal(accept_steps(key, jnp.zeros(4), jnp.ones(4), fast).accepted, fast)


P_T = np.array([0.30, 0.05, 0.20, 0.05, 0.15, 0.05, 0.10, 0.10])
P_D = np.array([0.05, 0.30, 0.05, 0.20, 0.05, 0.15, 0.10, 0.10])


def _one_token_steps(rejection, n=200_000, seed=0):
  """Toy one-token steps (V = 8) with the exact probabilities as probes."""
  k_draft, k_accept, k_fix = jax.random.split(jax.random.key(seed), 3)
  x = jax.random.categorical(k_draft, jnp.log(jnp.asarray(P_D)), shape=(n,))
  acc = accept_steps(k_accept, jnp.asarray(P_T)[x], jnp.asarray(P_D)[x])
  fix_probs = P_T if rejection == "regenerate" else np.maximum(P_T - P_D, 0.0)
  y = jax.random.categorical(k_fix, jnp.log(jnp.asarray(fix_probs / fix_probs.sum())), shape=(n,))
  out = np.asarray(jnp.where(acc.accepted, x, y))
  beta = np.minimum(P_T, P_D).sum()
  assert abs(float(acc.accepted.mean()) - beta) < 3 * np.sqrt(beta * (1 - beta) / n)
  return np.bincount(out, minlength=8), n


def test_target_regeneration_gives_the_biased_distribution():
  counts, n = _one_token_steps("regenerate")
  biased = step_output_distribution(P_T, P_D)
  np.testing.assert_allclose(biased.sum(), 1.0)
  assert stats.chisquare(counts, biased * n).pvalue > 1e-3
  assert stats.chisquare(counts, P_T * n).pvalue < 1e-6  # The bias is real: not P_T.


def test_residual_resampling_recovers_the_target():
  counts, n = _one_token_steps("residual")
  assert stats.chisquare(counts, P_T * n).pvalue > 1e-3
