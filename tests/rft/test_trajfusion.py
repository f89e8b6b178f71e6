"""TrajFusion's construction (spec rl.md 7.1): the unit tests of the spec and the bad input."""

import itertools
import math

import pytest

from reasoning_jax.rewards.answers import answer_key, unique_mode
from reasoning_jax.rft import (
  DEFAULT_REFLECTION,
  ProblemSamples,
  Trajectory,
  TrajFusionConfig,
  check_reflection,
  error_stats,
  num_wrong_segments,
  rft_samples,
  select_wrong,
  trajfusion_samples,
)
from reasoning_jax.tokenizers import ByteTokenizer

R = DEFAULT_REFLECTION


def traj(answer, correct=False, truncated=False, text=None):
  body = text or f"work ... Answer: {answer}"
  return Trajectory(body, correct, None if answer is None else str(answer), truncated, 10)


def problem(index, trajs, gold="7"):
  return ProblemSamples(index, f"q{index}", gold, tuple(trajs))


def test_error_free_problem_gives_the_byte_identical_rft_sample():
  p = problem(0, [traj(7, True, text="A: 7"), traj(7, True, text="B: 7")])
  config = TrajFusionConfig()
  rft = [s.record() for s in rft_samples([p], config)]
  fused = [s.record() for s in trajfusion_samples([p], config)]
  assert rft == fused and [r["solution"] for r in rft] == ["A: 7", "B: 7"]


def test_below_e_min_and_uninformative_errors_fall_back_to_rft():
  config = TrajFusionConfig()  # e_min = 0.125
  low = problem(0, [traj(7, True, text=f"ok{i}") for i in range(8)] + [traj(3)])  # e = 1/9
  none_answer = problem(1, [traj(7, True), traj(None), traj(4, truncated=True)])
  for p in (low, none_answer):
    assert [s.record() for s in trajfusion_samples([p], config)] == [
      s.record() for s in rft_samples([p], config)
    ]


def test_problem_without_a_correct_trajectory_is_excluded():
  p = problem(0, [traj(3), traj(4)])
  config = TrajFusionConfig()
  assert rft_samples([p], config) == [] and trajfusion_samples([p], config) == []


def test_k_is_monotone_and_bounded():
  config = TrajFusionConfig()
  rates = [i / 16 for i in range(17)]
  for distinct in range(0, 6):
    ks = [num_wrong_segments(e, distinct, max(distinct, 1), config) for e in rates]
    assert ks == sorted(ks)  # non-decreasing in e
    assert all(0 <= k <= min(config.k_max, distinct) for k in ks)
  for e in rates:
    ks = [num_wrong_segments(e, d, 5, config) for d in range(6)]
    assert ks == sorted(ks)  # non-decreasing in |D'|
  assert num_wrong_segments(0.5, 5, 5, config) == 2  # round(1.5) half up
  assert num_wrong_segments(1 / 6, 5, 5, config) == 1  # round(0.5) = 1 >= max(1, .)
  assert num_wrong_segments(1.0, 5, 5, config) == 3
  assert num_wrong_segments(0.1, 5, 5, config) == 0  # < e_min


def test_fused_sample_has_k_reflections_and_ends_with_the_correct_answer():
  wrongs = [traj(a) for a in (3, 3, 3, 5, 5, 9, 11)]
  p = problem(4, wrongs + [traj(7, True, text="right: Answer: 7")])  # e = 7/8
  config = TrajFusionConfig()
  (sample,) = trajfusion_samples([p], config)
  k = num_wrong_segments(7 / 8, 4, 7, config)
  assert k == 3 and sample.num_wrong == 3
  assert sample.response.count(R) == 3
  assert answer_key("math_exact", sample.response.split(R)[-1]) == "7"
  assert answer_key("math_exact", sample.response) == "7"  # the last answer of the whole text
  # One per distinct answer, most frequent first: 3 (x3), 5 (x2), then 9 or 11 (seeded tie).
  assert sample.wrong_answers[:2] == ("3", "5") and sample.wrong_answers[2] in ("9", "11")


def test_selection_is_seeded_and_ties_vary_with_the_seed():
  p = problem(2, [traj(a, text=f"t{a}-{i}") for a in (1, 2, 3, 4, 5) for i in range(2)])
  picks = {tuple(t.answer for t in select_wrong(p, 3, TrajFusionConfig(seed=s))) for s in range(20)}
  again = [tuple(t.answer for t in select_wrong(p, 3, TrajFusionConfig(seed=0))) for _ in range(3)]
  assert len(set(again)) == 1 and len(picks) > 1


def test_fused_dataset_is_deterministic_under_a_seed():
  problems = [
    problem(
      i,
      [traj(a, text=f"p{i}w{a}{j}") for a, j in itertools.product((1, 2, 3), range(2))]
      + [traj(7, True, text=f"p{i}c{j}") for j in range(2)],
    )
    for i in range(5)
  ]
  run = lambda seed: [s.record() for s in trajfusion_samples(problems, TrajFusionConfig(seed=seed))]  # noqa: E731
  assert run(0) == run(0)
  assert run(0) != run(1)


def test_same_number_of_samples_per_problem_as_rft():
  problems = [
    problem(
      i, [traj(a) for a in range(1, 1 + i)] + [traj(7, True, text=f"c{i}{j}") for j in range(3)]
    )
    for i in range(4)
  ]
  config = TrajFusionConfig()
  count = lambda xs: sorted((s.problem_index, s.sample_index) for s in xs)  # noqa: E731
  assert count(rft_samples(problems, config)) == count(trajfusion_samples(problems, config))


def test_front_truncation_drops_wrong_segments_and_never_cuts_the_correct_one():
  wrongs = [traj(a, text=f"W{a}" * 10) for a in (1, 2, 3) for _ in range(2)]  # e = 6/7
  correct = traj(7, True, text="C" * 40)
  p = problem(0, wrongs + [correct])
  full = trajfusion_samples([p], TrajFusionConfig())[0]
  assert full.num_wrong == 3
  limit = len(full.response) - 1
  (cut,) = trajfusion_samples([p], TrajFusionConfig(max_tokens=limit))
  assert cut.num_wrong == 2 and cut.num_wrong_dropped == 1 and len(cut.response) <= limit
  assert full.response.endswith(cut.response)  # the front went
  (tiny,) = trajfusion_samples([p], TrajFusionConfig(max_tokens=5))
  assert tiny.response == "C" * 40 and tiny.num_wrong == 0  # c alone, uncut


def test_error_diversity():
  p = problem(0, [traj(1), traj(1), traj(2), traj(None), traj(7, True)])
  stats = error_stats(p)
  assert stats.error_rate == pytest.approx(0.8)
  assert stats.wrong_answers == (("1", 2), ("2", 1))
  assert stats.diversity == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))


def test_unique_mode_cases():
  assert unique_mode([5, 5, 3]) == 5
  assert unique_mode([5, 3]) is None
  assert unique_mode([None, None, 4]) == 4
  assert unique_mode([None, None]) is None
  assert unique_mode([]) is None


def test_answer_keys_match_the_verifier():
  assert answer_key("math_exact", "so Answer: 0.50") == answer_key("math_exact", "x = 1/2") == "1/2"
  assert answer_key("math_exact", "no digits here") is None
  assert answer_key("gsm8k", "blah\n#### 1,234") == "1234"
  assert answer_key("countdown", "<answer>(3 + 5) * 2</answer>") == "16"
  assert answer_key("math_exact", None) is None
  with pytest.raises(ValueError, match="reward='format_tag'"):
    answer_key("format_tag", "x")


class ChatLikeTokenizer(ByteTokenizer):
  special_tokens = {"<|im_end|>": 1}


def test_reflection_with_special_tokens_is_refused():
  tok = ChatLikeTokenizer()
  check_reflection(tok, R)
  with pytest.raises(ValueError, match=r"reflection contains .*<\|im_end\|>"):
    check_reflection(tok, "Wait.<|im_end|>Try again.")
  with pytest.raises(ValueError, match="reflection must be a non-empty"):
    check_reflection(tok, "")


def test_config_errors_name_the_field():
  with pytest.raises(ValueError, match="TrajFusionConfig.e_min"):
    TrajFusionConfig(e_min=1.5)
  with pytest.raises(ValueError, match="TrajFusionConfig.reflection"):
    TrajFusionConfig(reflection="   ")
  with pytest.raises(ValueError, match="TrajFusionConfig.max_tokens"):
    TrajFusionConfig(max_tokens=0)


def test_reproduction_verdict_reads_the_paired_difference():
  from reasoning_jax.reproduce.entries_selfimprove import trajfusion_verdict

  def payload(diffs, verdict):
    mean = sum(diffs) / len(diffs)
    return {
      "verdict": {"diffs": diffs, "mean": mean, "sem": 0.01, "verdict": verdict},
      "summary": {"rft": {"accuracy": [0.5, 0.0]}, "trajfusion": {"accuracy": [0.5 + mean, 0]}},
      "teacher": {"accuracy": 0.55},
    }

  assert trajfusion_verdict(payload([0.1, 0.1, 0.12], "beats"))[0].status == "reproduced"
  assert trajfusion_verdict(payload([0.01, 0.0, 0.01], "no clear difference"))[0].status == "partly"
  assert trajfusion_verdict(payload([-0.3, -0.2, -0.3], "worse"))[0].status == "not reproduced"
  assert trajfusion_verdict(payload([0.1, 0.1], "beats"))[0].status == "not measured"
