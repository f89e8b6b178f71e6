"""Batched generation: cache vs recomputation, batching, EOS, caching of jits, validation."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import reasoning_jax.generate as generate_pkg
from reasoning_jax.generate import (
  GenerateOutput,
  cache_bytes,
  generate,
  init_cache,
  truncated_log_probs,
)
from reasoning_jax.generate import generate as generate_fn
from reasoning_jax.models import Transformer, get_preset

PRESETS = ("tiny-llama", "tiny-qwen2", "tiny-qwen3")
LENGTHS = np.array([3, 7, 5], np.int32)
P, N = 7, 8


def make_model(name: str) -> Transformer:
  # A larger init than the default gives varied (non-repeating) greedy continuations.
  return Transformer(get_preset(name, initializer_range=0.3), rngs=nnx.Rngs(0))


def make_prompts(seed: int = 0, pad: int = 0) -> np.ndarray:
  prompts = np.random.RandomState(seed).randint(1, 512, (len(LENGTHS), P)).astype(np.int32)
  prompts[np.arange(P)[None] >= LENGTHS[:, None]] = pad
  return prompts


@pytest.fixture(scope="module", params=PRESETS)
def greedy_run(request):
  model = make_model(request.param)
  prompts = make_prompts()
  return model, prompts, generate(model, prompts, LENGTHS, max_new_tokens=N, temperature=0.0)


def full_recompute(model, prompts, lengths, out):
  """Logits `[B, T, V]` of `model(prompt + generated)` (no cache), right-padded."""
  b = prompts.shape[0]
  seq = np.zeros((b, prompts.shape[1] + out.tokens.shape[1]), np.int32)
  for row in range(b):
    n_gen = int(out.lengths[row])
    full = np.concatenate([prompts[row, : lengths[row]], np.asarray(out.tokens[row, :n_gen])])
    seq[row, : full.size] = full
  return np.asarray(model(jnp.asarray(seq)))


def test_greedy_cached_decoding_matches_full_recompute(greedy_run):
  model, prompts, out = greedy_run
  logits = full_recompute(model, prompts, LENGTHS, out)
  log_probs = np.asarray(jax.nn.log_softmax(jnp.asarray(logits), axis=-1))
  for row in range(len(LENGTHS)):
    for k in range(int(out.lengths[row])):
      pos = LENGTHS[row] - 1 + k  # Logits predicting generated token k.
      token = int(out.tokens[row, k])
      assert token == int(np.argmax(logits[row, pos])), (row, k)
      assert abs(float(out.logprobs[row, k]) - log_probs[row, pos, token]) <= 1e-5, (row, k)
  np.testing.assert_array_equal(out.sampling_logprobs, 0.0)


def test_greedy_runs_to_budget_without_eos(greedy_run):
  _, _, out = greedy_run
  assert isinstance(out, GenerateOutput)
  assert out.tokens.shape == (3, N) and out.tokens.dtype == jnp.int32
  assert out.logprobs.shape == out.sampling_logprobs.shape == (3, N)
  np.testing.assert_array_equal(out.lengths, [N] * 3)
  np.testing.assert_array_equal(out.done, [False] * 3)
  assert np.all(np.asarray(out.logprobs) <= 0)
  assert len(jax.tree_util.tree_leaves(out)) == 5  # A pytree.


def test_batched_rows_equal_each_row_alone():
  model = make_model("tiny-qwen3")
  prompts = make_prompts(seed=1, pad=-1)  # Garbage padding is ignored.
  batched = generate(model, prompts, LENGTHS, max_new_tokens=N, temperature=0.0)
  for row, length in enumerate(LENGTHS):
    # Alone (B=1), with different garbage in the padding (same shapes: one compile).
    alone_prompt = prompts[row : row + 1].copy()
    alone_prompt[:, length:] = 100 + row
    alone = generate(model, alone_prompt, [length], max_new_tokens=N, temperature=0.0)
    np.testing.assert_array_equal(batched.tokens[row], alone.tokens[0])
    np.testing.assert_allclose(batched.logprobs[row], alone.logprobs[0], atol=1e-5)
    assert int(batched.lengths[row]) == int(alone.lengths[0])


def expected_eos_stop(tokens: np.ndarray, eos_ids, pad_id):
  """(tokens, lengths, done) expected when greedy `tokens` are cut at the first EOS."""
  tokens = np.array(tokens)
  lengths, done = [], []
  for row in tokens:
    hits = np.flatnonzero(np.isin(row, eos_ids))
    n = hits[0] + 1 if hits.size else len(row)
    row[n:] = pad_id
    lengths.append(n)
    done.append(bool(hits.size))
  return tokens, np.array(lengths), np.array(done)


def test_eos_stops_rows_and_pads():
  model = make_model("tiny-qwen3")
  prompts = make_prompts()
  free = generate(model, prompts, LENGTHS, max_new_tokens=N, temperature=0.0)
  free_tokens = np.asarray(free.tokens)
  eos = int(free_tokens[0, 2])  # Row 0 emits it at step 2 (or earlier).
  out = generate(model, prompts, LENGTHS, max_new_tokens=N, temperature=0.0, eos_id=eos, pad_id=-1)
  tokens, lengths, done = expected_eos_stop(free_tokens, [eos], -1)
  assert lengths[0] <= 3 and done[0]
  np.testing.assert_array_equal(out.tokens, tokens)
  np.testing.assert_array_equal(out.lengths, lengths)
  np.testing.assert_array_equal(out.done, done)
  mask = np.arange(N)[None] < lengths[:, None]
  np.testing.assert_allclose(out.logprobs, np.where(mask, free.logprobs, 0.0), atol=1e-6)

  # A tuple of EOS ids: every row stops at its first hit of any of them.
  eos_ids = (int(free_tokens[1, 4]), int(free_tokens[2, 0]))
  out = generate(model, prompts, LENGTHS, max_new_tokens=N, temperature=0.0, eos_id=eos_ids)
  tokens, lengths, done = expected_eos_stop(free_tokens, eos_ids, 0)
  assert done[1] and done[2] and lengths[2] == 1
  np.testing.assert_array_equal(out.tokens, tokens)
  np.testing.assert_array_equal(out.lengths, lengths)
  np.testing.assert_array_equal(out.done, done)


def test_sampled_generation_logprobs_match_full_recompute():
  model = make_model("tiny-llama")
  prompts = make_prompts(seed=2)
  settings = dict(max_new_tokens=N, temperature=0.8, top_k=40, top_p=0.9)
  out = generate(model, prompts, LENGTHS, key=jax.random.key(3), **settings)
  again = generate(model, prompts, LENGTHS, key=jax.random.key(3), **settings)
  np.testing.assert_array_equal(out.tokens, again.tokens)  # Deterministic given the key.
  logits = full_recompute(model, prompts, LENGTHS, out)
  raw = np.asarray(jax.nn.log_softmax(jnp.asarray(logits), axis=-1))
  trunc = np.asarray(
    truncated_log_probs(jnp.asarray(logits.reshape(-1, logits.shape[-1])), 0.8, 40, 0.9)
  ).reshape(logits.shape)
  for row in range(len(LENGTHS)):
    for k in range(N):
      pos, token = LENGTHS[row] - 1 + k, int(out.tokens[row, k])
      assert abs(float(out.logprobs[row, k]) - raw[row, pos, token]) <= 1e-5
      assert abs(float(out.sampling_logprobs[row, k]) - trunc[row, pos, token]) <= 1e-4
  assert np.all(np.isfinite(out.sampling_logprobs)) and np.all(out.sampling_logprobs <= 0)


def test_single_token_budget_and_explicit_cache_size():
  model = make_model("tiny-qwen2")
  prompts = make_prompts()
  out = generate(model, prompts, LENGTHS, max_new_tokens=1, temperature=0.0, cache_size=16)
  full = generate(model, prompts, LENGTHS, max_new_tokens=N, temperature=0.0)
  np.testing.assert_array_equal(out.tokens[:, 0], full.tokens[:, 0])
  np.testing.assert_array_equal(out.lengths, [1, 1, 1])


def test_second_call_does_not_recompile():
  from reasoning_jax.generate.generate import TRACE_COUNTS, _compiled_fns, GenerateSettings

  model = make_model("tiny-qwen3")
  kwargs = dict(max_new_tokens=4, temperature=0.7, top_k=5, key=jax.random.key(0))
  generate(model, make_prompts(seed=3), LENGTHS, **kwargs)
  before = dict(TRACE_COUNTS)
  settings = GenerateSettings(
    max_new_tokens=4, cache_size=P + 4, temperature=0.7, top_k=5, top_p=1.0, eos_ids=(), pad_id=0
  )
  fns = _compiled_fns(nnx.split(model)[0], settings)
  sizes = [f._cache_size() for f in fns] if all(hasattr(f, "_cache_size") for f in fns) else None
  # Same shapes, new contents and key; then a fresh model with the same structure.
  generate(
    model, make_prompts(seed=4), LENGTHS[::-1].copy(), **(kwargs | dict(key=jax.random.key(1)))
  )
  generate(make_model("tiny-qwen3"), make_prompts(seed=5), LENGTHS, **kwargs)
  assert dict(TRACE_COUNTS) == before
  assert _compiled_fns(nnx.split(model)[0], settings) is fns
  if sizes is not None:
    assert [f._cache_size() for f in fns] == sizes == [1, 1]


def test_cache_helpers():
  model = make_model("tiny-qwen3")
  cache = init_cache(model, 2, 10)
  assert isinstance(cache, tuple) and len(cache) == model.config.num_layers
  cfg = model.config
  per_layer = 2 * 2 * 10 * cfg.num_kv_heads * cfg.head_dim * 4  # k and v, float32.
  assert cache_bytes(cache) == cfg.num_layers * per_layer
  assert cache_bytes(jax.eval_shape(lambda: init_cache(model, 2, 10))) == cache_bytes(cache)
  with pytest.raises(ValueError, match="max_length"):
    init_cache(model, 2, 0)
  with pytest.raises(ValueError, match="batch_size"):
    init_cache(model, -1, 4)


@pytest.fixture(scope="module")
def small_model():
  return make_model("tiny-qwen3")


@pytest.mark.parametrize(
  "prompts,lengths,kwargs,error,match",
  [
    (np.ones((2, 4), np.float32), [4, 4], {}, TypeError, "prompts must be an integer"),
    (np.ones((4,), np.int32), [4], {}, ValueError, r"prompts must be \[B, P\]"),
    (np.full((2, 4), 512, np.int32), [4, 4], {}, ValueError, "prompts has token ids"),
    (np.full((2, 4), -3, np.int32), [4, 4], {}, ValueError, "prompts has token ids"),
    (np.ones((2, 4), np.int32), [0, 4], {}, ValueError, r"prompt_lengths must be in \[1, P\]"),
    (np.ones((2, 4), np.int32), [5, 4], {}, ValueError, r"prompt_lengths must be in \[1, P\]"),
    (np.ones((2, 4), np.int32), [4, 4, 4], {}, ValueError, r"prompt_lengths must be \[B\]"),
    (np.ones((2, 4), np.int32), [[4, 4]], {}, ValueError, r"prompt_lengths must be \[B\]"),
    (np.ones((2, 4), np.int32), [4.0, 4.0], {}, TypeError, "prompt_lengths must be an integer"),
    (np.ones((2, 4), np.int32), [4, 4], dict(max_new_tokens=0), ValueError, "max_new_tokens"),
    (
      np.ones((2, 4), np.int32),
      [4, 4],
      dict(cache_size=9),
      ValueError,
      r"does not fit in the cache: P=4 .* max_new_tokens=6 .* cache_size=9",
    ),
    (np.ones((2, 4), np.int32), [4, 4], dict(temperature=-1.0), ValueError, "temperature"),
    (np.ones((2, 4), np.int32), [4, 4], dict(top_p=0.0), ValueError, "top_p"),
    (np.ones((2, 4), np.int32), [4, 4], dict(top_p=1.01), ValueError, "top_p"),
    (np.ones((2, 4), np.int32), [4, 4], dict(top_k=-2), ValueError, "top_k"),
    (
      np.ones((2, 4), np.int32),
      [4, 4],
      dict(temperature=1.0, key=None),
      ValueError,
      "key is required",
    ),
    (
      np.ones((2, 4), np.int32),
      [4, 4],
      dict(temperature=1.0, key=np.zeros(2, np.float32)),
      TypeError,
      "key must be a PRNG key",
    ),
    (np.ones((2, 4), np.int32), [4, 4], dict(eos_id=600), ValueError, "eos_id"),
    (np.ones((2, 4), np.int32), [4, 4], dict(eos_id=(1, "x")), TypeError, "eos_id"),
  ],
)
def test_bad_inputs_raise(small_model, prompts, lengths, kwargs, error, match):
  kwargs = dict(max_new_tokens=6, temperature=0.0) | kwargs
  with pytest.raises(error, match=match):
    generate(small_model, prompts, lengths, **kwargs)


def test_padding_ids_outside_vocab_are_allowed(small_model):
  prompts = np.array([[5, 6, 999, -1]], np.int32)
  out = generate(small_model, prompts, [2], max_new_tokens=2, temperature=0.0)
  ref = generate(
    small_model, np.array([[5, 6, 0, 0]], np.int32), [2], max_new_tokens=2, temperature=0.0
  )
  np.testing.assert_array_equal(out.tokens, ref.tokens)


def test_package_attribute_is_the_function():
  assert callable(generate_pkg.generate) and generate_pkg.generate is generate_fn
  assert generate_pkg.generate.__name__ == "generate"


def test_import_does_not_pull_torch():
  code = "import sys, reasoning_jax.generate; assert 'torch' not in sys.modules, 'torch imported'"
  subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
