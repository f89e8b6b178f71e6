"""The self-judge probe of the Grad2Reward experiment: fresh demonstration-like responses of the
rubric task, the judge's verdicts against the items' checks per item (evaluate.grad2reward)."""

import random
import types

import numpy as np

from reasoning_jax.data import rubric_task
from reasoning_jax.evaluate.grad2reward import judge_probe_lines, probe_judge, warm_start_probe
from reasoning_jax.rewards import Rubric
from reasoning_jax.rewards.rubric import check_item
from reasoning_jax.tokenizers import ByteTokenizer


class _StubJudge:
  """A `Grad2Reward`-shaped judge that reads the response back from the policy batch."""

  def __init__(self, tokenizer, rule):
    self.tokenizer, self.rule, self.seen = tokenizer, rule, []

  def __call__(self, tokens, mask, questions, rubrics):
    verdicts = []
    for row, m, rubric in zip(tokens, mask, rubrics):
      ids = [int(t) for t, keep in zip(row, m) if keep and t != self.tokenizer.eos_id]
      text = self.tokenizer.decode(ids)
      self.seen.append(text)
      verdicts.append([self.rule(item, text) for item in Rubric.parse(rubric).items])
    stats = {"judge_pairs": float(sum(len(v) for v in verdicts))}
    return types.SimpleNamespace(verdicts=np.asarray(verdicts), stats=stats)


def _examples(n):
  rng = random.Random(3)
  return [rubric_task.rubric_example(rng) for _ in range(n)]


def test_an_oracle_judge_agrees_everywhere_and_a_presence_judge_only_on_presence():
  tok = ByteTokenizer()
  examples = _examples(6)
  oracle = _StubJudge(tok, lambda item, text: check_item(item.check, text))
  probe = probe_judge(tok, oracle, examples, per_example=5, seed=1)
  assert probe["pairs"] == 6 * 5 * 4 and len(probe["items"]) == 4
  assert probe["judge_accuracy"] == 1.0
  assert all(i["judge_true_rate"] == i["grader_true_rate"] for i in probe["items"])
  # The judge saw exactly the responses the probe drew (the response span, EOS dropped).
  rng = random.Random(1)
  drawn = [rubric_task.response_variant(e, rng) for e in examples for _ in range(5)]
  assert oracle.seen == drawn
  assert probe["items"][0]["criterion"] == Rubric.parse(examples[0]["rubric"]).items[0].criterion

  # "A part is present" (any '=' for the sum, 'Answer:' for the final answer): every wrong sum
  # is accepted and the final answer is always True, so only comparisons separate the two.
  def presence(item, text):
    kind = next(iter(item.check))
    if kind == "final":
      return "Answer:" in text
    if kind == "number":
      return "+" in text
    return check_item(item.check, text)

  weak = probe_judge(tok, _StubJudge(tok, presence), examples, per_example=5, seed=1)
  final, total_sum = weak["items"][2], weak["items"][0]
  assert final["judge_true_rate"] == 1.0 and final["agreement"] == final["grader_true_rate"] < 1
  assert total_sum["judge_true_rate"] >= total_sum["grader_true_rate"]
  assert weak["items"][1]["agreement"] == 1.0 and weak["items"][3]["agreement"] == 1.0
  lines = judge_probe_lines(weak)
  assert len(lines) == 4 + 4 and lines[-2].startswith("| final answer ")
  assert judge_probe_lines(None) == []


def test_the_warm_start_probe_uses_the_rl_configs_judge(tmp_path):
  """On a 2-step warm start of the rubric task: the judge RL would build, verdicts only."""
  from reasoning_jax.train.sft import run_sft
  from tests.rl.test_trainer_judge import judge_config

  config = judge_config(tmp_path)
  run_sft(config.sft)
  probe = warm_start_probe(config, num_examples=2, per_example=2)
  assert probe["pairs"] == 2 * 2 * 4 and len(probe["items"]) == 4
  assert all(0 <= i["agreement"] <= 1 for i in probe["items"])
  config.judge.model = str(tmp_path)  # An external judge: not the self-judge this probes.
  assert warm_start_probe(config) is None
  config.judge.model, config.sft.workdir = "self", str(tmp_path / "no_warm_start")
  assert warm_start_probe(config) is None
