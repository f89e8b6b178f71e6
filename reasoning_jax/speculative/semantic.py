"""SemanticSpec's online loop: the draft writes a reasoning step, probes decide, the target fixes.

"Beyond Tokens: Semantic-Aware Speculative Decoding for Efficient Inference by Probing Internal
States" (Dong, Wang, Lin, Chen, Hassan; arXiv:2602.03708), spec `inference.md` section 2.3.
Per row, with `state` = prompt + accepted text:

  1. TARGET STEP (the first step, DESIGN CHOICE `target_first_step=True`, and after every
     rejection): the target samples one step (stops after a boundary id, `max_step_tokens`).
  2. DRAFT STEP: the draft samples one step `d` (`T` tokens); the target teacher-forces
     `state + d` in one pass; the probes read the mean-pooled final-layer states of the
     positions that predicted `d`'s tokens (`probe.pool_hidden`), the target's from that pass,
     the draft's from a teacher-forced draft pass over the same ids (the same states its
     decode produced, recomputed); `accept_steps` decides (fast path, `min(1, p_T / p_D)`,
     `tau_min`). Accepted: `state += d + bonus`, the bonus drawn from the target's
     distribution after `d` at `bonus_temperature`. Rejected: `d` is dropped and the row
     goes back to 1 (the target regenerates the step from its full distribution).
  3. ANSWER: after an end-of-thinking id (`end_think_id`, None disables the phase) the target
     alone writes up to `max_answer_tokens` (stops at EOS). A target step or bonus that emits
     the id moves on to the answer; a draft step that contains it is not verified: the target
     finishes from `state` (the spec's pseudo-code).

A row stops at an EOS (in a step, a bonus or the answer) or when `max_new_tokens` are emitted
(steps are cut at the budget).

What is batched (DESIGN CHOICE): rows advance step by step in a host loop; each iteration runs
each phase ONCE for all rows (a batched call per model, static shapes), skipping a phase no row
needs, and keeps the results of the rows in that phase.

KV caches: each model keeps one cache for the whole call (slot == position). Per row and model,
`valid` counts the leading positions whose keys/values are those of the committed text; a phase
first feeds the row's uncached tail `state[valid:]` (at least its last token) in one block,
then works on top: sampling continues on the cache (`generate.generate_from_cache`, the
extension point; boundary ids are its stop ids, so the boundary stays in its step, and rows
outside the phase have budget 0), and a verification feeds `tail + d` and reads the states,
the fast-path logits and the bonus from that block. A rejected step is rolled back by length:
its slots lie past the row's `valid`, hidden by causal masking on positions and overwritten
later (so both models need position-indexed caches; recurrent mixers are rejected). Block
widths are rounded up to powers of two, so a call compiles a handful of programs. The
target's raw log-probs of the emitted tokens are read off the passes that decided them (the
step it sampled, the verification of an accepted step, the bonus), not from an extra pass.
Two RNG streams: `key` splits into a sampling stream (every step, bonus and answer draw) and
an acceptance stream (`accept_steps`'s uniforms), or `accept_key` sets the second.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reasoning_jax.generate.generate import (
  GenerateOutput,
  check_generate_args,
  generate_from_cache,
)
from reasoning_jax.generate.sampling import sample_logits, validate_sampling_params
from reasoning_jax.speculative.decode import check_rollback
from reasoning_jax.speculative.probe import check_probe, pool_hidden
from reasoning_jax.speculative.step_acceptance import (
  accept_steps,
  check_fast_path_topk,
  check_tau_min,
  fast_path_ok,
)
from reasoning_jax.speculative.steps import check_boundary_ids

TARGET_STEP, DRAFT_STEP, ANSWER, DONE = 0, 1, 2, 3

# The host loop derives several keys a step; jitted, a fold-in costs microseconds rather
# than the eager path's most of a millisecond (same values).
_fold_in = jax.jit(jax.random.fold_in)


@dataclasses.dataclass(frozen=True)
class _Score:
  """Static settings of one compiled verification pass."""

  pooling: str
  step_width: int
  fast_path_topk: int
  bonus_temperature: float
  top_k: int
  top_p: float
  with_target_outputs: bool


@functools.lru_cache(maxsize=16)
def _score_fn(model_def: Any, probe_def: Any, spec: _Score):
  """Jitted pass over each row's uncached tail plus its step, on the model's cache: pooled
  states and probe output and, for the target, the fast-path verdict, the raw log-probs of
  the step tokens and the bonus draw. Row b's block starts at position `starts[b]`; its step's
  first token sits at block index `tails[b]` (so `tails[b] - 1` predicted it)."""

  def score(m_state, p_state, cache, ids, starts, tails, step_lengths, key):
    model, probe = nnx.merge(model_def, m_state), nnx.merge(probe_def, p_state)
    w = ids.shape[1]
    positions = starts[:, None] + jnp.arange(w, dtype=jnp.int32)[None, :]
    hidden, cache = model.forward(ids, positions=positions, cache=cache)
    pooled = pool_hidden(hidden, tails, step_lengths, spec.pooling)
    out = dict(prob=probe(pooled, deterministic=True))
    if spec.with_target_outputs:
      width = min(spec.step_width, w - 1)
      index = jnp.minimum((tails - 1)[:, None] + jnp.arange(width), w - 2)
      predicting = jnp.take_along_axis(hidden, index[..., None], axis=1)
      step_tokens = jnp.take_along_axis(ids, index + 1, axis=1)
      logits = model.unembed(predicting)
      out["fast"] = fast_path_ok(logits, step_tokens, step_lengths, spec.fast_path_topk)
      raw = jax.nn.log_softmax(logits, axis=-1)
      out["step_logprobs"] = jnp.take_along_axis(raw, step_tokens[..., None], -1)[..., 0]
      last = (tails + step_lengths - 1)[:, None, None]
      logits = model.unembed(jnp.take_along_axis(hidden, last, axis=1)[:, 0])
      token, raw, sampled = sample_logits(
        logits, key, temperature=spec.bonus_temperature, top_k=spec.top_k, top_p=spec.top_p
      )
      out.update(bonus=token, bonus_logprob=raw, bonus_sampling_logprob=sampled)
    return out, cache

  return jax.jit(score, donate_argnums=(2,))


def _bucket(n: int) -> int:
  """The power of two >= n: block widths a call compiles for."""
  return 1 << max(int(n) - 1, 0).bit_length()


def _check_models(target: Any, draft: Any, target_probe: Any, draft_probe: Any) -> None:
  for name, model in (("target", target), ("draft", draft)):
    for attr in ("forward", "unembed", "init_cache", "config"):
      if not hasattr(model, attr):
        raise TypeError(f"{name} must be a zoo Transformer (missing {attr!r})")
  tv, dv = target.config.vocab_size, draft.config.vocab_size
  if tv != dv:
    raise ValueError(
      f"draft and target must share one vocabulary: draft.config.vocab_size={dv} != "
      f"target.config.vocab_size={tv} (the target teacher-forces the draft's step ids)"
    )
  for name, model in (("target", target), ("draft", draft)):
    check_rollback(model, name, "SemanticSpec (it keeps both KV caches across steps)")
  check_probe(target_probe, target.config.hidden_size, "target_probe", "target")
  check_probe(draft_probe, draft.config.hidden_size, "draft_probe", "draft")
  if target_probe.pooling != draft_probe.pooling:
    raise ValueError(
      f"target_probe pools {target_probe.pooling!r} but draft_probe pools "
      f"{draft_probe.pooling!r}: both probes must use one pooling"
    )


def _positive(value: Any, argument: str) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{argument} must be an int >= 1, got {value!r}")
  return int(value)


def semantic_speculative_generate(
  target: nnx.Module,
  draft: nnx.Module,
  target_probe: nnx.Module,
  draft_probe: nnx.Module,
  prompts: Any,
  prompt_lengths: Any,
  *,
  boundary_ids: Any,
  max_new_tokens: int,
  temperature: float = 0.6,
  top_k: int | None = None,
  top_p: float = 0.95,
  max_step_tokens: int = 500,
  bonus_temperature: float = 0.1,
  tau_min: float = 0.0,
  fast_path_topk: int = 2,
  end_think_id: int | None = None,
  max_answer_tokens: int = 2000,
  target_first_step: bool = True,
  eos_id: int | tuple[int, ...] | None = None,
  key: jax.Array | None = None,
  accept_key: jax.Array | None = None,
  pad_id: int = 0,
  stats: dict[str, Any] | None = None,
) -> GenerateOutput:
  """SemanticSpec decoding of right-padded prompts; returns a `GenerateOutput` like `generate`.

  Args:
    target: the zoo `Transformer` (or `models.from_hf` model) whose steps are the reference.
    draft: a cheaper model with the same vocabulary.
    target_probe: a `Probe` with `in_features == target.config.hidden_size`.
    draft_probe: a `Probe` with `in_features == draft.config.hidden_size` (same pooling).
    prompts: `[B, P]` right-padded token ids; `prompt_lengths` `[B]`, as in `generate`.
    prompt_lengths: `[B]` ints in `[1, P]`.
    boundary_ids: the step-ending token ids (`steps.boundary_ids_from_tokenizer`).
    max_new_tokens: budget per row (steps, bonuses and the answer together).
    temperature: sampling temperature of every step and the answer (spec 0.6).
    top_k: top-k of every step and the answer (None = off).
    top_p: nucleus of every step and the answer (spec 0.95).
    max_step_tokens: longest step (spec 500); a step that reaches it ends there.
    bonus_temperature: temperature of the bonus token after an accepted step (spec 0.1).
    tau_min: reject when `p_T / p_D < tau_min` (default 0; 0.5 = the HF variant).
    fast_path_topk: 2 (accept when every step token is in the target's top 2) or 0 (off).
    end_think_id: the end-of-thinking id that starts the answer phase (None: no phase).
    max_answer_tokens: the answer phase's budget (spec 2000).
    target_first_step: the target writes each row's first step (spec: yes).
    eos_id: None, an int or a tuple of ints; a row stops after emitting one.
    key: PRNG key of the sampling stream (required when `temperature > 0`; the acceptance
      stream is split from it unless `accept_key` is given).
    accept_key: optional PRNG key of the acceptance stream.
    pad_id: fill after a row's last token.
    stats: optional dict; receives `steps_proposed`, `steps_accepted`, `fast_path_accepts`,
      `probe_accepts`, `acceptance_rate` (accepted / proposed draft steps), `target_steps`
      (steps the target wrote), `target_passes` (target forward passes summed over rows: one
      per token the target sampled, one per verification), `emitted`,
      `tokens_per_target_pass` (`emitted / target_passes`; plain target decoding gives 1),
      `target_calls` / `draft_calls` (batched calls), `iterations`, `draft_steps` (one dict per verified
      draft step: `iteration`, `row`, `context_length`, `step` ids, `accepted`, `fast`,
      `p_target`, `p_draft`) and `total_s`.

  Returns:
    `GenerateOutput`: `tokens [B, max_new_tokens]`, `lengths`, `logprobs` (the target's raw
    log-probs of every emitted token, from one teacher-forced pass at the end),
    `sampling_logprobs` (under the distribution each token was drawn from: the draft's or the
    target's warped step distribution, or the bonus's) and `done` (stopped by an EOS).

  Raises:
    TypeError / ValueError: as `generate`, plus a vocabulary mismatch, a probe whose
      `in_features` is not its model's hidden size (the message names `target_probe` or
      `draft_probe`), bad `boundary_ids`, `tau_min` outside [0, 1], `fast_path_topk` not in
      {0, 2}, a bad `bonus_temperature` or `end_think_id` outside the vocabulary.
  """
  _check_models(target, draft, target_probe, draft_probe)
  vocab = target.config.vocab_size
  boundary_ids = check_boundary_ids(boundary_ids, vocab)
  max_step_tokens = _positive(max_step_tokens, "max_step_tokens")
  max_answer_tokens = _positive(max_answer_tokens, "max_answer_tokens")
  tau_min = check_tau_min(tau_min)
  fast_path_topk = check_fast_path_topk(fast_path_topk)
  if bonus_temperature is None or float(bonus_temperature) <= 0:
    raise ValueError(f"bonus_temperature must be > 0 (spec 0.1), got {bonus_temperature!r}")
  bonus_temperature = validate_sampling_params(bonus_temperature, top_k, top_p)[0]
  if end_think_id is not None and not 0 <= int(end_think_id) < vocab:
    raise ValueError(f"end_think_id {end_think_id} is outside the vocabulary [0, {vocab})")
  prompts, prompt_lengths, settings, key = check_generate_args(
    target,
    prompts,
    prompt_lengths,
    max_new_tokens=max_new_tokens,
    temperature=temperature,
    top_k=top_k,
    top_p=top_p,
    eos_id=eos_id,
    key=key,
    cache_size=None,
    pad_id=pad_id,
  )
  start_time = time.perf_counter()
  if key is None:  # Greedy steps; the bonus and the acceptance test still draw.
    key = jax.random.key(0)
  key_sample, key_accept = jax.random.split(key)
  if accept_key is not None:
    key_accept = accept_key
  eos_ids = settings.eos_ids
  think = () if end_think_id is None else (int(end_think_id),)
  step_stops = tuple(dict.fromkeys(boundary_ids + eos_ids + think))
  n_max = settings.max_new_tokens
  step_budget = min(max_step_tokens, n_max)
  answer_budget = min(max_answer_tokens, n_max)
  b, p = prompts.shape
  # Cache slots: the committed text (P + n_max) plus room for the widest block written at a
  # row's end (an uncached tail of at most max(P, step + 1) tokens and a step, rounded up).
  slots = p + n_max + _bucket(p + 2 * step_budget + 2)
  prompt_np = np.asarray(prompts)
  plen = np.asarray(prompt_lengths).astype(np.int64)
  buf = np.zeros((b, slots), np.int32)
  buf[:, :p] = np.where(np.arange(p)[None, :] < plen[:, None], prompt_np, 0)
  ctx = plen.copy()
  sampling_lp = np.zeros((b, n_max), np.float32)
  target_lp = np.zeros((b, n_max), np.float32)
  mode = np.full((b,), TARGET_STEP if target_first_step else DRAFT_STEP, np.int64)
  done_eos = np.zeros((b,), bool)
  counts = dict(
    steps_proposed=0,
    steps_accepted=0,
    fast_path_accepts=0,
    probe_accepts=0,
    target_steps=0,
    target_passes=0,
    target_calls=0,
    draft_calls=0,
  )
  log: list[dict[str, Any]] = []
  common = dict(temperature=settings.temperature, top_k=top_k, top_p=settings.top_p)
  rows_all = np.arange(b)

  def append(row: int, tokens: np.ndarray, lps: np.ndarray, raw: np.ndarray) -> int:
    """Writes tokens at the row's end (cut at the budget); returns how many were kept."""
    gen = int(ctx[row] - plen[row])
    n = min(len(tokens), n_max - gen)
    buf[row, ctx[row] : ctx[row] + n] = tokens[:n]
    sampling_lp[row, gen : gen + n] = lps[:n]
    target_lp[row, gen : gen + n] = raw[:n]
    ctx[row] += n
    if n and np.isin(tokens[:n], eos_ids).any():
      mode[row], done_eos[row] = DONE, True
    elif ctx[row] - plen[row] >= n_max:
      mode[row] = DONE
    return n

  class _Model:
    """One model's cache and, per row, how many leading positions it holds validly."""

    def __init__(self, model):
      self.model = model
      self.graphdef, self.state = nnx.split(model)
      self.cache = model.init_cache(b, slots)
      self.valid = np.zeros((b,), np.int64)

    def tail(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
      """Block starts and uncached tail lengths (>= 1): `rows` feed `state[valid:]`, the
      others only their last token (a no-op rewrite when cached, else overwritten later)."""
      starts = np.where(np.isin(rows_all, rows), np.minimum(self.valid, ctx - 1), ctx - 1)
      return starts, ctx - starts

    def sample(self, rows, budget_cap, stops, phase_key):
      starts, tails = self.tail(rows)
      width = _bucket(tails.max())
      block = np.take_along_axis(buf, starts[:, None] + np.arange(width)[None, :], axis=1)
      budgets = np.zeros((b,), np.int32)
      budgets[rows] = np.minimum(budget_cap, n_max - (ctx[rows] - plen[rows]))
      out, self.cache = generate_from_cache(
        self.model,
        self.cache,
        block,
        starts,
        ctx,
        max_new_tokens=budget_cap,
        budgets=budgets,
        eos_id=stops,
        key=phase_key if settings.temperature > 0 else None,
        pad_id=0,
        model_split=(self.graphdef, self.state),
        **common,
      )
      lengths = np.asarray(out.lengths)
      # Sampled rows hold their context and all but the newest token; the others their
      # context (the block was their whole tail) or what they held before.
      fed = np.where(budgets > 0, ctx + np.maximum(lengths - 1, 0), ctx)
      self.valid = np.where(np.isin(rows_all, rows), fed, self.valid)
      return (
        np.asarray(out.tokens),
        lengths,
        np.asarray(out.sampling_logprobs),
        np.asarray(out.logprobs),
      )

    def verify(self, score, p_state, rows, steps, step_len, score_key):
      """Feeds `tail + step` for `rows` (the others: their last token) and scores the step."""
      starts, tails = self.tail(rows)
      t = np.where(np.isin(rows_all, rows), step_len, 0)
      width = _bucket((tails + t).max())
      ids = np.take_along_axis(buf, starts[:, None] + np.arange(width)[None, :], axis=1)
      for r in rows:
        ids[r, tails[r] : tails[r] + t[r]] = steps[r, : t[r]]
      out, self.cache = score(
        self.state,
        p_state,
        self.cache,
        jnp.asarray(ids),
        jnp.asarray(starts, jnp.int32),
        jnp.asarray(tails, jnp.int32),
        jnp.asarray(np.maximum(t, 1), jnp.int32),
        score_key,
      )
      self.valid = np.where(np.isin(rows_all, rows), ctx, self.valid)  # Steps not committed.
      return out

    def commit(self, row: int, through: int) -> None:
      """Positions `< through` of `row` were fed with tokens now committed."""
      self.valid[row] = min(through, ctx[row])

  tgt, drf = _Model(target), _Model(draft)
  tp_def, tp_state = nnx.split(target_probe)
  dp_def, dp_state = nnx.split(draft_probe)
  score_spec = _Score(
    target_probe.pooling,
    step_budget,
    fast_path_topk,
    bonus_temperature,
    settings.top_k,
    settings.top_p,
    True,
  )
  score_target = _score_fn(tgt.graphdef, tp_def, score_spec)
  score_draft = _score_fn(
    drf.graphdef, dp_def, dataclasses.replace(score_spec, with_target_outputs=False)
  )

  it = 0
  while (mode != DONE).any():
    k_it = _fold_in(key_sample, it)
    rows = np.flatnonzero(mode == TARGET_STEP)
    if rows.size:  # 1. The target writes the step.
      tokens, lengths, lps, raw = tgt.sample(rows, step_budget, step_stops, _fold_in(k_it, 0))
      counts["target_calls"] += 1
      for r in rows:
        step = tokens[r, : lengths[r]]
        counts["target_steps"] += 1
        counts["target_passes"] += int(lengths[r])
        append(r, step, lps[r], raw[r])
        if mode[r] != DONE:
          mode[r] = ANSWER if think and think[0] in step else DRAFT_STEP
    # 2. Draft steps: every row in draft mode, including those whose target step was just
    # written (per row the order of operations is the spec's; one batched call fewer).
    fresh = np.flatnonzero(mode == DRAFT_STEP)
    if fresh.size:
      tokens, lengths, lps, _ = drf.sample(fresh, step_budget, step_stops, _fold_in(k_it, 1))
      counts["draft_calls"] += 1
      step_len = np.maximum(lengths, 1).astype(np.int64)
      context = ctx.copy()
      out_t = tgt.verify(score_target, tp_state, fresh, tokens, step_len, _fold_in(k_it, 2))
      out_d = drf.verify(score_draft, dp_state, fresh, tokens, step_len, _fold_in(k_it, 2))
      counts["target_calls"] += 1
      acc = accept_steps(
        _fold_in(key_accept, it),
        out_t["prob"],
        out_d["prob"],
        out_t["fast"] if fast_path_topk else None,
        tau_min,
      )
      accepted, fast = np.asarray(acc.accepted), np.asarray(acc.fast)
      p_t, p_d = np.asarray(out_t["prob"]), np.asarray(out_d["prob"])
      step_raw = np.asarray(out_t["step_logprobs"])
      bonus = np.asarray(out_t["bonus"])
      bonus_raw = np.asarray(out_t["bonus_logprob"])
      bonus_lp = np.asarray(out_t["bonus_sampling_logprob"])
      for r in fresh:
        step = tokens[r, : lengths[r]]
        if think and think[0] in step:  # Not verified: the target finishes from `state`.
          mode[r] = ANSWER
          continue
        counts["steps_proposed"] += 1
        counts["target_passes"] += 1
        log.append(
          dict(
            iteration=it,
            row=int(r),
            context_length=int(ctx[r]),
            step=tuple(int(x) for x in step),
            accepted=bool(accepted[r]),
            fast=bool(fast[r]),
            p_target=float(p_t[r]),
            p_draft=float(p_d[r]),
          )
        )
        if not accepted[r]:
          mode[r] = TARGET_STEP
          continue
        counts["steps_accepted"] += 1
        counts["fast_path_accepts" if fast[r] else "probe_accepts"] += 1
        append(r, step, lps[r], step_raw[r])
        # Both passes fed `state + d`; the bonus (if any) is the new uncached last token.
        tgt.commit(r, int(context[r] + len(step)))
        drf.commit(r, int(context[r] + len(step)))
        if mode[r] == DONE:
          continue
        append(r, bonus[r : r + 1], bonus_lp[r : r + 1], bonus_raw[r : r + 1])
        if mode[r] != DONE and think and bonus[r] == think[0]:
          mode[r] = ANSWER
    rows = np.flatnonzero(mode == ANSWER)
    if rows.size:  # 3. The target alone writes the answer.
      tokens, lengths, lps, raw = tgt.sample(rows, answer_budget, eos_ids, _fold_in(k_it, 3))
      counts["target_calls"] += 1
      for r in rows:
        counts["target_passes"] += int(lengths[r])
        append(r, tokens[r, : lengths[r]], lps[r], raw[r])
        mode[r] = DONE
    it += 1

  gen = (ctx - plen).astype(np.int32)
  real = np.arange(n_max)[None, :] < gen[:, None]
  index = np.minimum(plen[:, None] + np.arange(n_max)[None, :], buf.shape[1] - 1)
  tokens = np.where(real, np.take_along_axis(buf, index, axis=1), settings.pad_id)
  if stats is not None:
    emitted = int(gen.sum())
    stats.update(counts)
    stats.update(
      acceptance_rate=counts["steps_accepted"] / max(counts["steps_proposed"], 1),
      emitted=emitted,
      tokens_per_target_pass=emitted / max(counts["target_passes"], 1),
      iterations=it,
      draft_steps=log,
      total_s=time.perf_counter() - start_time,
    )
  return GenerateOutput(
    tokens=jnp.asarray(tokens, jnp.int32),
    lengths=jnp.asarray(gen),
    logprobs=jnp.asarray(np.where(real, target_lp, 0.0), jnp.float32),
    sampling_logprobs=jnp.asarray(np.where(real, sampling_lp, 0.0), jnp.float32),
    done=jnp.asarray(done_eos),
  )
