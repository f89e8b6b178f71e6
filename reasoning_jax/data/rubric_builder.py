"""The `rubric` TFDS builder: the synthetic rubric task (`rubric_task`) as ArrayRecord splits.

Splits: `test` (prompts with their ideal response and rubric), `train` (prompts with a
demonstration response of random quality, `rubric_task.response_variant`) and `judge`
(judge demonstrations: request -> verdict word). `judge` is an SFT-only split
(`SFT_EXTRA_SPLITS`): the SFT warm start reads train + judge, RL prompts come from train.

Grad2Reward: From Sparse Judgment to Dense Rewards for Improving Open-Ended LLM Reasoning
(Zhang et al.), arXiv 2602.01791 (the method this task is built for).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import tensorflow_datasets as tfds

from reasoning_jax.data import rubric_task
from reasoning_jax.data.builder_base import SyntheticBuilder, text_feature

__all__ = ["RubricBuilder", "RubricConfig"]


@dataclasses.dataclass(eq=False)
class RubricConfig(tfds.core.BuilderConfig):
  """Config of the `rubric` builder.

  Attributes:
    seed: Seed of the generated splits.
    num_train: Train prompts (each with one demonstration response).
    num_test: Test prompts (distinct questions, none of them in train).
    num_judge: Judge demonstrations (drawn from train prompts).
    max_value: Largest addend.
    unique_train: Also make train questions distinct.
    p_repeat / p_sum / p_step / p_final: how often a demonstration repeats the question,
      shows the sum, shows the second step, gets the final answer right.
    p_slip: how often a demonstration miscomputes the sum (the slip carries through the
      step and the answer): the judge demonstrations then teach comparing numbers, not only
      spotting which parts are present (without them the self-judge accepted a wrong sum as
      "shows the sum": 33-40% agreement with the grader on the policy's own samples).
  """

  seed: int = 0
  num_train: int = 4000
  num_test: int = 128
  num_judge: int = 8000
  max_value: int = 49
  unique_train: bool = False
  p_repeat: float = 0.3
  p_sum: float = 0.6
  p_step: float = 0.6
  p_final: float = 0.7
  p_slip: float = 0.3


class RubricBuilder(SyntheticBuilder, skip_registration=True):
  """Two-step worked computations scored by rubrics, plus judge demonstrations."""

  name = "rubric"
  BUILDER_CONFIGS = [RubricConfig(name="default", description="Two-step sums, 4-item rubrics.")]
  DEFAULT_CONFIG_NAME = "default"
  SFT_EXTRA_SPLITS = ("judge",)

  def _features(self) -> dict[str, Any]:
    return {"rubric": text_feature(), "parts": text_feature()}

  def _variant(self) -> dict[str, float]:
    c = self.builder_config
    return dict(
      p_repeat=c.p_repeat, p_sum=c.p_sum, p_step=c.p_step, p_final=c.p_final, p_slip=c.p_slip
    )

  def _make_example(self, rng: random.Random) -> dict[str, Any]:
    return rubric_task.rubric_example(rng, max_value=self.builder_config.max_value)

  def _extra_splits(self, train, stream):
    rng = random.Random(f"{stream}:judge")
    judge = [
      rubric_task.judge_example(train[rng.randrange(len(train))], rng, **self._variant())
      for _ in range(self.builder_config.num_judge if train else 0)
    ]
    # Train demonstrations: the imperfect responses SFT imitates (the ideal stays in test).
    demo_rng = random.Random(f"{stream}:demonstrations")
    for ex in train:
      ex["solution"] = rubric_task.response_variant(ex, demo_rng, **self._variant())
    return {"judge": judge}
