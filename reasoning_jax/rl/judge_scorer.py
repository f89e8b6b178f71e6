"""The RL trainer's judge: rubric rewards (sparse or Grad2Reward dense) for rollouts.

Grad2Reward: From Sparse Judgment to Dense Rewards for Improving Open-Ended LLM Reasoning
(Zhang et al.), arXiv 2602.01791; rl.md section 6.

Recipes that name a judge (`Recipe.judge`: "sparse" for `rubric_grpo`, "dense" for
`grad2reward`) score every rollout batch with a frozen judge instead of the task's verifier:

* `config.judge.model = "self"` (default, the paper's self-judging): a frozen copy of the
  policy RL starts from (the warm start), taken before the first update;
* `config.judge.model = "<dir>"`: an external judge, an HF folder (`config.json` +
  safetensors) or a workdir of this library's trainers (SFT / RL checkpoints); its tokenizer
  must be the policy's (positions are mapped by identity).

Every other key of `config.judge` is a field of `reasoning_jax.credit.Grad2RewardConfig`
(tau, attr_norm, template, true_word, false_word, orm, ...). The task's verifier still runs
on every rollout and is logged (`rollout/grader_reward`), and where rubric items carry
programmatic checks the judge's verdicts are compared with them (`rollout/judge_accuracy`).

The scorer plugs into `collect_rollouts(scorer=...)`: rollouts, DAPO's dynamic sampling and
the trainer's advantage step see the judge's rewards, and `RolloutBatch.token_rewards`
carries the dense ones to the token-level estimators (`token_grpo`, `token_rloo`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from reasoning_jax.credit import DenseRewards, Grad2Reward, Grad2RewardConfig
from reasoning_jax.rewards import verdict_agreement

__all__ = ["JUDGE_MODES", "RubricScorer", "build_scorer", "judge_spec"]

# Recipe.judge values: which rewards the judge gives.
JUDGE_MODES = ("sparse", "dense")
_G2R_FIELDS = {f.name for f in dataclasses.fields(Grad2RewardConfig)} - {"dense", "judge"}


def judge_spec(config, recipe, *, error=ValueError) -> tuple[Grad2RewardConfig, str] | None:
  """`(Grad2RewardConfig, judge model)` of the run, or None for recipes without a judge."""
  judge = config.get("judge")
  if recipe.judge is None:
    if judge is not None:
      raise error(
        f"config.judge is set but config.loss={config.loss!r} uses the task's verifier; "
        "the judge recipes are rubric_grpo and grad2reward"
      )
    return None
  options = dict(judge.to_dict() if hasattr(judge, "to_dict") else (judge or {}))
  model = options.pop("model", "self")
  unknown = set(options) - _G2R_FIELDS
  if unknown:
    raise error(f"unknown config.judge keys: {sorted(unknown)}; known: {sorted(_G2R_FIELDS)}")
  if not isinstance(model, str) or not model:
    raise error(f"config.judge.model must be 'self' or a directory, got {model!r}")
  if model != "self" and not os.path.isdir(model):
    raise error(f"config.judge.model={model!r} is not a directory (an HF folder or a workdir)")
  try:
    spec = Grad2RewardConfig(
      **options, dense=recipe.judge == "dense", judge="self" if model == "self" else "external"
    )
  except (ValueError, TypeError) as e:
    raise error(f"config.judge: {e}") from None
  return spec, model


class RubricScorer:
  """`collect_rollouts`' scorer: the judge's rewards for a rollout batch."""

  fields = ("question", "rubric")

  def __init__(self, g2r: Grad2Reward):
    self.g2r = g2r

  def __call__(
    self, *, tokens, mask, completions, verifier_rewards, question=None, rubric=None, **_
  ) -> DenseRewards:
    if question is None:
      raise ValueError("the judge needs the prompts' 'question' field (the task's examples)")
    questions = [str(q) for q in question]
    if self.g2r.config.orm:
      out = self.g2r(tokens, mask, questions, outcome_rewards=verifier_rewards)
    else:
      if rubric is None:
        raise ValueError("rubric recipes need a task whose examples carry a 'rubric' field")
      out = self.g2r(tokens, mask, questions, list(rubric))
      out.stats.update(verdict_agreement(rubric, completions, out.verdicts))
    out.stats["grader_reward"] = float(np.mean(verifier_rewards))
    return out


def build_scorer(
  spec: tuple[Grad2RewardConfig, str],
  policy,
  tokenizer,
  *,
  eos_id: Any,
  mesh=None,
  error=ValueError,
) -> RubricScorer:
  """The scorer: the judge is `policy` copied now ("self") or loaded from `spec`'s directory;
  with `mesh`, every judge call's pairs are sharded over its batch axes."""
  config, model_dir = spec
  judge_tokenizer = None
  if model_dir == "self":
    judge = policy
  else:
    judge, judge_tokenizer = _load_external(model_dir, error)
  eos = eos_id[0] if isinstance(eos_id, (tuple, list)) else eos_id
  try:
    g2r = Grad2Reward(
      judge, tokenizer, config, judge_tokenizer=judge_tokenizer, eos_id=eos, mesh=mesh
    )
  except ValueError as e:
    raise error(f"config.judge: {e}") from None
  return RubricScorer(g2r)


def _load_external(directory: str, error):
  """An HF folder (config.json) or the newest checkpoint of a trainer workdir."""
  from reasoning_jax.models.source import build_model, resolve_source

  if os.path.isfile(os.path.join(directory, "config.json")):
    source = resolve_source(hf_dir=directory, flag="config.judge.model")
    return build_model(source, seed=0), source.tokenizer
  from reasoning_jax.train.sft import load_sft_params

  loaded = load_sft_params(directory)
  if loaded is None:
    raise error(f"config.judge.model={directory!r} holds no checkpoint and no config.json")
  model, config = loaded
  from reasoning_jax.train.sft_config import model_source

  return model, model_source(config).tokenizer
