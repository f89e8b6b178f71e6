"""`QueryEncoder` (mean-pooled final hidden states, padding-invariant, named errors) and the
`Router` facade: `route(query) -> (model, budget)` and `route_and_generate`, whose completions
equal direct budget-capped generation in the input order."""

from __future__ import annotations

import os

import numpy as np
import pytest
from flax import nnx

from reasoning_jax.models import Transformer, get_preset
from reasoning_jax.routing import (
  PoolError,
  PoolModel,
  QueryEncoder,
  Router,
  RouterConfig,
  budget_prompt,
  fit_router,
  generate_capped,
  load_pool_model,
)
from reasoning_jax.tokenizers import ByteTokenizer

TOK = ByteTokenizer()


def _model(seed: int, **kw):
  cfg = get_preset("tiny-qwen3", vocab_size=TOK.vocab_size, hidden_size=32, num_layers=1, **kw)
  return Transformer(cfg, rngs=nnx.Rngs(seed))


def test_encoder_mean_pools_real_tokens():
  model = _model(0)
  enc = QueryEncoder(model, TOK, name="tiny", batch_size=2, min_bucket=8)
  queries = ["hi", "what is 2 + 3?", "a much longer query " * 3]
  Z = enc.encode(queries)
  assert Z.shape == (3, 32) and Z.dtype == np.float32
  # Reference: one unpadded forward per query, mean over its tokens.
  for i, q in enumerate(queries):
    ids = np.asarray([[TOK.bos_id] + TOK.encode(q)], np.int32)
    hidden, _ = model.forward(ids)
    np.testing.assert_allclose(Z[i], np.asarray(hidden[0], np.float32).mean(0), atol=1e-5)
  assert enc.info.name == "tiny" and enc.info.path is None and enc.info.hidden_size == 32
  assert enc.info.max_length == 512
  # The encoder plugs into the router: fit on its embeddings, route by text.
  cfg = RouterConfig(head="ridge", budgets=(2, 4))
  q = np.random.default_rng(0).uniform(size=(3, 2, 2)).astype(np.float32)
  r = fit_router(Z, q, ("a", "b"), {"a": (1, 1), "b": (2, 2)}, cfg, texts=queries)
  name, budget = Router(r, enc).route("hello there")
  assert name in ("a", "b") and budget in (2.0, 4.0)


def test_encoder_errors_name_the_argument():
  model = _model(0)
  enc = QueryEncoder(model, TOK, max_length=16)
  with pytest.raises(ValueError, match=r"queries\[1\] is 31 tokens.*max_length=16"):
    enc.encode(["ok", "x" * 30])
  with pytest.raises(ValueError, match="max_length must be in"):
    QueryEncoder(model, TOK, max_length=10_000)
  small = Transformer(
    get_preset("tiny-qwen3", vocab_size=100, hidden_size=32, num_layers=1), rngs=nnx.Rngs(0)
  )
  with pytest.raises(ValueError, match="tokenizer .* has 259 ids .* vocab_size=100"):
    QueryEncoder(small, TOK)


def _features(queries):
  """A transparent encoder: [1, 0] for additions, [0, 1] otherwise."""
  return np.asarray([[1.0, 0.0] if "+" in q else [0.0, 1.0] for q in queries], np.float32)


def _router(lam=0.0):
  # "small" is right on additions at budget 4, "big" on the rest at budget 8.
  budgets = (2, 4, 8)
  Z = _features(["1 + 1"] * 20 + ["2 * 2"] * 20)
  q = np.zeros((40, 2, 3), np.float32)
  q[:20, 0, 1:] = 1.0
  q[20:, 1, 2] = 1.0
  cfg = RouterConfig(head="ridge", budgets=budgets, ridge_alpha=1e-3)
  prices = {"small": (1e-7, 1e-6), "big": (1e-6, 1e-5)}
  r = fit_router(Z, q, ("small", "big"), prices, cfg, texts=["1 + 1"] * 40)
  return Router(r, _features, lam=lam)


def test_route_picks_model_and_budget():
  router = _router(lam=0.01)
  assert router.route("3 + 4 = ?") == ("small", 4.0)
  assert router.route("3 * 4 = ?") == ("big", 8.0)
  assert router.route_batch(["1 + 2", "5 * 5"]) == [("small", 4.0), ("big", 8.0)]
  assert router.route("3 * 4 = ?", lam=1.0) == ("small", 2.0)  # cost only: the cheapest
  assert router.route("3 * 4 = ?", max_budget=6) == ("big", 6.0)
  with pytest.raises(ValueError, match="lam must be a float in"):
    router.route("1 + 1", lam=1.5)


def test_route_and_generate_matches_direct_generate():
  pool = {"small": PoolModel(_model(0), TOK), "big": PoolModel(_model(1), TOK)}
  router = _router(lam=0.01)
  queries = ["1 + 2 = ?", "3 * 3 = ?", "4 + 4 = ?", "6 * 7 = ?", "9 + 1 = ?"]
  out = router.route_and_generate(queries, pool)
  assert out.models == ["small", "big", "small", "big", "small"]
  assert out.caps == [4, 8, 4, 8, 4] and out.groups == 2
  assert out.overhead_per_query_s > 0 and out.generate_s > 0
  for name, cap in (("small", 4), ("big", 8)):
    idx = [i for i, m in enumerate(out.models) if m == name]
    ref = generate_capped(pool[name], [queries[i] for i in idx], cap)
    assert [out.completions[i] for i in idx] == ref.completions
    np.testing.assert_array_equal(out.output_lengths[idx], ref.output_lengths)
  assert np.all(out.output_lengths <= np.asarray(out.caps))
  with pytest.raises(PoolError, match=r"pool is missing router model\(s\) \['big'\]"):
    router.route_and_generate(queries, {"small": pool["small"]})


def test_budget_prompt_uses_chat_template_when_present():
  plain = TOK.decode(budget_prompt(TOK, "2 + 2?", 8))
  assert plain.startswith("Answer in at most 8 tokens.") and plain.endswith("2 + 2?\n")
  assert "at most" not in TOK.decode(budget_prompt(TOK, "2 + 2?", None))
  # An empty instruction: the bare prompt (the budget is enforced by truncation only).
  assert budget_prompt(TOK, "2 + 2?", 8, "") == budget_prompt(TOK, "2 + 2?", None)

  class ChatByte(ByteTokenizer):
    def apply_chat_template(self, messages, add_generation_prompt=True):
      return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

  chat = ChatByte().decode(budget_prompt(ChatByte(), "2 + 2?", 8))
  assert (
    chat == "<system>Answer in at most 8 tokens. Give the answer directly, without "
    "explanation.<user>2 + 2?<assistant>"
  )


def test_encoder_and_pool_from_hf_folder(tiny_hf_folder):
  folder = tiny_hf_folder("qwen3")
  enc = QueryEncoder.from_hf(folder, batch_size=2)
  Z = enc.encode(["hello", "what is 1 + 1?", "bye"])
  assert Z.shape == (3, enc.hidden_size) and np.isfinite(Z).all()
  assert enc.info.path == os.path.abspath(folder) and enc.info.name == os.path.basename(folder)
  out = generate_capped(load_pool_model("hf", folder), ["hi"], 3)
  assert out.output_lengths[0] <= 3
