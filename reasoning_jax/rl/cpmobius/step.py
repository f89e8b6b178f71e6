"""One step of CPMöbius' game: propose, solve, filter, update the player; the coach's update.

"CPMöbius: Iterative Coach-Player Reasoning for Data-Free Reinforcement Learning", Li et al.,
arXiv:2602.02979; spec rl.md 8.1 steps 1-4 and 6. `selfplay.run_cpmobius` drives these once
per step. Each side (player, coach) is a `Side`: its graphdef, train state, the compiled
update (the RL loss library's `ppo_clip` through the shared sharded train step) and its frozen
reference. Every update batch is padded to a fixed shape, so each update compiles once.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from reasoning_jax import sharding as sharding_lib
from reasoning_jax.data.collate import batch_rows
from reasoning_jax.data.transforms import TokenizePrompt, resolve_bos
from reasoning_jax.rewards.answers import answer_keys
from reasoning_jax.rl.cpmobius.grammar import parse_problem, problem_text
from reasoning_jax.rl.cpmobius.labels import coach_rewards, in_band, label_group, player_rewards
from reasoning_jax.rl.policy import (
  Side,
  fixed_update_arrays,
  grpo_advantages,
  side_mesh,
)
from reasoning_jax.rl.rollout import RolloutBatch, collect_rollouts

__all__ = ["coach_update", "play_step", "prompt_batch"]


def prompt_batch(tokenizer, texts, *, template, max_prompt_len, add_bos) -> dict[str, Any]:
  tokenize = TokenizePrompt(
    tokenizer,
    max_prompt_len=max_prompt_len,
    prompt_template=template,
    add_bos=resolve_bos(tokenizer, add_bos),
    truncate=True,
    fields=("question", "answer"),
  )
  return batch_rows([tokenize(i, {"question": t, "answer": ""}) for i, t in enumerate(texts)])


def _buckets(texts) -> dict[str, int]:
  out: dict[str, int] = {}
  for t in texts:
    info = parse_problem(t)
    key = "invalid" if info is None else info.bucket
    out[key] = out.get(key, 0) + 1
  return out


def _rows_mesh(side):
  """The side's mesh, over whose batch axes the rollout rows are split. On several processes
  every host passes the same rows and reads back all of them (`collect_rollouts` gathers), so
  every host takes the same decisions (labels, filter, history)."""
  return side_mesh(side)


def _place_update(arrays: dict, mesh) -> dict:
  """The update batch on the mesh's batch axes. Every process holds the whole batch (the
  rollouts were gathered), so each device takes its slice of the same rows (`place_rows`),
  unlike the RL trainer's per-host rows (`shard_batch`)."""
  return {k: sharding_lib.place_rows(v, mesh) for k, v in arrays.items()}


def _propose(step, key, round_index, config, models, coach, instruction, c_tok) -> tuple:
  """(problem texts, the coach's rollout batch or None)."""
  k = config.proposals_per_round
  if coach is None:  # The fixed curriculum: the task generator's problems, in a seeded order.
    pool = models.generator
    rng = np.random.default_rng([config.seed, step, round_index])
    idx = rng.choice(len(pool), size=k, replace=len(pool) < k)
    return [pool[int(i)] for i in idx], None
  batch = collect_rollouts(
    coach.graphdef,
    coach.state.params,
    instruction,
    tokenizer=c_tok,
    reward_fn=lambda completions, answers, **_: np.zeros(len(completions), np.float32),
    group_size=k,
    max_new_tokens=config.coach_max_new_tokens,
    key=key,
    temperature=config.coach_temperature,
    top_p=config.coach_top_p,
    eos_id=models.coach_eos,
    logprob_fn=coach.logprob_fn,
    ref_params=coach.ref_params,
    recompute_old_logp=False,
    mesh=_rows_mesh(coach),
  )
  return [problem_text(c) for c in batch.completions], batch


def play_step(step, key, config, models, player, coach, instruction, p_tok, c_tok, m, n, history):
  """Propose / solve / filter rounds and the player's update; the record of the step (with
  the accepted problems' coach rows under `_coach` for the coach update)."""
  accepted, coach_rows, all_texts, kept_texts = [], [], [], []
  label_hits, label_known = 0, 0
  rounds = 0
  for r in range(config.max_proposal_rounds):
    rounds += 1
    k_round = jax.random.fold_in(key, r)
    texts, coach_batch = _propose(
      step, jax.random.fold_in(k_round, 0), r, config, models, coach, instruction, c_tok
    )
    all_texts += texts
    prompts = prompt_batch(
      p_tok,
      texts,
      template=models.player_prompt,
      max_prompt_len=config.player_max_prompt_len,
      add_bos=models.player_add_bos,
    )
    labels = {}

    def pseudo_rewards(completions, answers, **_):
      keys = answer_keys(models.reward, completions)
      out = []
      for g in range(len(texts)):
        lab = label_group(keys[g * n : (g + 1) * n])
        labels[g] = lab
        out.append(player_rewards(lab, tuple(config.player_reward_values)))
      return np.concatenate(out)

    solved = collect_rollouts(
      player.graphdef,
      player.state.params,
      prompts,
      tokenizer=p_tok,
      reward_fn=pseudo_rewards,
      group_size=n,
      max_new_tokens=config.player_max_new_tokens,
      key=jax.random.fold_in(k_round, 1),
      temperature=config.player_temperature,
      top_p=config.player_top_p,
      eos_id=models.player_eos,
      logprob_fn=player.logprob_fn,
      ref_params=player.ref_params,
      recompute_old_logp=False,
      mesh=_rows_mesh(player),
    )
    for g, text in enumerate(texts):
      lab = labels[g]
      ok = (
        in_band(lab.agreement, config.filter_low, config.filter_high) if config.use_filter else True
      )
      if not ok or len(accepted) >= m:
        continue
      rows = np.arange(g * n, (g + 1) * n)
      accepted.append((solved.select(rows), lab))
      kept_texts.append(text)
      if coach_batch is not None:
        coach_rows.append(coach_batch.select(np.asarray([g])))
      info = parse_problem(text)
      if info is not None and lab.label is not None:
        label_known += 1
        label_hits += int(lab.label == info.value)
    if len(accepted) >= m:
      break
  record: dict[str, Any] = {
    "step": step,
    "rounds": rounds,
    "proposals": len(all_texts),
    "accepted": len(accepted),
    "valid_rate": float(np.mean([parse_problem(t) is not None for t in all_texts])),
    "proposed_buckets": _buckets(all_texts),
    "accepted_buckets": _buckets(kept_texts),
    "label_accuracy": label_hits / label_known if label_known else None,
    "examples": kept_texts[:3],
  }
  if not accepted:
    return record
  batch = RolloutBatch.concatenate([b for b, _ in accepted])
  success = np.asarray([lab.agreement for _, lab in accepted], np.float64)
  advantages = grpo_advantages(batch.rewards, batch.group_ids)
  width = config.player_max_prompt_len + config.player_max_new_tokens
  mesh = side_mesh(player)
  arrays = fixed_update_arrays(batch, m * n, width, advantages, mesh)
  state, metrics = player.step_fn(player.state, _place_update(arrays, mesh))
  player.state = state
  metrics = {k: float(v) for k, v in jax.device_get(metrics).items() if np.ndim(v) == 0}
  # Mean token-level player advantage per problem (for coach_reward="mean_adv_x_delta").
  mean_adv = _token_mean_advantages(advantages, batch.completion_lengths, n)
  record.update(
    player_reward=float(batch.rewards.mean()),
    success_rate=float(success.mean()),
    player_loss=metrics.get("loss"),
    player_kl=metrics.get("kl_mean"),
    player_entropy=metrics.get("entropy_mean"),
    _coach={"rows": coach_rows, "success": success.tolist(), "mean_adv": mean_adv},
  )
  return record


def _token_mean_advantages(advantages, lengths, n) -> list[float | None]:
  """Per group of n rows: the advantage averaged over the group's completion tokens (None for
  a group without tokens)."""
  out = []
  for i in range(0, len(advantages), n):
    tokens = float(np.sum(lengths[i : i + n]))
    out.append(
      float(np.sum(advantages[i : i + n] * lengths[i : i + n]) / tokens) if tokens else None
    )
  return out


def coach_update(record, config, coach: Side, delta: float) -> None:
  info = record["_coach"]
  if not info["rows"]:
    return
  rewards = coach_rewards(
    info["success"], delta, mode=config.coach_reward, mean_advantages=info["mean_adv"]
  )
  batch = RolloutBatch.concatenate(info["rows"])
  width = config.coach_max_prompt_len + config.coach_max_new_tokens
  mesh = side_mesh(coach)
  arrays = fixed_update_arrays(batch, config.problems_per_step, width, rewards, mesh)
  state, metrics = coach.step_fn(coach.state, _place_update(arrays, mesh))
  coach.state = state
  metrics = jax.device_get(metrics)
  record.update(
    coach_reward=float(rewards.mean()),
    coach_loss=float(metrics["loss"]),
  )
