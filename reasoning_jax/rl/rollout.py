"""Rollouts: sample G completions per prompt, score them, and build the padded RL batch.

`collect_rollouts` turns a batch of prompts into the `[N, L]` training batch that
the pure losses in `reasoning_jax.rl.losses` consume (N = prompts x G):

  prompts [P_b, P] --repeat G--> generate (KV cache, on the mesh) --> decode text
  --> verifier rewards [N] --> sequences prompt+completion [N, L] with a completion
  mask --> old log-probs under the rollout parameters (the trainer's numerics)
  and, when KL is used, reference log-probs.

Rows of one prompt share a group id. The sampler's own log-probs of the sampled
tokens (raw model distribution) are kept as `sampler_logp` for the truncated
importance-sampling correction of sampler/trainer mismatch.

DAPO's dynamic sampling ("DAPO: An Open-Source LLM Reinforcement Learning
System at Scale", arXiv:2503.14476) is `collect_dynamic`: it over-samples prompt
batches and keeps only groups whose rewards are not all equal, refilling until
the batch is full (or a retry budget is spent, which is logged).

Nothing here knows about losses; nothing in the losses knows about models.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterator, Mapping

import jax
import numpy as np
from absl import logging
from flax import nnx

from reasoning_jax import sharding as sharding_lib
from reasoning_jax.generate import assemble_sequences, generate
from reasoning_jax.speculative import speculative_generate
from reasoning_jax.logprobs import sequence_logprobs
from reasoning_jax.rewards import REWARD_FIELDS


@dataclasses.dataclass
class RolloutBatch:
  """One RL batch (host numpy arrays; `shard_batch` places the numeric ones on a mesh).

  Attributes:
    tokens: `[N, L]` int32 prompt + completion, right-padded.
    mask: `[N, L]` float32, 1 on completion tokens (incl. EOS).
    old_logp: `[N, L]` float32 log-probs of the tokens under the rollout params, or None
      when not recomputed (one on-policy update: the update's own forward pass gives them).
    sampler_logp: `[N, L]` float32 log-probs reported by the sampler.
    ref_logp: `[N, L]` float32 under the reference params, or None.
    rewards: `[N]` float32 verifier rewards.
    group_ids: `[N]` int32, one id per prompt.
    completion_lengths: `[N]` int32 generated tokens (incl. EOS).
    truncated: `[N]` bool, True where the budget ran out before EOS.
    completions: list of N decoded completion strings.
    token_rewards: `[N, L]` float32 per-token rewards on the completion columns (a judge's
      dense rewards, `collect_rollouts(scorer=)`), or None.
    prompt_lengths: `[N]` int32 prompt tokens of each row (the completion starts there), or
      None for a batch built without them.
    answers: list of N reference answers the rewards were checked against, or None.
  """

  tokens: np.ndarray
  mask: np.ndarray
  old_logp: np.ndarray | None
  sampler_logp: np.ndarray
  ref_logp: np.ndarray | None
  rewards: np.ndarray
  group_ids: np.ndarray
  completion_lengths: np.ndarray
  truncated: np.ndarray
  completions: list[str]
  token_rewards: np.ndarray | None = None
  prompt_lengths: np.ndarray | None = None
  answers: list[str] | None = None

  @property
  def size(self) -> int:
    return int(self.tokens.shape[0])

  def arrays(self) -> dict[str, np.ndarray]:
    """The numeric fields, for `shard_batch` / the jitted update."""
    out = {
      k: getattr(self, k)
      for k in (
        "tokens",
        "mask",
        "old_logp",
        "sampler_logp",
        "rewards",
        "group_ids",
        "completion_lengths",
      )
    }
    if self.ref_logp is not None:
      out["ref_logp"] = self.ref_logp
    return {k: v for k, v in out.items() if v is not None}

  def select(self, rows: np.ndarray) -> "RolloutBatch":
    rows = np.asarray(rows)
    pick = lambda x: None if x is None else x[rows]  # noqa: E731
    return RolloutBatch(
      tokens=self.tokens[rows],
      mask=self.mask[rows],
      old_logp=pick(self.old_logp),
      sampler_logp=self.sampler_logp[rows],
      ref_logp=pick(self.ref_logp),
      rewards=self.rewards[rows],
      group_ids=self.group_ids[rows],
      completion_lengths=self.completion_lengths[rows],
      truncated=self.truncated[rows],
      completions=[self.completions[i] for i in rows],
      token_rewards=pick(self.token_rewards),
      prompt_lengths=pick(self.prompt_lengths),
      answers=None if self.answers is None else [self.answers[i] for i in rows],
    )

  @staticmethod
  def concatenate(batches: list["RolloutBatch"]) -> "RolloutBatch":
    width = max(b.tokens.shape[1] for b in batches)

    def cat(name):
      parts = [getattr(b, name) for b in batches]
      if parts[0] is None:
        return None
      if parts[0].ndim == 2:
        parts = [np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in parts]
      return np.concatenate(parts)

    offset, group_ids = 0, []
    for b in batches:  # Keep group ids distinct across the concatenated batches.
      group_ids.append(b.group_ids + offset)
      offset += int(b.group_ids.max()) + 1 if b.size else 0
    return RolloutBatch(
      tokens=cat("tokens"),
      mask=cat("mask"),
      old_logp=cat("old_logp"),
      sampler_logp=cat("sampler_logp"),
      ref_logp=cat("ref_logp"),
      rewards=cat("rewards"),
      group_ids=np.unique(np.concatenate(group_ids), return_inverse=True)[1].astype(np.int32),
      completion_lengths=cat("completion_lengths"),
      truncated=cat("truncated"),
      completions=sum((b.completions for b in batches), []),
      token_rewards=cat("token_rewards"),
      prompt_lengths=cat("prompt_lengths"),
      answers=None
      if any(b.answers is None for b in batches)
      else sum((b.answers for b in batches), []),
    )


def _place_sampler_logp(prompt_lengths, logprobs, completion_lengths, width):
  out = np.zeros((len(prompt_lengths), width), np.float32)
  for i, (pl, cl) in enumerate(zip(prompt_lengths, completion_lengths)):
    out[i, pl : pl + cl] = logprobs[i, :cl]
  return out


def make_logprob_fn(
  graphdef: nnx.GraphDef,
  *,
  chunk_size: int | None = None,
  temperature: float = 1.0,
  window: int | None = None,
) -> Callable[..., jax.Array]:
  """A jitted `fn(params, tokens, mask) -> logp [N, L]` (the trainer's numerics).

  `window`: see `sequence_logprobs` (the completion budget, for completion masks only).
  """

  @jax.jit
  def logprob_fn(params, tokens, mask):
    model = nnx.merge(graphdef, params)
    logp, _ = sequence_logprobs(
      model, tokens, mask, chunk_size=chunk_size, temperature=temperature, window=window
    )
    return logp

  return logprob_fn


def _tick(timings: dict[str, float] | None, name: str, since: float) -> float:
  """Adds the seconds since `since` to `timings[name]` (if profiling); returns now."""
  now = time.perf_counter()
  if timings is not None:
    timings[name] = timings.get(name, 0.0) + now - since
  return now


def collect_rollouts(
  graphdef: nnx.GraphDef,
  params: Any,
  prompt_batch: Mapping[str, Any],
  *,
  tokenizer: Any,
  reward_fn: Callable[..., np.ndarray],
  group_size: int,
  max_new_tokens: int,
  key: jax.Array,
  temperature: float = 1.0,
  top_k: int | None = None,
  top_p: float = 1.0,
  logprob_fn: Callable[..., jax.Array] | None = None,
  ref_params: Any = None,
  ref_logprob_fn: Callable[..., jax.Array] | None = None,
  fields: tuple[str, ...] = REWARD_FIELDS,
  recompute_old_logp: bool = True,
  eos_id: int | tuple[int, ...] | None = None,
  timings: dict[str, float] | None = None,
  draft: nnx.Module | None = None,
  num_draft: int = 4,
  speculative_stats: dict[str, Any] | None = None,
  scorer: Callable[..., Any] | None = None,
  scorer_stats: dict[str, float] | None = None,
  mesh: jax.sharding.Mesh | None = None,
) -> RolloutBatch:
  """Samples `group_size` completions for every prompt and scores them.

  Args:
    graphdef, params: the policy (`nnx.split(model, nnx.Param)`); params may be sharded.
    prompt_batch: `prompts [B, P]`, `prompt_lengths [B]`, `answer [B]` and any
      per-example `fields` the reward needs (from `make_prompt_dataset`).
    tokenizer: decodes completions (its `eos_id` stops generation).
    reward_fn: `fn(completions: list[str], answers: list[str], **fields) -> [N]`.
    group_size: G completions per prompt (G >= 2 for group-relative advantages).
    max_new_tokens: completion budget.
    key: PRNG key for sampling.
    temperature, top_k, top_p: sampling settings.
    logprob_fn: from `make_logprob_fn` (recomputes old/ref log-probs).
    ref_params: reference policy params (only when a KL term is used).
    ref_logprob_fn: computes the reference log-probs from `ref_params` (default
      `logprob_fn`). LoRA passes one built on the adapters-off graphdef with the policy's own
      params: the base model, no second copy.
    fields: per-example fields forwarded to `reward_fn`.
    recompute_old_logp: run the trainer's forward pass for `old_logp`. With exactly one
      update per rollout (on-policy) the update's own forward pass under the same params
      gives them, so the trainer skips this pass (`old_logp=None`).
    eos_id: ids that end a completion (one or several, e.g. from generation_config.json);
      default the tokenizer's `eos_id`.
    timings: optional dict to which the seconds of each phase are added: `prefill_s`,
      `decode_s` (from `generate`), `score_s` (detokenise, rewards, batch assembly on the
      host), `old_logp_s` and `ref_logp_s` (the extra forward passes, when run).
    draft: a draft model sharing the policy's tokenizer: completions come from
      `speculative_generate(policy, draft, ...)` instead of `generate`. They follow the
      policy's distribution exactly and carry the policy's log-probs, so importance ratios
      are unchanged; only the decode time differs.
    num_draft: drafts per policy pass with `draft`.
    speculative_stats: optional dict filled with `speculative_generate`'s `stats` (tokens
      per target call, acceptance rate, ...) when `draft` is given.
    scorer: replaces the verifier's rewards with a model's (e.g. `rl.judge_scorer`'s rubric
      judge): called as `scorer(tokens=, mask=, completions=, verifier_rewards=, **fields)`
      with the prompts' `scorer.fields`; returns an object with `rewards [N]`,
      `token_rewards [N, L]` (or None) and `stats`. Its seconds go to `timings["judge_s"]`.
    scorer_stats: optional dict that receives the scorer's `stats`.
    mesh: split the rows (prompts x G) over this mesh's batch axes (`data`, `fsdp`) for
      generation and the old/ref log-prob passes, padded with copies of the last row to a
      multiple of those shards (dropped again), so each device decodes its share instead of
      every device decoding every row. The params (and `draft`'s) should live on this mesh.
      The speculative decode is split too: its padding rows stop at once and count in no
      acceptance statistic (`speculative_generate(rows=)`). `None` leaves every pass unsplit.
  """
  if group_size < 1:
    raise ValueError(f"group_size must be >= 1, got {group_size}")
  prompts = np.repeat(np.asarray(prompt_batch["prompts"]), group_size, axis=0)
  prompt_lengths = np.repeat(np.asarray(prompt_batch["prompt_lengths"]), group_size, axis=0)
  n_prompts = len(prompt_batch["prompt_lengths"])
  model = nnx.merge(graphdef, params)
  sampling = dict(
    max_new_tokens=max_new_tokens,
    temperature=temperature,
    top_k=top_k,
    top_p=top_p,
    eos_id=tokenizer.eos_id if eos_id is None else eos_id,
    key=key,
  )
  rows = len(prompt_lengths)
  if draft is None:
    out = generate(
      model,
      *sharding_lib.place_padded_rows(mesh, prompts, prompt_lengths),
      **sampling,
      timings=timings,
    )
    out = jax.tree.map(lambda x: x[:rows], sharding_lib.host_rows(out))
  else:
    spec_stats: dict[str, Any] = {}
    out = speculative_generate(
      model,
      draft,
      *sharding_lib.place_padded_rows(mesh, prompts, prompt_lengths),
      **sampling,
      num_draft=num_draft,
      stats=spec_stats,
      rows=rows,  # the padding rows count in no acceptance statistic
    )
    out = jax.tree.map(lambda x: x[:rows], sharding_lib.host_rows(out))
    if timings is not None:
      for phase in ("prefill_s", "decode_s"):
        timings[phase] = timings.get(phase, 0.0) + spec_stats[phase]
    if speculative_stats is not None:
      speculative_stats.update(spec_stats)
  clock = time.perf_counter()
  out = jax.device_get(out)
  completion_tokens = np.asarray(out.tokens)
  lengths = np.asarray(out.lengths)
  texts = tokenizer.decode_batch(completion_tokens, lengths)
  answers = [
    str(a) for a in np.repeat(np.asarray(prompt_batch["answer"], dtype=object), group_size)
  ]
  extra = _repeated(prompt_batch, fields, group_size)
  rewards = np.asarray(reward_fn(texts, answers, **extra), np.float32)
  if rewards.shape != (len(texts),) or not np.isfinite(rewards).all():
    raise ValueError(
      f"reward_fn must return {len(texts)} finite rewards, got shape "
      f"{rewards.shape} (finite: {np.isfinite(rewards).all()})"
    )
  tokens, mask = assemble_sequences(prompts, prompt_lengths, completion_tokens, lengths)
  sampler_logp = _place_sampler_logp(
    prompt_lengths, np.asarray(out.logprobs), lengths, tokens.shape[1]
  )
  clock = _tick(timings, "score_s", clock)
  token_rewards = None
  if scorer is not None:
    scored = scorer(
      tokens=tokens,
      mask=mask,
      completions=texts,
      verifier_rewards=rewards,
      **_repeated(prompt_batch, getattr(scorer, "fields", ()), group_size),
    )
    rewards = np.asarray(scored.rewards, np.float32)
    token_rewards = scored.token_rewards
    if scorer_stats is not None:
      scorer_stats.update(scored.stats)
    clock = _tick(timings, "judge_s", clock)
  if logprob_fn is None:
    logprob_fn = make_logprob_fn(graphdef)

  def logprobs(fn, fn_params):
    return sharding_lib.host_rows(
      fn(fn_params, *sharding_lib.place_padded_rows(mesh, tokens, mask))
    )[:rows]

  old_logp = logprobs(logprob_fn, params) if recompute_old_logp else None
  if recompute_old_logp:
    clock = _tick(timings, "old_logp_s", clock)
  ref_logp = None
  if ref_params is not None:
    ref_fn = logprob_fn if ref_logprob_fn is None else ref_logprob_fn
    ref_logp = logprobs(ref_fn, ref_params)
    _tick(timings, "ref_logp_s", clock)
  return RolloutBatch(
    tokens=tokens,
    mask=mask,
    old_logp=old_logp,
    sampler_logp=sampler_logp,
    ref_logp=ref_logp,
    rewards=rewards,
    group_ids=np.repeat(np.arange(n_prompts, dtype=np.int32), group_size),
    completion_lengths=lengths.astype(np.int32),
    truncated=~np.asarray(out.done),
    completions=texts,
    token_rewards=token_rewards,
    prompt_lengths=prompt_lengths.astype(np.int32),
    answers=answers,
  )


def _repeated(prompt_batch, names, group_size) -> dict[str, list]:
  """The prompts' `names` fields, each value repeated for the group's completions."""
  return {
    name: list(np.repeat(np.asarray(prompt_batch[name], dtype=object), group_size))
    for name in names
    if name in prompt_batch
  }


def mixed_outcome_groups(rewards: np.ndarray, group_ids: np.ndarray) -> np.ndarray:
  """Boolean `[N]`: rows whose group has at least two distinct rewards (DAPO filter)."""
  keep = np.zeros(len(rewards), bool)
  for g in np.unique(group_ids):
    rows = group_ids == g
    keep[rows] = np.ptp(rewards[rows]) > 0
  return keep


def collect_dynamic(
  prompt_iter: Iterator[Mapping[str, Any]],
  num_groups: int,
  *,
  max_batches: int,
  key: jax.Array,
  **rollout_kwargs,
) -> tuple[RolloutBatch, dict[str, float]]:
  """DAPO dynamic sampling: refill until `num_groups` mixed-outcome groups are collected.

  Draws prompt batches from `prompt_iter`, keeps only groups with mixed rewards,
  and stops once `num_groups` are kept or `max_batches` batches were sampled
  (then the batch is topped up with the remaining uniform groups, and the
  shortfall is logged and reported in the stats).
  """
  kept, spare, sampled = [], [], 0
  n_kept = 0
  while n_kept < num_groups and sampled < max_batches:
    batch = collect_rollouts(
      prompt_batch=next(prompt_iter), key=jax.random.fold_in(key, sampled), **rollout_kwargs
    )
    sampled += 1
    mixed = mixed_outcome_groups(batch.rewards, batch.group_ids)
    groups = np.unique(batch.group_ids)
    for g in groups:
      rows = np.nonzero(batch.group_ids == g)[0]
      (kept if mixed[rows[0]] else spare).append(batch.select(rows))
    n_kept = len(kept)
  shortfall = max(0, num_groups - len(kept))
  if shortfall:
    logging.warning(
      "dynamic sampling: only %d of %d groups had mixed rewards after %d "
      "batches; topping up with %d uniform groups",
      len(kept),
      num_groups,
      sampled,
      shortfall,
    )
  chosen = (kept + spare)[:num_groups]
  stats = {
    "dynamic/batches_sampled": float(sampled),
    "dynamic/mixed_groups": float(min(len(kept), num_groups)),
    "dynamic/shortfall": float(shortfall),
  }
  return RolloutBatch.concatenate(chosen), stats
