"""The RL trainer: rollout -> rewards -> advantages -> mini-batch updates -> metrics -> checkpoints.

`run_rl(config)` is the library entry point behind `python -m experiments.rl_train`.
It starts from an SFT warm start (`reasoning_jax.train.sft`, trained first when
no checkpoint exists), then for every step:

  1. draws `prompts_per_step` prompts (grain, host-sharded, checkpointed iterator),
     samples `group_size` completions each with the KV-cache `generate` and scores
     them with a registered verifier (`reasoning_jax.rl.rollout`); DAPO's dynamic
     sampling refills the batch with mixed-outcome groups;
  2. computes advantages with a registered estimator (`rl.ADVANTAGES`: grpo,
     dr_grpo, rloo, arm, mrpo, and the token-level token_grpo / token_rloo over
     `[N, T]` token rewards), after optional DAPO soft overlong punishment and
     KL-in-reward; the judge recipes score rollouts with a frozen judge model
     (`rl.judge_scorer`: rubric rewards, Grad2Reward dense token rewards);
  3. runs `ppo_epochs x mini_batches` optimizer updates of a registered loss
     (`rl.LOSSES`), each a sharded, exactly micro-batch-accumulated step
     (`reasoning_jax.train.step`), with the truncated importance-sampling
     correction for sampler/trainer mismatch;
  4. logs reward, accuracy, response length, entropy, clip fractions, KL, ... and a few
     sample rollouts to read (`rollouts.jsonl`, `config.log_rollouts`), evaluates
     held-out exact match, checkpoints (interval + SIGTERM) and plots.

`config.loss` names a *recipe* (loss + advantage estimator + data-side switches):
grpo, dapo, drgrpo, cispo, dispo, arm, mrpo, rubric_grpo, grad2reward. The losses stay pure functions of
arrays; only this file touches the model.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from reasoning_jax import citations, rl
from reasoning_jax import sharding as sharding_lib
from reasoning_jax.logprobs import sequence_logprobs
from reasoning_jax.rl.batch_advantages import compute_advantages
from reasoning_jax.rl.draft import build_draft, draft_spec
from reasoning_jax.rl.judge_scorer import build_scorer, judge_spec
from reasoning_jax.rl.rollout import collect_dynamic, collect_rollouts
from reasoning_jax.rl.rollout_log import ROLLOUTS_FILE, rollout_records
from reasoning_jax.train import lora_setup
from reasoning_jax.train.memory.policy import with_model_state_dtype
from reasoning_jax.train.metrics import (
  EVAL_SAMPLES_FILE,
  MetricWriter,
  device_memory,
  has_metric,
  read_metrics,
)
from reasoning_jax.train.step import (
  init_train_state,
  make_train_step,
  restore_train_state,
  state_shardings,
)
from reasoning_jax.rl.recipes import (  # noqa: F401 (re-exported: the trainer's config API)
  OPTIMIZERS,
  RECIPES,
  REQUIRED_KEYS,
  ConfigError,
  Recipe,
  in_sft_config,
  sft_config,
  validate_config,
  validate_numeric_fields,
)
from reasoning_jax.rl.warm_start import (  # noqa: F401 (re-exported)
  WARM_START_KEYS,
  check_warm_start_config,
  warm_start,
)


def make_rl_loss_fn(
  bound_loss: rl.BoundLoss,
  *,
  chunk_size: int | None = None,
  tis_cap: float | None = None,
  window: int | None = None,
):
  """`fn(model, batch) -> (loss_sum, denominator, aux)` for `make_train_step`.

  `window` (the completion budget) projects only each row's completion positions onto the
  vocabulary (`sequence_logprobs(window=)`): exact, and the head does `C / (P + C)` of the
  work.

  A batch without `old_logp` is an on-policy update (one update per rollout, params equal to
  the sampler's): the old log-probs are this forward pass's own, stop-gradient, so the ratio
  is exactly 1, and the rollout skips a separate forward pass. The truncated IS weights then
  come from them and `sampler_logp` with cap `tis_cap` (else from the batch's `is_weights`).
  """

  def loss_fn(model, batch):
    logp, entropy = sequence_logprobs(
      model, batch["tokens"], batch["mask"], chunk_size=chunk_size, window=window
    )
    old_logp = batch.get("old_logp")
    is_weights = batch.get("is_weights")
    if old_logp is None:
      old_logp = jax.lax.stop_gradient(logp)
      if is_weights is None and tis_cap is not None and "sampler_logp" in batch:
        is_weights = rl.truncated_importance_weights(
          old_logp, batch["sampler_logp"], batch["mask"], cap=tis_cap
        )
    out = bound_loss(
      logp,
      old_logp,
      batch["advantages"],
      batch["mask"],
      ref_logp=batch.get("ref_logp"),
      entropy=entropy,
      is_weights=is_weights,
      correct=batch.get("correct"),
    )
    return out.loss_sum, out.denominator, out.aux

  return loss_fn


def plot_rl_curves(workdir: str, title: str) -> str | None:
  """`curves.png`: train reward/accuracy, held-out accuracy and response length vs step."""
  records = read_metrics(workdir)
  if not records or jax.process_index() != 0:
    return None
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  def series(key):
    return [(r["step"], r[key]) for r in records if key in r and math.isfinite(r[key])]

  fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
  for key, label in (("rollout/reward", "train reward"), ("rollout/accuracy", "train accuracy")):
    if series(key):
      axes[0].plot(*zip(*series(key)), label=label)
  axes[0].set(xlabel="step", title="rollouts")
  axes[0].legend()
  for key, label in (
    ("eval/accuracy", "greedy"),
    ("eval/sampled_accuracy", "sampled (avg@k)"),
    ("eval/pass_at_k", "pass@k"),
  ):
    if series(key):
      axes[1].plot(*zip(*series(key)), marker="o", label=label)
  axes[1].set(xlabel="step", ylabel="held-out exact match", ylim=(-0.02, 1.02))
  axes[1].legend()
  if series("rollout/response_length"):
    axes[2].plot(*zip(*series("rollout/response_length")))
  axes[2].set(xlabel="step", ylabel="response length (tokens)")
  fig.suptitle(title)
  fig.tight_layout()
  path = os.path.join(workdir, "curves.png")
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def run_rl(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Runs RL per `config`; returns final metrics (also in workdir/final_metrics.json).

  The workdir also gets `CITATIONS.bib`, the papers of the loss, advantage estimator, mixers
  and FFNs the run used (`result["citations"]` names them; `reasoning_jax.citations`).
  """
  from tqdm import tqdm

  from reasoning_jax.checkpoint import TrainCheckpointer
  from reasoning_jax.data import iterator_state, make_prompt_dataset
  from reasoning_jax.rewards import score_batch
  from reasoning_jax.train.sft_config import model_source
  from reasoning_jax.train.exact_match import evaluate_exact_match
  from reasoning_jax.train.task import TaskError, prepare_task

  recipe = validate_config(config)
  workdir = os.path.abspath(config.workdir)
  os.makedirs(workdir, exist_ok=True)
  sft = sft_config(config)
  lora = lora_setup.lora_spec(config, error=ConfigError)
  try:  # Model source, data and every prompt are checked before anything is trained.
    source = model_source(sft)
    task = prepare_task(sft, source, workdir=os.path.abspath(sft.workdir))
  except (ConfigError, TaskError, ValueError) as e:  # Keys named as in this config.
    raise ConfigError(in_sft_config(str(e))) from None
  if lora is not None:
    try:
      lora_setup.check_targets(lora, source.model_config, error=ConfigError)
    except ValueError as e:
      raise ConfigError(str(e)) from None
  tokenizer = source.tokenizer
  judge = judge_spec(config, recipe, error=ConfigError)
  if judge is not None:  # Verdict words must be single tokens: checked before any training.
    try:
      judge[0].judge_format.verdict_ids(tokenizer)
    except ValueError as e:
      raise ConfigError(f"config.judge: {e}") from None
  # Sampling: the config's values, else the source's (generation_config.json where present).
  sampling = {
    k: source.sampling[k] if config.get(k) is None else config[k] for k in source.sampling
  }
  mesh = sharding_lib.make_mesh(dict(config.mesh))
  # Sampling, scoring and advantages run per process on its own prompts; the update is one
  # global sharded step over every process's rows, and evaluation one global generate. The
  # rollout rows are split over the batch axes of `rollout_mesh`: on one process the global
  # mesh, with the (possibly sharded) params as they are; on several, each process's own
  # devices, each holding a full copy of the current params (a per-host rollout engine,
  # weights synced every step), so rollouts need no cross-host collectives.
  multi_process = jax.process_count() > 1
  rollout_mesh = (
    sharding_lib.make_mesh({"data": -1}, devices=jax.local_devices()) if multi_process else mesh
  )

  model = warm_start(config, source, mesh)
  draft_cfg = draft_spec(config, error=ConfigError)
  draft = None
  if draft_cfg is not None:  # Speculative rollouts (reasoning_jax.rl.draft), frozen: it lives
    # where the rollouts run (each process's own devices on several).
    draft = build_draft(draft_cfg, model, tokenizer, rollout_mesh, error=ConfigError)
  ref_graphdef = None
  if lora is not None:  # The warm start is the frozen base; only the adapters train.
    lora_setup.adapt(model, lora, seed=config.seed, error=ConfigError)
    ref_graphdef = lora_setup.reference_graphdef(model)
  train_source, test_source = task.train_source, task.test_source
  prompts_local = config.prompts_per_step // jax.process_count()
  prompt_ds = make_prompt_dataset(
    train_source,
    tokenizer,
    batch_size=prompts_local,
    max_prompt_len=task.max_prompt_len,
    seed=config.seed,
    shuffle=True,
    num_epochs=None,
    prompt_template=task.prompt,
    drop_remainder=True,
    truncate=task.truncate,
    add_bos=task.add_bos,
  )
  prompt_iter = iter(prompt_ds)

  loss_overrides = dict(config.loss_overrides)
  bound_loss = rl.make_loss(recipe.loss, **loss_overrides)
  uses_reference = getattr(bound_loss.config, "beta", 0.0) > 0
  # Linear warm-up over `warmup_steps` RL steps (each `ppo_epochs * mini_batches` updates),
  # then constant: Adam's first updates are sign-like (about lr per parameter whatever the
  # gradient), which for noisy policy gradients mostly adds noise to the warm start.
  warmup_updates = config.get("warmup_steps", 0) * config.ppo_epochs * config.mini_batches
  learning_rate = (
    optax.linear_schedule(0.0, config.learning_rate, warmup_updates)
    if warmup_updates
    else config.learning_rate
  )
  tx = with_model_state_dtype(  # config.model.opt_state_dtype, when set.
    optax.chain(
      optax.clip_by_global_norm(config.grad_clip),
      OPTIMIZERS[config.get("optimizer", "adamw")](learning_rate),
    ),
    config,
  )
  graphdef, state = init_train_state(model, tx, trainable=lora_setup.trainable(lora))
  rules = lora_setup.partition_rules(model.config.family, lora)
  shardings = state_shardings(state, tx, rules, mesh)
  state = sharding_lib.place(state, shardings)
  ref_params = None
  if uses_reference and lora is None:  # A copy: the step donates (deletes) the policy buffers.
    ref_params = jax.jit(
      lambda p: jax.tree_util.tree_map(jnp.copy, p), out_shardings=shardings.params
    )(state.params)
  chunk_size = config.get("chunk_size") or None
  # DESIGN CHOICE (exact, default on): only completion positions go through the vocabulary
  # head; a completion never spans more than max_new_tokens positions (assemble_sequences).
  window = config.max_new_tokens if config.get("head_on_completion_only", True) else None
  # One on-policy update per rollout: the update's forward pass provides the old log-probs.
  on_policy = config.ppo_epochs * config.mini_batches == 1 and config.get("reuse_update_logp", True)
  step_fn = make_train_step(
    graphdef,
    tx,
    lora_setup.with_dropout(
      make_rl_loss_fn(
        bound_loss,
        chunk_size=chunk_size,
        tis_cap=config.tis_cap if on_policy else None,
        window=window,
      ),
      lora,
      config.seed,
    ),
    micro_batches=config.micro_batches,
    mesh=mesh,
    shardings=shardings,
    aux_merge=rl.merge_aux,
    aux_finalize=lambda aux, denom: rl.summarize_aux(aux),
  )
  from reasoning_jax.rl.rollout import make_logprob_fn

  # Old / reference log-probs of the completions (windowed head) and, for ARM's prompt terms,
  # of any positions (full head).
  logprob_fn = make_logprob_fn(graphdef, chunk_size=chunk_size, window=window)
  full_logprob_fn = make_logprob_fn(graphdef, chunk_size=chunk_size)
  # LoRA's reference: the policy's own params on the adapters-off graphdef (no copy).
  ref_logprob_fn = None
  if uses_reference and lora is not None:
    ref_logprob_fn = make_logprob_fn(ref_graphdef, chunk_size=chunk_size, window=window)

  def rollout_view(params):
    if not multi_process:
      return params
    return sharding_lib.local_replicas(params, mesh, rollout_mesh)

  ref_rollout_params = None if ref_params is None else rollout_view(ref_params)
  # The judge recipes' rewards (reasoning_jax.rl.judge_scorer): "self" judging copies the
  # policy as it is now, before the first update.
  scorer = None
  if judge is not None:
    initial = nnx.merge(graphdef, rollout_view(lora_setup.all_params(state)))
    # One process: the judge's pairs are sharded over the mesh's batch axes; several: each
    # process judges its own rollouts with its local copy (like the rollouts themselves).
    scorer = build_scorer(
      judge,
      initial,
      tokenizer,
      eos_id=source.eos_id,
      mesh=None if multi_process else mesh,
      error=ConfigError,
    )
  dynamic = recipe.dynamic_sampling if config.dynamic_sampling is None else config.dynamic_sampling

  def reward_fn(completions, answers, **fields):
    return score_batch(task.reward, completions, answers, **fields)

  rng = jax.random.key(config.seed)
  writer = MetricWriter(workdir)
  logging.info(
    "RL %s (loss=%s, advantage=%s, dynamic_sampling=%s, reference=%s, lora=%s), %d steps",
    config.loss,
    recipe.loss,
    recipe.advantage,
    dynamic,
    uses_reference,
    None if lora is None else lora.lora,
    config.num_steps,
  )

  eval_samples = config.get("eval_samples", 0)
  log_rollouts = config.get("log_rollouts", 0) or 0
  eval_temperature = config.get("eval_temperature", None) or sampling["temperature"]

  def evaluate(step, log=True):
    """Greedy exact match, and avg@k / pass@k of k samples at the eval temperature."""
    # The global params, rows split over the mesh's batch axes (on several processes too:
    # each device decodes its slice instead of every process decoding every question).
    eval_model = nnx.merge(graphdef, lora_setup.all_params(state))
    common = dict(
      reward=task.reward,
      num_examples=config.eval_examples,
      max_new_tokens=config.max_new_tokens,
      prompt_template=task.prompt,
      eos_id=source.eos_id,
      # The rollouts' prompt limit. Padding held-out prompts to 256 positions (as before) made
      # evaluation ~15x slower on CPU with the same accuracies (countdown warm start, 128
      # questions x (greedy + 4 samples): 38 s vs 2.5 s), for prompts the rollouts truncate.
      max_prompt_len=task.max_prompt_len,
      add_bos=task.add_bos,
      truncate=task.truncate,
      mesh=mesh,
    )
    result = evaluate_exact_match(eval_model, tokenizer, test_source, seed=config.seed, **common)
    values = {"accuracy": result["accuracy"]}
    if eval_samples:
      # The same key at every evaluation: differences between steps are the policy's.
      sampled = evaluate_exact_match(
        eval_model,
        tokenizer,
        test_source,
        seed=config.seed + 1,
        temperature=eval_temperature,
        num_samples=eval_samples,
        **common,
      )
      values.update(sampled_accuracy=sampled["accuracy"], pass_at_k=sampled["pass_at_k"])
      result.update(values)
    if log:
      writer.write(step, values, prefix="eval/")
      writer.write_records(step, EVAL_SAMPLES_FILE, result["sample_records"])
    return result

  def as_checkpoint(step):
    return {
      "params": state.params,
      "opt_state": state.opt_state,
      "step": step,
      "rng": rng,
      "data_state": iterator_state(prompt_iter),
      "config": config.to_dict(),
    }

  start_step, preempted, t0 = 0, False, time.perf_counter()
  with TrainCheckpointer(
    os.path.join(workdir, "checkpoints"),
    max_to_keep=config.keep_checkpoints,
    save_interval_steps=config.checkpoint_every,
  ) as ckpt:
    ckpt.install_preemption_handler()
    restored = restore_train_state(
      ckpt, state, rng, prompt_iter, mesh, updates_per_step=config.ppo_epochs * config.mini_batches
    )
    if restored is not None:
      start_step, state, rng = restored
      # Steps after the checkpoint are trained again: their old log lines go.
      dropped = writer.resume_at(start_step, records=(ROLLOUTS_FILE, EVAL_SAMPLES_FILE))
      logging.info("resumed RL from step %d (%d log lines after it dropped)", start_step, dropped)
    else:
      evaluate(0)
    progress = tqdm(
      range(start_step + 1, config.num_steps + 1),
      initial=start_step,
      total=config.num_steps,
      desc=f"rl[{config.loss}]",
      mininterval=2.0,
      disable=jax.process_index() != 0,
    )
    last_step = start_step
    for step in progress:
      step_start = time.perf_counter()
      key = jax.random.fold_in(rng, step)
      if multi_process:  # Independent samples on every process.
        key = jax.random.fold_in(key, jax.process_index())
      policy = rollout_view(lora_setup.all_params(state))
      phase_seconds: dict[str, float] = {}  # prefill / decode / score / old and ref log-probs.
      rollout_kwargs = dict(
        graphdef=graphdef,
        params=policy,
        tokenizer=tokenizer,
        reward_fn=reward_fn,
        group_size=config.group_size,
        max_new_tokens=config.max_new_tokens,
        temperature=sampling["temperature"],
        top_k=sampling["top_k"] or None,
        top_p=sampling["top_p"],
        eos_id=source.eos_id,
        logprob_fn=logprob_fn,
        ref_params=policy if ref_logprob_fn is not None else ref_rollout_params,
        ref_logprob_fn=ref_logprob_fn,
        recompute_old_logp=not on_policy,
        timings=phase_seconds,
        mesh=rollout_mesh,
      )
      spec_stats: dict[str, Any] = {}
      judge_stats: dict[str, float] = {}
      if scorer is not None:
        rollout_kwargs.update(scorer=scorer, scorer_stats=judge_stats)
      if draft is not None:
        rollout_kwargs.update(
          draft=draft, num_draft=draft_cfg["num_draft"], speculative_stats=spec_stats
        )
      stats: dict[str, float] = {}
      if dynamic:
        batch, stats = collect_dynamic(
          prompt_iter,
          prompts_local,
          max_batches=config.max_dynamic_batches,
          key=key,
          **rollout_kwargs,
        )
      else:
        batch = collect_rollouts(prompt_batch=next(prompt_iter), key=key, **rollout_kwargs)
      rollout_seconds = time.perf_counter() - step_start
      advantages, adv_stats = compute_advantages(
        recipe, batch, config, graphdef=graphdef, params=policy, logprob_fn=full_logprob_fn
      )
      stats.update(adv_stats)
      arrays = {
        "tokens": batch.tokens,
        "mask": batch.mask,
        "advantages": advantages,
        "correct": (batch.rewards > 0).astype(np.float32),
      }
      if batch.old_logp is None:  # On-policy: the loss derives old log-probs and TIS weights.
        arrays["sampler_logp"] = batch.sampler_logp
      else:
        arrays["old_logp"] = batch.old_logp
        arrays["is_weights"] = np.asarray(
          rl.truncated_importance_weights(
            jnp.asarray(batch.old_logp),
            jnp.asarray(batch.sampler_logp),
            jnp.asarray(batch.mask),
            cap=config.tis_cap,
          )
        )
      if batch.ref_logp is not None:
        arrays["ref_logp"] = batch.ref_logp
      n = batch.size
      update_metrics = []
      perm_key = np.random.default_rng(config.seed * 100003 + step)
      # At most two updates in flight (as in train.sft). On several CPU processes (gloo) with
      # jax 0.10, a deeper queue of programs that all-gather across processes can deadlock.
      for epoch in range(config.ppo_epochs):
        order = perm_key.permutation(n)
        for i, rows in enumerate(np.split(order, config.mini_batches)):
          mini = {k: v[rows] for k, v in arrays.items()}
          update = epoch * config.mini_batches + i
          mini = sharding_lib.shard_batch(
            lora_setup.add_dropout_seeds(mini, lora, step, update), mesh
          )
          state, metrics = step_fn(state, mini)
          if update_metrics:
            jax.block_until_ready(update_metrics[-1])
          update_metrics.append(metrics)
      metrics = jax.device_get(update_metrics[-1])
      metrics = {k: float(v) for k, v in metrics.items() if np.ndim(v) == 0}
      rollout = {
        "reward": float(batch.rewards.mean()),
        "accuracy": float((batch.rewards >= 1.0).mean()),
        "response_length": float(batch.completion_lengths.mean()),
        "truncated": float(batch.truncated.mean()),
        "zero_adv_groups": float(
          np.asarray(
            rl.zero_variance_group_fraction(
              jnp.asarray(batch.rewards), group_ids=jnp.asarray(batch.group_ids)
            )
          )
        ),
        "seconds": rollout_seconds,
        **{f"seconds_{name[:-2]}": value for name, value in phase_seconds.items()},
        **stats,
      }
      rollout.update({f"judge_{k}": float(v) for k, v in judge_stats.items()})
      if spec_stats:
        rollout["spec_tokens_per_call"] = float(spec_stats["tokens_per_target_call"])
        rollout["spec_acceptance"] = float(spec_stats["acceptance_rate"])
      writer.write(step, rollout, prefix="rollout/")
      if step % config.log_every == 0 or step == config.num_steps:
        metrics["step_seconds"] = time.perf_counter() - step_start
        writer.write(step, metrics, prefix="train/")
        writer.write(step, device_memory(), prefix="memory/")  # Accelerators only.
        if writer.active and log_rollouts:  # Sample rows to read: rollouts.jsonl.
          samples = rollout_records(
            batch, tokenizer, step=step, num=log_rollouts, advantages=advantages
          )
          writer.write_records(step, ROLLOUTS_FILE, samples)
      progress.set_postfix(
        reward=f"{rollout['reward']:.3f}", len=f"{rollout['response_length']:.0f}"
      )
      if not math.isfinite(metrics.get("loss", 0.0)):
        ckpt.wait()
        raise FloatingPointError(
          f"non-finite RL loss at step {step}; last good checkpoint: "
          f"step {ckpt.latest_step()} in {workdir}/checkpoints"
        )
      if step % config.eval_every == 0 and step != config.num_steps:
        evaluate(step)
      last_step = step
      if ckpt.maybe_save(step, lambda: as_checkpoint(step)):
        logging.warning("preempted: saved RL step %d, exiting", step)
        preempted = True
        break
    final_step = last_step
    # A rerun of a finished run trains no step: its final checkpoint is already on disk.
    if not preempted and final_step != start_step:
      ckpt.save(final_step, as_checkpoint(final_step), force=True, wait=True)
  result: dict[str, Any] = {
    "loss": config.loss,
    "step": final_step,
    "preempted": preempted,
    "seconds": time.perf_counter() - t0,
  }
  evals = [r for r in read_metrics(workdir) if "eval/accuracy" in r]
  if not preempted:  # Logged once: a finished run launched again has its line already.
    final = evaluate(final_step, log=not has_metric(workdir, final_step, "eval/accuracy"))
    result["accuracy"] = final["accuracy"]
    if "sampled_accuracy" in final:
      result["sampled_accuracy"] = final["sampled_accuracy"]
      result["pass_at_k"] = final["pass_at_k"]
    exported = lora_setup.export(graphdef, state, lora)
    if exported:
      result["exported"] = exported
    evals = [r for r in read_metrics(workdir) if "eval/accuracy" in r]
  if evals:
    result["accuracy_warm_start"] = evals[0]["eval/accuracy"]
    if "eval/sampled_accuracy" in evals[0]:
      result["sampled_accuracy_warm_start"] = evals[0]["eval/sampled_accuracy"]
  writer.close()
  if config.get("plot", True):
    result["plot"] = plot_rl_curves(workdir, f"RL {config.loss} on {sft.task}/{sft.task_config}")
  # What to cite for this run: the recipe's loss and estimator, the model's mixers and FFNs.
  result["citations"] = citations.run_components(
    loss=recipe.loss,
    advantage=recipe.advantage,
    model=source.model_config,
    methods=("grad2reward",) if recipe.judge else (),
  )
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "final_metrics.json"), "w") as f:
      json.dump(result, f, indent=2)
    citations.write_citations(result["citations"], os.path.join(workdir, "CITATIONS.bib"))
  return result
