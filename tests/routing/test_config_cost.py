"""`RouterConfig` defaults and validation, and the cost model `C = n_in p_in + b p_out`
(shared/methods/inference.md sections 6.1, 6.2, 6.4): bad inputs name the argument."""

from __future__ import annotations

import numpy as np
import pytest

from reasoning_jax.routing import (
  DEFAULT_BUDGETS,
  ModelPrice,
  RouterConfig,
  cost_table,
  estimate_input_tokens,
  price_arrays,
  router_cost_table,
)


def test_defaults_follow_the_spec():
  cfg = RouterConfig()
  assert cfg.head == "mlp" and cfg.hidden_sizes == (256, 128, 64)
  assert cfg.learning_rate == 1e-4 and cfg.epochs == 100 and cfg.ridge_alpha == 10.0
  assert cfg.budgets == DEFAULT_BUDGETS and len(cfg.budgets) == 15
  assert not cfg.unlimited and cfg.lambda_mode == "normalized"
  assert cfg.tokens_per_word == 1.3 and cfg.default_cap == 4000
  assert cfg.num_options == 15 and RouterConfig(unlimited=True).option_labels[-1] == "default"


@pytest.mark.parametrize(
  "kwargs, name",
  [
    ({"budgets": (10, 30, 20)}, "budgets must be sorted"),
    ({"budgets": (10, 20, 20)}, "budgets must not repeat"),
    ({"budgets": ()}, "budgets"),
    ({"budgets": (0, 10)}, "budgets"),
    ({"head": "tree"}, "head"),
    ({"lambda_mode": "linear"}, "lambda_mode"),
    ({"ridge_alpha": -1.0}, "ridge_alpha"),
    ({"epochs": 0}, "epochs"),
    ({"hidden_sizes": (256, 0)}, "hidden_sizes"),
    ({"log_ratio_range": (2.0, 1.0)}, "log_ratio_range"),
    ({"unlimited": 1}, "unlimited"),
  ],
)
def test_bad_config_raises_naming_the_argument(kwargs, name):
  with pytest.raises(ValueError, match=name):
    RouterConfig(**kwargs)


def test_cost_table_formula_and_length_cap():
  n_in = np.array([100.0, 10.0])
  pin, pout = np.array([1.0, 2.0]), np.array([10.0, 20.0])
  C = np.asarray(cost_table(n_in, pin, pout, (10, 100)))
  expected = n_in[:, None, None] * pin[None, :, None] + np.array([10, 100]) * pout[None, :, None]
  np.testing.assert_allclose(C, expected)
  T = np.array([[50.0, 5.0], [500.0, 0.0]])
  capped = np.asarray(
    cost_table(n_in, pin, pout, (10, 100), predicted_lengths=T, unlimited_cap=400)
  )
  np.testing.assert_allclose(capped[0, 0], [100 + 10 * 10, 100 + 50 * 10, 100 + 50 * 10])
  np.testing.assert_allclose(capped[1, 0], [10 + 10 * 10, 10 + 100 * 10, 10 + 400 * 10])
  np.testing.assert_allclose(capped[1, 1], [20, 20, 20])


def test_prices_and_router_cost_table():
  prices = {"big": ModelPrice(2e-6, 8e-6), "small": (1e-7, 4e-7), "unused": (1, 1)}
  pin, pout = price_arrays(["small", "big"], prices)
  np.testing.assert_allclose(pin, [1e-7, 2e-6])
  np.testing.assert_allclose(pout, [4e-7, 8e-6])
  cfg = RouterConfig(budgets=(10, 100), unlimited=True)
  C = np.asarray(
    router_cost_table(
      cfg,
      ["small", "big"],
      prices,
      texts=["a b c d e f g h i j"],
      predicted_lengths=[[30.0, 9000.0]],
    )
  )
  assert C.shape == (1, 2, 3)
  np.testing.assert_allclose(C[0, 1], 13 * 2e-6 + np.array([10, 100, 4000]) * 8e-6, rtol=1e-5)
  np.testing.assert_allclose(estimate_input_tokens(["one two", ""]), [2.6, 0.0])


def test_missing_or_bad_prices_raise_naming_the_argument():
  with pytest.raises(ValueError, match=r"prices is missing model\(s\) \['big'\]"):
    price_arrays(["small", "big"], {"small": (1.0, 2.0)})
  with pytest.raises(ValueError, match=r"prices\['small'\]"):
    price_arrays(["small"], {"small": (1.0,)})
  with pytest.raises(ValueError, match=r"prices\['small'\]"):
    price_arrays(["small"], {"small": {"input": -1.0, "output": 1.0}})
  with pytest.raises(ValueError, match="models"):
    price_arrays(["a", "a"], {"a": (1, 1)})
  with pytest.raises(ValueError, match="budgets must be sorted"):
    cost_table([1.0], [1.0], [1.0], (20, 10))
  with pytest.raises(ValueError, match="predicted_lengths"):
    router_cost_table(RouterConfig(unlimited=True), ["a"], {"a": (1, 1)}, input_tokens=[3.0])
