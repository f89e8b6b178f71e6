"""`semantic_speculative_generate` on tiny zoo models: spec 2.7 reductions (a) and (b), the
acceptance stream, the online pooling alignment, the answer phase and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import stats

from reasoning_jax.models.config import get_preset
from reasoning_jax.models.transformer import Transformer
from reasoning_jax.speculative import Probe, semantic_speculative_generate


def _config(vocab, layers=2, hidden=32):
  return get_preset("tiny-llama").replace(
    vocab_size=vocab,
    hidden_size=hidden,
    intermediate_size=64,
    num_layers=layers,
    num_heads=2,
    num_kv_heads=1,
    head_dim=16,
  )


def _constant_probe(hidden, value):
  """A probe whose output is `value` whatever the states (last layer zero, bias logit)."""
  probe = Probe(hidden, (8, 4), rngs=nnx.Rngs(0))
  last = probe.layers[-1]
  last.kernel[...] = jnp.zeros_like(last.kernel[...])
  logit = -1e4 if value == 0 else float(np.log(value / (1 - value)))
  last.bias[...] = jnp.full_like(last.bias[...], logit)
  return probe


@pytest.fixture(scope="module")
def models():
  target = Transformer(_config(11), rngs=nnx.Rngs(0))
  draft = Transformer(_config(11, layers=1), rngs=nnx.Rngs(1))
  return target, draft


# --- (a) p_T = 0, no fast path: target-only step-wise sampling -------------------------------


def test_reduction_a_rejects_everything_and_samples_the_target():
  vocab, n = 6, 3000
  target = Transformer(_config(vocab).replace(hidden_size=32), rngs=nnx.Rngs(3))
  draft = Transformer(_config(vocab, layers=1), rngs=nnx.Rngs(4))
  prompt = np.array([1, 2], np.int32)
  stats_ = {}
  out = semantic_speculative_generate(
    target,
    draft,
    _constant_probe(32, 0.0),
    _constant_probe(32, 0.5),
    np.tile(prompt, (n, 1)),
    np.full((n,), 2, np.int32),
    boundary_ids=(4, 5),
    max_new_tokens=2,
    temperature=1.0,
    top_p=1.0,
    fast_path_topk=0,
    key=jax.random.key(0),
    stats=stats_,
  )
  assert stats_["steps_proposed"] > 100 and stats_["steps_accepted"] == 0
  assert stats_["tokens_per_target_pass"] < 1.0  # Every proposal cost a wasted verify pass.
  tokens = np.asarray(out.tokens)
  assert np.all(np.asarray(out.lengths) == 2)
  # Exact target probabilities of the 2-token continuations (teacher-forced).
  p1 = jax.nn.softmax(target(prompt[None])[0, -1])
  ids = np.concatenate([np.tile(prompt, (vocab, 1)), np.arange(vocab)[:, None]], axis=1)
  p2 = jax.nn.softmax(target(jnp.asarray(ids))[:, -1], axis=-1)
  expected = np.asarray(p1[:, None] * p2, np.float64).ravel()
  expected /= expected.sum()
  counts = np.bincount(tokens[:, 0] * vocab + tokens[:, 1], minlength=vocab * vocab)
  assert stats.chisquare(counts, expected * n).pvalue > 1e-3
  # Log-probs are the target's own, teacher-forced.
  np.testing.assert_allclose(
    np.asarray(out.logprobs[:, 0]), np.log(np.asarray(p1))[tokens[:, 0]], atol=1e-5
  )


# --- (b) p_T = p_D: draft-only steps plus the target's bonus tokens ---------------------------


def _greedy(model, width=48):
  graphdef, state = nnx.split(model)
  fn = jax.jit(lambda st, ids: jnp.argmax(nnx.merge(graphdef, st)(ids), axis=-1))

  def next_token(seq):
    ids = np.zeros((1, width), np.int32)
    ids[0, : len(seq)] = seq
    return int(np.asarray(fn(state, ids))[0, len(seq) - 1])

  return next_token


def _reference_b(target, draft, prompt, max_new, step_max, boundary, think):
  """Cache-free reference: greedy draft steps, each followed by the target's argmax bonus;
  a draft step holding `think` is dropped and the target finishes greedily."""
  t_next, d_next = _greedy(target), _greedy(draft)
  out = []
  while len(out) < max_new:
    ctx = list(prompt) + out
    step = []
    while len(step) < step_max and (not step or step[-1] not in boundary + think):
      step.append(d_next(ctx + step))
    if think and think[0] in step:
      while len(out) < max_new:
        out.append(t_next(list(prompt) + out))
      break
    out += step
    if len(out) < max_new:
      out.append(t_next(list(prompt) + out))
      if think and out[-1] == think[0]:
        while len(out) < max_new:
          out.append(t_next(list(prompt) + out))
  return out[:max_new]


# think_at: None (no answer phase), or the index in row 0's no-think output of the token used
# as the end-of-thinking id (4: a bonus token; 5: inside a draft step, which is then dropped).
@pytest.mark.parametrize("think_at", [None, 4, 5])
def test_reduction_b_accepts_everything_draft_steps_plus_bonus(models, think_at):
  target, draft = models
  prompts = np.array([[3, 4, 5], [7, 8, 0]], np.int32)
  lengths = np.array([3, 2], np.int32)
  boundary = (2, 9)
  think = ()
  plain = _reference_b(target, draft, [3, 4, 5], 12, 4, boundary, ())
  if think_at is not None:
    think = (plain[think_at],)
    assert think[0] not in plain[:think_at] + list(boundary)
  stats_ = {}
  out = semantic_speculative_generate(
    target,
    draft,
    _constant_probe(32, 0.4),
    _constant_probe(32, 0.4),
    prompts,
    lengths,
    boundary_ids=boundary,
    max_new_tokens=12,
    max_step_tokens=4,
    temperature=0.0,
    bonus_temperature=1e-5,
    fast_path_topk=0,
    target_first_step=False,
    end_think_id=think[0] if think else None,
    key=jax.random.key(1),
    stats=stats_,
  )
  assert stats_["steps_accepted"] == stats_["steps_proposed"] > 0
  for b in range(2):
    ref = _reference_b(target, draft, prompts[b, : lengths[b]], 12, 4, boundary, think)
    np.testing.assert_array_equal(np.asarray(out.tokens[b]), ref)
  assert stats_["target_steps"] == 0
  if think_at is not None:  # The answer phase changed row 0 (the test is not vacuous).
    assert list(np.asarray(out.tokens[0])) != plain


def _step(next_token, ctx, step_max, boundary):
  step = []
  while len(step) < step_max and (not step or step[-1] not in boundary):
    step.append(next_token(ctx + step))
  return step


def test_mixed_accepts_and_rejections_match_a_cache_free_replay(models):
  """Greedy steps with random verdicts (ratio 0.5, fast path off): replaying the logged
  verdicts without any cache (target steps after rejections, draft steps plus bonus after
  acceptances) gives the same tokens, so every rollback by length left both caches right."""
  target, draft = models
  prompts = np.array([[3, 4, 5], [7, 8, 0]], np.int32)
  lengths = np.array([3, 2], np.int32)
  boundary, n, step_max = (2, 9), 16, 4
  stats_ = {}
  out = semantic_speculative_generate(
    target,
    draft,
    _constant_probe(32, 0.3),
    _constant_probe(32, 0.6),
    prompts,
    lengths,
    boundary_ids=boundary,
    max_new_tokens=n,
    max_step_tokens=step_max,
    temperature=0.0,
    bonus_temperature=1e-5,
    fast_path_topk=0,
    key=jax.random.key(2),
    stats=stats_,
  )
  verdicts = [s["accepted"] for s in stats_["draft_steps"]]
  assert any(verdicts) and not all(verdicts)  # Both paths are exercised.
  t_next, d_next = _greedy(target), _greedy(draft)
  for b in range(2):
    log = [s for s in stats_["draft_steps"] if s["row"] == b]
    prompt, got, target_turn = list(prompts[b, : lengths[b]]), [], True
    while len(got) < n:
      if target_turn:
        got += _step(t_next, prompt + got, step_max, boundary)
        target_turn = False
        continue
      step = _step(d_next, prompt + got, step_max, boundary)
      entry = log.pop(0)
      assert list(entry["step"]) == step and entry["context_length"] == len(prompt + got)
      if entry["accepted"]:
        got += step
        got.append(t_next(prompt + got))
      else:
        target_turn = True
    assert not log
    np.testing.assert_array_equal(np.asarray(out.tokens[b]), got[:n])


def test_acceptance_stream_is_separate_from_sampling(models):
  target, draft = models
  prompts, lengths = np.tile(np.array([[3, 4, 5]], np.int32), (8, 1)), np.full((8,), 3)
  kw = dict(
    boundary_ids=(2, 9),
    max_new_tokens=10,
    max_step_tokens=4,
    fast_path_topk=0,
    temperature=1.0,
    top_p=1.0,
    target_first_step=False,
    key=jax.random.key(5),
  )
  runs = []
  for accept_seed in (0, 1):
    # Ratio 1: the acceptance draw cannot matter, so the outputs must be identical.
    runs.append(
      semantic_speculative_generate(
        target,
        draft,
        _constant_probe(32, 0.3),
        _constant_probe(32, 0.3),
        prompts,
        lengths,
        accept_key=jax.random.key(100 + accept_seed),
        **kw,
      )
    )
  np.testing.assert_array_equal(runs[0].tokens, runs[1].tokens)
  # Ratio 0.5: the first proposals are the same draws; which are accepted differs.
  logs = []
  for accept_seed in (0, 1):
    stats_ = {}
    semantic_speculative_generate(
      target,
      draft,
      _constant_probe(32, 0.25),
      _constant_probe(32, 0.5),
      prompts,
      lengths,
      accept_key=jax.random.key(100 + accept_seed),
      stats=stats_,
      **kw,
    )
    logs.append([s for s in stats_["draft_steps"] if s["iteration"] == 0])
  assert [s["step"] for s in logs[0]] == [s["step"] for s in logs[1]]
  assert [s["accepted"] for s in logs[0]] != [s["accepted"] for s in logs[1]]


def test_online_probe_inputs_are_the_predicting_positions(models):
  """Every verified step's probe outputs equal the probes on a fresh teacher-forced forward
  pooled over positions c-1 .. c+T-2 (and not over an off-by-one window)."""
  target, draft = models
  t_probe, d_probe = Probe(32, (16, 8), rngs=nnx.Rngs(7)), Probe(32, (16, 8), rngs=nnx.Rngs(8))
  prompts = np.array([[3, 4, 5], [7, 8, 0]], np.int32)
  lengths = np.array([3, 2], np.int32)
  stats_ = {}
  out = semantic_speculative_generate(
    target,
    draft,
    t_probe,
    d_probe,
    prompts,
    lengths,
    boundary_ids=(2, 9),
    max_new_tokens=14,
    max_step_tokens=4,
    key=jax.random.key(3),
    stats=stats_,
  )
  assert stats_["steps_proposed"] >= 2
  checked_shift = False
  forwards = {}
  for name, model in (("target", target), ("draft", draft)):
    graphdef, state = nnx.split(model)
    fn = jax.jit(lambda st, ids, g=graphdef: nnx.merge(g, st).forward(ids)[0])
    forwards[name] = lambda ids, fn=fn, st=state: np.asarray(fn(st, ids))[0]
  for s in stats_["draft_steps"]:
    b, c, step = s["row"], s["context_length"], list(s["step"])
    ids = list(prompts[b, : lengths[b]]) + list(np.asarray(out.tokens[b, : c - lengths[b]]))
    ids = ids + step
    padded = np.zeros((1, 32), np.int32)  # One compiled forward; causal: padding is after.
    padded[0, : len(ids)] = ids
    t = len(step)
    for name, probe, got in (("target", t_probe, s["p_target"]), ("draft", d_probe, s["p_draft"])):
      hidden = forwards[name](jnp.asarray(padded))
      want = float(probe(hidden[c - 1 : c + t - 1].mean(0), deterministic=True))
      np.testing.assert_allclose(got, want, atol=1e-5)
      if t > 1:
        shifted = float(probe(hidden[c : c + t].mean(0), deterministic=True))
        assert abs(shifted - want) > 1e-7
        checked_shift = True
  assert checked_shift


# --- bad input ------------------------------------------------------------------------------


def _call(target, draft, t_probe=None, d_probe=None, **kw):
  args = dict(boundary_ids=(2,), max_new_tokens=4, key=jax.random.key(0))
  args.update(kw)
  return semantic_speculative_generate(
    target,
    draft,
    t_probe or _constant_probe(target.config.hidden_size, 0.5),
    d_probe or _constant_probe(draft.config.hidden_size, 0.5),
    np.array([[1, 2]]),
    np.array([2]),
    **args,
  )


def test_bad_input_is_named(models):
  target, draft = models
  with pytest.raises(ValueError, match="target_probe reads hidden states of size 16"):
    _call(target, draft, t_probe=_constant_probe(16, 0.5))
  with pytest.raises(ValueError, match="draft_probe reads hidden states of size 48"):
    _call(target, draft, d_probe=_constant_probe(48, 0.5))
  other = Transformer(_config(12, layers=1), rngs=nnx.Rngs(2))
  with pytest.raises(ValueError, match="vocab_size=12 != target.config.vocab_size=11"):
    _call(target, other)
  with pytest.raises(ValueError, match="tau_min must be in"):
    _call(target, draft, tau_min=1.5)
  with pytest.raises(ValueError, match="tau_min must be in"):
    _call(target, draft, tau_min=-0.1)
  with pytest.raises(ValueError, match="fast_path_topk must be one of"):
    _call(target, draft, fast_path_topk=3)
  with pytest.raises(ValueError, match="boundary_ids"):
    _call(target, draft, boundary_ids=(11,))
  with pytest.raises(ValueError, match="boundary_ids"):
    _call(target, draft, boundary_ids=())
  with pytest.raises(ValueError, match="bonus_temperature"):
    _call(target, draft, bonus_temperature=0.0)
  with pytest.raises(ValueError, match="end_think_id"):
    _call(target, draft, end_think_id=99)
  with pytest.raises(ValueError, match="max_step_tokens"):
    _call(target, draft, max_step_tokens=0)
  with pytest.raises(ValueError, match="key is required"):
    _call(target, draft, key=None)
  with pytest.raises(TypeError, match="target_probe must be"):
    semantic_speculative_generate(
      target,
      draft,
      object(),
      object(),
      np.array([[1]]),
      np.array([1]),
      boundary_ids=(2,),
      max_new_tokens=2,
    )


def test_runs_on_an_hf_folder(tiny_hf_folder):
  from reasoning_jax.models import from_hf

  model = from_hf(tiny_hf_folder("qwen3"), dtype="float32")
  hidden = model.config.hidden_size
  stats_ = {}
  out = semantic_speculative_generate(
    model,
    model,
    Probe(hidden, (8, 4), rngs=nnx.Rngs(0)),
    Probe(hidden, (8, 4), rngs=nnx.Rngs(1)),
    np.array([[5, 6, 7]]),
    np.array([3]),
    boundary_ids=(10, 11, 12),
    max_new_tokens=8,
    max_step_tokens=3,
    key=jax.random.key(0),
    stats=stats_,
  )
  assert int(out.lengths[0]) == 8 and stats_["steps_proposed"] >= 1
  # The draft is the target itself: every step passes the top-2 fast path or the probe.
  with pytest.raises(ValueError, match="target_probe reads hidden states"):
    _call(model, model, t_probe=Probe(hidden + 1, (4,), rngs=nnx.Rngs(0)))
