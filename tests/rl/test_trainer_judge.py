"""The judge recipes' config errors (named before any training), the rollout scorer hook and
token-level advantages in the trainer's advantage step. Both judge recipes run end to end
through `run_rl` in the reproduction suite's `grad2reward` entry (`tests/test_reproduce.py`
checks their logs), so no second end-to-end run is here."""

import os
import sys

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from reasoning_jax import rl
from reasoning_jax.credit import DenseRewards
from reasoning_jax.rl.batch_advantages import compute_advantages
from reasoning_jax.rl.recipes import RECIPES
from reasoning_jax.rl.rollout import RolloutBatch
from reasoning_jax.rl.trainer import ConfigError, run_rl

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def judge_config(tmp_path, **changes):
  sys.path.insert(0, REPO)
  from configs import rl_rubric
  from tests.rl.test_trainer import rl_config

  c = rl_config(tmp_path, loss="grad2reward", num_steps=2, eval_every=100, plot=False)
  c.sft.task, c.sft.task_config, c.sft.reward = "rubric", "default", "rubric_rules"
  c.sft.task_overrides = {"num_train": 32, "num_test": 4, "num_judge": 32}
  c.sft.seq_len, c.sft.num_steps, c.sft.eval_examples = 160, 2, 4
  c.max_new_tokens, c.eval_examples = 12, 4
  c.loss_overrides = ml_collections.ConfigDict({"beta": 0.0})
  c.judge = rl_rubric.get_config().judge
  c.judge.length_bucket = 32
  for key, value in changes.items():
    c[key] = value
  return c


@pytest.mark.parametrize(
  "change, match",
  [
    (dict(loss="dispo"), "config.judge is set but config.loss='dispo'"),
    (dict(judge=ml_collections.ConfigDict({"temperature": 1.0})), "unknown config.judge keys"),
    (dict(judge=ml_collections.ConfigDict({"tau": 0.0})), "config.judge: .*tau must be > 0"),
    (dict(judge=ml_collections.ConfigDict({"model": "/nope"})), "is not a directory"),
    # The byte tokenizer spells " True" with 5 tokens: refused before any training.
    (dict(judge=ml_collections.ConfigDict({})), "config.judge: .*tokenizes to 5 tokens"),
  ],
)
def test_judge_config_errors_name_the_key(tmp_path, change, match):
  config = judge_config(tmp_path, **change)
  with pytest.raises(ConfigError, match=match):
    run_rl(config)
  assert not os.path.exists(os.path.join(config.sft.workdir, "checkpoints"))


def _batch(rewards, token_rewards=None):
  n, t = 4, 6
  mask = np.zeros((n, t), np.float32)
  mask[:, 2:5] = 1
  mask[3, 4] = 0  # A shorter response.
  return RolloutBatch(
    tokens=np.ones((n, t), np.int32),
    mask=mask,
    old_logp=None,
    sampler_logp=np.zeros((n, t), np.float32),
    ref_logp=None,
    rewards=np.asarray(rewards, np.float32),
    group_ids=np.asarray([0, 0, 1, 1], np.int32),
    completion_lengths=mask.sum(1).astype(np.int32),
    truncated=np.zeros(n, bool),
    completions=[""] * n,
    token_rewards=token_rewards,
  )


def test_token_level_advantages_in_the_trainer():
  config = ml_collections.ConfigDict({"advantage_overrides": {}, "max_new_tokens": 3})
  # Dense token rewards go to token_grpo as they are.
  token = np.zeros((4, 6), np.float32)
  token[0, 2:5] = [0.5, 0.25, 0.25]
  token[2, 3] = 1.0
  batch = _batch(token.sum(1), token)
  adv, _ = compute_advantages(
    RECIPES["grad2reward"], batch, config, graphdef=None, params=None, logprob_fn=None
  )
  want = rl.token_grpo_advantages(
    jnp.asarray(token), mask=jnp.asarray(batch.mask), group_ids=jnp.asarray(batch.group_ids)
  )
  np.testing.assert_array_equal(adv, np.asarray(want))
  assert adv.shape == (4, 6) and np.all(adv[batch.mask == 0] == 0)
  # Without token rewards the sequence reward sits on the last token: a constant return, so
  # each row's advantage is constant over its response.
  sparse = _batch([1.0, 0.0, 0.0, 1.0])
  adv, _ = compute_advantages(
    RECIPES["grad2reward"], sparse, config, graphdef=None, params=None, logprob_fn=None
  )
  for i in range(4):
    row = adv[i][sparse.mask[i] > 0]
    assert np.all(row == row[0]) and row[0] != 0


def test_scorer_replaces_verifier_rewards_in_rollouts():
  """`collect_rollouts(scorer=)`: the scorer's rewards and token rewards reach the batch and
  select / concatenate keep them aligned."""
  from flax import nnx

  from reasoning_jax.models import Transformer, get_preset
  from reasoning_jax.rl.rollout import collect_rollouts
  from reasoning_jax.tokenizers import ByteTokenizer
  import jax

  tok = ByteTokenizer()
  model = Transformer(
    get_preset("tiny-qwen3", vocab_size=tok.vocab_size, num_layers=1), rngs=nnx.Rngs(0)
  )
  graphdef, params = nnx.split(model, nnx.Param)
  seen = {}

  def scorer(*, tokens, mask, completions, verifier_rewards, question, **_):
    seen["question"] = question
    token = mask * np.arange(mask.shape[1])[None]
    return DenseRewards(token, token.sum(1), np.zeros((len(completions), 1), bool), {"x": 1.0})

  scorer.fields = ("question",)
  prompts = np.asarray([[1, 65, 66, 0], [1, 67, 0, 0]], np.int32)
  stats = {}
  batch = collect_rollouts(
    graphdef,
    params,
    dict(
      prompts=prompts,
      prompt_lengths=np.asarray([3, 2]),
      answer=["a", "b"],
      question=np.asarray(["qa", "qb"], dtype=object),
    ),
    tokenizer=tok,
    reward_fn=lambda texts, answers, **f: np.zeros(len(texts)),
    group_size=2,
    max_new_tokens=4,
    key=jax.random.key(0),
    scorer=scorer,
    scorer_stats=stats,
  )
  assert seen["question"] == ["qa", "qa", "qb", "qb"] and stats == {"x": 1.0}
  np.testing.assert_allclose(batch.rewards, batch.token_rewards.sum(1))
  both = RolloutBatch.concatenate([batch.select(np.asarray([2, 3])), batch.select(np.asarray([0]))])
  np.testing.assert_allclose(both.rewards, both.token_rewards.sum(1))


def test_judge_agreement_per_item_by_hand():
  """`rollout/judge_*` diagnostics: agreement and True rates, overall and per item position."""
  from reasoning_jax.rewards import verdict_agreement

  rubric = {
    "items": [
      {"criterion": "shows the sum 47", "weight": 2.0, "check": {"number": 47}},
      {"criterion": "final answer 94", "weight": 3.0, "check": {"final": 94}},
    ]
  }
  completions = ["23+24=47. Answer: 94", "23+24=46. Answer: 92", "Answer: 94"]
  # Grader: [T, T], [F, F], [F, T]. The judge says True wherever a sum is shown.
  verdicts = np.asarray([[True, True], [True, False], [False, True]])
  out = verdict_agreement([rubric] * 3, completions, verdicts)
  assert out["judge_accuracy"] == pytest.approx(5 / 6)
  assert out["judge_true_rate"] == pytest.approx(4 / 6)
  assert out["grader_true_rate"] == pytest.approx(3 / 6)
  assert out["judge_accuracy_item0"] == pytest.approx(2 / 3)
  assert out["judge_true_rate_item0"] == pytest.approx(2 / 3)
  assert out["grader_true_rate_item0"] == pytest.approx(1 / 3)
  assert out["judge_accuracy_item1"] == 1.0
  assert verdict_agreement([{"items": [{"criterion": "c", "weight": 1.0}]}], ["x"], [[True]]) == {}
