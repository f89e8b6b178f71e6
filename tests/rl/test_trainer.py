"""The RL loop end to end: reward rises on an easy task; run_rl wiring, resume, config errors."""

import json
import os
import pathlib
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from reasoning_jax import rl
from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.rl.rollout import (
  assemble_sequences,
  collect_rollouts,
  make_logprob_fn,
  mixed_outcome_groups,
)
from reasoning_jax.rl.trainer import RECIPES, ConfigError, make_rl_loss_fn, run_rl, validate_config
from reasoning_jax.train.metrics import read_metrics
from reasoning_jax.train.step import init_train_state, make_train_step

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class DigitTokenizer:
  """Token t -> the string 't'; id 5 is EOS. Enough for the rollout code."""

  eos_id = 5

  def decode_batch(self, tokens, lengths):
    return [" ".join(str(int(t)) for t in row[:n]) for row, n in zip(tokens, lengths)]


def ones_fraction(completions, answers, **_):
  """Reward: the fraction of emitted tokens equal to 1 (an easy, dense target)."""
  return np.array([c.split().count("1") / max(1, len(c.split())) for c in completions], np.float32)


def test_assemble_sequences_and_mixed_groups():
  tokens, mask = assemble_sequences(
    np.array([[7, 8, 0], [9, 0, 0]]), np.array([2, 1]), np.array([[1, 2], [3, 0]]), np.array([2, 1])
  )
  np.testing.assert_array_equal(tokens, [[7, 8, 1, 2, 0], [9, 3, 0, 0, 0]])
  np.testing.assert_array_equal(mask, [[0, 0, 1, 1, 0], [0, 1, 0, 0, 0]])
  keep = mixed_outcome_groups(np.array([1.0, 1.0, 0.0, 1.0]), np.array([0, 0, 1, 1]))
  np.testing.assert_array_equal(keep, [False, False, True, True])


@pytest.mark.parametrize("recipe", ["grpo", "dispo"])
def test_rl_loop_increases_reward_on_an_easy_task(recipe):
  config = get_preset("tiny-qwen3").replace(
    vocab_size=6, num_layers=1, hidden_size=32, intermediate_size=64, head_dim=16
  )
  model = Transformer(config, rngs=nnx.Rngs(0))
  tx = optax.adam(3e-2)
  graphdef, state = init_train_state(model, tx)
  bound = rl.make_loss(RECIPES[recipe].loss, **({"beta": 0.0} if recipe == "grpo" else {}))
  step = make_train_step(
    graphdef,
    tx,
    make_rl_loss_fn(bound),
    aux_merge=rl.merge_aux,
    aux_finalize=lambda aux, d: rl.summarize_aux(aux),
  )
  logprob_fn = make_logprob_fn(graphdef)
  prompts = {
    "prompts": np.full((4, 2), 2, np.int32),
    "prompt_lengths": np.full((4,), 2),
    "answer": np.array([""] * 4, dtype=object),
  }
  rewards = []
  for i in range(12):
    batch = collect_rollouts(
      graphdef,
      state.params,
      prompts,
      tokenizer=DigitTokenizer(),
      reward_fn=ones_fraction,
      group_size=8,
      max_new_tokens=6,
      key=jax.random.key(i),
      logprob_fn=logprob_fn,
    )
    rewards.append(batch.rewards.mean())
    adv = rl.ADVANTAGES.get(RECIPES[recipe].advantage)(
      jnp.asarray(batch.rewards), group_ids=jnp.asarray(batch.group_ids)
    )
    arrays = {
      "tokens": batch.tokens,
      "mask": batch.mask,
      "old_logp": batch.old_logp,
      "advantages": np.asarray(adv),
      "correct": (batch.rewards > 0.5).astype(np.float32),
    }
    state, metrics = step(state, {k: jnp.asarray(v) for k, v in arrays.items()})
    assert np.isfinite(float(metrics["loss"]))
  assert np.mean(rewards[-3:]) > np.mean(rewards[:3]) + 0.2, rewards


@pytest.mark.parametrize("recipe", ["dispo"])  # The path is loss-agnostic; DISPO is the default.
def test_on_policy_update_without_old_logp_equals_the_recomputed_path(recipe):
  """One update per rollout: old log-probs from the update's own forward pass (no separate
  rollout pass) give the same loss, gradients and TIS weights as recomputing them."""
  config = get_preset("tiny-qwen3").replace(
    vocab_size=6, num_layers=1, hidden_size=32, intermediate_size=64, head_dim=16
  )
  model = Transformer(config, rngs=nnx.Rngs(1))
  graphdef, params = nnx.split(model, nnx.Param)
  prompts = {
    "prompts": np.array([[1, 2, 0], [3, 1, 2]], np.int32),
    "prompt_lengths": np.array([2, 3], np.int32),
    "answer": np.array(["", ""]),
  }
  kwargs = dict(
    tokenizer=DigitTokenizer(),
    reward_fn=ones_fraction,
    group_size=3,
    max_new_tokens=5,
    key=jax.random.key(3),
  )
  full = collect_rollouts(graphdef, params, prompts, **kwargs)
  lean = collect_rollouts(graphdef, params, prompts, recompute_old_logp=False, **kwargs)
  assert lean.old_logp is None and "old_logp" not in lean.arrays()
  np.testing.assert_array_equal(lean.tokens, full.tokens)
  adv = np.asarray(
    rl.ADVANTAGES.get("grpo")(jnp.asarray(full.rewards), group_ids=jnp.asarray(full.group_ids))
  )
  # A sampler that disagrees with the trainer, so the TIS weights are not all 1.
  sampler_logp = full.sampler_logp + 0.9 * full.mask * np.sin(np.arange(full.mask.size)).reshape(
    full.mask.shape
  )
  bound = rl.make_loss(RECIPES[recipe].loss, **({"beta": 0.0} if recipe == "grpo" else {}))
  common = {"tokens": full.tokens, "mask": full.mask, "advantages": adv}
  recomputed = dict(
    common,
    old_logp=full.old_logp,
    is_weights=np.asarray(
      rl.truncated_importance_weights(
        jnp.asarray(full.old_logp), jnp.asarray(sampler_logp), jnp.asarray(full.mask), cap=1.5
      )
    ),
  )
  on_policy = dict(common, sampler_logp=sampler_logp)
  assert (recomputed["is_weights"][full.mask > 0] < 1.0).any()

  def value_and_grad(batch):
    loss_fn = make_rl_loss_fn(bound, tis_cap=1.5)

    def f(p):
      total, denom, _ = loss_fn(
        nnx.merge(graphdef, p), {k: jnp.asarray(v) for k, v in batch.items()}
      )
      return total / denom

    return jax.value_and_grad(f)(params)

  (a, ga), (b, gb) = value_and_grad(recomputed), value_and_grad(on_policy)
  np.testing.assert_allclose(float(a), float(b), rtol=1e-5, atol=1e-7)
  for x, y in zip(jax.tree_util.tree_leaves(ga), jax.tree_util.tree_leaves(gb)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-6)


def rl_config(tmp_path, **changes):
  sys.path.insert(0, REPO)
  from configs import rl_arith
  from tests.train.test_sft import tiny_config

  c = rl_arith.get_config()
  c.workdir = str(tmp_path / "rl")
  c.sft = tiny_config(tmp_path / "sft", tmp_path / "data", num_steps=6)
  c.group_size, c.prompts_per_step, c.max_new_tokens = 2, 4, 8
  c.num_steps, c.eval_every, c.eval_examples, c.checkpoint_every = 3, 2, 8, 2
  c.mini_batches = 1
  c.plot = True
  for key, value in changes.items():
    c[key] = value
  return c


def test_run_rl_end_to_end_and_resume(tmp_path):
  config = rl_config(tmp_path, warmup_steps=2)  # The schedule's count resumes with the state.
  result = run_rl(config)  # Trains the SFT warm start first (none exists yet).
  assert result["step"] == 3 and os.path.exists(result["plot"])
  assert os.path.isdir(os.path.join(config.sft.workdir, "checkpoints"))
  # What to cite for the run: the recipe's loss and estimator, the model's mixer and FFN.
  assert result["citations"][:2] == ["loss:dispo", "advantage estimator:grpo"]
  cited = pathlib.Path(os.path.join(config.workdir, "CITATIONS.bib")).read_text()
  assert "@misc{karaman2026dispo," in cited and "@misc{vaswani2017attention," in cited
  records = read_metrics(config.workdir)
  assert [r["step"] for r in records if "rollout/reward" in r] == [1, 2, 3]
  assert any("train/clip_frac_low" in r or "train/loss" in r for r in records)
  # A few rollouts to read: one row of each of the 4 prompts, every step.
  rollouts = [
    json.loads(line)
    for line in pathlib.Path(os.path.join(config.workdir, "rollouts.jsonl"))
    .read_text()
    .splitlines()
  ]
  assert [r["step"] for r in rollouts] == [1] * 4 + [2] * 4 + [3] * 4
  assert [r["group"] for r in rollouts[:4]] == [0, 1, 2, 3]
  assert all(
    {"prompt", "completion", "answer", "reward", "advantage", "truncated"} <= set(r)
    for r in rollouts
  )
  assert all(r["prompt"] and np.isfinite(r["advantage"]) for r in rollouts)
  # The first held-out questions' greedy completions at every evaluation (0, 2 and final 3).
  path = os.path.join(config.workdir, "eval_samples.jsonl")
  samples = [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]
  assert [r["step"] for r in samples] == [0] * 3 + [2] * 3 + [3] * 3
  assert all({"question", "completion", "answer", "reward"} <= set(r) for r in samples)
  assert samples[0]["question"] == samples[3]["question"]  # The same questions each time.
  evals = [r for r in records if "eval/accuracy" in r]
  assert evals and all(
    0 <= r["eval/sampled_accuracy"] <= r["eval/pass_at_k"] <= 1 for r in evals
  )  # avg@k <= pass@k, at every evaluation.
  config.num_steps = 5  # Resume from step 3 and continue.
  result = run_rl(config)
  assert result["step"] == 5
  assert {"sampled_accuracy", "sampled_accuracy_warm_start", "pass_at_k"} <= set(result)
  steps = [r["step"] for r in read_metrics(config.workdir) if "rollout/reward" in r]
  assert steps == [1, 2, 3, 4, 5]
  # Running the finished run again (the README command twice) trains nothing and succeeds,
  # and logs nothing twice (its final evaluation's line is there already).
  logged = read_metrics(config.workdir)
  assert run_rl(config)["step"] == 5
  assert read_metrics(config.workdir) == logged
  # A warm start trained under another SFT config is refused, naming the keys.
  config.sft.task_overrides = dict(config.sft.task_overrides, answer_noise=0.25)
  config.sft.num_steps = 7
  with pytest.raises(ConfigError, match="num_steps.*task_overrides|task_overrides.*num_steps"):
    run_rl(config)


@pytest.mark.parametrize("loss", ["grpo", "dapo", "arm", "mrpo"])
def test_run_rl_recipes_with_reference_dynamic_sampling_and_reshaping(tmp_path, loss):
  """GRPO keeps a reference model (beta > 0), DAPO samples dynamically, ARM/MRPO reshape."""
  config = rl_config(tmp_path, loss=loss, num_steps=2, eval_every=100, plot=False)
  result = run_rl(config)
  assert result["step"] == 2 and np.isfinite(result["accuracy"])
  records = [r for r in read_metrics(config.workdir) if "train/loss" in r]
  assert len(records) == 2 and all(np.isfinite(r["train/loss"]) for r in records)
  if loss == "grpo":
    assert any("train/kl" in r or "train/kl_mean" in r for r in records)


def test_run_rl_on_two_processes(tmp_path):
  """Two processes x 2 devices (jax.distributed + gloo): each samples its own prompts, the
  update is one global sharded step over both processes' rows; both finish, process 0 writes
  the metrics, the checkpoint holds the final step (its data-iterator state the same on both
  processes, which the checkpointer checks); a JSON item that differs between processes is
  refused; a run preempted at step 1 on both hosts resumes to the straight run's metrics."""

  from reasoning_jax.checkpoint import TrainCheckpointer
  from reasoning_jax.train.sft import run_sft
  from tests.helpers.two_processes import results as two_process_results
  from tests.helpers.two_processes import run_two_processes

  run_sft(rl_config(tmp_path).sft)  # The warm start, once, in this process.
  logs = run_two_processes(
    os.path.join(REPO, "tests", "helpers", "multihost_rl.py"), tmp_path, "grpo"
  )
  results = two_process_results(logs)
  assert sorted(r["pid"] for r in results) == [0, 1] and all(r["step"] == 2 for r in results)
  for r in results:  # Preempted at step 1 on both hosts and resumed: the straight run exactly.
    assert r["first"] == [1, True]
    assert r["resumed_metrics"] == r["straight_metrics"] and len(r["straight_metrics"]) == 4
    assert r["resumed_accuracy"] == r["accuracy"]
  assert all("MISMATCH_REFUSED" in log for log in logs)
  records = read_metrics(str(tmp_path / "rl"))
  assert [r["step"] for r in records if "rollout/reward" in r] == [1, 2]  # Process 0 writes.
  assert all(np.isfinite(r["train/loss"]) for r in records if "train/loss" in r)
  assert any("train/kl" in r or "train/kl_mean" in r for r in records)  # GRPO's reference.
  with TrainCheckpointer(str(tmp_path / "rl" / "checkpoints")) as ckpt:
    assert ckpt.latest_step() == 2


@pytest.mark.parametrize(
  "change,match",
  [
    (dict(loss="ppo2"), "config.loss"),
    (dict(group_size=1), "group_size"),
    (dict(top_p=0.0), "top_p"),
    (dict(mini_batches=3), "mini_batches"),
    (dict(loss_overrides=ml_collections.ConfigDict({"eps_high": -1.0})), "loss_overrides"),
    (dict(loss_overrides=ml_collections.ConfigDict({"no_such_field": 1})), "no_such_field"),
    (dict(warmup_steps=-1), "warmup_steps"),
    (dict(optimizer="lion"), "optimizer"),
    (dict(eval_samples=-1), "eval_samples"),
    (dict(eval_temperature=0.0), "eval_temperature"),
    (dict(learning_rate=-0.1), "config.learning_rate"),
    (dict(learning_rate=0.0), "config.learning_rate"),
    (dict(grad_clip=-1.0), "config.grad_clip"),
    (dict(temperature=-1.0), "config.temperature"),
    (dict(tis_cap=0.0), "config.tis_cap"),
    (dict(num_steps=0), "config.num_steps"),
    (dict(eval_examples=0), "config.eval_examples"),
    (dict(top_k=-1), "config.top_k"),
    (dict(log_rollouts=-1), "config.log_rollouts"),
  ],
)
def test_config_errors_name_the_key(tmp_path, change, match):
  with pytest.raises(ConfigError, match=match):
    validate_config(rl_config(tmp_path, **change))


def test_bad_learning_rate_fails_before_any_step(tmp_path):
  """`--config.learning_rate=-0.1` is refused by run_rl before the warm start or a step."""
  config = rl_config(tmp_path, learning_rate=-0.1)
  with pytest.raises(ConfigError, match="config.learning_rate"):
    run_rl(config)
  assert not os.path.exists(config.workdir) and not os.path.exists(config.sft.workdir)


def test_every_recipe_resolves():
  assert {"grpo", "dapo", "drgrpo", "cispo", "dispo", "arm", "mrpo"} <= set(RECIPES)
  for name, recipe in RECIPES.items():
    assert recipe.loss in rl.LOSSES and recipe.advantage in rl.ADVANTAGES, name


def test_a_users_own_reward_by_import_path(tmp_path):
  """`--config.sft.reward=package.module:function` scores SFT evaluation, RL rollouts and RL
  evaluation with the user's function (here one that accepts everything)."""
  from tests.helpers import own_reward

  config = rl_config(tmp_path, num_steps=1, eval_every=100, plot=False, log_rollouts=0)
  config.sft.reward = "tests.helpers.own_reward:always_right"
  before = len(own_reward.CALLS)
  result = run_rl(config)
  assert result["accuracy"] == 1.0 and result["accuracy_warm_start"] == 1.0
  rewards = [r["rollout/reward"] for r in read_metrics(config.workdir) if "rollout/reward" in r]
  assert rewards == [1.0]
  sft_evals = [r["eval/accuracy"] for r in read_metrics(config.sft.workdir) if "eval/accuracy" in r]
  assert sft_evals and all(a == 1.0 for a in sft_evals)
  assert len(own_reward.CALLS) > before and not os.path.exists(
    os.path.join(config.workdir, "rollouts.jsonl")  # log_rollouts=0: off.
  )
  config.sft.reward = "tests.helpers.own_reward:missing"
  with pytest.raises(ConfigError, match="has no attribute 'missing'"):
    run_rl(config)
