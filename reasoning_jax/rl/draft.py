"""`config.draft`: a draft model that speeds up the RL rollouts by speculative decoding.

  config.draft = {"hf_dir": "/models/Qwen3-0.6B", "num_draft": 4}    # e.g. for a Qwen3-8B policy

With a draft, `collect_rollouts` samples with `speculative_generate(policy, draft, ...)`.
Completions follow the current policy's distribution exactly and carry the policy's own
log-probs, so advantages, importance ratios and every loss are unchanged; only the decode
time changes. The draft is frozen: as RL moves the policy away from it the acceptance rate
falls, which `rollout/spec_acceptance` and `rollout/spec_tokens_per_call` show. Any Hugging
Face folder works (a model of the zoo trained here is exported to one with `to_hf`); it
must share the policy's tokenizer and hold position-indexed caches only (attention layers).
Everything is checked before the first step; errors are `ConfigError`s naming
`config.draft.<key>`.
"""

from __future__ import annotations

from typing import Any

from flax import nnx

from reasoning_jax.models.source import SourceError, build_model, resolve_source
from reasoning_jax.speculative import check_pair, check_tokenizers

DRAFT_KEYS = ("hf_dir", "tokenizer", "num_draft")


def draft_spec(config: Any, *, error: type[Exception] = ValueError) -> dict[str, Any] | None:
  """`config.draft` validated: None (no draft) or `{hf_dir, tokenizer, num_draft}`."""
  draft = config.get("draft")
  if draft is None:
    return None
  draft = dict(draft)
  unknown = set(draft) - set(DRAFT_KEYS)
  if unknown:
    raise error(f"config.draft has unknown keys {sorted(unknown)}; allowed: {list(DRAFT_KEYS)}")
  hf_dir = draft.get("hf_dir") or ""
  if not isinstance(hf_dir, str):
    raise error(f"config.draft.hf_dir must be a folder path, got {hf_dir!r}")
  if not hf_dir:
    return None  # An empty folder switches the draft off (the config files' default).
  num_draft = draft.get("num_draft", 4)
  if isinstance(num_draft, bool) or not isinstance(num_draft, int) or num_draft < 1:
    raise error(f"config.draft.num_draft must be an int >= 1, got {num_draft!r}")
  tokenizer = draft.get("tokenizer") or ""
  return {"hf_dir": hf_dir, "tokenizer": tokenizer, "num_draft": num_draft}


def build_draft(
  spec: dict[str, Any], policy: nnx.Module, tokenizer: Any, mesh: Any, *, error=ValueError
) -> nnx.Module:
  """The draft model of `spec`, on `mesh`, checked against the policy and its tokenizer."""
  try:
    source = resolve_source(hf_dir=spec["hf_dir"], tokenizer=spec["tokenizer"], flag="config.draft")
  except SourceError as e:
    raise error(str(e)) from None
  try:
    check_tokenizers(tokenizer, source.tokenizer)
  except ValueError as e:
    raise error(f"config.draft.hf_dir: {e}") from None
  draft = build_model(source, mesh=mesh)
  try:
    check_pair(policy, draft)
  except ValueError as e:
    raise error(f"config.draft.hf_dir: {e}") from None
  return draft
