"""`R2Router`: a fitted router (heads, prices, lam scale) and `choose`, its per-query decision.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue et al., arXiv:2602.02823),
`shared/methods/inference.md` section 6.4's reference pipeline without the encoder:
`predict` (quality heads) -> `cost` (prices x budgets) -> `score` (argmax over (LLM, budget)).
It takes query embeddings `Z [N, D]`; the frozen encoder and `route_and_generate` sit on top
and pass the decision's model names and budgets to `generate`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from reasoning_jax.routing.config import RouterConfig
from reasoning_jax.routing.cost import estimate_input_tokens, price_arrays, router_cost_table
from reasoning_jax.routing.heads import (
  QualityHeads,
  RidgeHeads,
  fit_length_predictor,
  fit_quality_heads,
  predict_lengths,
  predict_quality,
)
from reasoning_jax.routing.select import Route, cost_normalizer, route, route_continuous
from reasoning_jax.validation import as_array

__all__ = ["Decision", "R2Router", "choose", "fit_router"]


@dataclasses.dataclass(frozen=True)
class R2Router:
  """A fitted R2-Router.

  Attributes:
    config: its `RouterConfig`.
    models: the pool's model names (the M axis).
    prices: name -> per-token `(input, output)` prices of `models`.
    heads: quality heads per (model, option).
    length_predictor: output-length ridge heads `[M]` (with `config.unlimited`, else None).
    cost_scale: lam's cost unit, fixed from the training cost table (`cost_normalizer`).
  """

  config: RouterConfig
  models: tuple[str, ...]
  prices: Mapping[str, Any]
  heads: QualityHeads
  length_predictor: RidgeHeads | None
  cost_scale: float


class Decision(NamedTuple):
  """Per query: the model's name and its output budget (None: no length instruction, the
  "default" option capped at `config.default_cap`), and the underlying `Route`."""

  models: list[str]
  budgets: list[float | None]
  route: Route


def fit_router(
  Z: Any,
  quality: Any,
  models: Sequence[str],
  prices: Mapping[str, Any],
  config: RouterConfig | None = None,
  *,
  input_tokens: Any = None,
  texts: Sequence[str] | None = None,
  output_lengths: Any = None,
  key: jax.Array | None = None,
) -> R2Router:
  """Fits the heads on training queries and fixes the lam scale.

  Args:
    Z: `[N, D]` training query embeddings.
    quality: `[N, M, config.num_options]` judge scores in [0, 1] (the anchors, then the
      no-instruction "default" column with `config.unlimited`).
    models: the M model names; prices: their per-token prices (every one required).
    config: the router's settings (None: `RouterConfig()`).
    input_tokens / texts: the training queries' input tokens, or their texts (estimated).
    output_lengths: `[N, M]` measured output tokens of the no-instruction answers (required
      with `config.unlimited`).
    key: MLP initialisation key.
  """
  config = RouterConfig() if config is None else config
  models = tuple(models)
  price_arrays(models, prices)  # names the missing model early
  quality = as_array(quality, "quality", ndim=3)
  if quality.shape[1:] != (len(models), config.num_options):
    raise ValueError(
      f"quality must be [N, {len(models)} models, {config.num_options} options "
      f"{config.option_labels}], got {tuple(quality.shape)}"
    )
  predictor = None
  if config.unlimited:
    if output_lengths is None:
      raise ValueError("output_lengths is required with unlimited=True (the length predictor)")
    predictor = fit_length_predictor(Z, output_lengths, config.ridge_alpha)
  heads = fit_quality_heads(Z, quality, config, key=key)
  lengths = None if predictor is None else predict_lengths(predictor, Z)
  C = router_cost_table(
    config, models, prices, input_tokens=input_tokens, texts=texts, predicted_lengths=lengths
  )
  return R2Router(config, models, dict(prices), heads, predictor, cost_normalizer(C, config))


def choose(
  router: R2Router,
  Z: Any,
  lam: float,
  *,
  input_tokens: Any = None,
  texts: Sequence[str] | None = None,
  max_budget: float | None = None,
) -> Decision:
  """`(model, budget)` per query: `argmax (1 - lam) Q_hat - lam C / cost_scale`.

  With `max_budget` (the user's cap) the budget is continuous in `[b_1, max_budget]`
  (`route_continuous`, exact); the "default" option is then not offered (its length is not
  under the router's control). Without it the choice is over the anchors (and "default").
  """
  config = router.config
  Q = predict_quality(router.heads, Z)
  lengths = None
  if router.length_predictor is not None:
    lengths = predict_lengths(router.length_predictor, Z)
  if max_budget is None:
    C = router_cost_table(
      config,
      router.models,
      router.prices,
      input_tokens=input_tokens,
      texts=texts,
      predicted_lengths=lengths,
    )
    r = route(Q, C, lam, cost_scale=router.cost_scale)
    labels = config.option_labels
    budgets = [None if labels[o] == "default" else float(labels[o]) for o in np.asarray(r.option)]
  else:
    if (input_tokens is None) == (texts is None):
      raise ValueError("give exactly one of input_tokens or texts")
    if input_tokens is None:
      input_tokens = estimate_input_tokens(texts, config.tokens_per_word)
    pin, pout = price_arrays(router.models, router.prices)
    r = route_continuous(
      Q[..., : len(config.budgets)],
      config.budgets,
      input_tokens,
      pin,
      pout,
      lam,
      max_budget,
      cost_scale=router.cost_scale,
    )
    budgets = [float(b) for b in np.asarray(r.budget)]
  names = [router.models[i] for i in np.asarray(r.model)]
  return Decision(names, budgets, r)
