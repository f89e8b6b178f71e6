"""`fit_router` / `choose`: the fitted pipeline (heads -> cost -> argmax) names models and
budgets, honours the user's cap, offers the "default" option with `unlimited`, and rejects a
pool whose prices or table shape do not match."""

from __future__ import annotations

import numpy as np
import pytest

from reasoning_jax.routing import RouterConfig, choose, fit_router

MODELS = ("small", "big")
PRICES = {"small": (1e-7, 1e-6), "big": (1e-6, 1e-5)}
BUDGETS = (10, 100, 1000)


def _train(unlimited: bool, n: int = 120):
  rng = np.random.default_rng(0)
  Z = rng.normal(size=(n, 6)).astype(np.float32)
  hard = 1 / (1 + np.exp(-2 * Z[:, 0]))  # [N] in (0, 1)
  k = len(BUDGETS) + int(unlimited)
  quality = np.empty((n, 2, k), np.float32)
  for j in range(k):
    quality[:, 0, j] = np.clip(0.6 - 0.5 * hard + 0.05 * j, 0, 1)
    quality[:, 1, j] = np.clip(0.9 - 0.1 * hard + 0.03 * j, 0, 1)
  cfg = RouterConfig(head="ridge", budgets=BUDGETS, unlimited=unlimited, ridge_alpha=1.0)
  lengths = rng.uniform(50, 500, (n, 2)).astype(np.float32) if unlimited else None
  tokens = np.full(n, 50.0)
  router = fit_router(Z, quality, MODELS, PRICES, cfg, input_tokens=tokens, output_lengths=lengths)
  return router, Z, tokens


def test_choose_names_models_and_budgets():
  router, Z, tokens = _train(unlimited=False)
  cheap = choose(router, Z, 1.0, input_tokens=tokens)
  assert set(cheap.models) == {"small"} and set(cheap.budgets) == {10.0}
  best = choose(router, Z, 0.0, input_tokens=tokens)
  assert set(best.models) == {"big"} and set(best.budgets) == {1000.0}
  capped = choose(router, Z, 0.0, input_tokens=tokens, max_budget=300)
  assert set(capped.budgets) == {300.0}
  mid = choose(router, Z, 0.3, texts=["a question"] * len(Z))
  assert len(mid.models) == len(Z) and all(b in BUDGETS for b in mid.budgets)


def test_unlimited_option_is_offered():
  router, Z, tokens = _train(unlimited=True)
  assert router.length_predictor is not None
  best = choose(router, Z, 0.0, input_tokens=tokens)
  assert set(best.budgets) == {None}  # the no-instruction column scores highest here
  assert set(best.models) == {"big"}


def test_fit_router_rejects_mismatched_pool():
  rng = np.random.default_rng(0)
  Z = rng.normal(size=(8, 3)).astype(np.float32)
  cfg = RouterConfig(head="ridge", budgets=BUDGETS)
  quality = rng.uniform(size=(8, 2, 3)).astype(np.float32)
  with pytest.raises(ValueError, match=r"prices is missing model\(s\) \['big'\]"):
    fit_router(Z, quality, MODELS, {"small": (1, 1)}, cfg, input_tokens=np.ones(8))
  with pytest.raises(ValueError, match="quality must be"):
    fit_router(Z, quality[:, :, :2], MODELS, PRICES, cfg, input_tokens=np.ones(8))
  with pytest.raises(ValueError, match="output_lengths"):
    fit_router(
      Z,
      rng.uniform(size=(8, 2, 4)),
      MODELS,
      PRICES,
      RouterConfig(head="ridge", budgets=BUDGETS, unlimited=True),
      input_tokens=np.ones(8),
    )
