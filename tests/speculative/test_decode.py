"""`speculative_generate` on zoo models: exactness, per-row bookkeeping, errors."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import stats

from reasoning_jax.generate import generate, truncated_log_probs
from reasoning_jax.models.config import get_preset
from reasoning_jax.models.transformer import Transformer
from reasoning_jax.speculative import check_tokenizers, speculative_generate
from reasoning_jax.speculative import decode as decode_module
from reasoning_jax.tokenizers import ByteTokenizer


def _config(vocab=32, layers=2):
  return get_preset("tiny-llama").replace(
    vocab_size=vocab,
    hidden_size=32,
    intermediate_size=64,
    num_layers=layers,
    num_heads=2,
    num_kv_heads=1,
    head_dim=16,
  )


def _noisy_copy(model, scale, seed):
  """A draft that mostly agrees with `model`: its weights plus Gaussian noise."""
  graphdef, state = nnx.split(model)
  leaves, treedef = jax.tree_util.tree_flatten(state)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  noisy = [x + scale * jnp.std(x) * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
  return nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, noisy))


@pytest.fixture(scope="module")
def pair():
  target = Transformer(_config(), rngs=nnx.Rngs(0))
  return target, _noisy_copy(target, 0.5, seed=1)


PROMPTS = np.array([[3, 4, 5, 6, 7], [7, 8, 0, 0, 0], [9, 0, 0, 0, 0], [2, 3, 4, 5, 0]], np.int32)
LENGTHS = np.array([5, 2, 1, 4], np.int32)


_ARGMAX_FNS = {}


def _argmax_fn(model, width=40):
  """Per-position argmax of one full forward (no cache), on a fixed right-padded width."""
  if id(model) in _ARGMAX_FNS:
    return _ARGMAX_FNS[id(model)][1]
  graphdef, state = nnx.split(model)
  fn = jax.jit(lambda st, ids: jnp.argmax(nnx.merge(graphdef, st)(ids), axis=-1))

  def run(seq):
    ids = np.zeros((1, width), np.int32)
    ids[0, : len(seq)] = seq  # Causal: the padding after the sequence changes nothing before it.
    return np.asarray(fn(state, ids))[0, : len(seq)]

  _ARGMAX_FNS[id(model)] = (model, run)  # Holding the model keeps its id unique.
  return run


def _reference_greedy(target, draft, prompt, k, max_new, eos):
  """Step-by-step greedy speculative decoding without caches (full forward each time)."""
  fns = {id(target): _argmax_fn(target), id(draft): _argmax_fn(draft)}
  argmax_at = lambda model, seq: fns[id(model)](seq)
  out, hist = [int(argmax_at(target, prompt)[-1])], []
  if out[-1] == eos or max_new == 1:
    return out, hist
  while True:
    ctx = list(prompt) + out
    drafts = []
    for _ in range(k):
      drafts.append(int(argmax_at(draft, ctx + drafts)[-1]))
    preds = argmax_at(target, ctx + drafts)[len(ctx) - 1 :]
    n = 0
    while n < k and drafts[n] == preds[n]:
      n += 1
    hist.append(n)
    for token in drafts[:n] + [int(preds[n])]:
      out.append(token)
      if token == eos or len(out) == max_new:
        return out, hist


@pytest.mark.parametrize("k", [1, 3])
def test_greedy_matches_target_greedy_and_the_reference(pair, k):
  target, draft = pair
  max_new = 14
  plain = generate(target, PROMPTS, LENGTHS, max_new_tokens=max_new, temperature=0.0)
  stats_ = {}
  spec = speculative_generate(
    target,
    draft,
    PROMPTS,
    LENGTHS,
    max_new_tokens=max_new,
    num_draft=k,
    temperature=0.0,
    stats=stats_,
  )
  np.testing.assert_array_equal(spec.tokens, plain.tokens)
  np.testing.assert_array_equal(spec.lengths, plain.lengths)
  np.testing.assert_allclose(spec.logprobs, plain.logprobs, atol=1e-5)
  hist = np.zeros(k + 1, int)
  for row in range(len(PROMPTS)):
    tokens, row_hist = _reference_greedy(
      target, draft, PROMPTS[row, : LENGTHS[row]].tolist(), k, max_new, eos=None
    )
    np.testing.assert_array_equal(np.asarray(spec.tokens[row]), tokens)
    hist += np.bincount(row_hist, minlength=k + 1)
  np.testing.assert_array_equal(stats_["acceptance_histogram"], hist)
  assert 0 < hist[1:].sum() and hist[0] > 0  # The noisy draft is sometimes right, sometimes not.
  assert stats_["row_target_calls"] == hist.sum() + len(PROMPTS)


def test_eos_inside_an_accepted_block_stops_the_row(pair):
  target, draft = pair
  plain = generate(target, PROMPTS, LENGTHS, max_new_tokens=14, temperature=0.0)
  eos = int(plain.tokens[0, 5])  # Row 0 emits it mid-sequence.
  k = 3
  spec = speculative_generate(
    target,
    draft,
    PROMPTS,
    LENGTHS,
    max_new_tokens=14,
    num_draft=k,
    temperature=0.0,
    eos_id=eos,
    pad_id=31,
  )
  ref = generate(
    target, PROMPTS, LENGTHS, max_new_tokens=14, temperature=0.0, eos_id=eos, pad_id=31
  )
  np.testing.assert_array_equal(spec.tokens, ref.tokens)
  np.testing.assert_array_equal(spec.lengths, ref.lengths)
  np.testing.assert_array_equal(spec.done, ref.done)
  assert bool(spec.done[0]) and int(spec.lengths[0]) <= 6
  for row in range(len(PROMPTS)):
    tokens, _ = _reference_greedy(
      target, draft, PROMPTS[row, : LENGTHS[row]].tolist(), k, 14, eos=eos
    )
    assert int(spec.lengths[row]) == len(tokens)
    np.testing.assert_array_equal(np.asarray(spec.tokens[row, : len(tokens)]), tokens)


def test_identical_draft_accepts_everything(pair):
  target, _ = pair
  stats_ = {}
  spec = speculative_generate(
    target,
    target,
    PROMPTS,
    LENGTHS,
    max_new_tokens=13,
    num_draft=3,
    temperature=0.7,
    key=jax.random.key(0),
    stats=stats_,
  )
  hist = stats_["acceptance_histogram"]
  assert hist[:3].sum() == 0 and hist[3] > 0
  assert stats_["acceptance_rate"] == pytest.approx(1.0, abs=1e-5)
  np.testing.assert_array_equal(spec.lengths, 13)
  assert stats_["tokens_per_target_call"] == pytest.approx(13 / 4)  # 1 + 3 x 4 per 4 calls.


def test_returned_logprobs_equal_a_teacher_forced_pass(pair):
  target, draft = pair
  temperature, top_p = 0.8, 0.9
  spec = speculative_generate(
    target,
    draft,
    PROMPTS,
    LENGTHS,
    max_new_tokens=10,
    num_draft=2,
    temperature=temperature,
    top_p=top_p,
    key=jax.random.key(3),
  )
  for row in range(len(PROMPTS)):
    prompt = PROMPTS[row, : LENGTHS[row]].tolist()
    new = np.asarray(spec.tokens[row, : spec.lengths[row]]).tolist()
    logits = target(jnp.asarray([prompt + new], jnp.int32))[0, len(prompt) - 1 : -1]
    raw = jax.nn.log_softmax(logits, axis=-1)
    warped = truncated_log_probs(logits, temperature, None, top_p)
    idx = jnp.asarray(new)[:, None]
    np.testing.assert_allclose(
      spec.logprobs[row, : len(new)], jnp.take_along_axis(raw, idx, 1)[:, 0], atol=2e-5
    )
    np.testing.assert_allclose(
      spec.sampling_logprobs[row, : len(new)], jnp.take_along_axis(warped, idx, 1)[:, 0], atol=2e-5
    )
    assert np.all(np.asarray(spec.logprobs[row, len(new) :]) == 0.0)


@pytest.mark.parametrize(
  "k, temperature, top_k, top_p",
  [(1, 1.0, None, 1.0), (3, 0.8, None, 0.9), (2, 1.2, 4, 1.0)],
)
def test_sampled_sequences_follow_the_target_distribution(k, temperature, top_k, top_p):
  """Chi-square over every 3-token continuation on a 6-token vocabulary (fixed seed)."""
  vocab, new, rows = 6, 3, 6000
  target = Transformer(_config(vocab=vocab), rngs=nnx.Rngs(5))
  draft = _noisy_copy(target, 1.0, seed=6)
  prompt = [1, 2, 3]
  spec = speculative_generate(
    target,
    draft,
    np.tile(prompt, (rows, 1)),
    np.full(rows, 3),
    max_new_tokens=new,
    num_draft=k,
    temperature=temperature,
    top_k=top_k,
    top_p=top_p,
    key=jax.random.key(7),
  )
  seqs = np.asarray(list(itertools.product(range(vocab), repeat=new)))
  full = jnp.asarray(np.concatenate([np.tile(prompt, (len(seqs), 1)), seqs], 1), jnp.int32)
  logits = target(full)[:, len(prompt) - 1 : -1]
  warped = truncated_log_probs(logits, temperature, top_k, top_p)
  log_prob = jnp.take_along_axis(warped, jnp.asarray(seqs)[..., None], -1)[..., 0].sum(-1)
  probs = np.exp(np.asarray(log_prob, np.float64))
  index = np.asarray(spec.tokens) @ (vocab ** np.arange(new)[::-1])
  counts = np.bincount(index, minlength=len(seqs))
  assert counts[probs == 0].sum() == 0, "emitted a continuation the warped target excludes"
  expected = probs / probs.sum() * rows
  big = expected >= 5  # Pool the rare continuations into one bin.
  obs = np.append(counts[big], counts[~big].sum())
  exp = np.append(expected[big], expected[~big].sum())
  keep = exp > 0
  pvalue = stats.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum()).pvalue
  assert pvalue > 1e-3


def test_one_compiled_program_serves_every_k_up_to_max_draft(pair):
  target, draft = pair
  kwargs = dict(max_new_tokens=9, temperature=0.0, max_draft=4)
  before = decode_module.TRACE_COUNTS["decode"]
  outs = [
    speculative_generate(target, draft, PROMPTS, LENGTHS, num_draft=k, **kwargs) for k in (1, 2, 4)
  ]
  assert decode_module.TRACE_COUNTS["decode"] - before <= 1
  for out in outs[1:]:
    np.testing.assert_array_equal(out.tokens, outs[0].tokens)


def test_padding_rows_are_done_at_once_and_count_in_no_statistic(pair):
  """`rows=4` over the 4 prompts plus 3 padding copies (a batch padded to a mesh's shards):
  the real rows' outputs and every statistic equal the unpadded run's (greedy: the acceptance
  test is deterministic); the padding rows stop after their first token."""
  target, draft = pair
  kwargs = dict(max_new_tokens=9, num_draft=3, temperature=0.0)
  plain_stats, padded_stats = {}, {}
  plain = speculative_generate(target, draft, PROMPTS, LENGTHS, stats=plain_stats, **kwargs)
  prompts = np.concatenate([PROMPTS, np.repeat(PROMPTS[-1:], 3, axis=0)])
  lengths = np.concatenate([LENGTHS, np.repeat(LENGTHS[-1:], 3)])
  padded = speculative_generate(
    target, draft, prompts, lengths, stats=padded_stats, rows=4, **kwargs
  )
  np.testing.assert_array_equal(padded.tokens[:4], plain.tokens)
  np.testing.assert_array_equal(padded.lengths[:4], plain.lengths)
  np.testing.assert_array_equal(padded.lengths[4:], 1)
  for name in ("target_calls", "emitted", "row_target_calls", "tokens_per_target_call"):
    assert padded_stats[name] == plain_stats[name], name
  for name in ("acceptance_histogram", "acceptance_rate_by_position"):
    np.testing.assert_array_equal(padded_stats[name], plain_stats[name])
  for bad in (0, 8, 2.0, True):
    with pytest.raises(ValueError, match=r"rows must be an int in \[1, B\] = \[1, 7\]"):
      speculative_generate(target, draft, prompts, lengths, rows=bad, **kwargs)


def test_bad_inputs_name_the_argument(pair):
  target, draft = pair
  run = lambda **kw: speculative_generate(
    kw.pop("target", target),
    kw.pop("draft", draft),
    PROMPTS,
    LENGTHS,
    **{"max_new_tokens": 8, "temperature": 0.0, **kw},
  )
  other_vocab = Transformer(_config(vocab=40), rngs=nnx.Rngs(0))
  with pytest.raises(
    ValueError, match=r"draft.config.vocab_size=40 != target.config.vocab_size=32"
  ):
    run(draft=other_vocab)
  gla = Transformer(_config().replace(mixer=("attention", "gla")), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"draft layer 1 \(mixer 'gla'\) keeps a GLACache"):
    run(draft=gla)
  with pytest.raises(ValueError, match=r"target layer 1 \(mixer 'gla'\)"):
    run(target=gla)
  with pytest.raises(ValueError, match=r"num_draft must be >= 1"):
    run(num_draft=0)
  with pytest.raises(ValueError, match=r"num_draft must be in \[1, max_draft\] = \[1, 2\]"):
    run(num_draft=3, max_draft=2)
  with pytest.raises(TypeError, match="num_draft must be an int"):
    run(num_draft=2.0)
  with pytest.raises(ValueError, match=r"\+ 4 max_draft .* > cache_size=16"):
    run(num_draft=4, cache_size=16)
  with pytest.raises(ValueError, match="key is required"):
    run(temperature=1.0)


def test_tokenizer_check():
  check_tokenizers(ByteTokenizer(), ByteTokenizer())

  class Shifted(ByteTokenizer):
    def encode(self, text, **kwargs):
      return [t + 1 for t in super().encode(text, **kwargs)]

  with pytest.raises(ValueError, match="encode the same text differently"):
    check_tokenizers(ByteTokenizer(), Shifted())
