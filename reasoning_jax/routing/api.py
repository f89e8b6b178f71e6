"""`Router`: text in, `(model, budget)` out, and routed generation over a pool.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue et al., arXiv:2602.02823),
`shared/methods/inference.md` section 6: a query is embedded by the frozen encoder, the quality
heads and the cost model score every (LLM, budget), and the argmax of `(1 - lam) Q_hat - lam C`
is served: the chosen model answers under the length instruction for the chosen budget and a
hard cap of that many new tokens. The paper reports a routing overhead under 400 ms per query;
`route_and_generate` reports ours (encode + choose seconds per query).

  >>> router = Router(fit_router(Z, quality, models, prices, cfg), QueryEncoder(enc, tok))
  >>> router.route("What is 17 * 3?")                         # ("qwen3-1.7b", 80.0)
  >>> out = router.route_and_generate(queries, pool, lam=0.3)
  >>> out.completions, out.models, out.caps, out.overhead_per_query_s
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from reasoning_jax.routing.config import check_lambda
from reasoning_jax.routing.pool import (
  LENGTH_INSTRUCTION,
  PoolError,
  budget_cap,
  check_pool,
  generate_capped,
  load_pool_model,
)
from reasoning_jax.routing.router import Decision, R2Router, choose

__all__ = ["RoutedGeneration", "Router"]


class RoutedGeneration(NamedTuple):
  """The result of `Router.route_and_generate`, per query in input order.

  Attributes:
    completions: the chosen model's answer.
    models / budgets: the router's choice (budget None: the no-instruction "default" option).
    caps: `max_new_tokens` used (the budget floored, or `default_cap`).
    output_lengths: `[N]` generated tokens (EOS included).
    encode_s / choose_s / generate_s: seconds spent embedding, choosing and generating.
    overhead_per_query_s: `(encode_s + choose_s) / N`, the routing overhead per query.
    groups: the number of `generate` groups ((model, cap) pairs).
  """

  completions: list[str]
  models: list[str]
  budgets: list[float | None]
  caps: list[int]
  output_lengths: np.ndarray
  encode_s: float
  choose_s: float
  generate_s: float
  overhead_per_query_s: float
  groups: int


class Router:
  """A fitted `R2Router` with its query encoder.

  Args:
    router: from `fit_router` (trained on embeddings of the same `encoder`).
    encoder: a `QueryEncoder`, or any callable `queries -> [N, D]` array.
    lam: the default cost weight in [0, 1].
    max_budget: the default user cap on the budget (None: the anchors only; see `choose`).
  """

  def __init__(
    self,
    router: R2Router,
    encoder: Callable[[Sequence[str]], Any],
    *,
    lam: float = 0.5,
    max_budget: float | None = None,
  ):
    if not isinstance(router, R2Router):
      raise TypeError(f"router must be an R2Router (fit_router), got {type(router).__name__}")
    if not callable(encoder):
      raise TypeError(f"encoder must be a QueryEncoder or a callable, got {encoder!r}")
    self.router = router
    self.encoder = encoder
    self.lam = check_lambda(lam)
    self.max_budget = max_budget

  @property
  def models(self) -> tuple[str, ...]:
    return self.router.models

  def decide(
    self, queries: Sequence[str], lam: float | None = None, *, max_budget: float | None = None
  ) -> tuple[Decision, float, float]:
    """`(decision, encode_s, choose_s)` for `queries`."""
    if isinstance(queries, (str, bytes)) or not isinstance(queries, Sequence):
      raise TypeError(f"queries must be a sequence of str, got {type(queries).__name__}")
    lam = self.lam if lam is None else check_lambda(lam)
    cap = self.max_budget if max_budget is None else max_budget
    start = time.perf_counter()
    Z = np.asarray(self.encoder(list(queries)), np.float32)
    middle = time.perf_counter()
    decision = choose(self.router, Z, lam, texts=list(queries), max_budget=cap)
    return decision, middle - start, time.perf_counter() - middle

  def route(
    self, query: str, lam: float | None = None, *, max_budget: float | None = None
  ) -> tuple[str, float | None]:
    """`(model_name, budget)` for one query (budget None: the no-instruction option)."""
    if not isinstance(query, str):
      raise TypeError(f"query must be a str, got {type(query).__name__}")
    d, _, _ = self.decide([query], lam, max_budget=max_budget)
    return d.models[0], d.budgets[0]

  def route_batch(
    self, queries: Sequence[str], lam: float | None = None, *, max_budget: float | None = None
  ) -> list[tuple[str, float | None]]:
    """`route` for many queries at once (one encoder and one `choose` call)."""
    d, _, _ = self.decide(queries, lam, max_budget=max_budget)
    return list(zip(d.models, d.budgets))

  def route_and_generate(
    self,
    queries: Sequence[str],
    pool: Mapping[str, Any],
    lam: float | None = None,
    *,
    max_budget: float | None = None,
    batch_size: int | None = None,
    instruction: str = LENGTH_INSTRUCTION,
    chat: bool = True,
    default_cap: int | None = None,
  ) -> RoutedGeneration:
    """Routes `queries`, then generates with each chosen model under its chosen cap.

    Queries are grouped by (model, cap); each group is one `generate_capped` call (in chunks
    of `batch_size` rows when given), greedy, with the length instruction. Completions come back
    in the input order.

    Args:
      queries: the query texts.
      pool: name -> `PoolModel` (or what `load_pool_model` accepts) for every router model.
      lam / max_budget: override the router's defaults.
      batch_size: rows per `generate` call (None: a whole group at once).
      instruction / chat: the length instruction and whether it goes through the chat
        template.
      default_cap: the cap of the no-instruction option (default: the config's).

    Raises:
      PoolError: a router model missing from `pool`, or one that fails to load (named).
    """
    check_pool(pool)
    missing = [m for m in self.router.models if m not in pool]
    if missing:
      raise PoolError(f"pool is missing router model(s) {missing}; it has {sorted(pool)}")
    queries = list(queries)
    decision, encode_s, choose_s = self.decide(queries, lam, max_budget=max_budget)
    if default_cap is None:
      default_cap = self.router.config.default_cap
    caps = [default_cap if b is None else budget_cap(b) for b in decision.budgets]
    groups: dict[tuple[str, int, bool], list[int]] = {}
    for i, (m, b, c) in enumerate(zip(decision.models, decision.budgets, caps)):
      groups.setdefault((m, c, b is None), []).append(i)
    completions: list[str] = [""] * len(queries)
    lengths = np.zeros(len(queries), np.int64)
    start = time.perf_counter()
    for (name, cap, default), idx in groups.items():
      pm = load_pool_model(name, pool[name])
      out = generate_capped(
        pm,
        [queries[i] for i in idx],
        None if default else cap,
        default_cap=cap,
        instruction=instruction,
        chat=chat,
        batch_size=batch_size,
      )
      for i, text, n in zip(idx, out.completions, out.output_lengths):
        completions[i] = text
        lengths[i] = n
    generate_s = time.perf_counter() - start
    n = max(len(queries), 1)
    return RoutedGeneration(
      completions,
      decision.models,
      decision.budgets,
      caps,
      lengths,
      encode_s,
      choose_s,
      generate_s,
      (encode_s + choose_s) / n,
      len(groups),
    )
