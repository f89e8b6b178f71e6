"""The cost model of R2-Router: input tokens at the input price plus a budget at the output price.

"R2-Router: A New Paradigm for LLM Routing with Reasoning" (Xue et al., arXiv:2602.02823),
`shared/methods/inference.md` sections 6.1, 6.2 and 6.4:

  `C[n, i, k] = n_in[n] * price_in[i] + b_k * price_out[i]`               `[N, M, K]`

with the optional predicted-length cap `min(b_k, T_hat[n, i])` (a model that would stop before
its budget is not billed for the rest), and the released code's "unlimited" option costed at
`min(T_hat, default_cap) * price_out`. Input tokens are estimated as 1.3 x the word count when
no tokenizer is at hand (released code). Prices are per token, in any unit shared by the pool
(dollars, FLOPs, measured seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from reasoning_jax.routing.config import RouterConfig, check_budgets
from reasoning_jax.validation import as_array, check_finite

__all__ = [
  "ModelPrice",
  "cost_table",
  "estimate_input_tokens",
  "price_arrays",
  "router_cost_table",
]


class ModelPrice(NamedTuple):
  """Per-token prices of one LLM."""

  input: float
  output: float


def price_arrays(models: Sequence[str], prices: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
  """`(price_in [M], price_out [M])` of `models`, in their order, from `prices`.

  Args:
    models: the pool's model names (the M axis of the tables).
    prices: name -> `ModelPrice`, an `(input, output)` pair or `{"input": .., "output": ..}`;
      every model of `models` must be there (extra names are ignored).
  """
  models = list(models)
  if not models:
    raise ValueError("models must name at least one model, got an empty sequence")
  if len(set(models)) != len(models):
    raise ValueError(f"models must not repeat a name, got {models}")
  if not isinstance(prices, Mapping):
    raise TypeError(f"prices must be a mapping of model name -> (input, output), got {prices!r}")
  missing = [m for m in models if m not in prices]
  if missing:
    raise ValueError(f"prices is missing model(s) {missing}; it has {sorted(prices)}")
  pin, pout = [], []
  for name in models:
    entry = prices[name]
    if isinstance(entry, Mapping):
      entry = (entry.get("input"), entry.get("output"))
    try:
      a, b = (float(v) for v in entry)
    except (TypeError, ValueError):
      raise ValueError(
        f"prices[{name!r}] must be an (input, output) pair of per-token prices, got {entry!r}"
      ) from None
    if not (np.isfinite(a) and np.isfinite(b) and a >= 0 and b >= 0):
      raise ValueError(f"prices[{name!r}] must be finite and >= 0, got {entry!r}")
    pin.append(a)
    pout.append(b)
  return np.asarray(pin), np.asarray(pout)


def estimate_input_tokens(texts: Sequence[str], tokens_per_word: float = 1.3) -> np.ndarray:
  """`[N]` estimated input tokens: `tokens_per_word` x the whitespace word count (released
  code: 1.3)."""
  if isinstance(texts, str):
    raise TypeError("texts must be a sequence of strings, got a single string")
  if not tokens_per_word > 0:
    raise ValueError(f"tokens_per_word must be > 0, got {tokens_per_word!r}")
  return np.asarray([tokens_per_word * len(str(t).split()) for t in texts], np.float64)


def cost_table(
  input_tokens: Any,
  price_in: Any,
  price_out: Any,
  budgets: Sequence[int],
  *,
  predicted_lengths: Any = None,
  unlimited_cap: int | None = None,
) -> jnp.ndarray:
  """`C [N, M, K]` (plus one column with `unlimited_cap`): the predicted cost of every option.

  Args:
    input_tokens: `[N]` input tokens per query (counted or `estimate_input_tokens`).
    price_in, price_out: `[M]` per-token prices (`price_arrays`).
    budgets: the K anchors, strictly increasing.
    predicted_lengths: optional `[N, M]` predicted output tokens `T_hat`; when given, budget
      `b` is billed `min(b, T_hat)` output tokens.
    unlimited_cap: when given (needs `predicted_lengths`), append the no-instruction option
      billed `min(T_hat, unlimited_cap)` output tokens (released code's "unlimited").
  """
  budgets = np.asarray(check_budgets(budgets), np.float32)
  n_in = as_array(np.asarray(input_tokens, np.float32), "input_tokens", ndim=1)
  check_finite(n_in, "input_tokens")
  if np.asarray(n_in).size and np.asarray(n_in).min() < 0:
    raise ValueError("input_tokens must be >= 0")
  pin = as_array(np.asarray(price_in, np.float32), "price_in", ndim=1)
  pout = as_array(np.asarray(price_out, np.float32), "price_out", shape=pin.shape)
  out_tokens = jnp.broadcast_to(budgets, (n_in.shape[0], pin.shape[0], budgets.shape[0]))
  if predicted_lengths is not None:
    lengths = as_array(
      np.asarray(predicted_lengths, np.float32),
      "predicted_lengths",
      shape=(n_in.shape[0], pin.shape[0]),
    )
    lengths = jnp.maximum(lengths, 0.0)
    out_tokens = jnp.minimum(out_tokens, lengths[..., None])
    if unlimited_cap is not None:
      if isinstance(unlimited_cap, bool) or not isinstance(unlimited_cap, int) or unlimited_cap < 1:
        raise ValueError(f"unlimited_cap must be a positive int, got {unlimited_cap!r}")
      extra = jnp.minimum(lengths, float(unlimited_cap))[..., None]
      out_tokens = jnp.concatenate([out_tokens, extra], axis=-1)
  elif unlimited_cap is not None:
    raise ValueError("unlimited_cap needs predicted_lengths (the unlimited option's cost)")
  return n_in[:, None, None] * pin[None, :, None] + out_tokens * pout[None, :, None]


def router_cost_table(
  config: RouterConfig,
  models: Sequence[str],
  prices: Mapping[str, Any],
  *,
  input_tokens: Any = None,
  texts: Sequence[str] | None = None,
  predicted_lengths: Any = None,
  cap_by_length: bool = False,
) -> jnp.ndarray:
  """`C [N, M, config.num_options]` for a pool under `config` (anchors, then "default" when
  `config.unlimited`).

  Give `input_tokens [N]` or `texts` (estimated at `config.tokens_per_word`).
  `predicted_lengths [N, M]` is required with `config.unlimited` or `cap_by_length`
  (bill `min(b, T_hat)`; DESIGN CHOICE: off, the paper bills the budget).
  """
  if (input_tokens is None) == (texts is None):
    raise ValueError("give exactly one of input_tokens or texts")
  if input_tokens is None:
    input_tokens = estimate_input_tokens(texts, config.tokens_per_word)
  pin, pout = price_arrays(models, prices)
  if (config.unlimited or cap_by_length) and predicted_lengths is None:
    raise ValueError("predicted_lengths is required with unlimited=True or cap_by_length=True")
  C = cost_table(
    input_tokens,
    pin,
    pout,
    config.budgets,
    predicted_lengths=predicted_lengths if cap_by_length else None,
  )
  if config.unlimited:
    extra = cost_table(
      input_tokens,
      pin,
      pout,
      (1,),
      predicted_lengths=predicted_lengths,
      unlimited_cap=config.default_cap,
    )[..., -1:]
    C = jnp.concatenate([C, extra], axis=-1)
  return C
