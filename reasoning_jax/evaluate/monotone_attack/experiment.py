"""The experiment: train pretrained / baseline / monotone models, attack them, write the report.

`run(config)` is the whole experiment (`experiments/monotone_attack.py` is its absl main,
`configs/monotone_attack.py` its config; the protocol is in the package docstring).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
from absl import logging

from reasoning_jax import citations
from reasoning_jax.evaluate.monotone_attack.models import (
  attack_functions,
  convert_to_monotone,
  model_config_for,
)
from reasoning_jax.evaluate.monotone_attack.stats import bootstrap_ci, mean_std
from reasoning_jax.evaluate.monotone_attack.task import (
  bayes_loss_floor,
  flips_to_tie,
  frequency_summary_task,
  task_vocab,
)
from reasoning_jax.evaluate.monotone_attack.uat import learn_trigger, prepend_trigger, shift_targets
from reasoning_jax.layers.monotone import monotone_weight_decay_mask
from reasoning_jax.models.transformer import Transformer, count_params
from reasoning_jax.train.metrics import quiet_library_logs
from reasoning_jax.train.recall import train_model

MODELS = ("pretrained", "baseline", "monotone")
HOTFLIP_MODES = ("any", "meaning_preserving")


# -- Config validation -----------------------------------------------------------------------


def _require(ok: bool, field: str, expected: str, value: Any) -> None:
  if not ok:
    raise ValueError(f"config.{field} must be {expected}, got {value!r}")


def _int_at_least(config, field: str, low: int) -> int:
  value = config
  for part in field.split("."):
    value = value[part]
  _require(
    isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low,
    field,
    f"an integer >= {low}",
    value,
  )
  return int(value)


def validate_config(config) -> None:
  """Raises ValueError naming the first bad field of a monotone_attack config."""
  seeds = tuple(config.seeds)
  _require(
    len(seeds) >= 1 and all(isinstance(s, int) for s in seeds),
    "seeds",
    "a non-empty tuple of ints",
    config.seeds,
  )
  _require(len(set(seeds)) == len(seeds), "seeds", "distinct", config.seeds)
  for field in ("num_train", "num_test"):
    _int_at_least(config, field, 1)
  for field, low in (
    ("num_filler", 2),
    ("num_content", 1),
    ("source_len", 1),
    ("num_topics", 1),
    ("summary_len", 1),
    ("min_count", 1),
    ("max_gap", 1),
    ("min_filler", 0),
  ):
    _int_at_least(config, f"task.{field}", low)
  for field, low in (("pretrain_steps", 0), ("finetune_steps", 1)):
    _int_at_least(config, f"protocol.{field}", low)
  p = config.protocol
  _require(
    p.init in ("pretrained", "scratch"), "protocol.init", "'pretrained' or 'scratch'", p.init
  )
  if p.init == "pretrained":
    _int_at_least(config, "protocol.pretrain_steps", 1)
  for field in ("baseline_warmup", "monotone_warmup"):
    _require(0 <= p[field] < 1, f"protocol.{field}", "in [0, 1)", p[field])
  _require(p.monotone_init_eps > 0, "protocol.monotone_init_eps", "> 0", p.monotone_init_eps)
  for field in ("batch_size", "log_every"):
    _int_at_least(config, f"train.{field}", 1)
  _require(config.train.learning_rate > 0, "train.learning_rate", "> 0", config.train.learning_rate)
  a = config.attack
  for field in ("num_flips", "num_examples", "batch_size"):
    _int_at_least(config, f"attack.{field}", 1)
  _require(a.success_threshold > 0, "attack.success_threshold", "> 0", a.success_threshold)
  _require(
    a.num_flips <= config.task.source_len,
    "attack.num_flips",
    f"<= task.source_len={config.task.source_len}",
    a.num_flips,
  )
  _require(
    a.num_examples <= config.num_test,
    "attack.num_examples",
    f"<= num_test={config.num_test}",
    a.num_examples,
  )
  u = config.uat
  for field in ("trigger_len", "num_restarts", "num_iterations", "num_candidates", "num_train"):
    _int_at_least(config, f"uat.{field}", 1)
  _int_at_least(config, "uat.num_test", 1)
  _require(
    u.num_train + u.num_test <= config.num_test,
    "uat.num_test",
    f"<= num_test - uat.num_train = {config.num_test - u.num_train}",
    u.num_test,
  )
  b = config.bootstrap
  _int_at_least(config, "bootstrap.num_resamples", 1)
  _require(0 < b.confidence < 1, "bootstrap.confidence", "in (0, 1)", b.confidence)
  seq_len = config.task.source_len + config.task.summary_len + 1 + u.trigger_len
  max_pos = config.model.overrides.get("max_position_embeddings")
  _require(
    max_pos is None or max_pos >= seq_len,
    "model.overrides.max_position_embeddings",
    f">= {seq_len} (source + SEP + summary + trigger)",
    max_pos,
  )
  _require(
    config.model.hidden_size % config.model.num_heads == 0,
    "model.num_heads",
    f"a divisor of model.hidden_size={config.model.hidden_size}",
    config.model.num_heads,
  )
  # The task's own checks (topics fit in the source, ...) name their arguments.
  frequency_summary_task(1, **dict(config.task))


# -- Evaluation --------------------------------------------------------------------------------


def _ci(values, config) -> list[float]:
  b = config.bootstrap
  return list(
    bootstrap_ci(
      values,
      num_resamples=int(b.num_resamples),
      confidence=float(b.confidence),
      seed=int(b.seed),
    )
  )


def _attack_stats(clean, adv_loss, adv_acc, changed, margin, config) -> dict[str, Any]:
  """Success (relative loss increase > threshold), degradation and CIs of one attack."""
  thr, k = float(config.attack.success_threshold), int(config.attack.num_flips)
  degradation = (adv_loss - clean) / np.maximum(clean, 1e-8)
  success = (degradation > thr).astype(np.float64)
  safe = flips_to_tie(margin) > k  # The flips cannot even tie the ranking of the summary.
  out = {
    "success_rate": float(success.mean()),
    "success_ci": _ci(success, config),
    "mean_degradation": float(degradation.mean()),
    "degradation_ci": _ci(degradation, config),
    "mean_delta_loss": float((adv_loss - clean).mean()),
    "adv_accuracy": float(adv_acc.mean()),
    "mean_tokens_changed": float(changed.mean()),
    "num_examples": int(len(clean)),
    "safe_examples": int(safe.sum()),
    "safe_success_rate": float(success[safe].mean()) if safe.any() else float("nan"),
    "degradation": np.round(degradation, 5).tolist(),
  }
  out["safe_success_ci"] = _ci(success[safe], config) if safe.any() else [np.nan, np.nan]
  return out


def _candidates(config) -> dict[str, np.ndarray]:
  vocab, filler0, content0 = task_vocab(int(config.task.num_filler), int(config.task.num_content))
  ids = np.arange(vocab)
  return {
    "source": (ids >= filler0) & (ids < content0 + int(config.task.num_content)),
    "filler": (ids >= filler0) & (ids < content0),
  }


def uat_attack(fns, params, table, data, config, *, seed: int) -> dict[str, Any]:
  """Learns a trigger on `uat.num_train` held-out examples and tests it on the next `num_test`."""
  u = config.uat
  m, n_tr, n_te = int(u.trigger_len), int(u.num_train), int(u.num_test)
  tr, te = slice(0, n_tr), slice(n_tr, n_tr + n_te)
  x_tr = data["inputs"][tr]
  y_tr, a_tr = shift_targets(data["targets"][tr], m), shift_targets(data["alt_targets"][tr], m)

  def loss_of(triggers):
    loss, _ = fns["losses"](params, prepend_trigger(triggers, x_tr), y_tr, a_tr)
    return np.asarray(loss).mean(axis=1)

  def grad_of(trigger):
    ids = prepend_trigger(trigger, x_tr)
    return np.asarray(fns["trigger_grad"](params, ids, y_tr, a_tr, trigger_len=m))

  candidate_ids = np.flatnonzero(_candidates(config)["source"])
  learned = learn_trigger(
    loss_of,
    grad_of,
    np.asarray(table),
    candidate_ids,
    trigger_len=m,
    num_restarts=int(u.num_restarts),
    num_iterations=int(u.num_iterations),
    num_candidates=int(u.num_candidates),
    seed=int(u.seed) + seed,
  )
  x_te = data["inputs"][te]
  y_te, a_te = data["targets"][te], data["alt_targets"][te]
  clean, _ = fns["clean"](params, x_te, y_te, a_te)
  both = np.stack([learned["trigger"], learned["initial_trigger"]])
  loss, acc = fns["losses"](
    params, prepend_trigger(both, x_te), shift_targets(y_te, m), shift_targets(a_te, m)
  )
  clean, loss, acc = np.asarray(clean), np.asarray(loss), np.asarray(acc)
  degradation = (loss - clean) / np.maximum(clean, 1e-8)
  success = (degradation[0] > float(config.attack.success_threshold)).astype(np.float64)
  return {
    "trigger": learned["trigger"].tolist(),
    "train_loss": learned["loss"],
    "train_loss_random_trigger": learned["initial_loss"],
    "mean_degradation": float(degradation[0].mean()),
    "degradation_ci": _ci(degradation[0], config),
    "success_rate": float(success.mean()),
    "success_ci": _ci(success, config),
    "mean_delta_loss": float((loss[0] - clean).mean()),
    "adv_accuracy": float(acc[0].mean()),
    "random_trigger_degradation": float(degradation[1].mean()),
    "random_trigger_degradation_ci": _ci(degradation[1], config),
    "iterations": [r["iterations"] for r in learned["restarts"]],
    "restart_train_losses": [r["loss"] for r in learned["restarts"]],
    "num_train": n_tr,
    "num_test": n_te,
  }


def evaluate_model(model, data, config, *, seed: int = 0, attack: bool = True) -> dict[str, Any]:
  """Clean quality on the test set; HotFlip ("any", "meaning_preserving") and UAT if `attack`."""
  import jax.numpy as jnp
  from flax import nnx

  graphdef, params = nnx.split(model, nnx.Param)
  fns = attack_functions(model.config, graphdef, int(config.attack.num_flips))
  bs = int(config.attack.batch_size)
  losses, accs = [], []
  for lo in range(0, len(data["inputs"]), bs):
    sl = slice(lo, lo + bs)
    loss, acc = fns["clean"](
      params, data["inputs"][sl], data["targets"][sl], data["alt_targets"][sl]
    )
    losses.append(np.asarray(loss))
    accs.append(np.asarray(acc))
  losses, accs = np.concatenate(losses), np.concatenate(accs)
  out = {
    "clean_loss": float(losses.mean()),
    "clean_loss_ci": _ci(losses, config),
    "clean_accuracy": float(accs.mean()),
    "clean_accuracy_ci": _ci(accs, config),
  }
  if not attack:
    return out
  n_att = int(config.attack.num_examples)
  cands = _candidates(config)
  modes = {
    "any": (data["source_mask"], cands["source"]),
    "meaning_preserving": (data["filler_mask"], cands["filler"]),
  }
  for mode, (pos_mask, cand) in modes.items():
    adv_l, adv_a, changed = [], [], []
    for lo in range(0, n_att, bs):
      sl = slice(lo, min(lo + bs, n_att))
      loss, acc, adv = fns["hotflip"](
        params,
        data["inputs"][sl],
        data["targets"][sl],
        data["alt_targets"][sl],
        pos_mask[sl],
        jnp.asarray(cand),
      )
      adv_l.append(np.asarray(loss))
      adv_a.append(np.asarray(acc))
      changed.append((np.asarray(adv) != data["inputs"][sl]).sum(-1))
    out[mode] = _attack_stats(
      losses[:n_att],
      np.concatenate(adv_l),
      np.concatenate(adv_a),
      np.concatenate(changed),
      data["margin"][:n_att],
      config,
    )
  out["uat"] = uat_attack(fns, params, model.embed[...], data, config, seed=seed)
  return out


# -- Protocol ----------------------------------------------------------------------------------


def run_seed(config, seed: int) -> dict[str, Any]:
  """Pretrain -> (baseline FT, monotone conversion + FT) for one seed; returns per-model results."""
  from flax import nnx

  task = dict(config.task)
  train_data = frequency_summary_task(int(config.num_train), seed=seed, **task)
  test_data = frequency_summary_task(int(config.num_test), seed=seed + 10_000, **task)
  dense_cfg = model_config_for(config, config.model.baseline_ffn)
  mono_cfg = model_config_for(config, config.model.monotone_ffn)
  p = config.protocol
  results: dict[str, Any] = {"seed": seed}

  def fit(name, init, model_cfg, num_steps, warmup_fraction, train_seed, decay=None):
    """Trains `init` for `num_steps`, evaluates and attacks it into `results[name]`."""
    cfg = dict(config.train)
    cfg["num_steps"] = int(num_steps)
    cfg["warmup_steps"] = max(1, int(round(warmup_fraction * num_steps)))
    t0 = time.time()
    model, losses = train_model(
      init,
      model_cfg,
      train_data,
      cfg,
      seed=train_seed,
      label=f"seed {seed} {name}",
      decay_mask_fn=decay,
    )
    t1 = time.time()
    results[name] = evaluate_model(model, test_data, config, seed=seed)
    results[name].update(
      train_loss=losses,
      num_params=count_params(model),
      train_s=t1 - t0,
      attack_s=time.time() - t1,
    )
    return model

  t0 = time.time()
  if p.init == "pretrained":
    pre = Transformer(dense_cfg, rngs=nnx.Rngs(seed))
    pre = fit("pretrained", pre, dense_cfg, p.pretrain_steps, p.baseline_warmup, seed)
    base_init = nnx.clone(pre)
    mono_init = convert_to_monotone(pre, mono_cfg, eps=float(p.monotone_init_eps), seed=seed)
    results["monotone_at_conversion"] = evaluate_model(mono_init, test_data, config, attack=False)
    steps = p.finetune_steps
  else:
    base_init = Transformer(dense_cfg, rngs=nnx.Rngs(seed))
    mono_init = Transformer(mono_cfg, rngs=nnx.Rngs(seed))
    steps = p.pretrain_steps + p.finetune_steps
  fit("baseline", base_init, dense_cfg, steps, p.baseline_warmup, seed + 1)
  fit(
    "monotone",
    mono_init,
    mono_cfg,
    steps,
    p.monotone_warmup,
    seed + 1,
    decay=monotone_weight_decay_mask,
  )
  results["margin"] = test_data["margin"][: int(config.attack.num_examples)].tolist()
  logging.info(
    "seed %d done in %.0f s: %s",
    seed,
    time.time() - t0,
    {
      k: (round(results[k]["clean_loss"], 3), round(results[k]["any"]["success_rate"], 3))
      for k in MODELS
      if k in results
    },
  )
  return results


# -- Report ------------------------------------------------------------------------------------


def _fmt(values) -> str:
  mean, std = mean_std(values)
  return f"{mean:.3f} ± {std:.3f}"


def _ci_fmt(value: float, ci) -> str:
  return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def summary_tables(per_seed: list[dict], config) -> str:
  """Markdown: seed mean ± std per model (two tables), then per-seed values with bootstrap CIs."""
  thr = float(config.attack.success_threshold)
  k = int(config.attack.num_flips)
  names = [n for n in MODELS if n in per_seed[0]]
  lines = [
    f"**HotFlip** ({k} flips, success = relative loss increase > {thr:.0%}; mean ± std over "
    f"{len(per_seed)} seeds):",
    "",
    "| model | clean loss (nats/token) | clean accuracy | success, any token | mean rel. "
    "degradation | mean Δloss | adv. accuracy | success where the flips cannot change the "
    "reference | success, meaning-preserving | mean rel. degradation (m.-p.) |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for name in names:
    rs = [r[name] for r in per_seed]
    a, m = [r["any"] for r in rs], [r["meaning_preserving"] for r in rs]
    safe = [x["safe_success_rate"] for x in a if x["safe_examples"]]
    lines.append(
      f"| {name} | {_fmt([r['clean_loss'] for r in rs])} | "
      f"{_fmt([r['clean_accuracy'] for r in rs])} | {_fmt([x['success_rate'] for x in a])} | "
      f"{_fmt([x['mean_degradation'] for x in a])} | {_fmt([x['mean_delta_loss'] for x in a])} | "
      f"{_fmt([x['adv_accuracy'] for x in a])} | {_fmt(safe) if safe else 'n/a'} | "
      f"{_fmt([x['success_rate'] for x in m])} | {_fmt([x['mean_degradation'] for x in m])} |"
    )
  u = config.uat
  lines += [
    "",
    f"**UAT** ({u.trigger_len}-token trigger prepended to the source; {u.num_restarts} restarts "
    f"x <= {u.num_iterations} iterations, learned on {u.num_train}, tested on {u.num_test} "
    "held-out examples):",
    "",
    "| model | mean rel. loss increase (test) | success (test) | mean Δloss (test) | random "
    "trigger: mean rel. increase | iterations per restart |",
    "|---|---|---|---|---|---|",
  ]
  for name in names:
    us = [r[name]["uat"] for r in per_seed]
    iters = np.mean([np.mean(x["iterations"]) for x in us])
    lines.append(
      f"| {name} | {_fmt([x['mean_degradation'] for x in us])} | "
      f"{_fmt([x['success_rate'] for x in us])} | {_fmt([x['mean_delta_loss'] for x in us])} | "
      f"{_fmt([x['random_trigger_degradation'] for x in us])} | {iters:.1f} |"
    )
  lines += [
    "",
    f"**Per seed**, with {config.bootstrap.num_resamples}-resample bootstrap "
    f"{config.bootstrap.confidence:.0%} intervals over the test examples:",
    "",
    "| model | seed | clean loss | HotFlip success | HotFlip mean rel. degradation | "
    "success, meaning-preserving | UAT mean rel. increase |",
    "|---|---|---|---|---|---|---|",
  ]
  for name in names:
    for r in per_seed:
      x = r[name]
      a, m, u_ = x["any"], x["meaning_preserving"], x["uat"]
      lines.append(
        f"| {name} | {r.get('seed', '')} | {_ci_fmt(x['clean_loss'], x['clean_loss_ci'])} | "
        f"{_ci_fmt(a['success_rate'], a['success_ci'])} | "
        f"{_ci_fmt(a['mean_degradation'], a['degradation_ci'])} | "
        f"{_ci_fmt(m['success_rate'], m['success_ci'])} | "
        f"{_ci_fmt(u_['mean_degradation'], u_['degradation_ci'])} |"
      )
  conv = [r["monotone_at_conversion"] for r in per_seed if "monotone_at_conversion" in r]
  if conv:
    lines += [
      "",
      f"Monotone model right after conversion (before recovery fine-tuning): clean loss "
      f"{_fmt([c['clean_loss'] for c in conv])}, accuracy "
      f"{_fmt([c['clean_accuracy'] for c in conv])}.",
    ]
  safe_n = [r["baseline"]["any"]["safe_examples"] for r in per_seed if "baseline" in r]
  lines += [
    f"Clean loss floor (Bayes-optimal): {bayes_loss_floor(int(config.task.summary_len)):.3f} "
    "nats/token (each summary token is one of two random synonyms; accuracy counts either). "
    f"Examples where {k} flips cannot change the reference (count margin > {2 * k}): "
    f"{safe_n} of {config.attack.num_examples} per seed.",
  ]
  return "\n".join(lines)


def plot(per_seed, config, path) -> None:
  from matplotlib.figure import Figure  # No pyplot: leaves the caller's backend alone.

  names = [n for n in MODELS if n in per_seed[0]]
  colors = {"pretrained": "C7", "baseline": "C0", "monotone": "C1"}
  fig = Figure(figsize=(15, 8))
  axes = fig.subplots(2, 3)

  def bars(ax, values, ylabel, title, ylim=None):
    values = np.asarray(values, float)  # [seeds, models]
    x = np.arange(len(names))
    ax.bar(x, values.mean(0), yerr=values.std(0), capsize=4, color=[colors[n] for n in names])
    for i in range(values.shape[1]):
      ax.plot(np.full(values.shape[0], x[i]), values[:, i], "k.", ms=4)
    ax.set_xticks(x, names)
    ax.set(ylabel=ylabel, title=title)
    if ylim:
      ax.set_ylim(*ylim)

  def get(fn):
    return [[fn(r[n]) for n in names] for r in per_seed]

  thr = float(config.attack.success_threshold)
  bars(
    axes[0, 0],
    get(lambda x: x["any"]["success_rate"]),
    "attack success rate",
    f"HotFlip, any token (rel. loss +>{thr:.0%})",
    (0, 1.05),
  )
  bars(
    axes[0, 1],
    get(lambda x: x["meaning_preserving"]["success_rate"]),
    "attack success rate",
    "HotFlip, meaning-preserving (filler -> filler)",
    (0, 1.05),
  )
  bars(
    axes[0, 2],
    get(lambda x: x["uat"]["mean_degradation"]),
    "mean relative loss increase",
    "UAT, held-out examples",
  )
  bars(
    axes[1, 0], get(lambda x: x["clean_loss"]), "clean target loss (nats/token)", "clean quality"
  )
  bars(
    axes[1, 1],
    get(lambda x: x["any"]["mean_degradation"]),
    "mean relative loss increase",
    "HotFlip, any token: degradation",
  )
  ax = axes[1, 2]
  k = int(config.attack.num_flips)
  for n in names:
    ties = np.concatenate([flips_to_tie(r["margin"]) for r in per_seed])
    success = np.concatenate([np.asarray(r[n]["any"]["degradation"]) > thr for r in per_seed])
    xs = np.unique(ties)
    ax.plot(xs, [success[ties == v].mean() for v in xs], "o-", color=colors[n], label=n)
  ax.axvline(k + 0.5, color="k", ls=":", lw=1)
  ax.set(
    xlabel="flips needed to tie the summary's ranking",
    ylabel="HotFlip success rate",
    title=f"HotFlip vs count margin\n(right of the line: {k} flips cannot change the reference)",
    ylim=(0, 1.05),
  )
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def run(config) -> dict[str, Any]:
  """All seeds; writes results.{md,json}, attack.png and CITATIONS.bib into `config.workdir`."""
  validate_config(config)
  quiet_library_logs()
  os.makedirs(config.workdir, exist_ok=True)
  start = time.time()
  per_seed = []
  for seed in config.seeds:
    logging.info("=== seed %d ===", seed)
    per_seed.append(run_seed(config, int(seed)))
  total = time.time() - start
  tables = summary_tables(per_seed, config)
  p = config.protocol
  header = (
    f"Monotone FFN vs unconstrained ReLU FFN on the frequency-summary task (source "
    f"{config.task.source_len} tokens, {config.task.num_topics} topics, summary "
    f"{config.task.summary_len}, count gaps 1..{config.task.max_gap}); HotFlip on "
    f"{config.attack.num_examples} held-out examples per seed, seeds {tuple(config.seeds)}; "
    f"protocol init={p.init!r}, pretrain {p.pretrain_steps} + fine-tune {p.finetune_steps} "
    f"steps, batch {config.train.batch_size}, lr {config.train.learning_rate}, width "
    f"{config.model.hidden_size}. Wall time {total:.0f} s.\n"
  )
  with open(os.path.join(config.workdir, "results.md"), "w") as f:
    f.write(header + "\n" + tables + "\n" + (config.get("notes", "") or "") + "\n")
  payload = {"per_seed": per_seed, "wall_s": total, "config": config.to_dict()}
  with open(os.path.join(config.workdir, "results.json"), "w") as f:
    json.dump(payload, f, indent=2, default=str)
  plot(per_seed, config, os.path.join(config.workdir, "attack.png"))
  cited = [
    name
    for ffn in (config.model.baseline_ffn, config.model.monotone_ffn)
    for name in citations.run_components(model=model_config_for(config, ffn))
  ]
  citations.write_citations(cited, os.path.join(config.workdir, "CITATIONS.bib"))
  logging.info("results in %s (%.0f s)\n%s", config.workdir, total, tables)
  return payload
