"""MRPO Stage I: Spectral Orthogonal Exploration (SOE) synthesis of SFT traces.

Paper: "Beyond Alignment: Expanding Reasoning Capacity via Manifold-Reshaping Policy
Optimization", Dayu Wang, Jiaye Yang, Weikang Li, Jiahui Liang, Yang Li,
arXiv 2602.02545 (2026).

SFT traces are synthesised so that the teacher's hidden states along them lie in the null
space of its bias manifold (`reasoning_jax.rl.mrpo.manifold`): each step the student's
probe with the highest orthogonality score is kept. Model-agnostic: all model work
happens in the callables passed in.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from reasoning_jax.rl.mrpo.config import DEFAULT_CONFIG, PROBE_POOLINGS, MRPOConfig, check_config
from reasoning_jax.rl.mrpo.manifold import BiasManifold, bias_manifold, orthogonality_score
from reasoning_jax.validation import check_array, check_choice


class SOETrace(NamedTuple):
  """One SOE-synthesised trace.

  Attributes:
    context: problem + chosen probes + teacher steps (concatenated with `concat_fn`).
    chosen_scores: Omega of the chosen probe at each step.
    mean_score: mean of `chosen_scores` (0.0 if no step ran).
    finished: the teacher signalled a final answer within `max_steps`.
    verified: finished and `verify_fn(problem, context)` accepted it.
    kept: verified and `mean_score >= omega_threshold`.
  """

  context: Any
  chosen_scores: tuple[float, ...]
  mean_score: float
  finished: bool
  verified: bool
  kept: bool


class SOEResult(NamedTuple):
  """Output of `soe_synthesize`: kept traces and bookkeeping counts."""

  traces: list[SOETrace]
  num_problems: int
  num_skipped_no_failure: int
  num_rejected: int


def pool_probe_hidden(hidden: jax.Array, *, pooling: str = "mean") -> jax.Array:
  """Probe embedding z from the teacher's `[L, d]` hidden states over the probe tokens.

  DESIGN CHOICE: "mean" (default) over the probe tokens, or the "last" token's state.
  """
  check_array(hidden, "hidden", 2, floating=True)
  check_choice(pooling, PROBE_POOLINGS, "pooling")
  if hidden.shape[0] == 0:
    raise ValueError("hidden has no probe token (shape [0, d]); probes must be non-empty")
  hidden = hidden.astype(jnp.float32)
  return jnp.mean(hidden, axis=0) if pooling == "mean" else hidden[-1]


def soe_synthesize_trace(
  problem: Any,
  manifold: BiasManifold,
  *,
  student_generate_fn: Callable[[Any, int, int, jax.Array], Sequence[Any]],
  teacher_generate_fn: Callable[[Any, jax.Array], tuple[Any, bool]],
  hidden_fn: Callable[[Any, Any], jax.Array],
  verify_fn: Callable[[Any, Any], bool],
  rng: jax.Array,
  config: MRPOConfig = DEFAULT_CONFIG,
  concat_fn: Callable[[Any, Any], Any] = operator.add,
) -> SOETrace:
  """Spectral Orthogonal Exploration for one problem (MRPO Stage I, arXiv 2602.02545).

  Each step the student proposes `num_probes` short continuations of the context, the
  teacher reads each one, the probe whose pooled teacher hidden state is most
  orthogonal to the teacher's bias manifold is appended, and the teacher continues
  one step. Model-agnostic: all model work happens in the callables.

  Args:
    problem: the initial context (e.g. a token list or a string).
    manifold: the teacher's bias manifold, from its failed attempts on `problem`.
    student_generate_fn: `(context, num_probes, max_new_tokens, rng) -> probes`,
      student continuations (one reasoning step each, <= `max_probe_tokens`).
    teacher_generate_fn: `(context, rng) -> (step, done)`, one teacher step; `done`
      means the step contains the final answer.
    hidden_fn: `(context, probe) -> [L, d]` teacher last-layer hidden states over the
      probe tokens when reading `context + probe`.
    verify_fn: `(problem, context) -> bool`, the answer verifier.
    rng: a `jax.random` key, split per step.
    config: `MRPOConfig` (num_probes, max_steps, max_probe_tokens, probe_pooling,
      omega_threshold).
    concat_fn: how contexts are extended (default `+`: lists, tuples, strings).

  Returns:
    `SOETrace`.
  """
  check_config(config)
  context = problem
  scores: list[float] = []
  finished = False
  for _ in range(config.max_steps):
    rng, student_key, teacher_key = jax.random.split(rng, 3)
    probes = list(
      student_generate_fn(context, config.num_probes, config.max_probe_tokens, student_key)
    )
    if not probes:
      raise ValueError("student_generate_fn returned no probe")
    z = jnp.stack(
      [
        pool_probe_hidden(jnp.asarray(hidden_fn(context, probe)), pooling=config.probe_pooling)
        for probe in probes
      ]
    )
    omega = np.asarray(orthogonality_score(z, manifold))
    best = int(np.argmax(omega))  # First maximum on ties: deterministic.
    scores.append(float(omega[best]))
    context = concat_fn(context, probes[best])
    step, done = teacher_generate_fn(context, teacher_key)
    context = concat_fn(context, step)
    if done:
      finished = True
      break
  mean_score = float(np.mean(scores)) if scores else 0.0
  verified = finished and bool(verify_fn(problem, context))
  kept = verified and mean_score >= config.omega_threshold
  return SOETrace(context, tuple(scores), mean_score, finished, verified, kept)


def soe_synthesize(
  problems: Sequence[Any],
  *,
  teacher_attempts_fn: Callable[[Any, int, jax.Array], Sequence[tuple[jax.Array, bool]]],
  student_generate_fn: Callable[[Any, int, int, jax.Array], Sequence[Any]],
  teacher_generate_fn: Callable[[Any, jax.Array], tuple[Any, bool]],
  hidden_fn: Callable[[Any, Any], jax.Array],
  verify_fn: Callable[[Any, Any], bool],
  rng: jax.Array,
  config: MRPOConfig = DEFAULT_CONFIG,
  concat_fn: Callable[[Any, Any], Any] = operator.add,
) -> SOEResult:
  """The SOE data-synthesis loop over problems (MRPO Stage I, arXiv 2602.02545).

  For each problem the teacher samples `sampling_budget` attempts; problems it never
  fails are skipped (a bias manifold needs failures). The hidden states of the
  failed attempts define the bias manifold (`eps_var`), then `soe_synthesize_trace`
  builds one trace; verified traces with mean Omega >= `omega_threshold` are kept,
  until `target_traces` are kept. SFT on the kept traces (1 epoch, token-mean
  cross-entropy on the response) is the trainer's job.

  Args:
    problems: initial contexts.
    teacher_attempts_fn: `(problem, num_samples, rng) -> [(hidden [L, d], correct)]`,
      the teacher's hidden states at the reasoning positions of each attempt.
    student_generate_fn, teacher_generate_fn, hidden_fn, verify_fn, concat_fn: as in
      `soe_synthesize_trace`.
    rng: a `jax.random` key.
    config: `MRPOConfig`.

  Returns:
    `SOEResult(traces, num_problems, num_skipped_no_failure, num_rejected)`.
  """
  check_config(config)
  kept: list[SOETrace] = []
  seen = skipped = rejected = 0
  for problem in problems:
    if len(kept) >= config.target_traces:
      break
    seen += 1
    rng, attempt_key, trace_key = jax.random.split(rng, 3)
    attempts = list(teacher_attempts_fn(problem, config.sampling_budget, attempt_key))
    failed = [jnp.asarray(h, jnp.float32) for h, correct in attempts if not correct]
    failed = [h for h in failed if h.shape[0]]
    if not failed:
      skipped += 1
      continue
    pool = jnp.concatenate(failed, axis=0)
    # Pad the pool to a power-of-two row count so pools of similar size share one
    # compiled SVD; padding rows are masked out of the estimate.
    rows = 1 << (pool.shape[0] - 1).bit_length()
    pool_mask = jnp.arange(rows) < pool.shape[0]
    pool = jnp.pad(pool, ((0, rows - pool.shape[0]), (0, 0)))
    manifold = bias_manifold(pool, pool_mask, eps_var=config.eps_var)
    trace = soe_synthesize_trace(
      problem,
      manifold,
      student_generate_fn=student_generate_fn,
      teacher_generate_fn=teacher_generate_fn,
      hidden_fn=hidden_fn,
      verify_fn=verify_fn,
      rng=trace_key,
      config=config,
      concat_fn=concat_fn,
    )
    if trace.kept:
      kept.append(trace)
    else:
      rejected += 1
  return SOEResult(kept, seen, skipped, rejected)
