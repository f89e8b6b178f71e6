"""`run(config)`: every decoder of `config.decoders` on the same prompts, several seeds.

Per temperature of `config.temperatures` (0 = greedy) and seed, each decoder decodes the same
`config.batch_size` held-out prompts of the target's task (in calls of `config.decode_batch`
rows; 0: all in one call) (a seed draws its own prompts and
its own sampling key) with the same `max_new_tokens`. Each decoder is compiled once (a
warm-up call on seed 0's prompts, not timed), then timed `config.timing_repeats` times per
seed (median). Measured per (decoder, temperature, seed):

  * tokens per target call: emitted tokens / target forward passes summed over rows (prefill
    included); 1 for `target`;
  * acceptance rate, overall and by draft position (mean `min(1, p/q)`);
  * wall-clock speedup: the target's median time / the decoder's, same prompts and budget;
  * task accuracy with the task's verifier, and its difference from the target's (sampled:
    over `config.accuracy_samples` draws per prompt, the timed one and untimed others);
  * the fraction of rows whose tokens equal the target's (greedy only; a lossless decoder
    must reach 1, and `run` raises if one does not).

Step-level rows (`semantic*`) also report the split of accepted steps (fast path / probe) and
steps per row, and need SemanticSpec's probes: `probes.prepare_probes` builds them once
before the table (their validation MSE goes to `results.json` under "probes").

Writes `results.json` (every number, per seed), `results.md` (mean ± std over seeds),
`acceptance.png` (acceptance rate by position), `speedup.png` (speedup and tokens per target
call per decoder) and `CITATIONS.bib` into `config.workdir`; returns the payload.
"""

from __future__ import annotations

import os
import statistics
import time
import types
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from reasoning_jax import citations
from reasoning_jax.evaluate.outputs import write_results
from reasoning_jax.evaluate.speculative.decoders import Decoder, make_decoders
from reasoning_jax.evaluate.speculative.pair import Pair, load_pair
from reasoning_jax.evaluate.speculative.probes import (
  needs_probes,
  pair_task,
  prepare_probes,
  task_prompts,
)

# Per-seed measurements aggregated into the table, in column order.
METRICS = (
  "tokens_per_target_call",
  "acceptance_rate",
  "speedup",
  "accuracy",
  "accuracy_delta",
  "same_as_target",
)
# Step-level decoders (SemanticSpec) also report these (absent: n/a).
STEP_METRICS = (
  "fast_accept_rate",
  "probe_accept_rate",
  "draft_steps_per_row",
  "target_steps_per_row",
)


def validate(config: ml_collections.ConfigDict) -> None:
  """Shapes and ranges of the experiment's own keys; ValueError naming the key."""
  if len(config.seeds) < 1:
    raise ValueError("config.seeds must name at least one seed")
  for key in ("batch_size", "max_new_tokens", "timing_repeats", "max_prompt_len"):
    if not isinstance(config[key], int) or config[key] < 1:
      raise ValueError(f"config.{key} must be an int >= 1, got {config[key]!r}")
  decode_batch = config.get("decode_batch", 0)
  if not isinstance(decode_batch, int) or decode_batch < 0:
    raise ValueError(f"config.decode_batch must be an int >= 0 (0: one call), got {decode_batch!r}")
  samples = config.get("accuracy_samples", 1)
  if not isinstance(samples, int) or samples < 1:
    raise ValueError(f"config.accuracy_samples must be an int >= 1, got {samples!r}")
  if not config.temperatures or any(t < 0 for t in config.temperatures):
    raise ValueError(f"config.temperatures must be >= 0, got {config.temperatures}")


def _prompt_batches(config, pair: Pair) -> tuple[list[dict[str, Any]], str]:
  """One batch of held-out prompts per seed (a seed's own draw), and the verifier's name."""
  task = pair_task(config, pair)
  test = task.test_source
  n = min(config.batch_size, len(test))
  batches = []
  for seed in config.seeds:
    rows = np.random.default_rng(seed).choice(len(test), n, replace=False)
    batches.append(task_prompts(config, pair, task, [test[int(i)] for i in rows]))
  return batches, task.reward


def _score(reward: str, pair: Pair, batch, out) -> np.ndarray:
  from reasoning_jax.rewards import REWARD_FIELDS, score_batch

  completions = pair.tokenizer.decode_batch(np.asarray(out.tokens), np.asarray(out.lengths))
  fields = {k: list(batch[k]) for k in REWARD_FIELDS if k in batch}
  answers = [str(a) for a in batch["answer"]]
  return np.asarray(score_batch(reward, completions, answers, **fields), np.float64)


def _timed(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn().tokens)
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _decode(decoder: Decoder, pair: Pair, prompts, lengths, *, config, temperature, key):
  """`decoder.run` on the batch, in calls of `config.decode_batch` rows (0: one call).

  With several calls the outputs are concatenated and the stats pooled: target passes and
  emitted tokens summed, acceptance rates averaged over the calls (weighted by target passes).
  """
  rows = prompts.shape[0]
  step = config.get("decode_batch", 0) or rows
  outs, stats = [], []
  for j, start in enumerate(range(0, rows, step)):
    chunk_key = None if key is None else jax.random.fold_in(key, j)
    out, st = decoder.run(
      pair,
      prompts[start : start + step],
      lengths[start : start + step],
      max_new_tokens=config.max_new_tokens,
      temperature=float(temperature),
      key=chunk_key,
    )
    outs.append(out)
    stats.append(st)
  if len(outs) == 1:
    return outs[0], stats[0]
  out = types.SimpleNamespace(
    tokens=jnp.concatenate([o.tokens for o in outs]),
    lengths=jnp.concatenate([o.lengths for o in outs]),
  )
  pooled: dict[str, Any] = {}
  calls = np.asarray([st.get("row_target_calls", np.nan) for st in stats], np.float64)
  if np.all(np.isfinite(calls)):
    pooled["row_target_calls"] = float(calls.sum())
    pooled["tokens_per_target_call"] = float(np.asarray(out.lengths).sum() / calls.sum())
    weights = calls
  else:
    weights = np.ones(len(stats))
  if all("acceptance_rate" in st for st in stats):
    pooled["acceptance_rate"] = float(
      np.average([st["acceptance_rate"] for st in stats], weights=weights)
    )
  for name in STEP_METRICS:
    if all(name in st for st in stats):
      pooled[name] = float(np.average([st[name] for st in stats], weights=weights))
  curves = [
    np.asarray(st["acceptance_rate_by_position"])
    for st in stats
    if "acceptance_rate_by_position" in st
  ]
  if curves:
    stacked = np.stack(curves)
    w = np.broadcast_to(weights[: len(curves), None], stacked.shape)
    ok = np.isfinite(stacked)
    pooled["acceptance_rate_by_position"] = np.where(
      ok.any(0), (np.where(ok, stacked, 0) * w).sum(0) / np.maximum((ok * w).sum(0), 1e-12), np.nan
    )
  return out, pooled


def _measure(config, pair, decoders, batches, reward) -> dict[str, Any]:
  """results[temperature][decoder] = list of per-seed dicts."""
  results: dict[str, Any] = {}
  for temperature in config.temperatures:
    per_decoder: dict[str, list[dict[str, Any]]] = {}
    reference: dict[int, Any] = {}
    for decoder in decoders:
      runs = []
      for i, (seed, batch) in enumerate(zip(config.seeds, batches)):
        prompts = jnp.asarray(batch["prompts"])
        lengths = jnp.asarray(batch["prompt_lengths"])
        key = jax.random.key(seed) if temperature > 0 else None

        def call(decoder=decoder, prompts=prompts, lengths=lengths, key=key):
          return _decode(
            decoder, pair, prompts, lengths, config=config, temperature=temperature, key=key
          )[0]

        if i == 0:
          start = time.perf_counter()
          jax.block_until_ready(call().tokens)  # Compile; not timed.
          logging.info(
            "%s T=%s: compiled in %.1f s", decoder.name, temperature, time.perf_counter() - start
          )
        out, stats = _decode(
          decoder, pair, prompts, lengths, config=config, temperature=temperature, key=key
        )
        seconds = _timed(call, config.timing_repeats)
        scores = _score(reward, pair, batch, out)
        if temperature > 0:  # More samples for the accuracy (untimed): it is noisy.
          for j in range(1, config.get("accuracy_samples", 1)):
            extra = call(key=jax.random.fold_in(key, j))
            scores = np.concatenate([scores, _score(reward, pair, batch, extra)])
        run = {
          "seed": seed,
          "seconds": seconds,
          "emitted": int(np.asarray(out.lengths).sum()),
          "accuracy": float(scores.mean()),
          "tokens_per_target_call": float(stats.get("tokens_per_target_call", np.nan)),
          "acceptance_rate": float(stats.get("acceptance_rate", np.nan)),
          "acceptance_rate_by_position": [
            float(x) for x in np.asarray(stats.get("acceptance_rate_by_position", []))
          ],
        }
        run.update({m: float(stats[m]) for m in STEP_METRICS if m in stats})
        if decoder.family == "target":
          reference[seed] = (out, seconds, run["accuracy"])
        base_out, base_seconds, base_accuracy = reference[seed]
        run["speedup"] = base_seconds / seconds
        run["accuracy_delta"] = run["accuracy"] - base_accuracy
        same = np.nan
        if temperature == 0:
          a, b = np.asarray(out.tokens), np.asarray(base_out.tokens)
          same = float(np.mean(np.all(a == b, axis=1)))
          if decoder.lossless and same < 1.0:
            raise AssertionError(
              f"{decoder.name} is lossless but its greedy output differs from the target's "
              f"on {1 - same:.0%} of the rows (seed {seed})"
            )
        run["same_as_target"] = same
        runs.append(run)
        logging.info(
          "%s T=%s seed %s: %.3f tokens/target call, acceptance %.3f, speedup %.2fx, "
          "accuracy %.3f (%.3f s)",
          decoder.name,
          temperature,
          seed,
          run["tokens_per_target_call"],
          run["acceptance_rate"],
          run["speedup"],
          run["accuracy"],
          seconds,
        )
      per_decoder[decoder.name] = runs
    results[str(float(temperature))] = per_decoder
  return results


def _mean_std(values) -> tuple[float, float]:
  values = np.asarray([v for v in values if np.isfinite(v)], np.float64)
  if values.size == 0:
    return float("nan"), float("nan")
  return float(values.mean()), float(values.std())


def summarize(results: dict[str, Any]) -> dict[str, Any]:
  """Mean and std over seeds of every metric, and the acceptance curve by position."""
  summary: dict[str, Any] = {}
  for temperature, per_decoder in results.items():
    summary[temperature] = {}
    for name, runs in per_decoder.items():
      row = {m: _mean_std([r.get(m, np.nan) for r in runs]) for m in METRICS + STEP_METRICS}
      curves = [r["acceptance_rate_by_position"] for r in runs if r["acceptance_rate_by_position"]]
      with warnings.catch_warnings():  # A position no seed reached (step 1: the target's).
        warnings.simplefilter("ignore", RuntimeWarning)
        row["acceptance_rate_by_position"] = (
          np.nanmean(np.asarray(curves, np.float64), axis=0).tolist() if curves else []
        )
      summary[temperature][name] = row
  return summary


def _cell(mean_std: tuple[float, float], signed: bool = False) -> str:
  mean, std = mean_std
  if not np.isfinite(mean):
    return "n/a"
  return f"{mean:+.3f} ± {std:.3f}" if signed else f"{mean:.3f} ± {std:.3f}"


def _step_lines(payload: dict[str, Any]) -> list[str]:
  """The step-level (SemanticSpec) rows: probes, step acceptance and its split."""
  probes, summary, families = payload.get("probes"), payload["summary"], payload["decoders"]
  step = [n for n, info in families.items() if info["family"].startswith("semantic")]
  if not probes or not step:
    return []
  fits = probes["probes"]
  lines = [
    "",
    'SemanticSpec (not lossless: its "same tokens as target" is a measurement). Probes: '
    f"{probes['prefixes']} step prefixes of {probes['traces']} training-split target traces "
    f"(mean {probes['mean_steps']:.2f} steps a trace; boundary ids {probes['boundary_ids']}), "
    f"{probes['settings']['num_samples']} samples per prefix and model, labels "
    f"{probes['settings']['label_mode']!r}; validation MSE target "
    f"{fits['target']['val_mse']:.4f} (label variance {fits['target']['label_var']:.4f}, "
    f"{fits['target']['examples']} examples), draft {fits['draft']['val_mse']:.4f} (label "
    f"variance {fits['draft']['label_var']:.4f}, {fits['draft']['examples']} examples). The "
    "decoder keeps both models' KV caches across steps; its host loop runs one iteration per "
    "step (a few batched calls each), so at small scale its wall clock carries that overhead; "
    "tokens per target call is the cost model's figure.",
    "",
    "| decoder | temperature | step acceptance | fast-path accepts / proposed | probe accepts / "
    "proposed | draft steps per row | target steps per row |",
    "|---|---|---|---|---|---|---|",
  ]
  for temperature, rows in summary.items():
    for name in step:
      row = rows[name]
      lines.append(
        f"| {name} | {float(temperature):g} | {_cell(row['acceptance_rate'])} | "
        f"{_cell(row['fast_accept_rate'])} | {_cell(row['probe_accept_rate'])} | "
        f"{_cell(row['draft_steps_per_row'])} | {_cell(row['target_steps_per_row'])} |"
      )
  return lines


def markdown(config, payload: dict[str, Any]) -> str:
  pair, summary = payload["pair"], payload["summary"]
  lines = [
    "# Speculative decoding: a draft/target pair",
    "",
    f"Pair: {pair['source']} (target {pair['target_params']:,} params, draft "
    f"{pair['draft_params']:,}; per-token FLOPs ratio {pair['flops_ratio']:.1f}x). "
    f"{config.batch_size} held-out prompts per seed, {config.max_new_tokens} new tokens, "
    f"seeds {tuple(config.seeds)}; "
    f"{config.get('decode_batch', 0) or config.batch_size} rows per decoder call; wall "
    f"clock: median of {config.timing_repeats} timed calls after a compiling warm-up, on {payload['device']}; sampled accuracy over "
    f"{config.get('accuracy_samples', 1)} draws per prompt. Mean ± std over seeds.",
    "",
    "| decoder | family | k / threshold | lossless | temperature | tokens per target call "
    "| acceptance | speedup vs target | accuracy | Δ accuracy vs target | same tokens as "
    "target |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  families = payload["decoders"]
  for temperature, rows in summary.items():
    for name, row in rows.items():
      info = families[name]
      param = "" if info["param"] is None else f"{info['param']:g}"
      lines.append(
        f"| {name} | {info['family']} | {param} | {'yes' if info['lossless'] else 'no'} | "
        f"{float(temperature):g} | {_cell(row['tokens_per_target_call'])} | "
        f"{_cell(row['acceptance_rate'])} | {_cell(row['speedup'])} | "
        f"{_cell(row['accuracy'])} | {_cell(row['accuracy_delta'], True)} | "
        f"{_cell(row['same_as_target'])} |"
      )
  lines += _step_lines(payload)
  lines += [
    "",
    "Acceptance rate by draft position (step position for step-level rows; mean over seeds):",
    "",
  ]
  for temperature, rows in summary.items():
    for name, row in rows.items():
      curve = row["acceptance_rate_by_position"]
      if curve:
        values = ", ".join(f"{x:.2f}" for x in curve)
        lines.append(f"- {name}, temperature {float(temperature):g}: {values}")
  return "\n".join(lines) + "\n"


def plot(config, payload: dict[str, Any]) -> list[str]:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  summary, paths = payload["summary"], []
  temps = list(summary)
  fig, axes = plt.subplots(1, len(temps), figsize=(4.5 * len(temps), 3.4), squeeze=False)
  for ax, temperature in zip(axes[0], temps):
    for name, row in summary[temperature].items():
      curve = row["acceptance_rate_by_position"]
      if curve:
        ax.plot(range(1, len(curve) + 1), curve, marker="o", label=name)
    ax.set(
      xlabel="draft position (step position: semantic)",
      ylabel="acceptance rate",
      ylim=(-0.02, 1.02),
      title=f"temperature {float(temperature):g}",
    )
    ax.legend(fontsize=8)
  fig.tight_layout()
  paths.append(os.path.join(config.workdir, "acceptance.png"))
  fig.savefig(paths[-1], dpi=100)
  plt.close(fig)

  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
  width = 0.8 / max(len(temps), 1)
  for j, temperature in enumerate(temps):
    names = list(summary[temperature])
    x = np.arange(len(names)) + j * width
    for ax, metric in ((ax1, "speedup"), (ax2, "tokens_per_target_call")):
      means = [summary[temperature][n][metric][0] for n in names]
      stds = [summary[temperature][n][metric][1] for n in names]
      ax.bar(x, means, width, yerr=stds, label=f"T={float(temperature):g}")
      ax.set_xticks(np.arange(len(names)) + width * (len(temps) - 1) / 2, names, fontsize=8)
  ax1.axhline(1.0, color="gray", lw=0.8)
  ax1.set(ylabel="wall-clock speedup vs target")
  ax2.set(ylabel="tokens per target call")
  ax1.legend(fontsize=8)
  fig.tight_layout()
  paths.append(os.path.join(config.workdir, "speedup.png"))
  fig.savefig(paths[-1], dpi=100)
  plt.close(fig)
  return paths


def run(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The whole experiment; returns the payload also written to `results.json`."""
  validate(config)
  os.makedirs(config.workdir, exist_ok=True)
  start = time.perf_counter()
  decoders: list[Decoder] = make_decoders(config.decoders, config)
  pair = load_pair(config)
  pair_seconds = time.perf_counter() - start
  probes = prepare_probes(config, pair) if needs_probes(config) else None
  batches, reward = _prompt_batches(config, pair)
  results = _measure(config, pair, decoders, batches, reward)
  payload = {
    "config": config.to_dict(),
    "pair": pair.describe(),
    "pair_seconds": pair_seconds,
    "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
    "reward": reward,
    "decoders": {
      d.name: {"family": d.family, "param": d.param, "lossless": d.lossless} for d in decoders
    },
    "probes": probes,
    "results": results,
    "summary": summarize(results),
  }
  payload["seconds"] = time.perf_counter() - start
  write_results(config.workdir, payload, markdown(config, payload))
  if config.get("plot", True):
    payload["plots"] = plot(config, payload)
  names = ["speculative_decoding"] + citations.run_components(model=pair.target.config)
  names += citations.run_components(model=pair.draft.config)
  citations.write_citations(names, os.path.join(config.workdir, "CITATIONS.bib"))
  logging.info("speculative experiment: %.0f s (pair %.0f s)", payload["seconds"], pair_seconds)
  return payload
