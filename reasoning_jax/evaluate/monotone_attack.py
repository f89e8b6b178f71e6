r"""The monotone-FFN attack: monotone vs unconstrained FFNs under HotFlip token substitution.

`run(config)` is the whole experiment (`experiments/monotone_attack.py` is its absl main,
`configs/monotone_attack.py` its config); the pieces (`summary_task`, `convert_to_monotone`,
`forward_from_embeddings`, `evaluate_and_attack`) are usable on their own.

"Monotonicity as an Architectural Bias for Robust Language Models" (Cooper, Nadali, Trivedi,
Velasquez; arXiv:2602.02686), spec `memory_attention.md` §5. The paper fine-tunes T5-small on
summarisation; here a small decoder-only model learns a synthetic extractive-summary task
(`summary_task`, see its docstring and the config for why), following §5.2:

  1. "pretrained" model: an unconstrained ReLU-FFN model trained on the task;
  2. baseline: the pretrained model fine-tuned further (warm-up 10% of steps);
  3. monotone: the pretrained model with every FFN converted, V = softplus^-1(|W| + 1e-4)
     (signs discarded, `MonotoneFFN.load_dense`), then recovery fine-tuned (warm-up 15%,
     no weight decay on V: `monotone_weight_decay_mask`);
  AdamW, weight decay 0.01, grad clip 1.0 for all.

HotFlip (§5.2): per example, the gradient of the target loss w.r.t. the input embeddings;
the `num_flips` source positions with the largest gradient norm are each replaced by the
candidate token c maximising g_t . E[c] (first-order loss increase), all at once. Success:
relative increase of the example's target loss > `success_threshold` (10%) (the paper's
results-section definition; the setup's ROUGE-L variant is not used). Two candidate sets:
"any" (every source token, as the paper) and "meaning-preserving" (only filler positions,
only filler tokens: the reference summary stays correct, so any damage is non-robustness).

Writes `<workdir>/results.md`, `<workdir>/results.json`, `<workdir>/attack.png` and
`<workdir>/CITATIONS.bib`.
Reports what the runs show, whatever it shows.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Mapping

import numpy as np
from absl import logging

from reasoning_jax import citations
from reasoning_jax.layers.monotone import MonotoneFFN, monotone_weight_decay_mask
from reasoning_jax.models.config import get_preset
from reasoning_jax.models.transformer import Transformer, count_params
from reasoning_jax.train.metrics import quiet_library_logs
from reasoning_jax.train.recall import train_model

SEP, EOS = 0, 1
IGNORE = -100


# -- Task ------------------------------------------------------------------------------------


def summary_task(
  num_examples: int,
  *,
  num_filler: int = 16,
  num_content: int = 16,
  source_len: int = 24,
  num_keywords: int = 4,
  seed: int = 0,
) -> dict[str, np.ndarray]:
  """Extractive "summarisation" with paraphrase noise (selective copying + synonyms).

  Source: `source_len` tokens, `num_keywords` of them content tokens (distinct, at random
  positions), the rest filler. Summary: the content tokens in source order, each written as
  one of two synonyms chosen at random, then EOS. Sequence `[source, SEP, summary, EOS]`; the
  model sees it minus the last token. The task is selective copying ("Mamba", Gu & Dao,
  arXiv:2312.00752); the random synonym puts a floor of ln 2 nats on each keyword's loss, so
  the clean loss is O(1) as in real summarisation and a relative loss increase is meaningful.

  Vocabulary: 0 SEP, 1 EOS, filler [2, 2+F), content [2+F, 2+F+C), summary tokens
  [2+F+C, 2+F+3C) (content i -> 2+F+C+2i or +1).

  Returns:
    inputs, targets (IGNORE outside the summary), alt_targets (the other synonym; the target
    itself for EOS), source_mask (attackable positions), filler_mask: `[N, T]`,
    T = source_len + num_keywords + 1.
  """
  if num_keywords > min(num_content, source_len):
    raise ValueError(
      f"num_keywords={num_keywords} must be <= num_content={num_content} and "
      f"<= source_len={source_len}"
    )
  rng = np.random.default_rng(seed)
  n, L, K, F, C = num_examples, source_len, num_keywords, num_filler, num_content
  source = rng.integers(2, 2 + F, size=(n, L))
  pos = np.sort(np.argsort(rng.random((n, L)), axis=1)[:, :K], axis=1)
  content = np.argsort(rng.random((n, C)), axis=1)[:, :K]
  np.put_along_axis(source, pos, 2 + F + content, axis=1)
  synonym = rng.integers(0, 2, size=(n, K))
  summary = 2 + F + C + 2 * content + synonym
  alt = 2 + F + C + 2 * content + (1 - synonym)
  seq = np.concatenate([source, np.full((n, 1), SEP), summary, np.full((n, 1), EOS)], axis=1)
  t = L + K + 1
  inputs, targets = seq[:, :-1], np.full((n, t), IGNORE)
  targets[:, L:] = seq[:, L + 1 :]
  alt_targets = targets.copy()
  alt_targets[:, L : L + K] = alt
  source_mask = np.zeros((n, t), bool)
  source_mask[:, :L] = True
  filler_mask = source_mask & (inputs < 2 + F)
  return {
    "inputs": inputs.astype(np.int32),
    "targets": targets.astype(np.int32),
    "alt_targets": alt_targets.astype(np.int32),
    "source_mask": source_mask,
    "filler_mask": filler_mask,
  }


def task_vocab(task: Mapping[str, Any]) -> tuple[int, int, int]:
  """(vocab_size, first filler id, first content id)."""
  f, c = int(task["num_filler"]), int(task["num_content"])
  return 2 + f + 3 * c, 2, 2 + f


# -- Model pieces ----------------------------------------------------------------------------


def model_config_for(config, ffn: str):

  vocab, _, _ = task_vocab(config.task)
  m = config.model
  return get_preset(m.preset).replace(
    vocab_size=vocab,
    hidden_size=m.hidden_size,
    intermediate_size=m.intermediate_size,
    num_layers=m.num_layers,
    num_heads=m.num_heads,
    num_kv_heads=m.num_heads,
    head_dim=m.hidden_size // m.num_heads,
    ffn=ffn,
    mlp_bias=m.mlp_bias,
    **dict(m.overrides),
  )


def forward_from_embeddings(model, embeds):
  """Logits `[B, T, V]` from input embeddings `[B, T, H]` (Transformer.forward minus lookup)."""
  import jax.numpy as jnp

  b, t = embeds.shape[:2]
  positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
  x = embeds.astype(model.dtype)
  for block in model.layers:
    x, _ = block(x, positions=positions)
  return model.unembed(model.final_norm(x))


def convert_to_monotone(dense_model, monotone_config, *, eps: float, seed: int):
  """A monotone-FFN copy of `dense_model`: other params copied, FFNs V = softplus^-1(|W|+eps)."""
  from flax import nnx

  mono = Transformer(monotone_config, rngs=nnx.Rngs(seed))
  dense_state = nnx.state(dense_model, nnx.Param)
  mono_state = nnx.state(mono, nnx.Param)
  flat_dense = dict(nnx.to_flat_state(dense_state))
  for path, var in nnx.to_flat_state(mono_state):
    if "ffn" in path:
      continue
    var.set_value(flat_dense[path].get_value()) if hasattr(var, "set_value") else var.__setattr__(
      "value", flat_dense[path].value
    )
  for dense_block, mono_block in zip(dense_model.layers, mono.layers):
    if not isinstance(mono_block.ffn, MonotoneFFN):
      raise ValueError(f"monotone_config must use a monotone FFN, got {monotone_config.ffn!r}")
    mono_block.ffn.load_dense(up=dense_block.ffn.up[...], down=dense_block.ffn.down[...], eps=eps)
    if mono_block.ffn.up_bias is not None:
      mono_block.ffn.up_bias[...] = dense_block.ffn.up_bias[...]
      mono_block.ffn.down_bias[...] = dense_block.ffn.down_bias[...]
  return mono


# -- Training and evaluation -----------------------------------------------------------------


_ATTACK_FNS: dict[Any, Any] = {}


def _attack_fns(model_config, graphdef, num_flips: int):
  """Jitted (per-example clean loss/accuracy, HotFlip attack), compiled once per model config."""
  key = (model_config, int(num_flips))
  if key not in _ATTACK_FNS:
    _ATTACK_FNS[key] = _make_attack_fns(graphdef, int(num_flips))
  return _ATTACK_FNS[key]


def _make_attack_fns(graphdef, num_flips: int):
  import jax
  import jax.numpy as jnp
  from flax import nnx

  def per_example(model, logits, targets, alt):
    weights = (targets != IGNORE).astype(jnp.float32)
    safe = jnp.where(targets != IGNORE, targets, 0)
    logp = jax.nn.log_softmax(logits, -1)
    nll = -jnp.take_along_axis(logp, safe[..., None], -1)[..., 0] * weights
    pred = jnp.argmax(logits, -1)
    ok = ((pred == safe) | (pred == jnp.where(alt != IGNORE, alt, 0))) * weights
    count = weights.sum(-1)
    return nll.sum(-1) / count, ok.sum(-1) / count

  @jax.jit
  def clean(params, inputs, targets, alt):
    model = nnx.merge(graphdef, params)
    return per_example(model, model(inputs), targets, alt)

  @jax.jit
  def attack(params, inputs, targets, alt, position_mask, candidate_mask):
    """position_mask [B, T] bool, candidate_mask [V] bool -> (adv loss, adv acc, adv ids)."""
    model = nnx.merge(graphdef, params)
    table = model.embed[...]
    embeds = jnp.take(table, inputs, axis=0)

    def total_loss(e):
      loss, _ = per_example(model, forward_from_embeddings(model, e), targets, alt)
      return loss.sum()  # Examples are independent: d/d e[b] is example b's gradient.

    grads = jax.grad(total_loss)(embeds)
    norms = jnp.where(position_mask, jnp.linalg.norm(grads, axis=-1), -jnp.inf)
    _, where = jax.lax.top_k(norms, num_flips)  # [B, k]
    g = jnp.take_along_axis(grads, where[..., None], axis=1)  # [B, k, H]
    current = jnp.take_along_axis(inputs, where, axis=1)
    scores = jnp.einsum("bkh,vh->bkv", g, table.astype(g.dtype))
    allowed = candidate_mask[None, None, :] & (jnp.arange(table.shape[0]) != current[..., None])
    best = jnp.argmax(jnp.where(allowed, scores, -jnp.inf), -1).astype(inputs.dtype)
    valid = jnp.take_along_axis(position_mask, where, axis=1)  # Fewer than k attackable.
    rows = jnp.arange(inputs.shape[0])[:, None]
    adv = inputs.at[rows, where].set(jnp.where(valid, best, current))
    loss, acc = per_example(model, model(adv), targets, alt)
    return loss, acc, adv

  return clean, attack


def evaluate_and_attack(model, data, config, *, run_attack: bool = True) -> dict[str, Any]:
  """Clean quality on the test set and HotFlip on its first `attack.num_examples` examples."""
  import jax.numpy as jnp
  from flax import nnx

  graphdef, params = nnx.split(model, nnx.Param)
  clean, attack = _attack_fns(model.config, graphdef, int(config.attack.num_flips))
  vocab, filler0, content0 = task_vocab(config.task)
  ids = np.arange(vocab)
  source_tokens = (ids >= filler0) & (ids < content0 + int(config.task.num_content))
  filler_tokens = (ids >= filler0) & (ids < content0)
  modes = {
    "any": (data["source_mask"], source_tokens),
    "meaning_preserving": (data["filler_mask"], filler_tokens),
  }
  bs = int(config.attack.batch_size)
  losses, accs = [], []
  for lo in range(0, len(data["inputs"]), bs):
    sl = slice(lo, lo + bs)
    l, a = clean(params, data["inputs"][sl], data["targets"][sl], data["alt_targets"][sl])
    losses.append(np.asarray(l))
    accs.append(np.asarray(a))
  losses, accs = np.concatenate(losses), np.concatenate(accs)
  out = {"clean_loss": float(losses.mean()), "clean_accuracy": float(accs.mean())}
  if not run_attack:
    return out
  n_att = min(int(config.attack.num_examples), len(losses))
  thr = float(config.attack.success_threshold)
  for mode, (pos_mask, cand) in modes.items():
    adv_l, adv_a, changed = [], [], []
    for lo in range(0, n_att, bs):
      sl = slice(lo, min(lo + bs, n_att))
      l, a, adv = attack(
        params,
        data["inputs"][sl],
        data["targets"][sl],
        data["alt_targets"][sl],
        pos_mask[sl],
        jnp.asarray(cand),
      )
      adv_l.append(np.asarray(l))
      adv_a.append(np.asarray(a))
      changed.append((np.asarray(adv) != data["inputs"][sl]).sum(-1))
    adv_l, adv_a = np.concatenate(adv_l), np.concatenate(adv_a)
    base = losses[:n_att]
    degradation = (adv_l - base) / np.maximum(base, 1e-8)
    out[mode] = {
      "success_rate": float(np.mean(degradation > thr)),
      "mean_degradation": float(degradation.mean()),
      "mean_delta_loss": float((adv_l - base).mean()),
      "adv_accuracy": float(adv_a.mean()),
      "clean_accuracy_attacked_subset": float(accs[:n_att].mean()),
      "mean_tokens_changed": float(np.concatenate(changed).mean()),
      "num_examples": int(n_att),
    }
  return out


def run_seed(config, seed: int) -> dict[str, dict[str, Any]]:
  """Pretrain -> (baseline FT, monotone conversion + FT) for one seed; returns per-model results."""
  from flax import nnx

  task = dict(config.task)
  train_data = summary_task(int(config.num_train), seed=seed, **task)
  test_data = summary_task(int(config.num_test), seed=seed + 10, **task)
  dense_cfg = model_config_for(config, config.model.baseline_ffn)
  mono_cfg = model_config_for(config, config.model.monotone_ffn)
  p, prot = config.protocol, config.protocol
  results = {}

  def fit(name, stage, init, model_cfg, num_steps, warmup_fraction, train_seed, decay=None):
    """Trains `init` for `num_steps` (warm-up `warmup_fraction`), evaluates and attacks it
    into `results[name]`; returns the trained model."""
    cfg = dict(config.train)
    cfg["num_steps"] = int(num_steps)
    cfg["warmup_steps"] = max(1, int(round(warmup_fraction * num_steps)))
    model, losses = train_model(
      init,
      model_cfg,
      train_data,
      cfg,
      seed=train_seed,
      label=f"seed {seed} {stage}",
      decay_mask_fn=decay,
    )
    results[name] = evaluate_and_attack(model, test_data, config)
    results[name]["train_loss"] = losses
    return model

  t0 = time.time()
  if prot.init == "pretrained":
    pre = Transformer(dense_cfg, rngs=nnx.Rngs(seed))
    pre = fit("pretrained", "pretrain", pre, dense_cfg, p.pretrain_steps, p.baseline_warmup, seed)
    base_init = nnx.clone(pre)
    mono_init = convert_to_monotone(pre, mono_cfg, eps=float(prot.monotone_init_eps), seed=seed)
    results["monotone_at_conversion"] = evaluate_and_attack(
      mono_init, test_data, config, run_attack=False
    )
  elif prot.init == "scratch":
    base_init = Transformer(dense_cfg, rngs=nnx.Rngs(seed))
    mono_init = Transformer(mono_cfg, rngs=nnx.Rngs(seed))
  else:
    raise ValueError(f"protocol.init must be 'pretrained' or 'scratch', got {prot.init!r}")
  steps = p.finetune_steps if prot.init == "pretrained" else p.pretrain_steps + p.finetune_steps
  base = fit("baseline", "baseline", base_init, dense_cfg, steps, p.baseline_warmup, seed + 1)
  mono = fit(
    "monotone",
    "monotone",
    mono_init,
    mono_cfg,
    steps,
    p.monotone_warmup,
    seed + 1,
    decay=monotone_weight_decay_mask,
  )
  for name in ("baseline", "monotone", "pretrained"):
    if name in results:
      results[name]["num_params"] = count_params(base if name != "monotone" else mono)
  logging.info(
    "seed %d done in %.0f s: %s",
    seed,
    time.time() - t0,
    {
      k: (
        round(v.get("clean_loss", float("nan")), 3),
        round(v.get("any", {}).get("success_rate", float("nan")), 3),
      )
      for k, v in results.items()
    },
  )
  return results


def _fmt(values) -> str:
  values = np.asarray(values, float)
  return f"{values.mean():.3f} ± {values.std():.3f}"


def summary_table(per_seed: list[dict], threshold: float) -> str:
  rows = [
    "| model | clean loss (nats/token) | clean accuracy | HotFlip success, any token "
    f"(rel. loss +>{threshold:.0%}) | mean rel. degradation | mean Δloss | adv. accuracy "
    "| success, meaning-preserving | mean rel. degradation (m.-p.) | seeds |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for name in ("pretrained", "baseline", "monotone"):
    runs = [r[name] for r in per_seed if name in r]
    if not runs:
      continue
    a = [r["any"] for r in runs]
    m = [r["meaning_preserving"] for r in runs]
    rows.append(
      f"| {name} | {_fmt([r['clean_loss'] for r in runs])} | "
      f"{_fmt([r['clean_accuracy'] for r in runs])} | {_fmt([x['success_rate'] for x in a])} | "
      f"{_fmt([x['mean_degradation'] for x in a])} | "
      f"{_fmt([x['mean_delta_loss'] for x in a])} | {_fmt([x['adv_accuracy'] for x in a])} | "
      f"{_fmt([x['success_rate'] for x in m])} | {_fmt([x['mean_degradation'] for x in m])} | "
      f"{len(runs)} |"
    )
  conv = [r["monotone_at_conversion"] for r in per_seed if "monotone_at_conversion" in r]
  if conv:
    rows.append("")
    rows.append(
      f"Monotone model right after conversion (before recovery fine-tuning): clean "
      f"loss {_fmt([c['clean_loss'] for c in conv])}, accuracy "
      f"{_fmt([c['clean_accuracy'] for c in conv])}."
    )
  return "\n".join(rows)


def plot(per_seed, path):
  from matplotlib.figure import Figure  # No pyplot: leaves the caller's backend alone.

  names = [n for n in ("pretrained", "baseline", "monotone") if n in per_seed[0]]
  fig = Figure(figsize=(14, 4))
  axes = fig.subplots(1, 3)
  for ax, key, title in (
    (axes[0], "any", "HotFlip, any token"),
    (axes[1], "meaning_preserving", "HotFlip, meaning-preserving"),
  ):
    sr = np.array([[r[n][key]["success_rate"] for n in names] for r in per_seed])
    ax.bar(names, sr.mean(0), yerr=sr.std(0), capsize=4, color=["C7", "C0", "C1"][: len(names)])
    ax.set(ylim=(0, 1.05), ylabel="attack success rate", title=title)
  cl = np.array([[r[n]["clean_loss"] for n in names] for r in per_seed])
  axes[2].bar(names, cl.mean(0), yerr=cl.std(0), capsize=4, color=["C7", "C0", "C1"][: len(names)])
  axes[2].set(ylabel="clean target loss (nats/token)", title="clean quality")
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def run(config) -> dict[str, Any]:
  """All seeds; writes results.{md,json}, attack.png and CITATIONS.bib into `config.workdir`."""
  quiet_library_logs()
  os.makedirs(config.workdir, exist_ok=True)
  start = time.time()
  per_seed = []
  for seed in config.seeds:
    logging.info("=== seed %d ===", seed)
    per_seed.append(run_seed(config, int(seed)))
  total = time.time() - start
  table = summary_table(per_seed, float(config.attack.success_threshold))
  p = config.protocol
  header = (
    f"Monotone FFN vs unconstrained ReLU FFN, HotFlip ({config.attack.num_flips} flips, "
    f"{config.attack.num_examples} test examples per seed), seeds {tuple(config.seeds)}; "
    f"protocol init={p.init!r}, pretrain {p.pretrain_steps} + fine-tune "
    f"{p.finetune_steps} steps, batch {config.train.batch_size}, lr "
    f"{config.train.learning_rate}. Wall time {total:.0f} s.\n"
  )
  with open(os.path.join(config.workdir, "results.md"), "w") as f:
    f.write(header + "\n" + table + "\n" + (config.get("notes", "") or "") + "\n")
  payload = {"per_seed": per_seed, "wall_s": total, "config": config.to_dict()}
  with open(os.path.join(config.workdir, "results.json"), "w") as f:
    json.dump(payload, f, indent=2, default=str)
  plot(per_seed, os.path.join(config.workdir, "attack.png"))
  cited = [
    name
    for ffn in (config.model.baseline_ffn, config.model.monotone_ffn)
    for name in citations.run_components(model=model_config_for(config, ffn))
  ]
  citations.write_citations(cited, os.path.join(config.workdir, "CITATIONS.bib"))
  logging.info("results in %s (%.0f s)\n%s", config.workdir, total, table)
  return payload
