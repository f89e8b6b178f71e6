"""Supervised fine-tuning (or training from scratch) on a dataset with verifiable answers.

`run_sft(config)` wires the library together; the absl main
`experiments/sft.py` only parses the config and calls it, and the RL trainer
calls it for its warm start. One code path for one CPU, 8 host devices or a pod:

  TFDS builder (ArrayRecord) -> grain pipeline (host-sharded, checkpointable)
  -> `shard_batch` (global arrays on the mesh) -> jitted sharded train step
  (exact micro-batch accumulation) -> metrics (JSONL + TensorBoard)
  -> orbax checkpoints (interval, keep-last-N, SIGTERM) -> exact-match
  evaluation with `generate` + a verifier -> loss/accuracy plot.

Resuming: a restart with the same workdir restores params, optimizer state, step,
RNG and the data iterator, so it continues with exactly the next batch.

Continued training (mid-training): `config.init_workdir` (optional, "" = off) names another
run's workdir (SFT or RL, full fine-tuning, the same model shape and tokenizer); its newest
checkpoint's params replace the initialisation before step 0, with a fresh optimizer state
and schedule (ReMiT's default frozen base, `delta_reference="frozen_base"`, is then those
params). A resume of this run restores its own checkpoint as usual.

Packing (`config.pack`, optional, default False): first-fit packing of several examples per
`seq_len` row (`segment_ids` keep them apart in attention and in the recurrent mixers'
state, positions restart per example), so short examples stop paying for a row of padding;
`batch_size` then counts packed rows.

The config's keys, launch-time checks, model source and optimizer: `train.sft_config`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from reasoning_jax import citations
from reasoning_jax import sharding as sharding_lib
from reasoning_jax.models.source import ModelSource, abstract_model, build_model
from reasoning_jax.train import lora_setup, remit_setup
from reasoning_jax.train.exact_match import evaluate_exact_match
from reasoning_jax.train.metrics import (
  EVAL_SAMPLES_FILE,
  MetricWriter,
  device_memory,
  has_metric,
  read_metrics,
)
from reasoning_jax.train.sft_config import (
  ConfigError,
  make_optimizer,
  model_source,
  validate_config,
)
from reasoning_jax.train.step import (
  init_train_state,
  make_train_step,
  restore_train_state,
  sft_loss,
  state_shardings,
)
from reasoning_jax.train.task import TaskError, prepare_task


def load_init_params(config, source: ModelSource, params: Any, shardings: Any, mesh) -> Any:
  """The params of the newest checkpoint in `config.init_workdir`, placed like `params` (the
  learner's, whose tree and shapes they must match); ConfigError naming the key otherwise."""
  key = "config.init_workdir"
  _, loaded = remit_setup.load_frozen(
    ("workdir", config.init_workdir), key, source, mesh, ConfigError
  )

  def layout(tree):
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [(jax.tree_util.keystr(path), tuple(x.shape)) for path, x in leaves]

  if layout(loaded) != layout(params):
    raise ConfigError(
      f"{key}={config.init_workdir!r}: its model's parameters differ in names or shapes "
      "from this run's (config.preset / model_overrides / model)"
    )
  leaves = [
    x.astype(want.dtype)
    for x, want in zip(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(params))
  ]
  return sharding_lib.place(
    jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), leaves), shardings
  )


def plot_curves(workdir: str, title: str) -> str | None:
  """Writes `curves.png` (train loss and eval accuracy vs step) from metrics.jsonl."""
  records = read_metrics(workdir)
  if not records or jax.process_index() != 0:
    return None
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  train = [(r["step"], r["train/loss"]) for r in records if "train/loss" in r]
  evals = [(r["step"], r["eval/accuracy"]) for r in records if "eval/accuracy" in r]
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
  if train:
    ax1.plot(*zip(*train))
    ax1.set(xlabel="step", ylabel="train loss (per target token)", yscale="log")
  if evals:
    ax2.plot(*zip(*evals), marker="o")
    ax2.set(xlabel="step", ylabel="held-out exact match", ylim=(-0.02, 1.02))
  fig.suptitle(title)
  fig.tight_layout()
  path = os.path.join(workdir, "curves.png")
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def run_sft(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Trains per `config`; returns final metrics (also written to workdir/final_metrics.json).

  The workdir also gets `CITATIONS.bib` for the model's mixers and FFNs
  (`reasoning_jax.citations`).
  """
  from tqdm import tqdm

  from reasoning_jax.checkpoint import TrainCheckpointer
  from reasoning_jax.data import iterator_state, make_sft_dataset

  validate_config(config)
  workdir = os.path.abspath(config.workdir)
  os.makedirs(workdir, exist_ok=True)
  source = model_source(config)  # Small files only: bad input fails here.
  lora = lora_setup.lora_spec(config, error=ConfigError)
  if lora is not None:
    lora_setup.check_targets(lora, source.model_config, error=ConfigError)
  tokenizer = source.tokenizer
  mesh = sharding_lib.make_mesh(dict(config.mesh))

  # Data: a TFDS builder (ArrayRecord) read through grain, host-sharded; every prompt is
  # rendered and checked against the limit before the first step.
  try:
    task = prepare_task(config, source, workdir=workdir)
  except TaskError as e:
    raise ConfigError(str(e)) from None
  test_source = task.test_source
  local_batch = config.batch_size // jax.process_count()
  train_ds = make_sft_dataset(
    task.sft_source,  # train + the task's SFT-only splits (e.g. judge demonstrations)
    tokenizer,
    seq_len=config.seq_len,
    batch_size=local_batch,
    seed=config.seed,
    prompt_template=task.prompt,
    target_field=config.target_field,
    target_format=task.target_format,
    add_bos=task.add_bos,
    worker_count=config.worker_count,
    pack=bool(config.get("pack", False)),
  )
  data_iter = iter(train_ds)

  # Model (a preset's random init, or HF weights placed shard by shard) + optimizer state,
  # placed on the mesh by the family's partition rules. With config.lora the model is the
  # frozen base and only its adapters train (lora_setup).
  model = build_model(source, seed=config.seed, mesh=mesh)
  if lora is not None:
    lora_setup.adapt(model, lora, seed=config.seed, error=ConfigError)
  tx = make_optimizer(config)
  graphdef, state = init_train_state(model, tx, trainable=lora_setup.trainable(lora))
  rules = lora_setup.partition_rules(model.config.family, lora)
  shardings = state_shardings(state, tx, rules, mesh)
  state = sharding_lib.place(state, shardings)
  if config.get("init_workdir"):  # Continued training: another run's params before step 0.
    params = load_init_params(config, source, state.params, shardings.params, mesh)
    state = dataclasses.replace(state, params=params)
    logging.info("initial params from %s", config.init_workdir)
  chunk_size = config.get("chunk_size") or None
  # ReMiT mid-training (config.remit): a frozen guide's log-probs reweight the NTP loss.
  remit = remit_setup.setup(
    remit_setup.remit_spec(config, error=ConfigError),
    source=source,
    model=model,
    state=state,
    shardings=shardings,
    lora=lora,
    mesh=mesh,
    chunk_size=chunk_size,
    error=ConfigError,
  )
  loss_fn = remit.loss_fn() if remit else lambda m, b: sft_loss(m, b, chunk_size=chunk_size)
  loss_fn = lora_setup.with_dropout(loss_fn, lora, config.seed)
  step_fn = make_train_step(
    graphdef,
    tx,
    loss_fn,
    micro_batches=config.micro_batches,
    mesh=mesh,
    shardings=shardings,
    **(remit.step_kwargs if remit else {}),
  )
  rng = jax.random.key(config.seed)
  writer = MetricWriter(workdir)
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(state.params))
  logging.info(
    "%s %s/%s: %s trained params%s (%s), mesh %s, %d steps",
    "SFT" if remit is None else f"ReMiT ({remit.spec.loss})",
    config.task,
    config.task_config,
    f"{n_params:,}",
    "" if lora is None else f" (LoRA r={lora.lora.rank})",
    source.hf_dir or config.preset,
    dict(mesh.shape),
    config.num_steps,
  )

  def as_checkpoint(step: int) -> dict[str, Any]:
    return {
      "params": state.params,
      "opt_state": state.opt_state,
      "step": step,
      "rng": rng,
      "data_state": iterator_state(data_iter),
      "config": config.to_dict(),
    }

  def evaluate(step: int, log: bool = True) -> dict[str, Any]:
    model = nnx.merge(graphdef, lora_setup.all_params(state))
    result = evaluate_exact_match(
      model,
      tokenizer,
      test_source,
      reward=task.reward,
      num_examples=config.eval_examples,
      max_new_tokens=config.eval_max_new_tokens,
      prompt_template=task.prompt,
      temperature=config.get("eval_temperature", 0.0),
      seed=config.seed,
      eos_id=source.eos_id,
      max_prompt_len=max(task.max_prompt_len, 256) if task.truncate else task.max_prompt_len,
      add_bos=task.add_bos,
      truncate=task.truncate,
      mesh=mesh,  # Rows split over the batch axes, like the train step's.
    )
    if log:
      writer.write(step, {"accuracy": result["accuracy"]}, prefix="eval/")
      writer.write_records(step, EVAL_SAMPLES_FILE, result["sample_records"])
    for question, completion in result["samples"]:
      logging.info("eval step %d | %r -> %r", step, question, completion[-80:])
    return result

  start_step, preempted = 0, False
  with TrainCheckpointer(
    os.path.join(workdir, "checkpoints"),
    max_to_keep=config.keep_checkpoints,
    save_interval_steps=config.checkpoint_every,
  ) as ckpt:
    ckpt.install_preemption_handler()
    restored = restore_train_state(ckpt, state, rng, data_iter, mesh)
    if restored is not None:
      start_step, state, rng = restored
      # Steps after the checkpoint are trained again: their old log lines go.
      dropped = writer.resume_at(start_step, records=(EVAL_SAMPLES_FILE,))
      logging.info("resumed from step %d (%d log lines after it dropped)", start_step, dropped)
    if start_step == 0:
      evaluate(0)
    last_log, t0 = time.perf_counter(), time.perf_counter()
    progress = tqdm(
      range(start_step + 1, config.num_steps + 1),
      initial=start_step,
      total=config.num_steps,
      desc="sft",
      mininterval=2.0,
      disable=jax.process_index() != 0,
    )
    in_flight = None
    for step in progress:
      batch = sharding_lib.shard_batch(
        lora_setup.add_dropout_seeds(dict(next(data_iter)), lora, step), mesh
      )
      if remit is not None:  # + guide_logp (+ base_logp): the frozen models' forward.
        batch = remit.annotate(batch, state)
      state, metrics = step_fn(state, batch)
      # At most two steps in flight: wait for the previous one before the next is dispatched,
      # so the device queue never idles, yet the batches put on the device do not pile up
      # ahead of the computation and the progress bar counts steps done, not dispatched.
      if in_flight is not None:
        jax.block_until_ready(in_flight)
      in_flight = metrics["loss"]
      if step % config.log_every == 0 or step == config.num_steps:
        metrics = jax.device_get(metrics)
        now = time.perf_counter()
        metrics["steps_per_s"] = config.log_every / max(now - last_log, 1e-9)
        last_log = now
        writer.write(step, metrics, prefix="train/")
        writer.write(step, device_memory(), prefix="memory/")  # Accelerators only.
        progress.set_postfix(loss=f"{metrics['loss']:.4f}")
        if not math.isfinite(float(metrics["loss"])):
          ckpt.wait()
          raise FloatingPointError(
            f"non-finite loss {metrics['loss']} at step {step}; the last good checkpoint "
            f"is step {ckpt.latest_step()} in {workdir}/checkpoints"
          )
      if step % config.eval_every == 0 and step != config.num_steps:
        evaluate(step)
      if ckpt.maybe_save(step, lambda: as_checkpoint(step)):
        logging.warning("preempted: saved step %d, exiting", step)
        preempted = True
        break
    final_step = int(jax.device_get(state.step))
    # A rerun of a finished run trains no step: its final checkpoint is already on disk.
    if not preempted and final_step != start_step:
      ckpt.save(final_step, as_checkpoint(final_step), force=True, wait=True)
  result = {"step": final_step, "preempted": preempted, "seconds": time.perf_counter() - t0}
  if not preempted:  # Logged once: a finished run launched again has its line already.
    final = evaluate(final_step, log=not has_metric(workdir, final_step, "eval/accuracy"))
    result.update(accuracy=final["accuracy"], eval_count=final["count"])
    exported = lora_setup.export(graphdef, state, lora)
    if exported:
      result["exported"] = exported
  records = [r for r in read_metrics(workdir) if "eval/accuracy" in r]
  if records:
    result["accuracy_at_start"] = records[0]["eval/accuracy"]
  writer.close()
  if config.get("plot", True):
    result["plot"] = plot_curves(
      workdir, f"SFT {config.task}/{config.task_config} ({source.hf_dir or config.preset})"
    )
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "final_metrics.json"), "w") as f:
      json.dump(result, f, indent=2)
    citations.write_citations(
      citations.run_components(model=source.model_config, methods=("remit",) if remit else ()),
      os.path.join(workdir, "CITATIONS.bib"),
    )
  return result


def newest_checkpoint(workdir: str) -> tuple[int, dict[str, Any]] | None:
  """(step, saved config) of the newest good checkpoint in a run's workdir, None without one
  (callers compare the step with the config's `num_steps` to tell an interrupted run)."""
  from reasoning_jax.checkpoint import TrainCheckpointer

  ckpt_dir = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(ckpt_dir):
    return None
  with TrainCheckpointer(ckpt_dir) as ckpt:
    step = ckpt.latest_step()
    if step is None:
      return None
    return int(step), ckpt.restore(step=step, target={})[1].get("config") or {}


def load_sft_params(workdir: str, config: ml_collections.ConfigDict | None = None):
  """(model, config) from the newest good checkpoint in an SFT workdir (RL warm start).

  A checkpoint short of the run's `num_steps` (a run killed or preempted midway) is loaded
  with a warning; `evaluate.trained_model.train_or_load` and the RL warm start finish such a
  run first.

  A LoRA run (`config.lora`) checkpoints only its adapters: the model is then the base rebuilt
  from the source with the saved adapters in place (`merge_adapters` it for plain weights).
  """
  from reasoning_jax.checkpoint import TrainCheckpointer

  with TrainCheckpointer(os.path.join(workdir, "checkpoints")) as ckpt:
    step = ckpt.latest_step()
    if step is None:
      return None
    if config is None:
      config = ml_collections.ConfigDict(ckpt.restore(step=step, target={})[1]["config"])
    if step < int(config.get("num_steps", step)):
      logging.warning(
        "%s: the newest checkpoint is step %d of %d, an interrupted run; loading it as it is",
        workdir,
        step,
        int(config.num_steps),
      )
    lora = lora_setup.lora_spec(config, error=ConfigError)
    if lora is not None:
      model = build_model(model_source(config), seed=config.seed)
      lora_setup.adapt(model, lora, seed=config.seed, error=ConfigError)
    else:
      model = abstract_model(model_source(config))
    return lora_setup.restore_params(ckpt, step, model, lora), config
