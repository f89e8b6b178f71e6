"""The decoding methods the speculative-decoding experiment compares: a registry of factories.

A decoder is named `family` or `family@param` in `config.decoders` (as mixers are named in the
recall sweeps): `target` (plain `generate` on the target, the baseline every row is compared
with), `draft` (plain `generate` on the draft alone, a reference row) and `spec@k`
(token-level speculative sampling, `speculative_generate` with k drafts a target pass; exact:
greedy output equals the target's token for token). A family is a factory
registered in `DECODERS`: `factory(param, config) -> Decoder`, where `param` is the text after
`@` (None without one) and `config` the experiment config (a family may read options from it).

Step-level rows (SemanticSpec, `semantic_speculative_generate`): `semantic@<tau_min>` (the
top-2 fast path on) and `semantic_nofast@<tau_min>` (off, every step decided by the probes),
`tau_min` the floor on `p_T / p_D` (0 = none). They read the probes and boundary ids from
`pair.extras` (filled by `evaluate.speculative.probes.prepare_probes`, which `run` calls when
such a row is listed) and options from `config.semantic`; not lossless, so their "same tokens
as target" is a measurement, and their acceptance curve is by step position (the count of
boundary ids before the step, plus one), not by draft position.

Extension point (any later method): register a family here, e.g.

  @DECODERS.register("mymethod")
  def mymethod(param, config):          # param: the text after "@", "0.5"
    threshold = float(param)
    def run(pair, prompts, lengths, *, max_new_tokens, temperature, key):
      out = my_generate(pair.target, pair.draft, pair.extras["state"], ...)
      return out, {"row_target_calls": ..., "tokens_per_target_call": ...,
                   "acceptance_rate": accepted / proposed}
    return Decoder(f"mymethod@{param}", "mymethod", threshold, lossless=False, run=run)

then list `"mymethod@0.3", "mymethod@0.5"` in `config.decoders`: each becomes a row of the
same table (the "k / threshold" column holds `param`; "lossless" says whether the
greedy-identity check applies; "same tokens as target" is then a measurement, not a check)
and, when it reports `acceptance_rate_by_position`, a line of the acceptance plot.

A decoder's `run(pair, prompts, lengths, *, max_new_tokens, temperature, key)` returns
`(GenerateOutput, stats)`; every stats key is optional: `row_target_calls` (target forward
passes summed over rows, prefill included), `tokens_per_target_call`, `acceptance_rate`,
`acceptance_rate_by_position` (a sequence; NaN where nothing was proposed), and for
step-level rows `fast_accept_rate`, `probe_accept_rate` (accepts by the fast path / by the
probes, over proposed steps), `draft_steps_per_row` and `target_steps_per_row`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from reasoning_jax.generate import GenerateOutput, generate
from reasoning_jax.registry import Registry
from reasoning_jax.speculative import semantic_speculative_generate, speculative_generate

__all__ = ["DECODERS", "Decoder", "make_decoder", "make_decoders"]

RunFn = Callable[..., tuple[GenerateOutput, dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class Decoder:
  """One decoding method of the comparison.

  Attributes:
    name: the row's name, as written in `config.decoders` ("spec@4").
    family: the registered factory ("target", "spec", "semantic", ...).
    param: the family's parameter (k for `spec`, a threshold for a step-level method), or None.
    lossless: whether the method claims the target's distribution exactly (then greedy
      outputs must equal the target's, which the experiment checks).
    run: `(pair, prompts, lengths, *, max_new_tokens, temperature, key) -> (out, stats)`.
  """

  name: str
  family: str
  param: float | None
  lossless: bool
  run: RunFn


# family -> factory(param: str | None, config) -> Decoder.
DECODERS: Registry[Callable[[str | None, Any], Decoder]] = Registry("decoder")


def _plain_generate(role: str, param: str | None) -> RunFn:
  """`run` for plain `generate` on `pair.<role>` (no parameter allowed)."""
  if param is not None:
    raise ValueError(f"decoder {role!r} takes no parameter, got '{role}@{param}'")

  def run(pair, prompts, lengths, *, max_new_tokens, temperature, key):
    return generate(
      getattr(pair, role),
      prompts,
      lengths,
      max_new_tokens=max_new_tokens,
      temperature=temperature,
      eos_id=pair.eos_id,
      key=key,
    )

  return run


@DECODERS.register("target")
def _target(param: str | None, config: Any) -> Decoder:
  plain = _plain_generate("target", param)

  def run(pair, prompts, lengths, **kwargs):
    out = plain(pair, prompts, lengths, **kwargs)
    emitted = int(np.asarray(out.lengths).sum())
    # One target pass per emitted token: the prefill gives the first, each step one more.
    return out, {"row_target_calls": emitted, "tokens_per_target_call": 1.0}

  return Decoder("target", "target", None, True, run)


@DECODERS.register("draft")
def _draft(param: str | None, config: Any) -> Decoder:
  """Plain `generate` on the draft alone: the reference a not-lossless method can fall to."""
  plain = _plain_generate("draft", param)

  def run(pair, prompts, lengths, **kwargs):
    return plain(pair, prompts, lengths, **kwargs), {}  # No target pass: n/a.

  return Decoder("draft", "draft", None, False, run)


@DECODERS.register("spec")
def _spec(param: str | None, config: Any) -> Decoder:
  try:
    k = int(param)
  except (TypeError, ValueError):
    raise ValueError(
      f"decoder 'spec' needs the number of drafts, e.g. 'spec@4', got {param!r}"
    ) from None
  if k < 1:
    raise ValueError(f"decoder 'spec@{param}': k must be >= 1")

  def run(pair, prompts, lengths, *, max_new_tokens, temperature, key):
    stats: dict[str, Any] = {}
    out = speculative_generate(
      pair.target,
      pair.draft,
      prompts,
      lengths,
      max_new_tokens=max_new_tokens,
      num_draft=k,
      temperature=temperature,
      eos_id=pair.eos_id,
      key=key,
      stats=stats,
    )
    return out, stats

  return Decoder(f"spec@{k}", "spec", float(k), True, run)


def _step_positions(stats, lengths, tokens, boundary_ids, positions: int) -> np.ndarray:
  """Acceptance rate of verified draft steps by their step position in the row's output
  (1 = the completion's first step; the count of boundary ids before it, plus one)."""
  accepted, proposed = np.zeros(positions), np.zeros(positions)
  lengths, tokens = np.asarray(lengths), np.asarray(tokens)
  bounds = np.asarray(boundary_ids)
  for entry in stats["draft_steps"]:
    r = entry["row"]
    before = tokens[r, : entry["context_length"] - int(lengths[r])]
    pos = int(np.isin(before, bounds).sum())
    if pos < positions:
      proposed[pos] += 1
      accepted[pos] += entry["accepted"]
  return np.where(proposed > 0, accepted / np.maximum(proposed, 1), np.nan)


def _semantic_factory(family: str, fast_path_topk: int):
  def factory(param: str | None, config: Any) -> Decoder:
    try:
      tau_min = float(param)
    except (TypeError, ValueError):
      raise ValueError(
        f"decoder {family!r} needs the ratio floor tau_min, e.g. '{family}@0.5', got {param!r}"
      ) from None
    if not 0.0 <= tau_min <= 1.0:
      raise ValueError(f"decoder '{family}@{param}': tau_min must be in [0, 1]")
    options = config.semantic if config is not None and "semantic" in config else None

    def run(pair, prompts, lengths, *, max_new_tokens, temperature, key):
      if "probes" not in pair.extras:
        raise ValueError(
          f"decoder {family!r} needs the pair's probes (evaluate.speculative.probes."
          "prepare_probes fills pair.extras)"
        )
      probes, bounds = pair.extras["probes"], pair.extras["boundary_ids"]
      stats: dict[str, Any] = {}
      out = semantic_speculative_generate(
        pair.target,
        pair.draft,
        probes["target"],
        probes["draft"],
        prompts,
        lengths,
        boundary_ids=bounds,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=options.top_p if options else 1.0,
        max_step_tokens=options.max_step_tokens if options else 500,
        bonus_temperature=options.bonus_temperature if options else 0.1,
        tau_min=tau_min,
        fast_path_topk=fast_path_topk,
        eos_id=pair.eos_id,
        key=key,
        stats=stats,
      )
      proposed = max(stats["steps_proposed"], 1)
      rows = int(np.asarray(lengths).shape[0])
      return out, {
        "row_target_calls": float(stats["target_passes"]),
        "tokens_per_target_call": float(stats["tokens_per_target_pass"]),
        "acceptance_rate": float(stats["acceptance_rate"]),
        "acceptance_rate_by_position": _step_positions(
          stats, lengths, out.tokens, bounds, options.positions if options else 6
        ),
        "fast_accept_rate": stats["fast_path_accepts"] / proposed,
        "probe_accept_rate": stats["probe_accepts"] / proposed,
        "draft_steps_per_row": stats["steps_proposed"] / rows,
        "target_steps_per_row": stats["target_steps"] / rows,
      }

    return Decoder(f"{family}@{param}", family, tau_min, False, run)

  return factory


# SemanticSpec (`semantic_speculative_generate`): `semantic@<tau_min>` with the top-2 fast path,
# `semantic_nofast@<tau_min>` with it off (every step decided by the probes). Needs the probes
# of `evaluate.speculative.probes` (the experiment builds them first); options in
# `config.semantic`. Not lossless: "same tokens as target" is a measurement.
DECODERS.register("semantic")(_semantic_factory("semantic", 2))
DECODERS.register("semantic_nofast")(_semantic_factory("semantic_nofast", 0))


def make_decoder(name: str, config: Any = None) -> Decoder:
  """The decoder `family[@param]`; KeyError naming the registered families when unknown."""
  if not isinstance(name, str) or not name:
    raise ValueError(f"a decoder name must be a non-empty str, got {name!r}")
  family, _, param = name.partition("@")
  return DECODERS.get(family)(param or None, config)


def make_decoders(names: Sequence[str], config: Any = None) -> list[Decoder]:
  """The decoders of `config.decoders`, `target` first (every row is compared with it)."""
  names = list(dict.fromkeys(names))
  if "target" not in names:
    raise ValueError(f"config.decoders must include 'target' (the baseline), got {names}")
  names.remove("target")
  return [make_decoder("target", config)] + [make_decoder(n, config) for n in names]
