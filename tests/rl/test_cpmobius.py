"""CPMöbius (spec rl.md 8): labels, the filter, coach rewards and gradients, the loop (resume,
two processes, an HF folder, bad input)."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax import rl
from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.rl.cpmobius import (
  CpmConfigError,
  coach_rewards,
  in_band,
  label_group,
  parse_problem,
  player_rewards,
  problem_text,
  validate_config,
)
from reasoning_jax.rl.trainer import make_rl_loss_fn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from configs import cpmobius  # noqa: E402


def test_unique_mode_labels_and_rewards():
  lab = label_group([5, 5, 3])
  assert lab.label == 5 and lab.agreement == pytest.approx(2 / 3)
  np.testing.assert_array_equal(player_rewards(lab), [1, 1, 0])
  tie = label_group([5, 3])
  assert tie.label is None and tie.agreement == 0
  np.testing.assert_array_equal(player_rewards(tie), [0, 0])
  np.testing.assert_array_equal(player_rewards(tie, (1.0, -1.0)), [-1, -1])
  missing = label_group([None, None, None, 4])  # None answers never become the label
  assert missing.label == 4 and missing.agreement == 0.25
  np.testing.assert_array_equal(player_rewards(missing, (1.0, -1.0)), [-1, -1, -1, 1])
  assert label_group([None, None]).label is None


@pytest.mark.parametrize("count,accepted", [(3, False), (4, True), (12, True), (13, False)])
def test_difficulty_filter_at_n_16(count, accepted):
  answers = ["7"] * count + [str(100 + i) for i in range(16 - count)]  # the others distinct
  lab = label_group(answers)
  assert lab.label == "7" and lab.agreement == count / 16
  assert in_band(lab.agreement, 0.2, 0.8) is accepted


def test_coach_reward_variants_and_sign():
  rates = [0.25, 0.5, 0.8]
  for delta in (0.05, -0.05):
    r = coach_rewards(rates, delta)
    assert np.all(np.sign(r) == np.sign(delta))  # (1, 0) rewards: R^P >= 0.2 > 0
    np.testing.assert_allclose(r, np.asarray(rates) * delta, rtol=1e-6)
  np.testing.assert_array_equal(coach_rewards(rates, 0.0), 0)
  np.testing.assert_allclose(coach_rewards(rates, 2.0, mode="delta_only"), [2, 2, 2])
  np.testing.assert_allclose(
    coach_rewards(rates, 2.0, mode="mean_adv_x_delta", mean_advantages=[0.5, None, -1.0]),
    [1.0, -1.0, -2.0],
  )
  with pytest.raises(ValueError, match="coach_reward='nope'"):
    coach_rewards(rates, 1.0, mode="nope")


def _coach_grads(delta):
  config = get_preset("tiny-qwen3").replace(
    vocab_size=16, num_layers=1, hidden_size=32, intermediate_size=64, head_dim=16
  )
  model = Transformer(config, rngs=nnx.Rngs(0))
  tokens = jnp.asarray(np.random.default_rng(0).integers(1, 16, (3, 10)), jnp.int32)
  mask = jnp.zeros((3, 10)).at[:, 4:].set(1.0)
  batch = {
    "tokens": tokens,
    "mask": mask,
    "advantages": jnp.asarray(coach_rewards([0.25, 0.5, 0.75], delta)),
  }
  loss_fn = make_rl_loss_fn(rl.make_loss("ppo_clip", aggregation="token_mean"))
  graphdef, params = nnx.split(model, nnx.Param)

  def loss(p):
    s, d, _ = loss_fn(nnx.merge(graphdef, p), batch)
    return s / d

  return jax.tree_util.tree_leaves(jax.jit(jax.grad(loss))(params))


def test_zero_delta_gives_zero_coach_gradient_and_the_sign_follows_delta():
  assert all(float(jnp.abs(g).max()) == 0.0 for g in _coach_grads(0.0))
  up, down = _coach_grads(0.1), _coach_grads(-0.1)
  assert max(float(jnp.abs(g).max()) for g in up) > 0
  for a, b in zip(up, down):
    np.testing.assert_allclose(a, -b, atol=1e-7)


def test_grammar_diagnostics():
  info = parse_problem("What is 12 + 345 + 6?")
  assert info.value == "363" and info.bucket == "3x3"
  assert parse_problem("What is 12 +?") is None and parse_problem("hello") is None
  assert problem_text("\n  What is 1 + 2?  \nextra") == "What is 1 + 2?"


def quick(tmp, **overrides):
  c = cpmobius.get_config("quick").selfplay
  c.workdir = str(tmp / "run")
  c.player.sft.workdir = str(tmp.parent / "player_ws")
  c.coach.warmup_dir = str(tmp.parent / "coach_warmup")
  for k, v in overrides.items():
    c[k] = v
  return c


def test_config_errors_name_the_key(tmp_path):
  for key, value, match in [
    ("proposer", "oracle", "config.proposer"),
    ("filter_high", -0.1, "config.filter_low"),
    ("samples_per_problem", 1, "config.samples_per_problem"),
    ("coach_reward", "x", "config.coach_reward"),
    ("player_top_p", 0.0, "config.player_top_p"),
  ]:
    with pytest.raises(CpmConfigError, match=match):
      validate_config(quick(tmp_path, **{key: value}))


def test_two_processes_play_the_same_game_and_resume_exactly(tmp_path):
  """Self-play on two processes (jax.distributed, 2 devices each, one 4-device mesh): both
  hosts record the same history (the checkpointer would refuse a differing one), process 0
  writes the files, and a run preempted at step 1 on both hosts resumes to the straight run's
  history exactly."""
  from tests.helpers.two_processes import run_helper

  results = run_helper("multihost_cpmobius.py", tmp_path, timeout=600)
  for r in results:
    assert r["first"] == [1, True]  # preempted at step 1, which was saved
    assert [h["step"] for h in r["straight"]] == [0, 1, 2]
    assert r["resumed"] == r["straight"]
    assert r["straight"][1]["accepted"] == 2 and "coach_loss" in r["straight"][1]
    assert {"checkpoints", "history.jsonl", "summary.json"} <= set(r["files"])
  assert results[0]["straight"] == results[1]["straight"]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
  return tmp_path_factory.mktemp("cpm")


def test_a_killed_self_play_run_resumes_exactly(shared):
  from reasoning_jax.rl.cpmobius.selfplay import run_cpmobius

  straight = run_cpmobius(quick(shared / "a"))
  quick_b = quick(shared / "b", num_steps=1)
  run_cpmobius(quick_b)  # stopped after step 1 (as a SIGTERM'd run saves its last step)
  resumed = run_cpmobius(quick(shared / "b"))
  strip = lambda hs: [{k: v for k, v in h.items() if k != "seconds"} for h in hs]  # noqa: E731
  assert strip(resumed["history"]) == strip(straight["history"])
  assert [h["step"] for h in resumed["history"]] == [0, 1, 2]
  assert resumed["history"][1]["accepted"] == 2 and "coach_loss" in resumed["history"][1]


def test_no_problem_in_the_band_stops_with_a_clear_error(shared):
  from reasoning_jax.rl.cpmobius.selfplay import run_cpmobius

  c = quick(
    shared / "empty", filter_low=0.95, filter_high=0.96, max_empty_steps=1, proposer="generator"
  )
  with pytest.raises(RuntimeError, match="max_proposal_rounds=2"):
    run_cpmobius(c)


def test_player_and_coach_from_a_hugging_face_folder(tiny_hf_folder, tmp_path):
  import ml_collections

  from reasoning_jax.rl.cpmobius.selfplay import run_cpmobius

  folder = tiny_hf_folder("qwen3")
  c = quick(tmp_path / "hf", num_steps=1)
  for side in (c.player, c.coach):
    side.warm_start = "source"
    side.model = ml_collections.ConfigDict({"hf_dir": folder})
    side.sft.seq_len = 128
  c.player_max_prompt_len = c.coach_max_prompt_len = 64
  out = run_cpmobius(c)
  assert [h["step"] for h in out["history"]] == [0, 1]
  assert out["history"][1]["proposals"] >= 4


def test_verdict_reads_paired_held_out_gains():
  from reasoning_jax.reproduce.entries_selfimprove import cpmobius_verdict

  def rows(coach, **others):
    out = [{"arm": "coach", "heldout_gain": coach}]
    return {"rows": out + [{"arm": k, "heldout_gain": v} for k, v in others.items()]}

  (v,) = cpmobius_verdict(
    rows([0.1, 0.12, 0.11], generator=[0.0, 0.01, 0.0], no_filter=[0.02, 0.0, 0.01])
  )
  assert v.status == "reproduced" and "vs generator +0.107" in v.reason
  (v,) = cpmobius_verdict(
    rows([0.1, 0.12, 0.11], generator=[0.2, 0.21, 0.2], no_filter=[0.0, 0.0, 0.0])
  )
  assert v.status == "partly"
  (v,) = cpmobius_verdict(rows([0.0, -0.01, 0.0], generator=[0.2, 0.21, 0.2]))
  assert v.status == "not reproduced"
  # Ahead of the curriculum but the player got worse: the paper's first claim fails.
  (v,) = cpmobius_verdict(rows([-0.02, -0.03, -0.02], generator=[-0.06, -0.07, -0.05]))
  assert v.status == "not reproduced" and "vs generator +0.037" in v.reason
  (v,) = cpmobius_verdict(rows([0.1, 0.2], generator=[0.0, 0.0]))
  assert v.status == "not measured"


def test_best_player_safeguard_rule():
  from reasoning_jax.rl.cpmobius.selfplay import reload_best_player

  c = cpmobius.get_config().selfplay  # after step 100, 15 stale steps, a negative delta
  assert reload_best_player(101, 15, -0.01, c)
  assert not reload_best_player(100, 15, -0.01, c)  # too early
  assert not reload_best_player(101, 14, -0.01, c)  # not stale long enough
  assert not reload_best_player(101, 20, 0.0, c)  # the last step did not get worse
  c.best_player_safeguard = False
  assert not reload_best_player(101, 20, -0.5, c)
