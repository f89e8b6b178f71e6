"""GRPO on InfMem episodes (multi-turn: every call of an episode shares its advantage).

One step: `questions_per_step` questions, `group_size` sampled episodes each (patience 1, as
the released rollouts deactivate a sample at its first STOP), the reward of each episode
`agents.infmem.reward.episode_rewards` (outcome `qa_exact` + 0.6 early-stop + 0.5 tool_ok +
0.5 memory_ok, a DESIGN CHOICE), GRPO advantages over each question's episodes, then one
`ppo_clip` update on `update_rows` calls drawn from the step's episodes (rows = prompt +
the model's output, the loss masked to the output). The update batch has one fixed shape, so
the update compiles once; drawing calls uniformly keeps the token-mean loss unbiased.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx

from reasoning_jax import sharding as sharding_lib
from reasoning_jax.agents.infmem import (
  Episode,
  GenerateLLM,
  InfMemConfig,
  PromptSet,
  RewardWeights,
  episode_rewards,
  run_episodes,
)
from reasoning_jax.rewards import qa_exact_reward
from reasoning_jax.rl.policy import fixed_update_arrays, grpo_advantages, make_side, side_mesh
from reasoning_jax.rl.rollout import RolloutBatch


def episode_batch(
  episodes: Sequence[Episode], advantages: np.ndarray, rows: np.ndarray, width: int
) -> tuple[RolloutBatch, np.ndarray]:
  """The calls `rows` (indices into the episodes' calls, flattened) as a `RolloutBatch`.

  Each row is the call's prompt ids followed by the model's output ids; the mask covers the
  output; `sampler_logp` holds the sampler's log-probs there. Returns the batch and each
  row's advantage (its episode's).
  """
  calls = [(e, c) for e, ep in enumerate(episodes) for c in ep.calls]
  n = len(rows)
  tokens = np.zeros((n, width), np.int32)
  mask = np.zeros((n, width), np.float32)
  logp = np.zeros((n, width), np.float32)
  lengths = np.zeros((n,), np.int32)
  adv = np.zeros((n,), np.float32)
  for i, r in enumerate(rows):
    e, call = calls[int(r)]
    comp = call.completion
    prompt, out = list(comp.prompt_ids), list(comp.ids)
    if len(prompt) + len(out) > width:
      raise ValueError(f"call of {len(prompt) + len(out)} tokens exceeds the width {width}")
    tokens[i, : len(prompt) + len(out)] = prompt + out
    mask[i, len(prompt) : len(prompt) + len(out)] = 1.0
    logp[i, len(prompt) : len(prompt) + len(out)] = comp.logprobs[: len(out)]
    lengths[i] = len(out)
    adv[i] = advantages[e]
  batch = RolloutBatch(
    tokens=tokens,
    mask=mask,
    old_logp=None,
    sampler_logp=logp,
    ref_logp=None,
    rewards=adv.copy(),
    group_ids=np.zeros((n,), np.int32),
    completion_lengths=lengths,
    truncated=np.zeros((n,), bool),
    completions=[""] * n,
  )
  return batch, adv


def train_protocol(
  model: nnx.Module,
  tokenizer: Any,
  examples: Sequence[dict[str, Any]],
  reader: InfMemConfig,
  prompt_set: PromptSet,
  rl: Any,
  *,
  mesh: Any,
  seed: int = 0,
  eos_id: Any = None,
  on_step: Callable[[int, dict], None] | None = None,
) -> tuple[nnx.Module, list[dict[str, float]]]:
  """Trains the reader's protocol with GRPO; returns the model and one record per step.

  `rl` fields: num_steps, questions_per_step, group_size, update_rows, learning_rate,
  grad_clip, beta (KL to the start), clip_eps_low / clip_eps_high, temperature, and the
  reward weights (outcome, early_stop, tool_ok, memory_ok, gamma).
  """
  if reader.think_tokens:
    raise ValueError(
      "protocol RL with think_tokens > 0 is not supported: the forced closure of a thought "
      "is not the model's own tokens, so a call's row would not be what it sampled"
    )
  # The update donates the policy's buffers: train a copy, the caller's model stays usable.
  graphdef, state = nnx.split(model)
  model = nnx.merge(graphdef, jax.tree_util.tree_map(jnp.copy, state))
  rollout_reader = reader.replace(patience=1)
  window = max(reader.prethink_tokens, reader.memory_tokens, reader.answer_tokens)
  side = make_side(
    model,
    lr=float(rl.learning_rate),
    grad_clip=float(rl.grad_clip),
    loss_cfg=dict(
      aggregation="token_mean",
      eps_low=float(rl.clip_eps_low),
      eps_high=float(rl.clip_eps_high),
      beta=float(rl.beta),
      kl_estimator="k3",
    ),
    window=window,
    mesh=mesh,
  )
  weights = RewardWeights(
    outcome=rl.outcome,
    early_stop=rl.early_stop,
    tool_ok=rl.tool_ok,
    memory_ok=rl.memory_ok,
    gamma=rl.gamma,
  )
  width = int(model.config.max_position_embeddings)
  rng = np.random.default_rng(seed)
  history = []
  for step in range(1, int(rl.num_steps) + 1):
    start = time.perf_counter()
    pick = rng.choice(len(examples), size=int(rl.questions_per_step), replace=False)
    chosen = [examples[int(i)] for i in pick for _ in range(int(rl.group_size))]
    policy = nnx.merge(side.graphdef, side.state.params)
    llm = GenerateLLM(
      policy,
      tokenizer,
      eos_id=eos_id if eos_id is not None else tokenizer.eos_id,
      temperature=float(rl.temperature),
      seed=seed * 100_003 + step,
      length_multiple=128,
      batch_multiple=8,
    )
    episodes = run_episodes(
      llm,
      [e["question"] for e in chosen],
      [e["document"] for e in chosen],
      rollout_reader,
      prompt_set=prompt_set,
    )
    terms = [
      episode_rewards(ep, [e["answer"]], qa_exact_reward(ep.output or "", e["answer"]), weights)
      for ep, e in zip(episodes, chosen)
    ]
    rewards = np.asarray([t["total"] for t in terms], np.float32)
    groups = np.repeat(np.arange(len(pick)), int(rl.group_size)).astype(np.int32)
    advantages = grpo_advantages(rewards, groups)
    total_calls = sum(len(ep.calls) for ep in episodes)
    rows = rng.choice(total_calls, size=min(total_calls, int(rl.update_rows)), replace=False)
    batch, adv = episode_batch(episodes, advantages, np.sort(rows), width)
    if side.ref_params is not None:
      batch.ref_logp = np.asarray(
        side.logprob_fn(side.ref_params, batch.tokens, batch.mask), np.float32
      )
    mesh_ = side_mesh(side)
    arrays = fixed_update_arrays(batch, int(rl.update_rows), width, adv, mesh_)
    side.state, metrics = side.step_fn(side.state, sharding_lib.shard_batch(arrays, mesh_))
    metrics = {k: float(v) for k, v in jax.device_get(metrics).items() if np.ndim(v) == 0}
    record = {
      "step": step,
      "reward": float(rewards.mean()),
      "accuracy": float(np.mean([t["outcome"] for t in terms])),
      "early_stop": float(np.mean([t["early_stop"] for t in terms])),
      "tool_ok": float(np.mean([t["tool_ok"] for t in terms])),
      "memory_ok": float(np.mean([t["memory_ok"] for t in terms])),
      "calls_per_episode": total_calls / len(episodes),
      "loss": metrics.get("loss", float("nan")),
      "seconds": time.perf_counter() - start,
    }
    history.append(record)
    if on_step is not None:
      on_step(step, record)
    logging.info(
      "infmem rl step %d: reward %.3f acc %.3f calls %.1f (%.1f s)",
      step,
      record["reward"],
      record["accuracy"],
      record["calls_per_episode"],
      record["seconds"],
    )
    if not np.isfinite(record["loss"]):
      raise FloatingPointError(f"non-finite protocol RL loss at step {step}")
  return nnx.merge(side.graphdef, side.state.params), history
