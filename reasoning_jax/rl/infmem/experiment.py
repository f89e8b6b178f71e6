"""`python -m experiments.infmem`: InfMem vs MemAgent on generated multi-hop long documents.

"InfMem: Learning System-2 Memory Control for Long-Context Agent" (Wang et al., arXiv
2602.02704) reports, with the same backbone and RL recipe, +8 to +12 points of accuracy over
MemAgent on 32K-1M-token QA at 3.9x lower inference time on average (up to 5.1x) from early
stopping. Here, at CPU scale:

1. data: the `multihop` builder's documents (bridging facts planted out of order among
   distractors); a closed word-level vocabulary (`evaluate.infmem.setup`);
2. per seed, protocol SFT of a tiny model trained here on the scripted controller's episodes
   (`agents.infmem.oracle`, one record per call): an InfMem reader and a MemAgent reader;
3. per seed, GRPO of the InfMem reader on whole episodes (`rl.infmem.trainer`);
4. evaluation at each document length on the same held-out questions: the scripted
   controllers (the protocol's ceiling on this data), MemAgent (SFT), InfMem (SFT),
   InfMem (SFT + GRPO), and the InfMem protocol driven by the MemAgent reader (the protocol
   untrained): accuracy, model calls and generated tokens per question, wall time.

Outputs in `config.workdir`: results.json, results.md (mean ± std over seeds per length),
accuracy_vs_length.png, calls_vs_length.png, rl_curves.png, CITATIONS.bib, runs/ (one JSON per
finished seed and the scripted rows; a rerun reuses them), models/ (SFT checkpoints).

`--config.hf.dir=<a local Hugging Face folder>` reads the same documents with that model
instead (its own tokenizer and chat template, no training): MemAgent vs InfMem protocols.
"""

from __future__ import annotations

import os
import time
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from reasoning_jax import citations
from reasoning_jax import sharding as sharding_lib
from reasoning_jax.agents.infmem import FunctionLLM, GenerateLLM
from reasoning_jax.agents.infmem.oracle import OracleController
from reasoning_jax.evaluate.infmem import data as data_lib
from reasoning_jax.evaluate.infmem import setup
from reasoning_jax.evaluate.infmem.evaluation import evaluate_reader
from reasoning_jax.evaluate.infmem.training import sft_config, train_reader
from reasoning_jax.evaluate.outputs import read_json, write_json, write_results
from reasoning_jax.rl.infmem.trainer import train_protocol

SCRIPTED = ("scripted InfMem", "scripted MemAgent")
ARMS = (
  "MemAgent (SFT)",
  "InfMem (SFT)",
  "InfMem (SFT+GRPO)",
  "InfMem protocol, MemAgent model",
)
_SUMMARY_KEYS = ("accuracy", "calls_per_question", "generated_tokens_per_question", "seconds")


def _label(n: int) -> str:
  if n >= 1048576:
    return f"{n / 1048576:g}M"
  return f"{n / 1024:g}k" if n >= 1024 else str(n)


def _json_dump(path: str, payload: Any) -> None:
  write_json(path, payload, indent=1, default=str)


def _sft_folder(config, root: str, tokenizer, controller: str) -> str:
  """The protocol SFT folder of `controller` (the oracle's calls on train documents)."""
  folder = os.path.join(root, f"sft_data_{controller}")
  built_from = {
    "controller": controller,
    "reader": dict(config.reader),
    "train": data_lib.jsonable(config.train.to_dict()),
  }
  saved = read_json(os.path.join(folder, "provenance.json"))
  if saved is not None:
    data_lib.check_provenance(saved, built_from, folder)
    return folder
  reader = setup.protocol_config(config.reader, controller)
  records, stats = [], []
  for doc_tokens, n in zip(config.train.doc_tokens, config.train.num_examples):
    examples = data_lib.multihop_split(
      os.path.join(root, "data"), doc_tokens, split="train", num=n, seed=config.train.seed
    )
    recs, st = data_lib.oracle_records(examples, tokenizer, reader, setup.COMPACT_PROMPTS)
    records += recs
    stats.append({"doc_tokens": doc_tokens, **st})
  rng = np.random.default_rng(0)
  order = rng.permutation(len(records))
  test = [records[i] for i in order[: config.train.num_test_records]]
  train = [records[i] for i in order[config.train.num_test_records :]]
  logging.info("protocol SFT data %s: %d records %s", controller, len(records), stats)
  return data_lib.write_protocol_sft(folder, train, test, {**built_from, "stats": stats})


def _test_sets(config, root: str) -> dict[int, list[dict]]:
  return {
    int(n): data_lib.multihop_split(
      os.path.join(root, "data"), int(n), split="test", num=int(q), seed=config.eval.data_seed
    )
    for n, q in zip(config.eval.doc_tokens, config.eval.questions)
  }


def _scripted_rows(config, root: str, tokenizer, tests) -> dict[str, dict[str, dict]]:
  path = os.path.join(root, "runs", "scripted.json")
  rows = read_json(path) or {}
  for arm, controller in zip(SCRIPTED, ("infmem", "memagent")):
    reader = setup.protocol_config(config.reader, controller)
    for n, examples in tests.items():
      if _label(n) in rows.get(arm, {}):
        continue
      llm = FunctionLLM(OracleController(reader), tokenizer)
      # No replay: the scripted controller would be checked against itself.
      rows.setdefault(arm, {})[_label(n)] = evaluate_reader(
        llm, examples, reader, setup.COMPACT_PROMPTS, replay_calls=False
      )
      _json_dump(path, rows)
  return rows


def _llm(model, tokenizer, config):
  return GenerateLLM(
    model,
    tokenizer,
    eos_id=tokenizer.eos_id,
    length_multiple=int(config.eval.length_multiple),
    batch_multiple=int(config.eval.batch_multiple),
  )


def _run_seed(config, root: str, seed: int, tokenizer, tests, folders, mesh) -> dict[str, Any]:
  path = os.path.join(root, "runs", f"seed{seed}.json")
  done = read_json(path) or {"seed": seed, "arms": {}}
  tok_dir = setup.tokenizer_dir(root)
  models = {}
  for controller in ("memagent", "infmem"):
    sft = sft_config(
      config,
      folder=folders[controller],
      tokenizer=tok_dir,
      seed=seed,
      workdir=os.path.join(root, "models", f"{controller}_seed{seed}"),
      seq_len=dict(config.sft_seq_len).get(controller),
    )
    models[controller], _ = train_reader(sft, f"{controller} reader, seed {seed}")
  infmem = setup.protocol_config(config.reader, "infmem")
  memagent = setup.protocol_config(config.reader, "memagent")
  plan = {
    "MemAgent (SFT)": (models["memagent"], memagent),
    "InfMem (SFT)": (models["infmem"], infmem),
    "InfMem protocol, MemAgent model": (models["memagent"], infmem),
  }
  rl_seeds = tuple(config.get("rl_seeds", ()) or config.seeds)
  if "InfMem (SFT+GRPO)" in config.arms and seed not in rl_seeds:
    plan["InfMem (SFT+GRPO)"] = None  # GRPO runs on `config.rl_seeds` only.
    done["arms"].pop("InfMem (SFT+GRPO)", None)
  elif "InfMem (SFT+GRPO)" in config.arms and "rl_history" not in done:
    train = data_lib.multihop_split(
      os.path.join(root, "data"),
      int(config.rl.doc_tokens),
      split="train",
      num=int(config.rl.num_examples),
      seed=config.train.seed + 1,
    )
    start = time.perf_counter()
    rl_model, history = train_protocol(
      models["infmem"],
      tokenizer,
      train,
      infmem,
      setup.COMPACT_PROMPTS,
      config.rl,
      mesh=mesh,
      seed=seed,
    )
    done["rl_history"], done["rl_seconds"] = history, time.perf_counter() - start
    plan["InfMem (SFT+GRPO)"] = (rl_model, infmem)
    done["arms"].pop("InfMem (SFT+GRPO)", None)  # Evaluations of an older policy are stale.
  elif "InfMem (SFT+GRPO)" in config.arms:
    plan["InfMem (SFT+GRPO)"] = None  # Finished earlier; its rows are in `done`.
  for arm in config.arms:
    for n, examples in tests.items():
      label = _label(n)
      if label in done["arms"].get(arm, {}):
        continue
      if n in set(config.eval.single_seed_lengths) and seed != config.seeds[0]:
        continue
      if n in set(config.eval.get("scripted_only_lengths", ())):
        continue
      if plan.get(arm) is None:
        if arm == "InfMem (SFT+GRPO)" and seed not in rl_seeds:
          continue
        logging.warning("%s at %s: the policy of an earlier run is gone; skipped", arm, label)
        continue
      model, reader = plan[arm]
      logging.info("seed %d: %s at %s tokens", seed, arm, label)
      result = evaluate_reader(
        _llm(model, tokenizer, config), examples, reader, setup.COMPACT_PROMPTS
      )
      done["arms"].setdefault(arm, {})[label] = result
      _json_dump(path, done)
  _json_dump(path, done)
  return done


def _run_hf(config, root: str, tests) -> dict[str, Any]:
  """A user's Hugging Face folder read with both protocols (no training; its own tokenizer,
  chat template, EOS ids and the full-wording prompts unless `config.hf.prompts="compact"`)."""
  from reasoning_jax.agents.infmem import PromptSet
  from reasoning_jax.models.source import build_model, resolve_source

  source = resolve_source(hf_dir=config.hf.dir, flag="config.hf")
  model = build_model(source)
  prompts = setup.COMPACT_PROMPTS if config.hf.prompts == "compact" else PromptSet()
  reader = dict(config.hf.reader) or dict(config.reader)
  path = os.path.join(root, "runs", "hf.json")
  done = read_json(path) or {"seed": "hf", "hf_dir": config.hf.dir, "arms": {}}
  for arm, controller in (("MemAgent (HF folder)", "memagent"), ("InfMem (HF folder)", "infmem")):
    protocol = setup.protocol_config(reader, controller)
    for n, examples in tests.items():
      if _label(n) in done["arms"].get(arm, {}):
        continue
      llm = GenerateLLM(
        model,
        source.tokenizer,
        eos_id=source.eos_id,
        length_multiple=int(config.eval.length_multiple),
        batch_multiple=int(config.eval.batch_multiple),
      )
      done["arms"].setdefault(arm, {})[_label(n)] = evaluate_reader(
        llm, examples, protocol, prompts
      )
      _json_dump(path, done)
  return done


def _mean_std(values, scripted: bool = False) -> str:
  v = np.asarray([x for x in values if x is not None], np.float64)
  if not len(v):
    return "–"
  if scripted:  # Deterministic: one run on the same documents.
    return f"{v[0]:.3f}"
  if len(v) == 1:
    return f"{v[0]:.3f} (1 seed)"
  return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def summarize(config, scripted, seeds: list[dict]) -> tuple[dict, str]:
  labels = [_label(int(n)) for n in config.eval.doc_tokens]
  table: dict[str, dict[str, dict[str, list]]] = {}
  for arm in (*SCRIPTED, *config.arms):
    for label in labels:
      cell: dict[str, list] = {k: [] for k in _SUMMARY_KEYS}
      sources = (
        [scripted.get(arm, {})] if arm in SCRIPTED else [s["arms"].get(arm, {}) for s in seeds]
      )
      for src in sources:
        if label in src:
          for k in _SUMMARY_KEYS:
            cell[k].append(src[label][k])
      table.setdefault(arm, {})[label] = cell
  lines = [
    "# InfMem vs MemAgent on generated multi-hop long documents (CPU scale)",
    "",
    f"Seeds {list(config.seeds)}; questions per length "
    f"{dict(zip(labels, config.eval.questions))}; reader {dict(config.reader)}. Scripted "
    "rows: the oracle controller (deterministic, one run); model rows: mean ± std over seeds.",
    "",
  ]
  titles = {
    "accuracy": "Accuracy (qa_exact)",
    "calls_per_question": "Model calls per question",
    "generated_tokens_per_question": "Generated tokens per question",
    "seconds": "Wall seconds per length (all questions, batched)",
  }
  for key in _SUMMARY_KEYS:
    lines += [f"### {titles[key]}", "", "| reader | " + " | ".join(labels) + " |"]
    lines.append("|---|" + "---|" * len(labels))
    for arm, cells in table.items():
      cells_text = [_mean_std(cells[label][key], arm in SCRIPTED) for label in labels]
      lines.append(f"| {arm} | " + " | ".join(cells_text) + " |")
    lines.append("")
  ratio = []
  for label in labels:
    mem = table.get("MemAgent (SFT)", {}).get(label, {}).get("calls_per_question", [])
    grpo = table.get("InfMem (SFT+GRPO)", {}).get(label, {}).get("calls_per_question", [])
    # As the verdict: the GRPO reader where it ran on every seed, else the SFT reader.
    best = "InfMem (SFT+GRPO)" if len(grpo) >= len(seeds) else "InfMem (SFT)"
    inf = table.get(best, {}).get(label, {}).get("calls_per_question", [])
    if mem and inf:
      ratio.append(f"{label}: {np.mean(mem) / np.mean(inf):.2f}x ({best})")
  lines += [f"MemAgent (SFT) / InfMem model calls: {', '.join(ratio) or '–'}", ""]
  lines += _replay_lines(config, seeds, labels[0])
  payload = {"config": config.to_dict(), "table": table, "scripted": scripted, "seeds": seeds}
  return payload, "\n".join(lines)


_REPLAY_COLUMNS = {
  "premature_stop_rate": "STOP with a hop missing",
  "write_hop_taken_rate": "hop offered and written",
  "write_hallucinated_rate": "writes stating a fact not in the inputs",
  "answer_memory_complete_rate": "answers from a complete chain",
}


def _replay_lines(config, seeds: list[dict], label: str) -> list[str]:
  """The model readers' calls replayed through the scripted controller at one length
  (`evaluate.infmem.replay`), mean ± std over seeds: where the episodes go wrong."""
  rows = []
  for arm in config.arms:
    cells = [s["arms"].get(arm, {}).get(label, {}).get("replay") for s in seeds]
    cells = [c for c in cells if c]
    if cells:
      values = [_mean_std([c[k] for c in cells]) for k in _REPLAY_COLUMNS]
      rows.append(f"| {arm} | " + " | ".join(values) + " |")
  if not rows:
    return []
  return [
    f"### Where the model readers go wrong ({label}: each call replayed through the scripted "
    "controller from the reader's own inputs)",
    "",
    "| reader | " + " | ".join(_REPLAY_COLUMNS.values()) + " |",
    "|---|" + "---|" * len(_REPLAY_COLUMNS),
    *rows,
    "",
  ]


def _plot(root: str, config, payload) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  labels = [_label(int(n)) for n in config.eval.doc_tokens]
  x = np.asarray([int(n) for n in config.eval.doc_tokens])
  for key, name, ylabel in (
    ("accuracy", "accuracy_vs_length.png", "accuracy"),
    ("calls_per_question", "calls_vs_length.png", "model calls per question"),
  ):
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, cells in payload["table"].items():
      means = [np.mean(cells[l][key]) if cells[l][key] else np.nan for l in labels]
      ax.plot(x, means, marker="o", label=arm, linestyle="--" if arm in SCRIPTED else "-")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("document tokens")
    ax.set_ylabel(ylabel)
    if key == "calls_per_question":
      ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(root, name), dpi=120)
    plt.close(fig)
  histories = [s.get("rl_history") for s in payload["seeds"] if s.get("rl_history")]
  if histories:
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for i, h in enumerate(histories):
      steps = [r["step"] for r in h]
      for ax, key in zip(axes, ("reward", "accuracy", "calls_per_episode")):
        ax.plot(steps, [r[key] for r in h], label=f"seed {payload['seeds'][i]['seed']}")
        ax.set_title(key)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(os.path.join(root, "rl_curves.png"), dpi=120)
    plt.close(fig)


def run(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Runs the experiment (module docstring); returns the results payload."""
  unknown = [a for a in config.arms if a not in ARMS]
  if unknown and not config.hf.dir:
    raise ValueError(f"config.arms names {unknown}; known arms: {list(ARMS)}")
  if len(config.eval.doc_tokens) != len(config.eval.questions):
    raise ValueError("config.eval.doc_tokens and config.eval.questions differ in length")
  root = os.path.abspath(config.workdir)
  os.makedirs(os.path.join(root, "runs"), exist_ok=True)
  tokenizer = setup.experiment_tokenizer(
    setup.COMPACT_PROMPTS, max_number=int(config.max_number), directory=setup.tokenizer_dir(root)
  )
  tests = _test_sets(config, root)
  scripted = _scripted_rows(config, root, tokenizer, tests)
  if config.hf.dir:  # A user's folder: both protocols on the same documents, no training.
    hf = _run_hf(config, root, tests)
    config.arms = tuple(hf["arms"])
    seeds = [hf]
  else:
    folders = {c: _sft_folder(config, root, tokenizer, c) for c in ("infmem", "memagent")}
    mesh = sharding_lib.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    seeds = [_run_seed(config, root, int(s), tokenizer, tests, folders, mesh) for s in config.seeds]
  payload, markdown = summarize(config, scripted, seeds)
  write_results(root, payload, markdown)
  _plot(root, config, payload)
  citations.write_citations(["infmem"], os.path.join(root, "CITATIONS.bib"))
  logging.info("infmem experiment: %s", os.path.join(root, "results.md"))
  return payload
