"""The decoding methods the speculative-decoding experiment compares: a registry of factories.

A decoder is named `family` or `family@param` in `config.decoders` (as mixers are named in the
recall sweeps): `target` (plain `generate` on the target, the baseline every row is compared
with) and `spec@k` (token-level speculative sampling, `speculative_generate` with k drafts a
target pass; exact: greedy output equals the target's token for token). A family is a factory
registered in `DECODERS`: `factory(param, config) -> Decoder`, where `param` is the text after
`@` (None without one) and `config` the experiment config (a family may read options from it).

Extension point (SemanticSpec, and any later method): register a family here, e.g.

  @DECODERS.register("semantic")
  def semantic(param, config):          # param: the acceptance threshold, "0.5"
    threshold = float(param)
    def run(pair, prompts, lengths, *, max_new_tokens, temperature, key):
      out = semantic_generate(pair.target, pair.draft, pair.extras["probes"], ...)
      return out, {"row_target_calls": ..., "tokens_per_target_call": ...,
                   "acceptance_rate": steps_accepted / steps_proposed}
    return Decoder(f"semantic@{param}", "semantic", threshold, lossless=False, run=run)

then list `"semantic@0.3", "semantic@0.5", "semantic@0.7"` in `config.decoders`: each becomes
a row of the same table (the "k / threshold" column holds `param`; "lossless" says whether
the greedy-identity check applies; "same tokens as target" is then a measurement, not a
check) and, when it reports `acceptance_rate_by_position`, a line of the acceptance plot
(positions are drafts for token-level rows, steps for a step-level method).

A decoder's `run(pair, prompts, lengths, *, max_new_tokens, temperature, key)` returns
`(GenerateOutput, stats)`; every stats key is optional: `row_target_calls` (target forward
passes summed over rows, prefill included), `tokens_per_target_call`, `acceptance_rate`,
`acceptance_rate_by_position` (a sequence; NaN where nothing was proposed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from reasoning_jax.generate import GenerateOutput, generate
from reasoning_jax.registry import Registry
from reasoning_jax.speculative import speculative_generate

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


@DECODERS.register("target")
def _target(param: str | None, config: Any) -> Decoder:
  if param is not None:
    raise ValueError(f"decoder 'target' takes no parameter, got 'target@{param}'")

  def run(pair, prompts, lengths, *, max_new_tokens, temperature, key):
    out = generate(
      pair.target,
      prompts,
      lengths,
      max_new_tokens=max_new_tokens,
      temperature=temperature,
      eos_id=pair.eos_id,
      key=key,
    )
    emitted = int(np.asarray(out.lengths).sum())
    # One target pass per emitted token: the prefill gives the first, each step one more.
    return out, {"row_target_calls": emitted, "tokens_per_target_call": 1.0}

  return Decoder("target", "target", None, True, run)


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
