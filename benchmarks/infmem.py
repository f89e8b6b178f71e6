"""InfMem on CPU: batched vs one-at-a-time episodes, where the time goes, growth with length.

("InfMem: Learning System-2 Memory Control for Long-Context Agent", Wang et al., arXiv
2602.02704; `reasoning_jax.agents.infmem`.)

The model is the experiment's reader at random init (`configs/infmem.py`: tiny-qwen3,
hidden 128, 3 layers, 4 heads, 2 kv heads, head_dim 32, MLP 384, context 1024) over the
experiment's word-level vocabulary and compact prompts, driven through `GenerateLLM`
(greedy, `length_multiple` 128 as in the experiment's evaluation). The protocol flags are
the experiment's reader block (chunk 256, units 48 / overlap 12, top_k 3 in [2, 6], memory
48, PreThink 40, Answer 16, truncation at 2M tokens); the documents are the generated
multi-hop data (`reasoning_jax.data.multihop_task`).

A random model's PreThinks are not tool calls, so InfMem would stop after `patience` = 3
PreThinks. To get the protocol's real call pattern the benchmark wraps the model
(`ScriptedOverModel`, here, not in the library): every call still runs the model's
`GenerateLLM.complete` (same prompts, same budgets, same padding: the real cost), but the
`Completion` handed to the episode carries the scripted controller's text
(`OracleController(config)(call)`), tokenized and cut at the budget like `FunctionLLM` does,
with the model's `prompt_ids`. The model's own generated tokens are counted in
`GenerateLLM.stats` only (the episodes count the oracle's).

Compilation is kept out of every figure: the first batch of each padded (rows, width,
budget) shape is compiled beforehand, outside the clock (`ScriptedOverModel`).

Three tables, each measured in this run:
  1. Batching: questions/s for `--batch` questions in lock-step (`run_episodes` on all of
     them; `batch_multiple` 8) vs the same questions one at a time (`run_episodes` per
     question; `batch_multiple` 1, so no padding rows); ratio, batched rounds vs calls.
  2. Where InfMem's wall time goes: BM25 index build (`Document.index_seconds`), BM25
     searches (`EpisodeStats.bm25_seconds`), model calls (`GenerateLLM.stats.seconds`:
     prompt encoding, generate, decoding), the scripted controller (the benchmark's oracle),
     document preparation (tokenize, truncate, chunk; index excluded) and the rest (episode
     bookkeeping, prompt rendering, history-trimming token counts, lock-step loop).
  3. Growth with document length (`--lengths`, `--questions` each) for scripted InfMem and
     MemAgent over the model: chunks, chunks read, calls per question, wall seconds, seconds
     per chunk read (with and without document preparation) and the largest prompt the
     model saw (max `len(Completion.prompt_ids)`). MemAgent reads every chunk (N + 1 calls
     per question); InfMem reads until its chain of facts is complete (then 3 STOPs), so a
     question whose hops it does not find reads every chunk too. Runs on documents of more
     than `--max-rounds` chunks (by default 1M tokens: 4096) are cut after `--cut-rounds`
     lock-step rounds when not done by then, reported as measured on those (marked "cut"),
     with the whole run's projected time. Batches are padded to `--questions` rows (no
     padding rows; the experiment pads to 8).
     Runs that would start after `--time-budget` seconds are skipped and named.

Usage:
  python benchmarks/infmem.py            # the default sizes (< 10 min on 2 CPU cores)
  python benchmarks/infmem.py --quick    # tiny sizes, < 1 min
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from configs import infmem as infmem_config  # noqa: E402
from reasoning_jax.agents.infmem import (  # noqa: E402
  Completion,
  GenerateLLM,
  prepare_document,
  run_episodes,
)
from reasoning_jax.agents.infmem import runner as runner_lib  # noqa: E402
from reasoning_jax.agents.infmem.oracle import OracleController  # noqa: E402
from reasoning_jax.evaluate.infmem import setup  # noqa: E402
from reasoning_jax.generate import generate  # noqa: E402
from reasoning_jax.models.config import get_preset  # noqa: E402
from reasoning_jax.models.transformer import Transformer  # noqa: E402
from reasoning_jax.rewards import qa_exact_reward  # noqa: E402

PROMPTS = setup.COMPACT_PROMPTS


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--quick", action="store_true", help="tiny sizes (< 1 min)")
  p.add_argument("--batch", type=int, default=16, help="questions of table 1")
  p.add_argument("--batch-doc-tokens", type=int, default=8192)
  p.add_argument("--lengths", default="32768,131072,1048576", help="document tokens, table 3")
  p.add_argument("--questions", type=int, default=4, help="questions per length, table 3")
  p.add_argument(
    "--max-rounds",
    type=int,
    default=600,
    help="runs on documents of more chunks than this are cut at --cut-rounds rounds",
  )
  p.add_argument("--cut-rounds", type=int, default=128)
  p.add_argument(
    "--time-budget",
    type=float,
    default=480.0,
    help="seconds; later table-3 runs are skipped (and named) once this is spent",
  )
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(argv)
  if args.quick:
    args.batch, args.batch_doc_tokens = 4, 1024
    args.lengths, args.questions, args.max_rounds, args.cut_rounds = "1024,4096", 2, 8, 6
  return args


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


class ScriptedOverModel:
  """The model runs every call (real cost); the episode is fed the scripted oracle's text.

  Before a batch whose padded (rows, width, budget) shape this process has not compiled yet,
  the wrapper compiles it with one dummy `generate` of that shape (the same static settings as
  `GenerateLLM`, so the same cached executables) outside the clock: `excluded_seconds` is
  subtracted from the wall time of a run, and `GenerateLLM.stats.seconds` never sees it.
  """

  compiled: set = set()  # Shapes compiled in this process (the jit caches are global).

  def __init__(self, llm: GenerateLLM, config):
    self.llm = llm
    self.tokenizer = llm.tokenizer
    self.max_context = llm.max_context
    self.oracle = OracleController(config)
    self.reset()

  def reset(self):
    self.oracle_seconds = 0.0
    self.excluded_seconds = 0.0
    self.new_shapes = 0
    self.max_prompt_tokens = 0
    self.padded_prompt_tokens = 0
    self.real_prompt_tokens = 0

  @property
  def stats(self):
    return self.llm.stats

  def _shape(self, calls) -> tuple[int, int, int, int]:
    llm = self.llm
    lengths = [len(llm.encode(c.prompt)) for c in calls]
    budget = calls[0].max_new_tokens
    width = min(_round_up(max(lengths), llm.length_multiple), llm.max_context - budget)
    return _round_up(len(calls), llm.batch_multiple), width, budget, sum(lengths)

  def _compile(self, shape):
    n, width, budget = shape
    pad = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0
    out = generate(
      self.llm.model,
      np.full((n, width), pad, np.int32),
      np.ones((n,), np.int32),
      max_new_tokens=budget,
      temperature=self.llm.temperature,
      top_k=self.llm.top_k,
      top_p=self.llm.top_p,
      eos_id=self.llm.eos_id,
      key=None,
      cache_size=width + budget,
      pad_id=pad,
    )
    jax.block_until_ready(out.tokens)

  def complete(self, calls):
    start = time.perf_counter()
    n, width, budget, real = self._shape(calls)
    if (n, width, budget) not in self.compiled:
      self._compile((n, width, budget))
      self.compiled.add((n, width, budget))
      self.new_shapes += 1
    self.padded_prompt_tokens += n * width
    self.real_prompt_tokens += real
    self.excluded_seconds += time.perf_counter() - start
    outputs = self.llm.complete(calls)
    start = time.perf_counter()
    completions = []
    for call, out in zip(calls, outputs):
      ids = list(self.tokenizer.encode(self.oracle(call)))
      finished = len(ids) <= call.max_new_tokens
      ids = ids[: call.max_new_tokens]
      text = self.tokenizer.decode(ids)
      completions.append(Completion(text, tuple(ids), finished, out.prompt_ids))
      self.max_prompt_tokens = max(self.max_prompt_tokens, len(out.prompt_ids))
    self.oracle_seconds += time.perf_counter() - start
    return completions


@contextlib.contextmanager
def timed_document_preparation(box: list):
  """Times `prepare_document` as the runner calls it (adds seconds to box[0])."""
  original = runner_lib.prepare_document

  def prepare(*a, **k):
    start = time.perf_counter()
    try:
      return original(*a, **k)
    finally:
      box[0] += time.perf_counter() - start

  runner_lib.prepare_document = prepare
  try:
    yield
  finally:
    runner_lib.prepare_document = original


@dataclasses.dataclass
class Result:
  episodes: list
  seconds: float  # Wall time less the compilations (`ScriptedOverModel.excluded_seconds`).
  prep: float  # prepare_document: tokenize, truncate, chunk, index.
  batches: int  # Model batches (one per budget group per lock-step round).
  calls: int
  model_seconds: float
  cut: bool
  oracle_seconds: float  # The benchmark's scripted controller.
  padded_prompt_tokens: int  # rows x width of every model batch (prefill work).
  real_prompt_tokens: int
  max_prompt_tokens: int

  @property
  def index(self) -> float:
    return sum(ep.document.index_seconds for ep in self.episodes)

  @property
  def search(self) -> float:
    return sum(ep.stats.bm25_seconds for ep in self.episodes)


def run(llm: ScriptedOverModel, examples, config, *, max_rounds: int = 0) -> Result:
  """Episodes to their answers (`run_episodes`), or the same lock-step loop cut at max_rounds."""
  questions = [e["question"] for e in examples]
  documents = [e["document"] for e in examples]
  prep = [0.0]
  llm.reset()
  before = llm.stats.as_dict()
  start = time.perf_counter()
  with timed_document_preparation(prep):
    if not max_rounds:
      episodes = run_episodes(llm, questions, documents, config, prompt_set=PROMPTS)
    else:
      episodes = runner_lib.make_episodes(llm, questions, documents, config, prompt_set=PROMPTS)
      for _ in range(max_rounds):
        pending = [e.pending for e in episodes if not e.done]
        if not pending:
          break
        for k in sorted({c.max_new_tokens for c in pending}):
          group = [c for c in pending if c.max_new_tokens == k]
          for call, completion in zip(group, llm.complete(group)):
            episodes[call.episode].feed(completion)
  seconds = time.perf_counter() - start - llm.excluded_seconds
  after = llm.stats.as_dict()
  return Result(
    episodes,
    seconds,
    prep[0],
    after["rounds"] - before["rounds"],
    after["calls"] - before["calls"],
    after["model_seconds"] - before["model_seconds"],
    any(not e.done for e in episodes),
    llm.oracle_seconds,
    llm.padded_prompt_tokens,
    llm.real_prompt_tokens,
    llm.max_prompt_tokens,
  )


def accuracy(episodes, examples):
  correct = [qa_exact_reward(ep.output or "", e["answer"]) for ep, e in zip(episodes, examples)]
  return sum(correct) / len(correct)


def build(args):
  config = infmem_config.get_config()
  tokenizer = setup.experiment_tokenizer(PROMPTS, max_number=config.max_number)
  overrides = dict(config.sft.model_overrides)
  model_config = get_preset(config.sft.preset, vocab_size=tokenizer.vocab_size, **overrides)
  model = Transformer(model_config, rngs=nnx.Rngs(args.seed))
  readers = {c: setup.protocol_config(config.reader, c) for c in ("infmem", "memagent")}
  # bm25s's first index build in a process pays one-time setup; keep it out of table 2.
  prepare_document(setup.examples(1024, 1, seed=args.seed + 1)[0]["document"], tokenizer,
                   readers["infmem"])  # fmt: skip
  return config, tokenizer, model, readers


def scripted(model, tokenizer, config, reader, batch_multiple) -> ScriptedOverModel:
  llm = GenerateLLM(
    model,
    tokenizer,
    eos_id=tokenizer.eos_id,
    length_multiple=int(config.eval.length_multiple),
    batch_multiple=batch_multiple,
  )
  return ScriptedOverModel(llm, reader)


def breakdown(label: str, r: Result) -> str:
  prep_only = r.prep - r.index  # prepare_document includes the index build.
  oracle = r.oracle_seconds
  rest = r.seconds - r.index - r.search - r.model_seconds - oracle - prep_only
  parts = [r.index, r.search, r.model_seconds, oracle, prep_only, rest]
  cells = " | ".join(f"{x:.2f} ({100 * x / r.seconds:.1f}%)" for x in parts)
  return f"| {label} | {r.seconds:.2f} | {cells} |"


def batching_table(args, config, tokenizer, model, reader, lines):
  examples = setup.examples(args.batch_doc_tokens, args.batch, seed=args.seed)
  n = len(examples)
  print(f"\n## 1. Batching: {n} InfMem questions, {args.batch_doc_tokens}-token documents")
  batched_llm = scripted(model, tokenizer, config, reader, 8)
  batched = run(batched_llm, examples, reader)
  alone_llm = scripted(model, tokenizer, config, reader, 1)
  parts = [run(alone_llm, [e], reader) for e in examples]
  alone = Result(
    [p.episodes[0] for p in parts],
    *[sum(getattr(p, f) for p in parts) for f in ("seconds", "prep", "batches", "calls")],
    sum(p.model_seconds for p in parts),
    False,
    *[sum(getattr(p, f) for p in parts) for f in ("oracle_seconds", "padded_prompt_tokens")],
    sum(p.real_prompt_tokens for p in parts),
    max(p.max_prompt_tokens for p in parts),
  )
  print("| run | wall (s) | questions/s | vs one at a time | model batches | calls "
        "| calls / batch | model s | padded / real prompt tokens | answers correct |")  # fmt: skip
  print("|---|---|---|---|---|---|---|---|---|---|")
  for name, r in (
    ("batched (lock-step, batch_multiple 8)", batched),
    ("one at a time (batch_multiple 1)", alone),
  ):
    print(
      f"| {name} | {r.seconds:.2f} | {n / r.seconds:.2f} | {alone.seconds / r.seconds:.2f}x "
      f"| {r.batches} | {r.calls} | {r.calls / r.batches:.1f} | {r.model_seconds:.2f} "
      f"| {r.padded_prompt_tokens / r.real_prompt_tokens:.2f} "
      f"| {accuracy(r.episodes, examples):.2f} |"
    )
  longest = max(len(ep.calls) for ep in batched.episodes)
  print(
    f"The longest episode has {longest} calls; the batched run made {batched.batches} model "
    f"batches (one per budget group per lock-step round) for {batched.calls} calls; one at a "
    f"time makes one batch per call. Shapes compiled (outside the clock): "
    f"{len(batched_llm.stats.shapes)} batched, {len(alone_llm.stats.shapes)} one at a time."
  )
  lines.append(breakdown(f"{args.batch_doc_tokens} tokens x {n}, batched", batched))
  lines.append(breakdown(f"{args.batch_doc_tokens} tokens x {n}, one at a time", alone))


def length_table(args, config, tokenizer, model, readers, lines, start):
  lengths = [int(x) for x in args.lengths.split(",") if x]
  q = args.questions
  print(f"\n## 3. Growth with document length ({q} questions per length, batched)")
  print("| controller | doc tokens | chunks | chunks read / question | calls / question "
        "| model batches | wall (s) | doc prep (s) | s / chunk read | s / chunk read w/o prep "
        "| largest prompt (tokens) | answers correct |")  # fmt: skip
  print("|---|---|---|---|---|---|---|---|---|---|---|---|")
  notes = []
  for n in lengths:
    examples = setup.examples(n, q, seed=args.seed)
    for c, reader in readers.items():
      elapsed = time.perf_counter() - start
      if elapsed > args.time_budget:
        notes.append(
          f"{c} at {n} tokens: skipped, the benchmark had run {elapsed:.0f} s > --time-budget "
          f"{args.time_budget:.0f} s."
        )
        continue
      llm = scripted(model, tokenizer, config, reader, q)
      chunks = -(-min(n, reader.max_document_tokens) // reader.chunk_tokens)
      cap = args.cut_rounds if chunks > args.max_rounds > 0 else 0
      r = run(llm, examples, reader, max_rounds=cap)
      read = sum(ep.steps_read for ep in r.episodes)
      per, per_wo = r.seconds / read, (r.seconds - r.prep) / read
      print(
        f"| {c} | {f'{n} (cut)' if r.cut else n} | {r.episodes[0].num_chunks} | {read / q:.1f} "
        f"| {r.calls / q:.1f} | {r.batches} | {r.seconds:.2f} | {r.prep:.2f} | {per:.3f} "
        f"| {per_wo:.3f} | {r.max_prompt_tokens} "
        f"| {'-' if r.cut else f'{accuracy(r.episodes, examples):.2f}'} |"
      )
      if r.cut:
        total = r.episodes[0].num_chunks
        notes.append(
          f"{c} at {n} tokens: cut after {cap} lock-step rounds (--cut-rounds; {total} chunks > "
          f"--max-rounds {args.max_rounds}; MemAgent needs {total + 1} calls), to fit the time "
          f"budget; measured on those {cap} rounds. Projected run reading every chunk (doc prep + "
          f"s / chunk read w/o prep x {total} chunks x {q} questions): "
          f"~{r.prep + per_wo * total * q:.0f} s."
        )
      if c == "infmem":
        lines.append(breakdown(f"{n} tokens x {q}, batched", r))
  for note in notes:
    print(note)


def main(argv=None):
  args = parse_args(argv)
  start = time.perf_counter()
  config, tokenizer, model, readers = build(args)
  m = config.sft.model_overrides
  print(
    f"model: {config.sft.preset} random init, hidden {m.hidden_size}, {m.num_layers} layers, "
    f"heads {m.num_heads}/{m.num_kv_heads}, context {m.max_position_embeddings}, vocab "
    f"{tokenizer.vocab_size}; reader: {dict(config.reader)}; {os.cpu_count()} CPUs, load "
    f"average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
  )
  lines = []
  batching_table(args, config, tokenizer, model, readers["infmem"], lines)
  length_table(args, config, tokenizer, model, readers, lines, start)
  print("\n## 2. Where InfMem's wall time goes (seconds, share of the run's wall time)")
  print("| run | wall (s) | BM25 index build | BM25 searches | model calls | scripted oracle "
        "| doc prep (tokenize, chunk) | rest (episodes, prompts, loop) |")  # fmt: skip
  print("|---|---|---|---|---|---|---|---|")
  for line in lines:
    print(line)
  load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
  print(f"\nTotal benchmark time: {time.perf_counter() - start:.0f} s; load average {load}")


if __name__ == "__main__":
  main()
