"""`python -m experiments.sparse_decode`: accuracy vs KV budget of LycheeDecode, Quest,
DuoAttention and full attention on long-context passkey retrieval.

"LycheeDecode: Accelerating Long-Context LLM Inference via Hybrid-Head Sparse Decoding" (Lin
et al., arXiv:2602.04541) reports LycheeDecode at a 4096-token budget at or above full
attention and above Quest / TidalDecode at equal budget (`shared/methods/inference.md` 8.7).
Here, per seed: head roles learned for LycheeDecode and DuoAttention
(`reasoning_jax.sparse.train_roles`, the model frozen), then greedy decoding of multi-needle
passkey prompts (`data.passkey`) for every method, token budget and context length, prefill
dense and decode steps sparse. The model is trained here (`evaluate.sparse_decode.setup`,
once, shared by the seeds) or is the HF folder `config.hf.dir` on the text passkey.

Outputs in `config.workdir`: results.json, results.md (mean ± std over seeds),
accuracy_vs_budget.png, kv_read_vs_budget.png, roles/<method>_s<seed>/roles.json,
runs/s<seed>.json (a rerun reuses finished seeds) and model/ (the trained model).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Any, Callable

import numpy as np

from absl import logging

from reasoning_jax import citations
from reasoning_jax.data import passkey
from reasoning_jax.evaluate.outputs import read_json, write_json, write_results
from reasoning_jax.evaluate.sparse_decode import roles as roles_lib
from reasoning_jax.evaluate.sparse_decode import setup
from reasoning_jax.evaluate.sparse_decode.evaluation import METHODS, EvalSet, sweep
from reasoning_jax.train.metrics import quiet_library_logs

# Verdict tolerances (accuracy points): "≥ Quest" allows TOL_QUEST below, "≈ full" TOL_FULL.
TOL_QUEST = 0.02
TOL_FULL = 0.05


@dataclasses.dataclass
class Subject:
  """What the sweep decodes: the model, its evaluation sets and role-learning batches."""

  model: Any
  model_id: str
  lengths: tuple[int, ...]
  eval_sets: Callable[[int], dict[int, EvalSet]]
  role_batches: Callable[[int], Callable[[], Any]]
  description: str
  record: dict[str, Any]


def trained_subject(config) -> Subject:
  model, record = setup.trained_model(config, config.workdir)
  kwargs = setup.task_kwargs(config)
  lengths = tuple(int(x) for x in config.eval_lens)

  def eval_sets(seed: int) -> dict[int, EvalSet]:
    out = {}
    for i, length in enumerate(lengths):
      d = passkey.multi_needle(
        int(config.num_test), prompt_len=length, seed=10_000 + 100 * seed + i, **kwargs
      )
      out[length] = EvalSet(d.prompts, d.lengths, d.answers)
    return out

  t = config.task
  description = (
    f"Multi-needle passkey ({t.num_needles} needles of {t.value_len} value tokens, vocab "
    f"{t.vocab_size}); a {config.model.spec} model (width {config.model.hidden_size}, "
    f"{config.model.num_heads} query / {config.model.overrides.num_kv_heads} KV heads) trained "
    f"here for {config.train.num_steps} steps of batch {config.train.batch_size} at "
    f"{config.train.min_len}-{config.train.seq_len} tokens"
  )
  return Subject(
    model,
    record["fingerprint"],
    lengths,
    eval_sets,
    lambda seed: lambda: roles_lib.passkey_batches(config, seed),
    description,
    {k: v for k, v in record.items() if k != "model_config"},
  )


def hf_subject(config) -> Subject:
  model, source = setup.hf_model(config)
  tok, hf = source.tokenizer, config.hf
  lengths = tuple(int(x) for x in hf.lengths)
  new = int(hf.new_tokens)

  def eval_sets(seed: int) -> dict[int, EvalSet]:
    out = {}
    for i, length in enumerate(lengths):
      items, rows = [], []
      for j in range(int(hf.num_test)):
        item, ids = passkey.text_passkey_tokens(
          tok, length, digits=int(hf.digits), seed=10_000 + 1000 * seed + 100 * i + j
        )
        items.append(item)
        rows.append(ids)
      prompts = np.zeros((len(rows), max(len(r) for r in rows)), np.int32)
      targets = np.full((len(rows), new), -1, np.int32)
      for j, (row, item) in enumerate(zip(rows, items)):
        prompts[j, : len(row)] = row
        want = tok.encode(" " + item.passkey)[:new]
        targets[j, : len(want)] = want
      keys = [it.passkey for it in items]

      def exact(tokens, keys=keys):
        return np.array([passkey.parse_passkey(tok.decode(r)) == k for r, k in zip(tokens, keys)])

      out[length] = EvalSet(prompts, np.array([len(r) for r in rows], np.int32), targets, exact)
    return out

  model_id = hashlib.sha256(source.hf_dir.encode()).hexdigest()[:16]
  return Subject(
    model,
    model_id,
    lengths,
    eval_sets,
    lambda seed: lambda: roles_lib.text_batches(tok, config, seed),
    f"Text passkey ({hf.digits} digits) with the HF folder {source.hf_dir}",
    {"hf_dir": source.hf_dir},
  )


def _fingerprint(config, subject: Subject, seed: int) -> str:
  keys = ("budgets", "block_size", "sink_tokens", "recent_tokens", "page_size", "roles")
  keys += ("quest_dense_layers", "duo_streaming", "num_test", "timing", "eval_lens", "hf")
  blob = {k: config.get(k) for k in keys} | {"seed": seed, "model": subject.model_id}
  blob["timed"] = seed in _timing_seeds(config)
  return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _timing_seeds(config) -> tuple[int, ...]:
  """The first `config.timing.num_seeds` seeds (0: no timing)."""
  return tuple(int(s) for s in config.seeds)[: max(0, int(config.timing.num_seeds))]


def run_seed(config, subject: Subject, seed: int) -> dict[str, Any]:
  """Roles and the sweep of one seed (reused from runs/ when finished with these settings)."""
  path = os.path.join(config.workdir, "runs", f"s{seed}.json")
  fingerprint = _fingerprint(config, subject, seed)
  saved = read_json(path)
  if saved and saved.get("fingerprint") == fingerprint:
    logging.info("reusing %s", path)
    return saved["result"]
  start = time.time()
  learned = {
    method: roles_lib.learn_roles(
      subject.model,
      config,
      method,
      seed,
      subject.role_batches(seed),
      directory=os.path.join(config.workdir, "roles", f"{method}_s{seed}"),
      model_id=subject.model_id,
    )
    for method in roles_lib.ROLE_METHODS
  }
  role_s = time.time() - start
  timing_lens = ()
  if seed in _timing_seeds(config):
    timing_lens = tuple(int(x) for x in config.timing.lengths) or (max(subject.lengths),)
  result = sweep(
    subject.model,
    subject.eval_sets(seed),
    config,
    {m: r["roles"] for m, r in learned.items()},
    timing_lens=timing_lens,
  )
  result["roles"] = {
    m: {
      "roles": r["roles"].astype(int).tolist(),
      "retrieval_heads": r["retrieval_heads"],
      "history": r["history"][-3:],
    }
    for m, r in learned.items()
  }
  result.update(role_s=role_s, wall_s=time.time() - start)
  logging.info("seed %d done in %.0f s", seed, result["wall_s"])
  write_json(path, {"fingerprint": fingerprint, "result": result})
  return result


# -- Summary -------------------------------------------------------------------------------------


def _cell(values) -> str:
  values = np.asarray(values, float)
  if values.size == 0 or np.all(np.isnan(values)):
    return "n/a"
  return f"{np.nanmean(values):.3f} ± {np.nanstd(values):.3f}"


def collect(per_seed: dict[int, dict[str, Any]], metric: str) -> dict[tuple, list[float]]:
  """`(method, budget, length) -> [value per seed]` of `metric` (budget None for full)."""
  out: dict[tuple, list[float]] = {}
  for result in per_seed.values():
    for p in result["points"]:
      if metric in p:
        out.setdefault((p["method"], p["budget"], p["length"]), []).append(float(p[metric]))
  return out


def time_ratios(per_seed) -> dict[tuple, list[float]]:
  """`(method, budget, length) -> [decode time / full's, per timed seed]`."""
  out: dict[tuple, list[float]] = {}
  for result in per_seed.values():
    full = {
      p["length"]: p["decode_s_per_token"]
      for p in result["points"]
      if p["method"] == "full" and "decode_s_per_token" in p
    }
    for p in result["points"]:
      if "decode_s_per_token" in p and full.get(p["length"]):
        key = (p["method"], p["budget"], p["length"])
        out.setdefault(key, []).append(p["decode_s_per_token"] / full[p["length"]])
  return out


def _value(table, method, budget, length):
  return table.get((method, None if method == "full" else budget, length), [])


def _table(title: str, table, budgets, lengths, fmt=_cell) -> list[str]:
  lines = [f"### {title}\n", "| T | method | " + " | ".join(f"budget {b}" for b in budgets) + " |"]
  lines.append("|---|---|" + "---|" * len(budgets))
  for length in lengths:
    for method in METHODS:
      cells = [fmt(_value(table, method, b, length)) for b in budgets]
      if all(c == "n/a" for c in cells):
        continue
      lines.append(f"| {length} | {method} | " + " | ".join(cells) + " |")
  return lines + [""]


def verdict(config, exact, lengths, budgets) -> dict[str, Any]:
  """Does "LycheeDecode ≥ Quest and ≈ full at equal budget" hold, point by point?

  Judged at the (length, budget) points where the claim can be tested: full attention solves
  the task (exact match >= 0.5) and the budget is below the context (else every method reads
  everything)."""
  rows = []
  for length in lengths:
    full = float(np.mean(_value(exact, "full", None, length) or [np.nan]))
    for b in budgets:
      ly, qu, du = (
        float(np.mean(_value(exact, m, b, length) or [np.nan])) for m in ("lychee", "quest", "duo")
      )
      rows.append(
        dict(length=length, budget=b, full=full, lychee=ly, quest=qu, duo=du,
             lychee_ge_quest=bool(ly >= qu - TOL_QUEST),
             lychee_near_full=bool(ly >= full - TOL_FULL),
             judged=bool(full >= 0.5 and b < length))
      )  # fmt: skip
  judged = [r for r in rows if r["judged"]]
  unsolved = sorted({r["length"] for r in rows if not r["full"] >= 0.5})
  testable = bool(judged)
  frac_q = float(np.mean([r["lychee_ge_quest"] for r in judged])) if judged else float("nan")
  frac_f = float(np.mean([r["lychee_near_full"] for r in judged])) if judged else float("nan")
  reproduces = testable and frac_q >= 0.75 and frac_f >= 0.75
  text = "Exact match, mean over seeds. "
  if unsolved:
    text += (
      f"Full attention is below 0.5 at T = {', '.join(map(str, unsolved))} (the base model "
      "does not solve the task there; those lengths are not judged). "
    )
  if not testable:
    text += "No (length, budget) point is testable, so the paper's claim cannot be tested here."
  else:
    text += (
      f"At the {len(judged)} judged points (budget < T): LycheeDecode ≥ Quest (within "
      f"{TOL_QUEST}) at {sum(r['lychee_ge_quest'] for r in judged)}, ≈ full (within "
      f"{TOL_FULL}) at {sum(r['lychee_near_full'] for r in judged)}. "
      + "; ".join(
        f"T = {r['length']}, budget {r['budget']}: full {r['full']:.3f}, lychee "
        f"{r['lychee']:.3f}, quest {r['quest']:.3f}, duo {r['duo']:.3f}"
        for r in judged
      )
      + ". The paper's claim (LycheeDecode ≥ Quest and ≈ full attention at equal budget) "
      + ("reproduces" if reproduces else "does not reproduce")
      + " at our scale."
    )
  return {
    "text": text,
    "testable": testable,
    "reproduces": bool(reproduces),
    "fraction_lychee_ge_quest": frac_q,
    "fraction_lychee_near_full": frac_f,
    "unsolved_lengths": unsolved,
    "points": rows,
  }


def summarize(config, per_seed, lengths) -> tuple[dict[str, Any], str]:
  budgets = [int(b) for b in config.budgets]
  exact = collect(per_seed, "exact_match")
  decoded = collect(per_seed, "decoded_token_accuracy")
  first = collect(per_seed, "first_token_accuracy")
  kv = collect(per_seed, "kv_bytes")
  ratios = time_ratios(per_seed)
  lines = _table("Exact match of the whole answer", exact, budgets, lengths)
  lines += _table("Accuracy of the decoded answer tokens (2..m)", decoded, budgets, lengths)
  lines += _table(
    "KV bytes read per decode step (KiB, all layers and KV heads)",
    {k: [x / 1024 for x in v] for k, v in kv.items()},
    budgets,
    lengths,
    fmt=lambda v: f"{np.mean(v):.1f}" if len(v) else "n/a",
  )
  if ratios:
    timed = sorted({k[2] for k in ratios})
    lines += _table(
      "Decode time per token relative to full attention (CPU, same run)", ratios, budgets, timed
    )
  first_all = [x for v in first.values() for x in v]
  lines.append(
    f"First answer token (dense prefill, the same for every method): accuracy "
    f"{np.mean(first_all):.3f}.\n"
  )
  v = verdict(config, exact, lengths, budgets)
  lines.append(v["text"] + "\n")
  summary = {
    name: {f"{m}|{b}|{t}": vals for (m, b, t), vals in table.items()}
    for name, table in (
      ("exact_match", exact),
      ("decoded_token_accuracy", decoded),
      ("first_token_accuracy", first),
      ("kv_bytes", kv),
      ("decode_time_ratio", ratios),
    )
  }
  return {"summary": summary, "verdict": v}, "\n".join(lines)


def plot(config, per_seed, lengths, workdir: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  budgets = [int(b) for b in config.budgets]
  exact = collect(per_seed, "exact_match")
  fig, axes = plt.subplots(1, len(lengths), figsize=(4.5 * len(lengths), 3.5), squeeze=False)
  for ax, length in zip(axes[0], lengths):
    for method in METHODS:
      vals = [_value(exact, method, b, length) for b in budgets]
      if not all(vals):
        continue
      mean = [np.mean(v) for v in vals]
      std = [np.std(v) for v in vals]
      style = dict(ls="--", color="black") if method == "full" else dict(marker="o")
      ax.errorbar(budgets, mean, yerr=std, capsize=3, label=method, **style)
    ax.set_xscale("log", base=2)
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("KV budget (tokens per sparse head)")
    ax.set_ylabel("exact match")
    ax.set_title(f"T = {length}")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, "accuracy_vs_budget.png"), dpi=120)
  plt.close(fig)

  kv = collect(per_seed, "kv_bytes")
  longest = max(lengths)
  fig, ax = plt.subplots(figsize=(5.5, 3.5))
  for method in METHODS:
    vals = [_value(kv, method, b, longest) for b in budgets]
    if not all(vals):
      continue
    style = dict(ls="--", color="black") if method == "full" else dict(marker="o")
    ax.plot(budgets, [np.mean(v) / 1024 for v in vals], label=method, **style)
  ax.set_xscale("log", base=2)
  ax.set_xticks(budgets, [str(b) for b in budgets])
  ax.set_yscale("log")
  ax.set_xlabel("KV budget (tokens per sparse head)")
  ax.set_ylabel("KV KiB read per decode step")
  ax.set_title(f"T = {longest}")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, "kv_read_vs_budget.png"), dpi=120)
  plt.close(fig)


def run_sparse_decode_experiment(config) -> dict[str, Any]:
  quiet_library_logs()
  os.makedirs(os.path.join(config.workdir, "runs"), exist_ok=True)
  start = time.time()
  subject = hf_subject(config) if config.hf.get("dir") else trained_subject(config)
  per_seed = {int(s): run_seed(config, subject, int(s)) for s in config.seeds}
  payload, tables = summarize(config, per_seed, subject.lengths)
  header = (
    f"Sparse decoding sweep. {subject.description}. Methods {', '.join(METHODS)}; budgets "
    f"{tuple(config.budgets)} tokens (sinks {config.sink_tokens} + recent "
    f"{config.recent_tokens} included; blocks of {config.block_size}, Quest pages of "
    f"{config.page_size}, Quest dense layers {config.quest_dense_layers}, DuoAttention "
    f"streaming {config.duo_streaming!r}); context lengths {subject.lengths}; seeds "
    f"{tuple(config.seeds)} (roles and evaluation prompts per seed). Greedy decoding, dense "
    f"prefill. Wall time {time.time() - start:.0f} s.\n\n"
  )
  payload.update(
    runs=per_seed,
    model=subject.record,
    config=config.to_dict(),
    wall_s=time.time() - start,
  )
  write_results(config.workdir, payload, header + tables + config.get("notes", ""))
  cited = (
    ["lycheedecode", "sparse decode kernel:pallas"]
    if config.implementation == "pallas"
    else ["lycheedecode"]
  )
  cited += citations.run_components(model=subject.model.config)
  citations.write_citations(cited, os.path.join(config.workdir, "CITATIONS.bib"))
  plot(config, per_seed, subject.lengths, config.workdir)
  logging.info("results in %s\n%s", config.workdir, tables)
  return payload
