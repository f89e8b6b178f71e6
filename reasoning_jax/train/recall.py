r"""Recall-task training: a small model trained from scratch on a synthetic recall task.

Tasks are the generators of `reasoning_jax.data.recall` (mqar | induction | repeated): MQAR,
"Zoology: Measuring and Improving Recall in Efficient Language Models" (Arora et al. 2023,
arXiv:2312.04927); the H3 induction-head task, "Hungry Hungry Hippos" (Fu et al.,
arXiv:2212.14052); repeated random tokens, "In-context Learning and Induction Heads" (Olsson
et al. 2022, arXiv:2209.11895). `train_and_eval` trains one model on one task and seed and
evaluates top-1 accuracy at the scored positions (`eval_mask`) along the way; the sweep over
(task, model, seed) with its tables and plot is `reasoning_jax.train.sweeps`.

Models are named `"<mixer>@<num_layers>"` (optionally `"@<num_heads>"`), e.g.
`"momentum_key_only@1"` or Zoology's hybrid `"base_conv+gla@2"`; `register_momentum_variants`
/ `register_mixer_variants` register the configured mixers first.

Reuse of `reasoning_jax.train.step`: the update is `make_train_step` / `init_train_state`
unchanged (exact, donated, jitted). Not reused, and why:
  * `sft_loss`: it shifts `tokens` by one and scores `loss_mask` through `sequence_logprobs`
    on all T positions; recall data comes as separate `inputs` / `targets` (IGNORE outside
    the labels) and, when the labels are few (MQAR: kv of T; H3: 1 of T), the LM head runs on
    the gathered label positions only (`target_slots`), so the loss here is
    `masked_cross_entropy` on `[B, K]` logits, which also returns the accuracy sum.
  * `train.sft_config.make_optimizer`: it fixes b1/b2, the end-of-schedule fraction (0.1), halves
    the warm-up cap and always masks monotone weights; the recall sweeps set b1, b2,
    `final_lr_fraction` per config and a warm-up cap of num_steps - 1, so switching would
    change every recorded result.
  * `train.sft.run_sft`: the recall runs are in-memory numpy tasks of seconds each, without
    checkpoints, grain pipelines or meshes, evaluated by accuracy at scored positions rather
    than generation.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import time
from typing import Any, Mapping

import numpy as np
from absl import logging

from reasoning_jax import registry
from reasoning_jax.data import recall
from reasoning_jax.data.recall import IGNORE, make_recall_loader
from reasoning_jax.layers import make_conv_mixer, make_gla_mixer, make_ovq_mixer
from reasoning_jax.layers.momentum import MomentumAttention, make_momentum_mixer
from reasoning_jax.models.config import get_preset
from reasoning_jax.models.transformer import Transformer, count_params
from reasoning_jax.train.step import init_train_state, make_train_step

# -- Models --------------------------------------------------------------------------------


def parse_model_spec(spec: str) -> tuple[str, int, int | None]:
  """`"mixer@layers[@heads]"` -> (mixer, num_layers, num_heads or None).

  `mixer` may be a `+`-joined pattern cycled over the layers, e.g. `"base_conv+gla@2"` is
  Zoology's hybrid (layer 0 a short convolution, layer 1 GLA); see `layer_mixers`.
  """
  parts = spec.split("@")
  if len(parts) not in (2, 3) or not parts[0] or "" in parts[0].split("+"):
    raise ValueError(
      f"model spec {spec!r}: expected 'mixer@num_layers' or "
      "'mixer@num_layers@num_heads' (mixer: a name or names joined by '+')"
    )
  try:
    numbers = [int(p) for p in parts[1:]]
  except ValueError:
    raise ValueError(f"model spec {spec!r}: layers/heads must be ints") from None
  if any(n < 1 for n in numbers):
    raise ValueError(f"model spec {spec!r}: layers/heads must be >= 1")
  return parts[0], numbers[0], (numbers[1] if len(numbers) == 2 else None)


def layer_mixers(mixer: str, num_layers: int) -> str | tuple[str, ...]:
  """The `ModelConfig.mixer` of a spec's mixer: one name, or a `+` pattern cycled per layer."""
  pattern = mixer.split("+")
  if len(pattern) == 1:
    return mixer
  return tuple(pattern[i % len(pattern)] for i in range(num_layers))


def register_mixer_variants(variants: Mapping[str, Mapping[str, Any]]) -> None:
  """Registers `name -> {"kind": "ovq" | "gla" | "conv", **make_<kind>_mixer kwargs}` (idempotent)."""
  makers = {"ovq": make_ovq_mixer, "gla": make_gla_mixer, "conv": make_conv_mixer}
  for name, spec in variants.items():
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in makers:
      raise ValueError(
        f"mixer_variants[{name!r}].kind must be one of {sorted(makers)}, got {kind!r}"
      )
    makers[kind](name, override=name in registry.MIXERS, **spec)


def register_momentum_variants(variants: Mapping[str, Mapping[str, Any]]) -> None:
  """Registers each `name -> make_momentum_mixer kwargs` (re-registers if the kwargs differ)."""
  for name, kwargs in variants.items():
    kwargs = dict(kwargs)
    for key in ("gamma_q", "gamma_k"):
      if isinstance(kwargs.get(key), list):
        kwargs[key] = tuple(kwargs[key])
    if name in registry.MIXERS:
      cls = registry.MIXERS.get(name)
      if not (isinstance(cls, type) and issubclass(cls, MomentumAttention)):
        raise ValueError(
          f"momentum_variants[{name!r}]: {name!r} is already registered as a "
          f"non-momentum mixer {cls!r}"
        )
      same = (
        cls.gamma_q_spec == kwargs.get("gamma_q", "scaling_law")
        and cls.gamma_k_spec == kwargs.get("gamma_k", "scaling_law")
        and cls.t0_rule == kwargs.get("t0_rule", "repeat")
        and cls.learnable_gamma == bool(kwargs.get("learnable_gamma", False))
      )
      if same:
        continue
      make_momentum_mixer(name, override=True, **kwargs)
    else:
      make_momentum_mixer(name, **kwargs)


def build_model_config(spec: str, *, vocab_size: int, max_len: int, model: Mapping[str, Any]):
  """A `ModelConfig` for `spec` from `get_preset(model.preset).replace(...)`; `model.overrides`
  (any `ModelConfig` field, head_dim included) win over the fields derived from the spec."""
  mixer, num_layers, num_heads = parse_model_spec(spec)
  overrides = dict(model.get("overrides", {}))
  heads = num_heads or int(model.get("num_heads", 2))
  if model["hidden_size"] % heads:
    raise ValueError(
      f"model.hidden_size={model['hidden_size']} is not divisible by "
      f"{heads} heads (model spec {spec!r})"
    )
  fields = dict(
    vocab_size=vocab_size,
    num_layers=num_layers,
    num_heads=heads,
    num_kv_heads=heads,
    head_dim=model["hidden_size"] // heads,
    hidden_size=model["hidden_size"],
    mixer=layer_mixers(mixer, num_layers),
    ffn=model.get("ffn", "none"),
    max_position_embeddings=max(max_len, 64),
  )
  fields.update(overrides)  # e.g. head_dim or sliding_window for one model (`model_overrides`)
  return get_preset(model["preset"]).replace(**fields)


# -- Data ----------------------------------------------------------------------------------


def model_for_spec(model: Mapping[str, Any], model_overrides: Mapping[str, Any] | None, spec: str):
  """`model` with `model_overrides[spec]` (a dict of `ModelConfig` fields, or absent) merged
  into its `overrides`: per-model settings such as a sliding-window layer's window or a
  recall layer's head dim in a sweep that shares one `model` block."""
  extra = dict((model_overrides or {}).get(spec, {}) or {})
  if not extra:
    return model
  return {**dict(model), "overrides": {**dict(model.get("overrides", {}) or {}), **extra}}


def task_vocab_size(task: Mapping[str, Any]) -> int:
  """The vocabulary size of `task`: its `kwargs["vocab_size"]` or the generator's default."""
  kwargs = dict(task.get("kwargs", {}))
  if "vocab_size" in kwargs:
    return int(kwargs["vocab_size"])
  fn = recall.TASKS[task["name"]]
  return int(inspect.signature(fn).parameters["vocab_size"].default)


def make_task_data(task: Mapping[str, Any], seed: int):
  """(train, test) `RecallData`; test data uses seed + 10 (Zoology's convention).

  `task["train_kwargs"]` (optional) overrides generator kwargs for the training data only,
  e.g. `{"num_kv_pairs": (4, 8, 16)}`: train on Zoology's mixture, test on `kwargs`' kv.
  """
  kwargs = dict(task.get("kwargs", {}))
  train_kwargs = {**kwargs, **dict(task.get("train_kwargs", {}) or {})}
  train = recall.make_task(task["name"], int(task["num_train"]), seed=seed, **train_kwargs)
  test = recall.make_task(task["name"], int(task["num_test"]), seed=seed + 10, **kwargs)
  return train, test


# -- Loss, training, evaluation --------------------------------------------------------------


def masked_cross_entropy(logits, targets, weights):
  """Token cross-entropy: (sum, count, aux with `correct_sum`) over `weights` positions.

  logits `[B, T, V]` float32, targets `[B, T]` int (any value where weights == 0),
  weights `[B, T]` float.
  """
  import jax
  import jax.numpy as jnp

  safe = jnp.where(weights > 0, targets, 0)
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  token_logp = jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
  correct = (jnp.argmax(logits, axis=-1) == safe).astype(jnp.float32)
  return -(token_logp * weights).sum(), weights.sum(), {"accuracy_sum": (correct * weights).sum()}


def target_slots(mask: np.ndarray, k: int | None = None) -> np.ndarray:
  """`[N, K]` int32: each row's True positions of `mask` `[N, T]` first, then False ones.

  K (default: the largest row count) lets the LM head run on `[B, K]` gathered hidden states
  instead of all T positions: MQAR labels kv of T positions, the H3 task one. Pair with
  `np.take_along_axis(mask, slots, 1)` as the validity of each slot.
  """
  mask = np.asarray(mask, bool)
  most = int(mask.sum(axis=1).max()) if mask.size else 0
  if k is None:
    k = max(1, most)
  elif k < most:
    raise ValueError(f"k={k} is smaller than a row's {most} target positions")
  if k > mask.shape[1]:
    raise ValueError(f"k={k} exceeds the {mask.shape[1]} positions per row")
  # A stable sort puts each row's True positions first, in order; the padding slots then
  # point at False positions, so `take_along_axis(mask, slots, 1)` marks them invalid.
  return np.argsort(~mask, axis=1, kind="stable")[:, :k].astype(np.int32)


def gathered_logits(model, inputs, slots):
  """Logits `[B, K, V]` at positions `slots` `[B, K]` only (the head runs on K, not T)."""
  import jax.numpy as jnp

  hidden, _ = model.forward(inputs)
  picked = jnp.take_along_axis(hidden, slots[..., None].astype(jnp.int32), axis=1)
  return model.unembed(picked)


def recall_loss(model, batch):
  """`masked_cross_entropy` of a recall batch; with `slots` only at those positions; with
  `positions` `[B, T]` (e.g. `data.skipwise_positions`) as the model's position ids."""
  if "positions" in batch:
    logits = model(batch["inputs"], positions=batch["positions"])
    return masked_cross_entropy(logits, batch["targets"], batch["loss_weights"])
  if "slots" in batch:  # Sparse targets: head only at the labelled positions.
    return masked_cross_entropy(
      gathered_logits(model, batch["inputs"], batch["slots"]),
      batch["targets"],
      batch["loss_weights"],
    )
  return masked_cross_entropy(model(batch["inputs"]), batch["targets"], batch["loss_weights"])


def make_optimizer(train: Mapping[str, Any], num_steps: int, *, decay_mask=None, trainable=None):
  """clip_by_global_norm -> AdamW with linear warm-up and cosine decay.

  `decay_mask`: optax weight-decay mask (a pytree or a callable on the params), e.g.
  `reasoning_jax.layers.monotone.monotone_weight_decay_mask`.
  `trainable`: None (every parameter trains) or a callable params -> bool pytree; the False
  leaves are frozen (zero updates, outside the clipping norm and the AdamW moments), e.g.
  ROSA-Tuning's stage A, where only the branch trains on a frozen backbone.
  """
  import jax
  import optax

  if trainable is not None:
    inner = make_optimizer(train, num_steps, decay_mask=decay_mask)
    labels = lambda params: jax.tree_util.tree_map(
      lambda keep: "train" if keep else "frozen", trainable(params)
    )
    return optax.multi_transform({"train": inner, "frozen": optax.set_to_zero()}, labels)

  warmup = int(train["warmup_steps"])
  schedule = optax.warmup_cosine_decay_schedule(
    0.0,
    float(train["learning_rate"]),
    max(1, min(warmup, num_steps - 1)),
    max(2, num_steps),
    end_value=float(train["learning_rate"]) * float(train.get("final_lr_fraction", 0.1)),
  )
  return optax.chain(
    optax.clip_by_global_norm(float(train["grad_clip"])),
    optax.adamw(
      schedule,
      b1=float(train.get("b1", 0.9)),
      b2=float(train.get("b2", 0.98)),
      weight_decay=float(train["weight_decay"]),
      mask=decay_mask,
    ),
  )


_COMPILED: dict[Any, Any] = {}


def compiled_functions(
  model_config, train: Mapping[str, Any], loss_fn=None, *, decay_mask_fn=None, trainable_fn=None
):
  """(graphdef, tx, train step, eval counts), compiled once per (model config, train config).

  Seeds of the same model reuse the compiled step: only the parameter values differ.
  `trainable_fn`: see `make_optimizer(trainable=)`.
  """
  import jax
  import jax.numpy as jnp
  from flax import nnx

  loss_fn = loss_fn or recall_loss
  key = (
    model_config,
    json.dumps(dict(train), sort_keys=True, default=str),
    loss_fn,
    decay_mask_fn,
    trainable_fn,
  )
  if key not in _COMPILED:
    model = nnx.eval_shape(lambda: Transformer(model_config, rngs=nnx.Rngs(0)))
    tx = make_optimizer(
      train, int(train["num_steps"]), decay_mask=decay_mask_fn, trainable=trainable_fn
    )
    graphdef, _ = nnx.split(model, nnx.Param)
    step_fn = make_train_step(graphdef, tx, loss_fn)

    @jax.jit
    def eval_counts(params, inputs, targets, mask, slots=None):
      """Correct and total counts on `mask`; with `slots` [B, K], targets/mask are [B, K]."""
      model = nnx.merge(graphdef, params)
      logits = model(inputs) if slots is None else gathered_logits(model, inputs, slots)
      right = (jnp.argmax(logits, -1) == targets) & mask
      return right.sum(), mask.sum()

    _COMPILED[key] = (graphdef, tx, step_fn, eval_counts)
  return _COMPILED[key]


def evaluate_accuracy(eval_counts, params, data, *, batch_size: int, sparse: bool = False) -> float:
  """Top-1 accuracy of argmax logits on `data.eval_mask` positions (all examples).

  `sparse`: run the head only at the scored positions (`target_slots`); same result.
  """
  right = total = 0
  n = len(data)
  all_targets, all_mask, all_slots = data.targets, data.eval_mask, None
  if sparse:
    all_slots = target_slots(data.eval_mask)
    all_targets = np.take_along_axis(data.targets, all_slots, axis=1)
    all_mask = np.take_along_axis(data.eval_mask, all_slots, axis=1)
  for lo in range(0, n, batch_size):
    hi = min(n, lo + batch_size)
    inputs, targets, mask = data.inputs[lo:hi], all_targets[lo:hi], all_mask[lo:hi]
    slots = None if all_slots is None else all_slots[lo:hi]
    if hi - lo < batch_size:  # Pad the last batch (masked out) to keep one compiled shape.
      pad = batch_size - (hi - lo)
      inputs = np.concatenate([inputs, np.zeros((pad,) + inputs.shape[1:], inputs.dtype)])
      targets = np.concatenate([targets, np.zeros((pad,) + targets.shape[1:], targets.dtype)])
      mask = np.concatenate([mask, np.zeros((pad,) + mask.shape[1:], bool)])
      if slots is not None:
        slots = np.concatenate([slots, np.zeros((pad,) + slots.shape[1:], slots.dtype)])
    r, t = (
      eval_counts(params, inputs, targets, mask)
      if slots is None
      else eval_counts(params, inputs, targets, mask, slots)
    )
    right += int(r)
    total += int(t)
  return right / max(total, 1)


def train_and_eval(
  model_config, task: Mapping[str, Any], seed: int, train: Mapping[str, Any], *, label: str = ""
) -> dict[str, Any]:
  """Trains `model_config` from scratch on `task` and evaluates accuracy along the way.

  Args:
    model_config: a `ModelConfig` (its vocab must cover the task's).
    task: {"name": mqar | induction | repeated, "num_train", "num_test", "kwargs": generator
      kwargs, "loss_on": "all" (every target, H3/Zoology) | "eval" (only `eval_mask`)}.
    seed: model init, data order and train data (test data: seed + 10).
    train: {"batch_size", "num_steps", "learning_rate", "warmup_steps", "weight_decay",
      "grad_clip", "eval_every", "eval_batch_size", optional "b1", "b2", "final_lr_fraction"}.
    label: name used in log lines.

  Returns:
    {"curve": [[step, test accuracy], ...], "final_accuracy", "best_accuracy",
     "train_loss": [[step, loss], ...], "num_params", "wall_s"}.
  """
  import jax
  import jax.numpy as jnp
  from flax import nnx

  start = time.time()
  loss_on = task.get("loss_on", "all")
  if loss_on not in ("all", "eval"):
    raise ValueError(f"task.loss_on must be 'all' or 'eval', got {loss_on!r}")
  train_data, test_data = make_task_data(task, seed)
  if train_data.seq_len > model_config.max_position_embeddings:
    raise ValueError(
      f"task sequences have {train_data.seq_len} tokens but the model's "
      f"max_position_embeddings={model_config.max_position_embeddings}"
    )
  num_steps = int(train["num_steps"])
  _, tx, step_fn, eval_counts = compiled_functions(model_config, train)
  model = Transformer(model_config, rngs=nnx.Rngs(seed))
  num_params = count_params(model)
  _, state = init_train_state(model, tx)
  del model
  loader = iter(make_recall_loader(train_data, batch_size=int(train["batch_size"]), seed=seed))
  eval_every = int(train["eval_every"])
  eval_bs = int(train.get("eval_batch_size", 256))

  def loss_mask(data):
    weights = data.targets != IGNORE
    return weights & data.eval_mask if loss_on == "eval" else weights

  # The LM head runs only on the positions the loss / accuracy read when they are few (MQAR:
  # kv of T; H3: 1 of T); one K for the whole run keeps a single compiled shape.
  k_train = int(loss_mask(train_data).sum(axis=1).max())
  sparse = k_train <= train_data.seq_len // 4
  evaluate = functools.partial(evaluate_accuracy, eval_counts, batch_size=eval_bs, sparse=sparse)
  curve = [[0, evaluate(state.params, test_data)]]
  losses = []
  for step in range(1, num_steps + 1):
    batch = next(loader)
    weights = batch["targets"] != IGNORE
    if loss_on == "eval":
      weights &= batch["eval_mask"]
    arrays = {"inputs": batch["inputs"], "targets": batch["targets"], "loss_weights": weights}
    if sparse:
      slots = target_slots(weights, k_train)
      arrays = {
        "inputs": batch["inputs"],
        "slots": slots,
        "targets": np.take_along_axis(batch["targets"], slots, axis=1),
        "loss_weights": np.take_along_axis(weights, slots, axis=1),
      }
    arrays["loss_weights"] = arrays["loss_weights"].astype(np.float32)
    state, metrics = step_fn(state, {k: jnp.asarray(v) for k, v in arrays.items()})
    if step % eval_every == 0 or step == num_steps:
      loss = float(metrics["loss"])
      acc = evaluate(state.params, test_data)
      curve.append([step, acc])
      losses.append([step, loss])
      logging.info(
        "%s seed %d step %d: train loss %.4f, test accuracy %.4f", label, seed, step, loss, acc
      )
      if not math.isfinite(loss):
        logging.warning("%s seed %d: non-finite loss at step %d; stopping", label, seed, step)
        break
  jax.block_until_ready(state.params)
  accs = [a for _, a in curve]
  return {
    "curve": curve,
    "final_accuracy": accs[-1],
    "best_accuracy": max(accs),
    "train_loss": losses,
    "num_params": num_params,
    "wall_s": time.time() - start,
  }


# -- Training a given model on in-memory arrays -----------------------------------------------


def _batch(data, idx):
  """Rows `idx` of in-memory `data` as a train-step batch (full-sequence loss)."""
  import jax.numpy as jnp

  targets = data["targets"][idx]
  batch = {
    "inputs": jnp.asarray(data["inputs"][idx]),
    "targets": jnp.asarray(targets),
    "loss_weights": jnp.asarray(targets != IGNORE, jnp.float32),
  }
  if "positions" in data:
    batch["positions"] = jnp.asarray(data["positions"][idx])
  return batch


def train_model(
  model,
  model_config,
  data,
  train_cfg: Mapping[str, Any],
  *,
  seed: int,
  label: str,
  decay_mask_fn=None,
  trainable_fn=None,
):
  """Trains a copy of `model` on in-memory `data` for `train_cfg.num_steps` (epoch shuffles).

  `data`: {"inputs", "targets" (IGNORE where unscored), optional "positions"} `[N, T]` arrays; `train_cfg`: the keys
  of `make_optimizer` plus "batch_size", "num_steps", "log_every". The step and optimizer are
  `compiled_functions(model_config, train_cfg, decay_mask_fn=..., trainable_fn=...)`. Returns
  (trained model, [[step, loss], ...] every `log_every` steps and at the last).
  """
  import jax
  import jax.numpy as jnp
  from flax import nnx

  graphdef, tx, step_fn, _ = compiled_functions(
    model_config, train_cfg, decay_mask_fn=decay_mask_fn, trainable_fn=trainable_fn
  )
  _, state = init_train_state(model, tx)
  # The step donates its input state: train on a copy so `model` (e.g. the pretrained
  # checkpoint, shared with the monotone conversion) keeps its buffers.
  state = jax.tree_util.tree_map(jnp.copy, state)
  rng = np.random.default_rng(seed)
  n, bs = len(data["inputs"]), int(train_cfg["batch_size"])
  order = rng.permutation(n)
  cursor, losses = 0, []
  for step in range(1, int(train_cfg["num_steps"]) + 1):
    if cursor + bs > n:  # A new shuffle every epoch.
      order, cursor = rng.permutation(n), 0
    state, metrics = step_fn(state, _batch(data, order[cursor : cursor + bs]))
    cursor += bs
    if step % int(train_cfg["log_every"]) == 0 or step == int(train_cfg["num_steps"]):
      losses.append([step, float(metrics["loss"])])
      logging.info("%s step %d: loss %.4f", label, step, losses[-1][1])
  return nnx.merge(graphdef, state.params), losses
