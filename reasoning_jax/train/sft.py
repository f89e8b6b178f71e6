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

from reasoning_jax import sharding as sharding_lib
from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.models.partition_rules import rules_for
from reasoning_jax.train.metrics import MetricWriter, read_metrics
from reasoning_jax.train.step import (
  init_train_state,
  make_train_step,
  restore_train_state,
  sft_loss,
  state_shardings,
)
from reasoning_jax.validation import check_float_in, check_positive_int

# Keys every SFT config must have, with their types (validated at launch).
REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
  "workdir": str,
  "seed": int,
  "task": str,
  "task_config": str,
  "task_overrides": dict,
  "preset": str,
  "model_overrides": dict,
  "seq_len": int,
  "batch_size": int,
  "num_steps": int,
  "learning_rate": float,
  "warmup_steps": int,
  "weight_decay": float,
  "grad_clip": float,
  "micro_batches": int,
  "mesh": dict,
  "log_every": int,
  "eval_every": int,
  "eval_examples": int,
  "eval_max_new_tokens": int,
  "checkpoint_every": int,
  "keep_checkpoints": int,
  "prompt_template": str,
  "target_field": str,
  "reward": str,
  "worker_count": int,
}


class ConfigError(ValueError):
  """A launch-time configuration problem; the message names the key."""


# Integer fields: key -> smallest valid value.
_MIN_INTS = {
  "seq_len": 1,
  "batch_size": 1,
  "num_steps": 1,
  "micro_batches": 1,
  "log_every": 1,
  "eval_every": 1,
  "eval_examples": 1,
  "checkpoint_every": 1,
  "keep_checkpoints": 1,
  "eval_max_new_tokens": 1,
  "warmup_steps": 0,
  "worker_count": 0,
}


def validate_numeric_fields(config: ml_collections.ConfigDict) -> None:
  """Range checks of the numeric fields: counts >= 1 (warmup_steps, worker_count, chunk_size
  >= 0), learning_rate and grad_clip > 0, weight_decay and eval_temperature >= 0;
  ConfigError naming the key."""
  try:
    for key, minimum in _MIN_INTS.items():
      check_positive_int(config[key], f"config.{key}", minimum=minimum)
    if config.get("chunk_size") is not None:
      check_positive_int(config.chunk_size, "config.chunk_size", minimum=0)
    for key in ("learning_rate", "grad_clip"):
      check_float_in(config[key], f"config.{key}", 0.0, low_inclusive=False)
    check_float_in(config.weight_decay, "config.weight_decay", 0.0)
    if config.get("eval_temperature") is not None:
      check_float_in(config.eval_temperature, "config.eval_temperature", 0.0)
  except ValueError as e:
    raise ConfigError(str(e)) from None


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks keys, types and ranges before anything expensive happens."""
  for key, kind in REQUIRED_KEYS.items():
    if key not in config:
      raise ConfigError(f"config.{key} is missing")
    value = config[key]
    if isinstance(value, ml_collections.ConfigDict):
      value = value.to_dict()
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
      continue
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
      raise ConfigError(
        f"config.{key} must be {getattr(kind, '__name__', kind)}, "
        f"got {type(value).__name__} {value!r}"
      )
  unknown = (
    set(config.keys())
    - set(REQUIRED_KEYS)
    - {"chunk_size", "data_dir", "manual_dir", "eval_temperature", "plot"}
  )
  if unknown:
    raise ConfigError(f"unknown config keys: {sorted(unknown)}")
  validate_numeric_fields(config)
  try:
    get_preset(config.preset)
  except ValueError as e:
    raise ConfigError(f"config.preset: {e}") from None
  from reasoning_jax.rewards import REWARDS

  if config.reward not in REWARDS:
    raise ConfigError(f"config.reward={config.reward!r}; registered: {REWARDS.names()}")
  try:
    mesh = sharding_lib.make_mesh(
      config.mesh.to_dict() if hasattr(config.mesh, "to_dict") else dict(config.mesh)
    )
  except ValueError as e:
    raise ConfigError(f"config.mesh: {e}") from None
  batch_shards = mesh.shape["data"] * mesh.shape["fsdp"]
  if config.batch_size % (batch_shards * config.micro_batches):
    raise ConfigError(
      f"config.batch_size={config.batch_size} must be divisible by data*fsdp={batch_shards} "
      f"times config.micro_batches={config.micro_batches}"
    )
  if config.batch_size % jax.process_count():
    raise ConfigError(
      f"config.batch_size={config.batch_size} must be divisible by the "
      f"{jax.process_count()} processes"
    )


def make_optimizer(config) -> optax.GradientTransformation:
  warmup = min(config.warmup_steps, config.num_steps // 2)
  schedule = optax.warmup_cosine_decay_schedule(
    0.0,
    config.learning_rate,
    warmup_steps=warmup,
    decay_steps=max(config.num_steps, warmup + 1),
    end_value=config.learning_rate * 0.1,
  )
  # Monotone FFNs keep softplus-space raw weights; decaying those drives W to ln 2, so
  # the mask exempts them (reasoning_jax.layers.monotone).
  from reasoning_jax.layers import monotone_weight_decay_mask

  return optax.chain(
    optax.clip_by_global_norm(config.grad_clip),
    optax.adamw(schedule, weight_decay=config.weight_decay, mask=monotone_weight_decay_mask),
  )


def model_config(config, vocab_size: int):
  overrides = dict(config.model_overrides)
  overrides.setdefault("vocab_size", vocab_size)
  return get_preset(config.preset, **overrides)


def evaluate_exact_match(
  model,
  tokenizer,
  source,
  *,
  reward: str,
  num_examples: int,
  max_new_tokens: int,
  prompt_template: str,
  batch_size: int = 64,
  temperature: float = 0.0,
  seed: int = 0,
  num_samples: int = 1,
) -> dict[str, Any]:
  """Exact-match accuracy of `generate` completions scored by a registered verifier.

  With `temperature > 0` and `num_samples = k` each question is sampled k times and the
  accuracy is the mean over all samples (avg@k, the pass@1 estimate RL papers report);
  `pass_at_k` is the fraction of questions with at least one correct sample.
  """
  from reasoning_jax.data import make_prompt_dataset
  from reasoning_jax.generate import generate
  from reasoning_jax.rewards import score_batch

  if num_samples < 1:
    raise ValueError(f"num_samples must be >= 1, got {num_samples}")
  if num_samples > 1 and temperature <= 0:
    raise ValueError(
      f"num_samples={num_samples} > 1 needs temperature > 0 (greedy samples are "
      f"identical), got temperature={temperature}"
    )
  num_examples = min(num_examples, len(source))
  subset = [source[i] for i in range(num_examples)]
  ds = make_prompt_dataset(
    subset,
    tokenizer,
    batch_size=min(batch_size, num_examples),
    max_prompt_len=256,
    prompt_template=prompt_template,
    shard_index=0,
    shard_count=1,
    truncate=True,
  )
  scores, samples = [], []
  key = jax.random.key(seed)
  for i, batch in enumerate(ds):
    prompts = np.repeat(np.asarray(batch["prompts"]), num_samples, axis=0)
    prompt_lengths = np.repeat(np.asarray(batch["prompt_lengths"]), num_samples, axis=0)
    out = generate(
      model,
      jnp.asarray(prompts),
      jnp.asarray(prompt_lengths),
      max_new_tokens=max_new_tokens,
      temperature=temperature,
      eos_id=tokenizer.eos_id,
      key=jax.random.fold_in(key, i),
    )
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    completions = tokenizer.decode_batch(tokens, lengths)
    repeat = lambda xs: [x for x in xs for _ in range(num_samples)]  # noqa: E731
    fields = {k: repeat(batch[k]) for k in ("numbers", "target") if k in batch}
    answers = repeat([str(a) for a in batch["answer"]])
    scores.append(
      np.asarray(score_batch(reward, completions, answers, **fields), np.float64).reshape(
        -1, num_samples
      )
    )
    if not samples:
      samples = [(str(q), c) for q, c in zip(batch["question"][:3], completions[::num_samples][:3])]
  scores = np.concatenate(scores) if scores else np.zeros((0, num_samples))
  return {
    "accuracy": float(scores.mean()) if scores.size else 0.0,
    "pass_at_k": float((scores > 0).any(axis=1).mean()) if scores.size else 0.0,
    "count": int(scores.shape[0]),
    "num_samples": num_samples,
    "samples": samples,
  }


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
  """Trains per `config`; returns final metrics (also written to workdir/final_metrics.json)."""
  from tqdm import tqdm

  from reasoning_jax.checkpoint import TrainCheckpointer
  from reasoning_jax.data import build_dataset, iterator_state, make_sft_dataset
  from reasoning_jax.tokenizers import ByteTokenizer

  validate_config(config)
  workdir = os.path.abspath(config.workdir)
  os.makedirs(workdir, exist_ok=True)
  tokenizer = ByteTokenizer()
  mesh = sharding_lib.make_mesh(dict(config.mesh))

  # Data: a TFDS builder (ArrayRecord) read through grain, host-sharded.
  data_dir = config.get("data_dir") or os.path.join(workdir, "data")
  builder = build_dataset(
    config.task,
    data_dir,
    config=config.task_config,
    manual_dir=config.get("manual_dir") or None,
    **dict(config.task_overrides),
  )
  train_source = builder.as_data_source("train")
  test_source = builder.as_data_source("test")
  local_batch = config.batch_size // jax.process_count()
  train_ds = make_sft_dataset(
    train_source,
    tokenizer,
    seq_len=config.seq_len,
    batch_size=local_batch,
    seed=config.seed,
    prompt_template=config.prompt_template,
    target_field=config.target_field,
    worker_count=config.worker_count,
  )
  data_iter = iter(train_ds)

  # Model + optimizer state, placed on the mesh by the family's partition rules.
  mcfg = model_config(config, tokenizer.vocab_size)
  model = Transformer(mcfg, rngs=nnx.Rngs(config.seed))
  tx = make_optimizer(config)
  graphdef, state = init_train_state(model, tx)
  shardings = state_shardings(state, tx, rules_for(mcfg.family), mesh)
  state = sharding_lib.place(state, shardings)
  loss_fn = lambda m, b: sft_loss(m, b, chunk_size=config.get("chunk_size") or None)  # noqa: E731
  step_fn = make_train_step(
    graphdef, tx, loss_fn, micro_batches=config.micro_batches, mesh=mesh, shardings=shardings
  )
  rng = jax.random.key(config.seed)
  writer = MetricWriter(workdir)
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(state.params))
  logging.info(
    "SFT %s/%s: %s params (%s), mesh %s, %d steps",
    config.task,
    config.task_config,
    f"{n_params:,}",
    config.preset,
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

  def evaluate(step: int) -> dict[str, Any]:
    model = nnx.merge(graphdef, state.params)
    result = evaluate_exact_match(
      model,
      tokenizer,
      test_source,
      reward=config.reward,
      num_examples=config.eval_examples,
      max_new_tokens=config.eval_max_new_tokens,
      prompt_template=config.prompt_template,
      temperature=config.get("eval_temperature", 0.0),
      seed=config.seed,
    )
    writer.write(step, {"accuracy": result["accuracy"]}, prefix="eval/")
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
      logging.info("resumed from step %d", start_step)
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
    for step in progress:
      batch = sharding_lib.shard_batch(next(data_iter), mesh)
      state, metrics = step_fn(state, batch)
      if step % config.log_every == 0 or step == config.num_steps:
        metrics = jax.device_get(metrics)
        now = time.perf_counter()
        metrics["steps_per_s"] = config.log_every / max(now - last_log, 1e-9)
        last_log = now
        writer.write(step, metrics, prefix="train/")
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
    if not preempted:
      ckpt.save(final_step, as_checkpoint(final_step), force=True, wait=True)
  result = {"step": final_step, "preempted": preempted, "seconds": time.perf_counter() - t0}
  if not preempted:
    final = evaluate(final_step)
    result.update(accuracy=final["accuracy"], eval_count=final["count"])
  records = [r for r in read_metrics(workdir) if "eval/accuracy" in r]
  if records:
    result["accuracy_at_start"] = records[0]["eval/accuracy"]
  writer.close()
  if config.get("plot", True):
    result["plot"] = plot_curves(
      workdir, f"SFT {config.task}/{config.task_config} ({config.preset})"
    )
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "final_metrics.json"), "w") as f:
      json.dump(result, f, indent=2)
  return result


def load_sft_params(workdir: str, config: ml_collections.ConfigDict | None = None):
  """(model, config) from the newest good checkpoint in an SFT workdir (RL warm start)."""
  from reasoning_jax.checkpoint import TrainCheckpointer
  from reasoning_jax.tokenizers import ByteTokenizer

  with TrainCheckpointer(os.path.join(workdir, "checkpoints")) as ckpt:
    step = ckpt.latest_step()
    if step is None:
      return None
    if config is None:
      config = ml_collections.ConfigDict(ckpt.restore(step=step, target={})[1]["config"])
    mcfg = model_config(config, ByteTokenizer().vocab_size)
    abstract = nnx.eval_shape(lambda: Transformer(mcfg, rngs=nnx.Rngs(0)))
    graphdef, params = nnx.split(abstract, nnx.Param)
    target = {
      "params": jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    }
    _, saved = ckpt.restore(step=step, target=target)
  return nnx.merge(graphdef, saved["params"]), config
