"""CPMöbius coach-player self-play: the loop, checkpointed as one state.

"CPMöbius: Iterative Coach-Player Reasoning for Data-Free Reinforcement Learning", Li et al.,
arXiv:2602.02979 (ICML 2026); spec rl.md section 8. `run_cpmobius(config)` runs, per step t:

  1. **propose**: the coach samples `proposals_per_round` problems from one instruction (or, for
     the fixed-curriculum baseline `proposer="generator"`, the task generator draws them);
  2. **solve**: the player samples n answers per problem (`rl.rollout.collect_rollouts`, the RL
     trainer's rollout code); pseudo-label = the unique plurality answer
     (`labels.label_group`), player rewards per `player_reward_values`;
  3. **filter**: keep problems whose agreement with the label is in `[filter_low,
     filter_high]`, proposing again (at most `max_proposal_rounds` rounds) until m are kept;
  4. **player update**: GRPO group advantages, one PPO-clip step with a k3 KL to the initial
     player and the entropy coefficient (verl's sign), through the RL loss library and the
     shared sharded train step;
  5. **feedback**: greedy accuracy on a fixed validation set, `Delta_t = acc_t - acc_{t-1}`
     (times `delta_scale`; the released code uses 100);
  6. **coach update**: REINFORCE with group size 1 (advantage = coach reward, `coach_reward`
     variant) on the accepted problems' proposal tokens, the same loss library;
  7. **best-player safeguard** (released code): after `safeguard_after` steps, when validation
     has not improved for `safeguard_patience` consecutive steps and the last Delta < 0, the
     best player's parameters are reloaded.

Coach, player, both optimizer states, the best player, the RNG and the history are saved
together every `checkpoint_every` steps (and on SIGTERM): a killed run resumes exactly. Every
batch is padded to a fixed shape (m groups of n rows, fixed widths), so each update compiles
once. Validation is never trained on; held-out accuracy (another split) is only reported.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging
from flax import nnx

from reasoning_jax import distributed
from reasoning_jax import sharding as sharding_lib
from reasoning_jax.rl.cpmobius.config import validate_config
from reasoning_jax.rl.cpmobius.models import Models, build_models
from reasoning_jax.rl.cpmobius.step import coach_update, play_step, prompt_batch
from reasoning_jax.rl.policy import make_side
from reasoning_jax.train.exact_match import evaluate_exact_match

__all__ = ["reload_best_player", "run_cpmobius"]


def run_cpmobius(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Runs coach-player self-play per `config` (`configs/cpmobius.py`); returns the summary
  (also `<workdir>/summary.json`, with the per-step `history.jsonl`)."""
  from tqdm import tqdm

  from reasoning_jax.checkpoint import TrainCheckpointer

  validate_config(config)
  # On several processes (jax.distributed) every host runs this same loop: the rollouts are
  # split over the global mesh and gathered back to every host, so the proposals, labels,
  # filter decisions and history are identical everywhere (the checkpointer refuses a history
  # that differs between hosts); process 0 writes the history and summary files.
  writer = jax.process_index() == 0
  workdir = os.path.abspath(config.workdir)
  os.makedirs(workdir, exist_ok=True)
  mesh = sharding_lib.make_mesh(dict(config.mesh))
  models: Models = build_models(config, workdir, mesh)
  m, n = config.problems_per_step, config.samples_per_problem
  p_prompt_len, c_prompt_len = config.player_max_prompt_len, config.coach_max_prompt_len
  player = make_side(
    models.player,
    lr=config.player_learning_rate,
    grad_clip=config.grad_clip,
    loss_cfg=dict(
      aggregation="token_mean",
      eps_low=config.clip_eps,
      eps_high=config.clip_eps,
      beta=config.player_kl_coef,
      kl_estimator="k3",
      entropy_coef=config.player_entropy_coef,
    ),
    window=config.player_max_new_tokens,
    mesh=mesh,
  )
  coach = None
  if models.coach is not None:
    coach = make_side(
      models.coach,
      lr=config.coach_learning_rate,
      grad_clip=config.grad_clip,
      loss_cfg=dict(
        aggregation=config.coach_aggregation,
        eps_low=config.clip_eps,
        eps_high=config.clip_eps,
        beta=config.coach_kl_coef,
        kl_estimator="k3",
        entropy_coef=config.coach_entropy_coef,
      ),
      window=config.coach_max_new_tokens,
      mesh=mesh,
    )
  p_tok, c_tok = models.player_tokenizer, models.coach_tokenizer
  instruction = (
    prompt_batch(
      c_tok,
      [config.instruction] if coach is not None else [""],
      template=models.coach_prompt,
      max_prompt_len=c_prompt_len,
      add_bos=models.coach_add_bos,
    )
    if coach is not None
    else None
  )
  reward_name = models.reward

  def evaluate(params, examples, samples: int = 0) -> float:
    """Greedy accuracy; with `samples` = k > 0, avg@k at the player's sampling settings
    (a fixed key: differences between steps are the player's)."""
    model = nnx.merge(player.graphdef, params)
    sampled = dict(
      temperature=config.player_temperature,
      top_p=config.player_top_p,
      num_samples=samples,
      seed=config.seed + 1,
    )
    return evaluate_exact_match(
      model,
      p_tok,
      examples,
      reward=reward_name,
      num_examples=len(examples),
      max_new_tokens=config.player_max_new_tokens,
      prompt_template=models.player_prompt,
      eos_id=models.player_eos,
      max_prompt_len=p_prompt_len,
      add_bos=models.player_add_bos,
      mesh=mesh,
      **(sampled if samples else {"temperature": 0.0}),
    )["accuracy"]

  def heldout(params) -> dict[str, float]:
    out = {"heldout_accuracy": evaluate(params, models.heldout)}
    if config.heldout_samples:
      out["heldout_sampled_accuracy"] = evaluate(params, models.heldout, config.heldout_samples)
    return out

  rng = jax.random.key(config.seed)
  history: list[dict[str, Any]] = []
  best_params = jax.tree_util.tree_map(jnp.copy, player.state.params)

  def as_checkpoint(step):
    state = {
      "player_params": player.state.params,
      "player_opt": player.state.opt_state,
      "best_params": best_params,
      "rng": rng,
      "step": step,
      "history": history,
      "config": config.to_dict(),
    }
    if coach is not None:
      state.update(coach_params=coach.state.params, coach_opt=coach.state.opt_state)
    return state

  start = 0
  ckpt = TrainCheckpointer(
    os.path.join(workdir, "checkpoints"),
    max_to_keep=config.keep_checkpoints,
    save_interval_steps=config.checkpoint_every,
    json_items=("config", "history"),
  )
  with ckpt:
    ckpt.install_preemption_handler()
    abstract = lambda tree: jax.tree_util.tree_map(  # noqa: E731
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree
    )
    target = {
      "player_params": abstract(player.state.params),
      "player_opt": abstract(player.state.opt_state),
      "best_params": abstract(best_params),
      "rng": rng,
    }
    if coach is not None:
      target.update(
        coach_params=abstract(coach.state.params), coach_opt=abstract(coach.state.opt_state)
      )
    restored = ckpt.restore(target=target)
    if restored is not None:
      start, saved = restored
      player.state = dataclasses.replace(
        player.state,
        params=saved["player_params"],
        opt_state=saved["player_opt"],
        step=jnp.asarray(start, jnp.int32),
      )
      if coach is not None:
        coach.state = dataclasses.replace(
          coach.state,
          params=saved["coach_params"],
          opt_state=saved["coach_opt"],
          step=jnp.asarray(start, jnp.int32),
        )
      best_params, history = saved["best_params"], list(saved["history"])
      # Restored on one device: uncommitted again, as a fresh run's key (as the trainers do).
      rng = sharding_lib.uncommitted(saved["rng"])
      logging.info("cpmobius: resumed at step %d", start)
    else:
      val0 = evaluate(player.state.params, models.validation)
      history.append(
        {"step": 0, "val_accuracy": val0, "best_val": val0, **heldout(player.state.params)}
      )
    progress = tqdm(
      range(start + 1, config.num_steps + 1),
      initial=start,
      total=config.num_steps,
      desc=f"cpmobius[{config.proposer}]",
      mininterval=2.0,
      disable=not writer,
    )
    preempted = False
    empty_streak = 0  # consecutive steps without an accepted problem (continued on resume)
    for h in reversed(history[1:]):
      if h["accepted"]:
        break
      empty_streak += 1
    for step in progress:
      t0 = time.perf_counter()
      key = jax.random.fold_in(rng, step)
      record = play_step(
        step, key, config, models, player, coach, instruction, p_tok, c_tok, m, n, history
      )
      if record["accepted"] == 0:
        empty_streak += 1
        logging.warning(
          "cpmobius step %d: no proposal passed the filter in %d rounds (%d proposals); the "
          "player and coach are not updated",
          step,
          record["rounds"],
          record["proposals"],
        )
        if empty_streak >= config.max_empty_steps:
          ckpt.wait()
          raise RuntimeError(
            f"cpmobius: {empty_streak} consecutive steps without a problem in the filter band "
            f"[{config.filter_low}, {config.filter_high}] after config.max_proposal_rounds="
            f"{config.max_proposal_rounds} rounds each (config.max_empty_steps="
            f"{config.max_empty_steps}); the coach proposes nothing the player half-solves"
          )
        record.update(
          val_accuracy=history[-1]["val_accuracy"],
          delta=0.0,
          best_val=history[-1]["best_val"],
          stale=history[-1].get("stale", 0),
        )
      else:
        empty_streak = 0
        val = evaluate(player.state.params, models.validation)
        delta = (val - history[-1]["val_accuracy"]) * config.delta_scale
        record.update(val_accuracy=val, delta=delta)
        if coach is not None and config.update_coach:
          coach_update(record, config, coach, delta)
        best_val = history[-1]["best_val"]
        stale = history[-1].get("stale", 0) + 1  # steps since validation last improved
        if val > best_val:
          best_val, stale = val, 0
          best_params = jax.tree_util.tree_map(jnp.copy, player.state.params)
        record["best_val"] = best_val
        if reload_best_player(step, stale, delta, config):
          player.state = dataclasses.replace(
            player.state, params=jax.tree_util.tree_map(jnp.copy, best_params)
          )
          record["reloaded_best"] = True
          stale = 0
          logging.warning("cpmobius step %d: reloaded the best player (val %.3f)", step, best_val)
        record["stale"] = stale
      if step % config.heldout_every == 0 or step == config.num_steps:
        record.update(heldout(player.state.params))
      record.pop("_coach", None)
      # Process 0's clock on every host: the history is one JSON checkpoint item that must
      # agree across hosts (everything else in it comes from gathered rollouts).
      record["seconds"] = float(distributed.broadcast_json(time.perf_counter() - t0))
      history.append(record)
      progress.set_postfix(val=f"{record['val_accuracy']:.3f}", acc=record["accepted"])
      if ckpt.maybe_save(step, lambda: as_checkpoint(step)):
        logging.warning("preempted: saved cpmobius step %d", step)
        preempted = True
        break
    last = history[-1]["step"]
    if not preempted and last != start:
      ckpt.save(last, as_checkpoint(last), force=True, wait=True)
  if writer:
    with open(os.path.join(workdir, "history.jsonl"), "w") as f:
      for h in history:
        f.write(json.dumps(h, sort_keys=True) + "\n")
  summary = {
    "proposer": config.proposer,
    "update_coach": bool(config.update_coach),
    "use_filter": bool(config.use_filter),
    "steps": last,
    "preempted": preempted,
    "val_accuracy_initial": history[0]["val_accuracy"],
    "val_accuracy_final": history[-1]["val_accuracy"],
    "heldout_accuracy_initial": history[0]["heldout_accuracy"],
    "heldout_accuracy_final": next(
      (h["heldout_accuracy"] for h in reversed(history) if "heldout_accuracy" in h), None
    ),
  }
  if writer:
    with open(os.path.join(workdir, "summary.json"), "w") as f:
      json.dump(summary, f, indent=2)
  return {**summary, "history": history}


def reload_best_player(step: int, stale: int, delta: float, config) -> bool:
  """The released code's safeguard: after `safeguard_after` steps, when validation has not
  improved for `safeguard_patience` consecutive steps (`stale`) and the last Delta is
  negative, the best player's parameters are reloaded."""
  return bool(
    config.best_player_safeguard
    and step > config.safeguard_after
    and stale >= config.safeguard_patience
    and delta < 0
  )
