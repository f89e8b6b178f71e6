"""reasoning_jax.evaluate.monotone_attack.uat: the trigger search on a toy loss and a tiny model."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from reasoning_jax.evaluate.monotone_attack import (
  IGNORE,
  attack_functions,
  learn_trigger,
  prepend_trigger,
  shift_targets,
)
from tests.evaluate.monotone_attack.helpers import tiny_data, tiny_model


def test_prepend_trigger_and_shift_targets():
  inputs = np.arange(6, dtype=np.int32).reshape(2, 3)
  one = prepend_trigger(np.array([7, 8]), inputs)
  np.testing.assert_array_equal(one, [[7, 8, 0, 1, 2], [7, 8, 3, 4, 5]])
  many = prepend_trigger(np.array([[7, 8], [9, 9]]), inputs)
  assert many.shape == (2, 2, 5) and many.dtype == inputs.dtype
  np.testing.assert_array_equal(many[1, 0], [9, 9, 0, 1, 2])
  targets = np.array([[IGNORE, 4, 5]], np.int32)
  np.testing.assert_array_equal(shift_targets(targets, 2), [[IGNORE, IGNORE, IGNORE, 4, 5]])


def test_linear_toy_loss_reaches_the_optimum():
  # loss(trigger) = sum_j g_j . e[trigger_j]: separable and linear in the embeddings, so the
  # coordinate search with first-order ranking finds argmax_c g_j . e_c at every position.
  rng = np.random.default_rng(0)
  table = rng.normal(size=(11, 5)).astype(np.float32)
  g = rng.normal(size=(4, 5)).astype(np.float32)
  cands = np.arange(2, 11)

  def loss_of(triggers):
    return np.einsum("jh,cjh->c", g, table[np.asarray(triggers)])

  out = learn_trigger(
    loss_of,
    lambda trig: g,
    table,
    cands,
    trigger_len=4,
    num_restarts=2,
    num_iterations=50,
    num_candidates=1,
    seed=0,
  )
  np.testing.assert_array_equal(out["trigger"], cands[np.argmax(g @ table[cands].T, axis=1)])
  assert out["loss"] == pytest.approx(float(loss_of(out["trigger"][None])[0]), rel=1e-6)
  # Converged in one sweep; the second sweep finds nothing and stops early.
  assert all(r["iterations"] <= 8 for r in out["restarts"])


def _tiny_uat(seed):
  model = tiny_model("monotone", seed=1)
  graphdef, params = nnx.split(model, nnx.Param)
  fns = attack_functions(model.config, graphdef, 5)
  data = tiny_data(12, seed=4)
  m = 2
  x = data["inputs"]
  y, a = shift_targets(data["targets"], m), shift_targets(data["alt_targets"], m)

  def loss_of(triggers):
    return np.asarray(fns["losses"](params, prepend_trigger(triggers, x), y, a)[0]).mean(1)

  def grad_of(trigger):
    return np.asarray(fns["trigger_grad"](params, prepend_trigger(trigger, x), y, a, trigger_len=m))

  out = learn_trigger(
    loss_of,
    grad_of,
    np.asarray(model.embed[...]),
    np.arange(2, 14),
    trigger_len=m,
    num_restarts=3,
    num_iterations=6,
    num_candidates=3,
    seed=seed,
  )
  return out, loss_of, grad_of, model, x, y, a


def test_tiny_model_trigger_loss_never_decreases_and_is_deterministic():
  out, loss_of, grad_of, model, x, y, a = _tiny_uat(seed=7)
  for r in out["restarts"]:
    assert np.all(np.diff(r["history"]) >= 0)
    assert r["loss"] >= r["initial_loss"]
    assert r["loss"] == pytest.approx(float(loss_of(np.array([r["trigger"]]))[0]), rel=1e-5)
  assert out["loss"] == max(r["loss"] for r in out["restarts"])
  assert any(r["loss"] > r["initial_loss"] for r in out["restarts"])  # The search does work.
  again = _tiny_uat(seed=7)[0]
  np.testing.assert_array_equal(out["trigger"], again["trigger"])
  assert [r["history"] for r in out["restarts"]] == [r["history"] for r in again["restarts"]]
  # grad_of is the gradient of the mean loss w.r.t. the trigger's embeddings: check one
  # coordinate against a finite difference through the embedding table.
  table = np.asarray(model.embed[...])
  trig = np.asarray(out["trigger"])
  g = grad_of(trig)
  assert g.shape == (2, model.config.hidden_size)
  graphdef, params = nnx.split(model, nnx.Param)
  fns = attack_functions(model.config, graphdef, 5)
  # A token in none of these sequences stands for the trigger's first token, so moving its
  # embedding moves only the trigger position.
  spare = max(set(range(model.config.vocab_size)) - set(np.unique(x).tolist()))
  ids = prepend_trigger(np.array([spare, trig[1]]), x)
  eps, h = 1e-2, 3

  def loss_with(delta):
    e = table.copy()
    e[spare] = table[trig[0]]
    e[spare, h] += delta
    model.embed[...] = jnp.asarray(e)
    _, p = nnx.split(model, nnx.Param)
    return float(np.asarray(fns["clean"](p, ids, y, a)[0]).mean())

  fd = (loss_with(eps) - loss_with(-eps)) / (2 * eps)
  model.embed[...] = jnp.asarray(table)
  assert fd == pytest.approx(float(g[0, h]), rel=0.05, abs=1e-4)


@pytest.mark.parametrize(
  "kwargs, field",
  [
    (dict(trigger_len=0), "trigger_len"),
    (dict(num_restarts=0), "num_restarts"),
    (dict(num_candidates=0), "num_candidates"),
  ],
)
def test_bad_arguments_name_themselves(kwargs, field):
  args = dict(trigger_len=2, num_restarts=1, num_iterations=1, num_candidates=1, seed=0)
  with pytest.raises(ValueError, match=field):
    learn_trigger(
      lambda t: np.zeros(len(t)), None, np.zeros((4, 2)), np.arange(4), **{**args, **kwargs}
    )
