"""Grad2Reward through a real (tiny) judge: verdict tokens, the position map on a chat template,
the input-only backward, conservation, batched == looped, the ORM variant and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.credit import (
  Grad2Reward,
  Grad2RewardConfig,
  JudgeError,
  JudgeFormat,
  JudgeFunctions,
  build_judge_batch,
  check_same_tokenizer,
  verdict_token_id,
)
from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.tokenizers import ByteTokenizer, HFTokenizer

BYTE = dict(true_word="Y", false_word="N", template="Q:{question}\nR:{response}\nC:{criterion}\nV:")


@pytest.fixture(scope="module")
def bpe():
  from tests.helpers.tiny_hf import CHAT_TEMPLATE, train_tokenizer

  judged = ("Verdict: True", "Verdict: False", "True", "False") * 50
  return HFTokenizer(
    train_tokenizer(500, extra=judged), eos_token="<|im_end|>", chat_template=CHAT_TEMPLATE
  )


def _judge(vocab=260, seed=0):
  config = get_preset("tiny-qwen3", vocab_size=vocab, hidden_size=32, intermediate_size=64)
  return Transformer(config, rngs=nnx.Rngs(seed))


def _policy_batch(tok, prompts, responses, eos_id):
  """Right-padded [N, S] prompt + response (+ EOS) and the response mask."""
  rows = [(tok.encode(p), tok.encode(r) + [eos_id]) for p, r in zip(prompts, responses)]
  width = max(len(p) + len(r) for p, r in rows) + 2
  tokens = np.zeros((len(rows), width), np.int32)
  mask = np.zeros((len(rows), width), np.float32)
  for i, (p, r) in enumerate(rows):
    tokens[i, : len(p) + len(r)] = p + r
    mask[i, len(p) : len(p) + len(r)] = 1
  return tokens, mask


RUBRICS = [
  [
    {"criterion": "states 47", "weight": 2.0},
    {"criterion": "answers", "weight": 1.0},
    {"criterion": "repeats", "weight": -1.0},
  ],
  [{"criterion": "answers", "weight": 1.0}],
]


def test_verdict_tokens_are_resolved_in_context(bpe):
  """The 'True' vs ' True' pitfall: the verdict is the token that follows the template."""
  spaced = verdict_token_id(bpe, " True", context="Verdict:")
  assert spaced == bpe.encode(" True")[-1] and len(bpe.encode(" True")) == 1
  assert spaced != bpe.encode("True")[0]
  fmt = JudgeFormat(chat=True, true_word="True", false_word="False")
  true_id, false_id = fmt.verdict_ids(bpe)  # After the assistant header's newline.
  assert bpe.decode([true_id]) == "True" and bpe.decode([false_id]) == "False"
  with pytest.raises(JudgeError, match="merges with the end of the template"):
    verdict_token_id(bpe, "True", context="Verdict: ", argument="true_word")
  with pytest.raises(JudgeError, match="tokenizes to 5 tokens"):
    JudgeFormat().verdict_ids(ByteTokenizer())  # " True" is 5 bytes.


def test_position_map_on_a_real_chat_template(bpe):
  eos = bpe.eos_id
  tokens, mask = _policy_batch(
    bpe, ["Tom has 12 apples. ", "x"], ["Tom has 12 + 35 = 47 apples.", "12"], eos
  )
  fmt = JudgeFormat(chat=True, true_word="True", false_word="False", system_prompt="Be strict.")
  jb = build_judge_batch(
    bpe,
    fmt,
    questions=["How many apples?", "q"],
    criteria=[["states 47", "answers"], ["answers"]],
    tokens=tokens,
    mask=mask,
    pairs=[(0, 1), (1, 0), (0, 0)],
    eos_id=eos,
    length_bucket=16,
    pair_bucket=4,
  )
  assert jb.tokens.shape[0] == 4 and jb.tokens.shape[1] % 16 == 0
  for m, (row, _item) in enumerate([(0, 1), (1, 0), (0, 0)]):
    cols = np.flatnonzero(mask[row])[:-1]  # The trailing EOS is not shown to the judge.
    np.testing.assert_array_equal(jb.tokens[m][jb.span[m]], tokens[row, cols])
    np.testing.assert_array_equal(jb.policy_col[m][jb.span[m]], cols)
    text = bpe.decode(jb.tokens[m][jb.valid[m]], skip_special_tokens=False)
    assert text.startswith("<|im_start|>system\nBe strict.<|im_end|>\n<|im_start|>user\n")
    assert text.endswith("<|im_start|>assistant\n") and jb.verdict_pos[m] == jb.valid[m].sum() - 1
    assert bpe.decode(tokens[row, cols]) in text
  assert [jb.row.tolist(), jb.item.tolist()] == [[0, 1, 0], [1, 0, 0]]


def test_bad_inputs_are_named(bpe):
  tok = ByteTokenizer()
  tokens, mask = _policy_batch(tok, ["a"], ["bcd"], tok.eos_id)
  holed = mask.copy()
  holed[0, 2] = 0
  common = dict(questions=["q"], criteria=[["c"]], tokens=tokens, pairs=[(0, 0)])
  with pytest.raises(JudgeError, match="row 0 has padding inside its response"):
    build_judge_batch(tok, JudgeFormat(**BYTE), mask=holed, **common)
  with pytest.raises(JudgeError, match="max_length=8"):
    build_judge_batch(tok, JudgeFormat(**BYTE), mask=mask, max_length=8, **common)
  with pytest.raises(JudgeError, match="judge's tokenizer"):
    check_same_tokenizer(tok, bpe, argument="judge")
  with pytest.raises(JudgeError, match=r"\{response\} exactly once"):
    JudgeFormat(template="{criterion}")
  with pytest.raises(ValueError, match="pair_chunk"):
    Grad2RewardConfig(pair_bucket=8, pair_chunk=12)


def test_judge_backward_is_input_only():
  """No parameter cotangent: no matmul of the attribution pass has a weight's shape, while the
  same score differentiated w.r.t. the parameters does have them."""
  judge = _judge()
  graphdef, params = nnx.split(judge, nnx.Param)
  fns = JudgeFunctions(graphdef, true_id=ord("Y") + 4, false_id=ord("N") + 4)
  tokens = jnp.ones((3, 20), jnp.int32)
  pos = jnp.full((3,), 19, jnp.int32)
  param_shapes = {tuple(x.shape) for x in jax.tree_util.tree_leaves(params) if x.ndim == 2}

  def dot_shapes(jaxpr):
    out = set()
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "dot_general":
        out.add(tuple(eqn.outvars[0].aval.shape))
      for value in eqn.params.values():
        for sub in value if isinstance(value, (tuple, list)) else (value,):
          sub = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr.
          if hasattr(sub, "eqns"):
            out |= dot_shapes(sub)
    return out

  attribution = dot_shapes(jax.make_jaxpr(fns.attribute)(params, tokens, pos).jaxpr)

  def with_params(p):
    return jnp.sum(fns.attribute(p, tokens, pos)[0])

  full = dot_shapes(jax.make_jaxpr(jax.grad(with_params))(params).jaxpr)
  assert not attribution & param_shapes, attribution & param_shapes
  assert full & param_shapes


def test_grad2reward_end_to_end_conserves_and_matches_looped():
  tok = ByteTokenizer()
  judge = _judge(vocab=tok.vocab_size)
  tokens, mask = _policy_batch(tok, ["add 12 and 35", "hi"], ["12+35=47. 47", "ok"], tok.eos_id)
  questions = ["add 12 and 35", "hi"]
  config = Grad2RewardConfig(**BYTE, length_bucket=32, pair_bucket=4, pair_chunk=4)
  g2r = Grad2Reward(judge, tok, config, eos_id=tok.eos_id)
  # Force a mix of verdicts (the random judge's margins are arbitrary): items 0 and 2 of row 0
  # (weights 2 and -1) and row 1's item are True.
  forced = {(0, 0): 1.0, (0, 1): -1.0, (0, 2): 1.0, (1, 0): 1.0}
  real_verdicts = g2r.verdicts

  def verdicts(pairs, *args):
    value, _ = real_verdicts(pairs, *args)
    return value, np.asarray([forced[p] for p in pairs])

  g2r.verdicts = verdicts
  out = g2r(tokens, mask, questions, RUBRICS)
  assert out.verdicts.tolist() == [[True, False, True], [True, False, False]]
  np.testing.assert_allclose(out.rewards, [(2.0 - 1.0) / 3.0, 1.0], atol=1e-6)
  np.testing.assert_allclose(out.token_rewards.sum(-1), out.rewards, atol=1e-5)  # Conservation.
  eos_cols = [np.flatnonzero(mask[i])[-1] for i in range(2)]
  assert np.all(out.token_rewards[mask == 0] == 0)
  assert all(out.token_rewards[i, c] == 0 for i, c in enumerate(eos_cols))  # EOS not judged.
  assert out.stats["attributed_pairs"] == 3 and out.stats["attribution_entropy"] > 0

  # The judge is a frozen copy: changing the policy model afterwards changes nothing.
  judge.embed[...] = judge.embed[...] * 0
  looped = Grad2Reward(
    _judge(vocab=tok.vocab_size),
    tok,
    config.__class__(**{**config.__dict__, "batched": False}),
    eos_id=tok.eos_id,
  )
  looped.verdicts = lambda pairs, *a: (np.zeros(len(pairs)), np.asarray([forced[p] for p in pairs]))
  again = looped(tokens, mask, questions, RUBRICS)
  np.testing.assert_allclose(again.token_rewards, out.token_rewards, atol=1e-5)

  # All False -> all-zero token rewards; tau = inf spreads the reward uniformly.
  g2r.verdicts = lambda pairs, *a: (np.zeros(len(pairs)), -np.ones(len(pairs)))
  none = g2r(tokens, mask, questions, RUBRICS)
  assert np.all(none.token_rewards == 0) and none.rewards.tolist() == [0.0, 0.0]
  uniform = Grad2Reward(judge, tok, config.__class__(**{**config.__dict__, "tau": float("inf")}))
  uniform.verdicts = lambda pairs, *a: (np.zeros(len(pairs)), np.ones(len(pairs)))
  spread = uniform(tokens[1:], mask[1:], questions[1:], RUBRICS[1:])
  cols = np.flatnonzero(mask[1])  # No eos_id given: the EOS is judged too.
  np.testing.assert_allclose(spread.token_rewards[0, cols], 1.0 / cols.size, atol=1e-6)


def test_orm_variant_adds_the_value_on_the_last_token():
  tok = ByteTokenizer()
  config = Grad2RewardConfig(**BYTE, orm=True, length_bucket=32, pair_bucket=2, pair_chunk=2)
  g2r = Grad2Reward(_judge(vocab=tok.vocab_size), tok, config, eos_id=tok.eos_id)
  tokens, mask = _policy_batch(tok, ["2+2", "3+3"], ["4", "7"], tok.eos_id)
  out = g2r(tokens, mask, ["2+2", "3+3"], outcome_rewards=[1.0, 0.0])
  value = out.rewards - np.asarray([1.0, 0.0])
  assert np.all((value > 0) & (value < 1))  # V = p(True) of the correctness criterion.
  np.testing.assert_allclose(out.token_rewards.sum(-1), out.rewards, atol=1e-5)
  last = [np.flatnonzero(mask[i])[-1] for i in range(2)]
  assert out.token_rewards[1, last[1]] == pytest.approx(value[1], abs=1e-6)  # R = 0: V only.
  with pytest.raises(JudgeError, match="outcome_rewards"):
    g2r(tokens, mask, ["a", "b"])


def test_judge_pairs_sharded_over_the_mesh_match_one_device():
  """`mesh=`: each judge call's pairs are split over the batch axes (the bucket rounded up to
  the shard count, unplaced judge parameters replicated) with the one-device results."""
  from reasoning_jax import sharding as sharding_lib

  tok = ByteTokenizer()
  tokens, mask = _policy_batch(tok, ["add 12 and 35", "hi"], ["12+35=47. 47", "ok"], tok.eos_id)
  questions = ["add 12 and 35", "hi"]
  config = Grad2RewardConfig(**BYTE, length_bucket=32, pair_bucket=3, pair_chunk=3, tau=0.5)
  mesh = sharding_lib.make_mesh({"data": 4, "fsdp": 2, "tensor": 1})
  one = Grad2Reward(_judge(vocab=tok.vocab_size), tok, config, eos_id=tok.eos_id)
  sharded = Grad2Reward(_judge(vocab=tok.vocab_size), tok, config, eos_id=tok.eos_id, mesh=mesh)
  assert (sharded.pair_bucket, sharded.pair_chunk) == (24, 24)
  pairs = [(0, 0), (0, 1), (0, 2), (1, 0)]
  criteria = [[r["criterion"] for r in rubric] for rubric in RUBRICS]
  jb = sharded._batch(pairs, questions, criteria, tokens, mask)
  placed, _ = sharded._place(jb)
  assert placed.shape[0] == 24 and len(placed.sharding.device_set) == 8
  assert placed.sharding.spec[0] == ("data", "fsdp")
  for got, want in zip(
    sharded.verdicts(pairs, questions, criteria, tokens, mask),
    one.verdicts(pairs, questions, criteria, tokens, mask),
  ):
    np.testing.assert_allclose(got, want, atol=1e-5)
  # Dense rewards with every item forced True: the same attribution on 8 devices as on one.
  for g in (one, sharded):
    g.verdicts = lambda p, *a: (np.zeros(len(p)), np.ones(len(p)))
  a, b = one(tokens, mask, questions, RUBRICS), sharded(tokens, mask, questions, RUBRICS)
  np.testing.assert_allclose(b.token_rewards, a.token_rewards, atol=1e-5)
  np.testing.assert_allclose(b.rewards, a.rewards, atol=1e-6)
