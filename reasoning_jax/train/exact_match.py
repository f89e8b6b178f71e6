"""Exact-match evaluation: `generate` completions of held-out prompts scored by a verifier.

Shared by the SFT and RL trainers; greedy accuracy, or avg@k / pass@k of k samples.

With a `mesh`, each batch's rows are split over the mesh's batch axes (`data`, `fsdp`), so
evaluation is data-parallel like training: without one every device of a replicated model
decodes every row. On several processes (global params on a mesh over every host's
devices) each device decodes its slice and every process gets all rows back to score, so
the results are the same on each.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def evaluate_exact_match(
  model,
  tokenizer,
  source,
  *,
  reward: str,
  num_examples: int,
  max_new_tokens: int,
  prompt_template: Any,
  batch_size: int = 64,
  temperature: float = 0.0,
  seed: int = 0,
  num_samples: int = 1,
  eos_id: int | tuple[int, ...] | None = None,
  max_prompt_len: int = 256,
  add_bos: bool | None = None,
  truncate: bool = True,
  top_p: float = 1.0,
  top_k: int | None = None,
  keep_records: bool = False,
  mesh: jax.sharding.Mesh | None = None,
) -> dict[str, Any]:
  """Exact-match accuracy of `generate` completions scored by a registered verifier.

  With `temperature > 0` and `num_samples = k` each question is sampled k times and the
  accuracy is the mean over all samples (avg@k, the pass@1 estimate RL papers report);
  `pass_at_k` is the fraction of questions with at least one correct sample.
  `prompt_template` is a `str.format` template or a `ChatPrompt`; `eos_id` (one id or
  several; default the tokenizer's) ends a completion. `samples` holds (question, completion)
  of the first three questions (first sample each), `sample_records` the same as dicts with
  the answer and reward, for `MetricWriter.write_records`. With `keep_records` the result
  also has `records`, one dict per question (question, answer, and per sample its completion,
  reward, generated length and whether the budget cut it off), and `generated_tokens`.

  `mesh`: None (the rows go to `generate` as host arrays that `jit` places next to the
  model), or the mesh the model's params are laid out on: each batch (padded with copies of
  its last row to a multiple of the batch shards; the copies are dropped) is split over its
  batch axes. Every process must then call this with the same arguments. Greedy results
  are those without a mesh; sampled ones too when no batch needs padding (the sampling
  noise depends on the batch's row count, not on how it is split).
  """
  from reasoning_jax import sharding as sharding_lib
  from reasoning_jax.data import make_prompt_dataset
  from reasoning_jax.generate import generate
  from reasoning_jax.rewards import REWARD_FIELDS, score_batch

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
    max_prompt_len=max_prompt_len,
    prompt_template=prompt_template,
    shard_index=0,
    shard_count=1,
    truncate=truncate,
    add_bos=add_bos,
  )
  if eos_id is None:
    eos_id = tokenizer.eos_id
  scores, samples, records = [], [], []
  per_question: list[dict[str, Any]] = []
  generated = 0
  key = jax.random.key(seed)
  for i, batch in enumerate(ds):
    prompts = np.repeat(np.asarray(batch["prompts"]), num_samples, axis=0)
    prompt_lengths = np.repeat(np.asarray(batch["prompt_lengths"]), num_samples, axis=0)
    rows = prompts.shape[0]
    out = generate(
      model,
      # Static row shards: padded with copies of the last row, dropped below.
      *sharding_lib.place_padded_rows(mesh, prompts, prompt_lengths),
      max_new_tokens=max_new_tokens,
      temperature=temperature,
      top_p=top_p,
      top_k=top_k,
      eos_id=eos_id,
      key=jax.random.fold_in(key, i),
    )
    # One gather of the three outputs (on several processes a collective per call).
    tokens, lengths, done = (
      x[:rows] for x in sharding_lib.host_rows((out.tokens, out.lengths, out.done))
    )
    completions = tokenizer.decode_batch(tokens, lengths)
    repeat = lambda xs: [x for x in xs for _ in range(num_samples)]  # noqa: E731
    fields = {k: repeat(batch[k]) for k in REWARD_FIELDS if k in batch}
    answers = repeat([str(a) for a in batch["answer"]])
    scores.append(
      np.asarray(score_batch(reward, completions, answers, **fields), np.float64).reshape(
        -1, num_samples
      )
    )
    generated += int(lengths.sum())
    if keep_records:
      done = done.reshape(-1, num_samples)
      for j, question in enumerate(batch["question"]):
        rows = slice(j * num_samples, (j + 1) * num_samples)
        per_question.append(
          {
            "index": len(per_question),
            "question": str(question),
            "answer": answers[j * num_samples],
            "completions": completions[rows],
            "rewards": [float(r) for r in scores[-1][j]],
            "lengths": [int(n) for n in lengths[rows]],
            "truncated": [not bool(d) for d in done[j]],
          }
        )
    if not samples:  # The first questions' first completions, to read.
      first = scores[-1][:, 0]
      samples = [(str(q), c) for q, c in zip(batch["question"][:3], completions[::num_samples][:3])]
      records = [
        {"question": q, "completion": c, "answer": a, "reward": float(r)}
        for (q, c), a, r in zip(samples, answers[::num_samples], first)
      ]
  scores = np.concatenate(scores) if scores else np.zeros((0, num_samples))
  return {
    "accuracy": float(scores.mean()) if scores.size else 0.0,
    "pass_at_k": float((scores > 0).any(axis=1).mean()) if scores.size else 0.0,
    "count": int(scores.shape[0]),
    "num_samples": num_samples,
    "samples": samples,
    "sample_records": records,
    **({"records": per_question, "generated_tokens": generated} if keep_records else {}),
  }
