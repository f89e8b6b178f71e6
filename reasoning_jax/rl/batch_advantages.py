"""A rollout batch's advantages: rewards -> optional DAPO overlong punishment -> the recipe's
estimator (sequence-level `[N]`, or token-level `[N, T]` over the judge's dense rewards).

The RL trainer's second phase (`reasoning_jax.rl.trainer`). Estimators that need more than the
rewards get it here: ARM the prompt and completion log-probs (one extra forward), MRPO the
last-layer hidden states, the token-level estimators (`token_grpo`, `token_rloo`, or ARM/MRPO
with a token-level base) `[N, T]` token rewards and the completion mask.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reasoning_jax import rl
from reasoning_jax.rl.recipes import Recipe
from reasoning_jax.rl.rollout import RolloutBatch

__all__ = ["compute_advantages"]


def _hidden_fn(graphdef):
  @jax.jit
  def hidden(params, tokens):
    return nnx.merge(graphdef, params).forward(tokens)[0]

  return hidden


def compute_advantages(
  recipe: Recipe, batch: RolloutBatch, config, *, graphdef, params, logprob_fn
) -> tuple[np.ndarray, dict[str, float]]:
  """Rewards -> (optional overlong punishment, KL-in-reward) -> the recipe's estimator."""
  rewards = batch.rewards.astype(np.float32)
  stats = {}
  if recipe.overlong_punishment:
    lengths = batch.completion_lengths
    cache = max(1, config.max_new_tokens // 4)  # DAPO: L_cache = 1/4 of the budget here.
    punishment = np.asarray(
      rl.soft_overlong_punishment(
        jnp.asarray(lengths), max_length=config.max_new_tokens, cache_length=cache
      )
    )
    rewards = rewards + punishment
    stats["overlong_punishment"] = float(punishment.mean())
  options = dict(config.advantage_overrides)
  kwargs: dict[str, Any] = {}
  if recipe.advantage == "arm":
    prompt_mask = (batch.tokens != 0).astype(np.float32) * (1.0 - batch.mask)
    prompt_mask[:, 0] = 1.0  # Position 0 is never a completion token.
    full = np.asarray(
      logprob_fn(
        params, jnp.asarray(batch.tokens), jnp.asarray(np.maximum(prompt_mask, batch.mask))
      )
    )
    # This pass covers the completion too: its log-probs are the old ones (same params).
    old_logp = full * batch.mask if batch.old_logp is None else batch.old_logp
    kwargs = dict(
      old_logp=jnp.asarray(old_logp),
      mask=jnp.asarray(batch.mask),
      prompt_logp=jnp.asarray(full * prompt_mask),
      prompt_mask=jnp.asarray(prompt_mask),
      content_mask=jnp.asarray(prompt_mask),
    )
  elif recipe.advantage == "mrpo":
    hidden = _hidden_fn(graphdef)(params, jnp.asarray(batch.tokens))
    kwargs = dict(hidden=hidden, mask=jnp.asarray(batch.mask))
  if rl.is_token_level(recipe.advantage, base_estimator=options.get("base_estimator")):
    # Per-token rewards [N, T]: the judge's dense ones, plus whatever sequence-level terms
    # were added above (overlong punishment) on the last token; else the sequence rewards
    # on the last token. The estimator returns [N, T] advantages, which the losses take.
    extra = rewards - batch.rewards.astype(np.float32)
    mask = jnp.asarray(batch.mask)
    if batch.token_rewards is None:
      token = rl.sequence_to_token_rewards(jnp.asarray(rewards), mask)
    else:
      token = jnp.asarray(batch.token_rewards) + rl.sequence_to_token_rewards(
        jnp.asarray(extra), mask
      )
    kwargs.setdefault("mask", mask)
    rewards = token
  adv = rl.ADVANTAGES.get(recipe.advantage)(
    jnp.asarray(rewards), group_ids=jnp.asarray(batch.group_ids), **kwargs, **options
  )
  return np.asarray(adv, np.float32), stats
