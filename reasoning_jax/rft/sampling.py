"""Rejection sampling from a teacher: N verified trajectories per problem, resumable.

`sample_trajectories(model, tokenizer, source, ...)` is the first half of rejection-sampling
fine-tuning (RFT, "Scaling Relationship on Learning Mathematical Reasoning with Large Language
Models", arXiv:2308.01825) and of TrajFusion (`rft.trajfusion`): for every problem of a data
source it samples `num_samples` completions with the KV-cache `generate` (the prompt batch
sharded over the mesh's batch axes), scores them with a registered verifier and reads their
final answers with that verifier's own extractor (`rewards.answer_key`), and appends one JSON
line per problem to `<out_dir>/samples.jsonl`:

  {"index", "question", "answer", "fields", "trajectories": [{"text", "correct", "answer",
   "truncated", "num_tokens"}, ...]}

**Resumable.** Problems are taken in source order in fixed batches of `problems_per_batch`;
batch b samples with `fold_in(key(seed), b)`. After each batch the lines are flushed and
fsynced, then `progress.json` records the next problem and the byte length of the file
(written atomically). On several processes (`jax.distributed`) every host samples (the rows
split over the global mesh and gathered back) and process 0 alone reads and writes the files,
sharing the resume point and any provenance error with the others. A killed run restarts from `progress.json`, cuts any half-written tail
off the file, and produces exactly the file an uninterrupted run would have (no duplicates,
no gaps). `sampling.json` holds the provenance (teacher, seed, sampling settings, verifier,
prompt); resuming under different settings is refused, naming the keys.

Problems without a ground truth (empty answer) are skipped and counted; a teacher whose
completions never carry an extractable answer is reported (a warning per batch with the
count, `no_answer_rate` in the summary), and `rft.dataset` refuses to write an empty dataset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from typing import Any, Iterator, Mapping

import jax
import numpy as np
from absl import logging

from reasoning_jax import distributed
from reasoning_jax import sharding as sharding_lib
from reasoning_jax.data.collate import batch_rows
from reasoning_jax.data.examples import decode_example
from reasoning_jax.data.transforms import TokenizePrompt, resolve_bos
from reasoning_jax.generate import generate
from reasoning_jax.rewards import REWARD_FIELDS, score_batch
from reasoning_jax.rewards.answers import answer_keys
from reasoning_jax.rft.trajfusion import ProblemSamples, Trajectory
from reasoning_jax.validation import check_float_in, check_positive_int

__all__ = [
  "SamplingConfig",
  "SamplingError",
  "SamplingSummary",
  "read_samples",
  "sample_trajectories",
]

SAMPLES_FILE = "samples.jsonl"
PROGRESS_FILE = "progress.json"
PROVENANCE_FILE = "sampling.json"


class SamplingError(ValueError):
  """Bad sampling input or a resume under other settings; the message names the argument."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SamplingConfig:
  """How the teacher samples.

  Attributes:
    num_samples: N trajectories per problem.
    problems_per_batch: problems per `generate` call (N x this rows; one compiled shape).
    max_new_tokens: completion budget; a completion that hits it is `truncated`.
    temperature, top_p, top_k: the teacher's sampling settings (top_k 0: off).
    seed: batch b samples with `fold_in(key(seed), b)`.
    max_problems: sample only the first this many problems of the source (0: all).
  """

  num_samples: int = 8
  problems_per_batch: int = 16
  max_new_tokens: int = 256
  temperature: float = 1.0
  top_p: float = 1.0
  top_k: int = 0
  seed: int = 0
  max_problems: int = 0

  def __post_init__(self):
    check_positive_int(self.num_samples, "SamplingConfig.num_samples")
    check_positive_int(self.problems_per_batch, "SamplingConfig.problems_per_batch")
    check_positive_int(self.max_new_tokens, "SamplingConfig.max_new_tokens")
    check_float_in(self.temperature, "SamplingConfig.temperature", 0.0, low_inclusive=False)
    check_float_in(self.top_p, "SamplingConfig.top_p", 0.0, 1.0, low_inclusive=False)
    check_positive_int(self.top_k, "SamplingConfig.top_k", minimum=0)
    check_positive_int(self.max_problems, "SamplingConfig.max_problems", minimum=0)


@dataclasses.dataclass
class SamplingSummary:
  """What a call did (this call only, except `num_problems`: all problems in the file)."""

  num_problems: int = 0  # problems in samples.jsonl after this call
  sampled_problems: int = 0  # problems sampled by this call
  skipped_no_ground_truth: int = 0
  trajectories: int = 0
  correct: int = 0
  no_answer: int = 0
  truncated: int = 0
  resumed_from: int = 0
  seconds: dict[str, float] = dataclasses.field(default_factory=dict)

  @property
  def no_answer_rate(self) -> float:
    return self.no_answer / self.trajectories if self.trajectories else 0.0

  def as_dict(self) -> dict[str, Any]:
    return {**dataclasses.asdict(self), "no_answer_rate": self.no_answer_rate}


def _write_json_atomic(path: str, value: Any) -> None:
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=2, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def _on_process_zero(fn, *args) -> Any:
  """`fn(*args)` on process 0 only (the files' single writer), its result (or its
  SamplingError) on every process. One process: just the call."""
  if jax.process_count() == 1:
    return fn(*args)
  result, error = None, ""
  if jax.process_index() == 0:
    try:
      result = fn(*args)
    except SamplingError as e:
      error = str(e)[:4000]
  result, error = distributed.broadcast_json([result, error])
  if error:
    raise SamplingError(error)
  return result


def _check_provenance(out_dir: str, provenance: Mapping[str, Any]) -> None:
  path = os.path.join(out_dir, PROVENANCE_FILE)
  as_json = json.loads(json.dumps(provenance, sort_keys=True, default=str))
  if not os.path.exists(path):
    _write_json_atomic(path, as_json)
    return
  with open(path) as f:
    saved = json.load(f)
  differ = sorted(k for k in set(saved) | set(as_json) if saved.get(k) != as_json.get(k))
  if differ:
    details = "; ".join(f"{k}: saved {saved.get(k)!r}, now {as_json.get(k)!r}" for k in differ)
    raise SamplingError(
      f"out_dir={out_dir!r} holds samples drawn under other settings ({details}); use a new "
      "out_dir or the same settings to resume"
    )


def _resume_point(out_dir: str) -> int:
  """The next problem index; cuts a half-written tail off samples.jsonl."""
  samples = os.path.join(out_dir, SAMPLES_FILE)
  progress = os.path.join(out_dir, PROGRESS_FILE)
  if not os.path.exists(progress):
    if os.path.exists(samples):
      os.truncate(samples, 0)  # Lines written before the first progress record.
    return 0
  with open(progress) as f:
    state = json.load(f)
  size = os.path.getsize(samples) if os.path.exists(samples) else 0
  if size < state["bytes"]:
    raise SamplingError(
      f"{samples} is shorter ({size} bytes) than {progress} records ({state['bytes']}): the "
      "samples file was modified; start a new out_dir"
    )
  if size > state["bytes"]:
    logging.warning(
      "sampling: cutting %d bytes written after the last progress record", size - state["bytes"]
    )
    os.truncate(samples, state["bytes"])
  return int(state["next_problem"])


def sample_trajectories(
  model,
  tokenizer,
  source,
  *,
  reward: str,
  out_dir: str,
  config: SamplingConfig,
  prompt_template: Any = "{question}\n",
  max_prompt_len: int = 256,
  add_bos: bool | None = None,
  truncate: bool = True,
  eos_id: int | tuple[int, ...] | None = None,
  mesh=None,
  provenance: Mapping[str, Any] | None = None,
  max_batches: int | None = None,
  progress: bool = True,
) -> SamplingSummary:
  """Samples, verifies and appends every problem of `source` to `<out_dir>/samples.jsonl`.

  Args:
    model: the teacher (a zoo `Transformer`; from scratch, a checkpoint or `from_hf`).
    tokenizer: its tokenizer (decodes completions, `eos_id` default).
    source: a random-access data source of examples with `question` and `answer`.
    reward: a registered verifier with an answer extractor (`rewards.ANSWER_KEY_REWARDS`).
    out_dir: where samples, progress and provenance go; an existing one is resumed.
    config: the sampling settings.
    prompt_template, max_prompt_len, add_bos, truncate: the prompt format (a `str.format`
      template or a `ChatPrompt`), as in `data.make_prompt_dataset`.
    eos_id: ids that end a completion (default the tokenizer's).
    mesh: prompt rows are sharded over its batch axes (`data`, `fsdp`).
    provenance: what produced the samples (teacher, task, ...); stored with the sampling
      settings in `sampling.json` and checked on resume.
    max_batches: stop after this many batches (this call); None runs to the end. A partial
      run resumes on the next call.
    progress: show a tqdm bar.

  Returns:
    A `SamplingSummary`; `seconds` splits the time into generate / verify / write.
  """
  from tqdm import tqdm

  from reasoning_jax.rewards.answers import ANSWER_KEY_REWARDS

  if reward not in ANSWER_KEY_REWARDS:
    raise SamplingError(
      f"reward={reward!r}: TrajFusion and RFT need the verifier's answer extraction; rewards "
      f"with one: {ANSWER_KEY_REWARDS}"
    )
  writer = jax.process_index() == 0  # On several processes every host samples, one writes.
  if writer:
    os.makedirs(out_dir, exist_ok=True)
  settings = dataclasses.asdict(config)
  _on_process_zero(
    _check_provenance,
    out_dir,
    {
      **dict(provenance or {}),
      "sampling": settings,
      "reward": reward,
      "prompt": repr(prompt_template) if not isinstance(prompt_template, str) else prompt_template,
      "num_source_examples": len(source),
    },
  )
  start = _on_process_zero(_resume_point, out_dir)
  total = len(source) if not config.max_problems else min(config.max_problems, len(source))
  summary = SamplingSummary(resumed_from=start)
  seconds = {"generate": 0.0, "verify": 0.0, "write": 0.0, "prepare": 0.0}
  tokenize = TokenizePrompt(
    tokenizer,
    max_prompt_len=max_prompt_len,
    prompt_template=prompt_template,
    add_bos=resolve_bos(tokenizer, add_bos),
    truncate=truncate,
    fields=None,
  )
  eos = tokenizer.eos_id if eos_id is None else eos_id
  key = jax.random.key(config.seed)
  p, n = config.problems_per_batch, config.num_samples
  samples_path = os.path.join(out_dir, SAMPLES_FILE)
  bar = tqdm(
    total=total,
    initial=start,
    desc="rft sampling",
    disable=not (progress and writer),
    mininterval=2,
  )
  batches = 0
  with open(samples_path, "a") if writer else contextlib.nullcontext() as out:
    for first in range(start, total, p):
      if max_batches is not None and batches >= max_batches:
        break
      clock = time.perf_counter()
      indices = list(range(first, min(first + p, total)))
      rows = [tokenize(i, source[i]) for i in indices]
      rows += [rows[-1]] * (p - len(rows))  # Static shapes: pad the last batch.
      batch = batch_rows(rows)
      prompts = np.repeat(batch["prompts"], n, axis=0)
      lengths = np.repeat(batch["prompt_lengths"], n, axis=0)
      now = time.perf_counter()
      seconds["prepare"] += now - clock
      out_gen = generate(
        model,
        sharding_lib.place_rows(prompts, mesh),
        sharding_lib.place_rows(lengths, mesh),
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k or None,
        eos_id=eos,
        key=jax.random.fold_in(key, first // p),
      )
      out_gen = sharding_lib.host_rows(out_gen)  # every row, on every process
      clock = time.perf_counter()
      seconds["generate"] += clock - now
      texts = tokenizer.decode_batch(np.asarray(out_gen.tokens), np.asarray(out_gen.lengths))
      examples = [decode_example(source[i]) for i in indices]
      m = len(indices) * n
      answers = [str(ex.get("answer", "")) for ex in examples for _ in range(n)]
      fields = {
        k: [ex[k] for ex in examples for _ in range(n)] for k in REWARD_FIELDS if k in examples[0]
      }
      correct = np.asarray(score_batch(reward, texts[:m], answers, **fields)) > 0
      keys = answer_keys(reward, texts[:m])
      done = np.asarray(out_gen.done)
      num_tokens = np.asarray(out_gen.lengths)
      now = time.perf_counter()
      seconds["verify"] += now - clock
      lines, no_answer = [], 0
      for j, (i, ex) in enumerate(zip(indices, examples)):
        if not str(ex.get("answer", "")).strip():
          summary.skipped_no_ground_truth += 1
          continue
        rows_j = range(j * n, (j + 1) * n)
        trajs = [
          {
            "text": texts[r],
            "correct": bool(correct[r]),
            "answer": keys[r],
            "truncated": bool(not done[r]),
            "num_tokens": int(num_tokens[r]),
          }
          for r in rows_j
        ]
        no_answer += sum(t["answer"] is None for t in trajs)
        summary.correct += sum(t["correct"] for t in trajs)
        summary.truncated += sum(t["truncated"] for t in trajs)
        summary.trajectories += n
        extra = {k: v for k, v in ex.items() if k not in ("question", "answer", "solution")}
        record = {
          "index": i,
          "question": ex["question"],
          "answer": str(ex["answer"]),
          "fields": extra,
          "trajectories": trajs,
        }
        lines.append(json.dumps(record, sort_keys=True) + "\n")
      summary.no_answer += no_answer
      if no_answer == len(indices) * n:
        logging.warning(
          "rft sampling: none of the %d completions of problems %d-%d has an answer the %r "
          "verifier can extract (is the prompt asking for the format it reads?)",
          len(indices) * n,
          indices[0],
          indices[-1],
          reward,
        )
      if writer:
        out.write("".join(lines))
        out.flush()
        os.fsync(out.fileno())
        _write_json_atomic(
          os.path.join(out_dir, PROGRESS_FILE),
          {"next_problem": indices[-1] + 1, "bytes": out.tell()},
        )
      seconds["write"] += time.perf_counter() - now
      summary.sampled_problems += len(indices)
      batches += 1
      bar.update(len(indices))
  bar.close()
  summary.seconds = seconds
  summary.num_problems = _on_process_zero(lambda: sum(1 for _ in _lines(samples_path)))
  return summary


def _lines(path: str) -> Iterator[str]:
  if not os.path.exists(path):
    return
  with open(path) as f:
    for line in f:
      if line.strip():
        yield line


def read_samples(out_dir: str) -> list[ProblemSamples]:
  """The problems of `<out_dir>/samples.jsonl` with their trajectories."""
  path = os.path.join(out_dir, SAMPLES_FILE)
  if not os.path.exists(path):
    raise SamplingError(f"no {SAMPLES_FILE} in out_dir={out_dir!r}: run the sampler first")
  problems = []
  for lineno, line in enumerate(_lines(path), 1):
    try:
      rec = json.loads(line)
      trajs = tuple(Trajectory(**t) for t in rec["trajectories"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
      raise SamplingError(f"{path}:{lineno}: not a sample record ({e})") from None
    problems.append(
      ProblemSamples(rec["index"], rec["question"], rec["answer"], trajs, rec.get("fields", {}))
    )
  return problems
