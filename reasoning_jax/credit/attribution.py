"""Gradient x Embedding attribution through a frozen judge, and the attribution softmax.

Grad2Reward: From Sparse Judgment to Dense Rewards for Improving Open-Ended LLM Reasoning
(Zhang et al.), arXiv 2602.01791; rl.md section 6.2.

For a judge input `E = [e_1 .. e_L]` (the tensor fed to the judge's first block) and the
verdict score `F(E) = log p_judge(z = True | E)` read at the verdict position:

    g_t = dF / de_t,     b_t = g_t . e_t,     alpha_t = softmax_{t in span}(b_t / tau)

`b_t` is the first-order estimate of how much F drops when token t's embedding is removed
(`sum_t b_t ~ F(E) - F(0)`). Only response positions (`span`) are attributed.

One forward and one backward per pair, with respect to the embeddings only: the judge's
parameters enter `jax.vjp` as closed-over constants, so no parameter cotangent is built (the
backward has the input-gradient matmuls only; `tests/credit` checks the compiled cost).
Everything runs in float32 for the attribution (rl.md section 9), batched over pairs `[M, L]`.

DESIGN CHOICES (flags): `tau = 1.0`; `attr_norm = "none" | "zscore"` (standardise b within the
span before the softmax, since raw b scales vary across judges); the attributed tensor is the
first block's input (`Transformer.embed_tokens`; the zoo's families do not scale embeddings, so
this equals the raw embedding rows).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from reasoning_jax.validation import check_choice, check_scalar

__all__ = [
  "ATTR_NORMS",
  "JudgeFunctions",
  "attribution_weights",
  "grad_x_input",
]

ATTR_NORMS = ("none", "zscore")


def _verdict_logits(model, hidden, verdict_pos):
  """Logits `[M, V]` at each row's verdict position (only those rows are unembedded)."""
  h = jnp.take_along_axis(hidden, verdict_pos[:, None, None].astype(jnp.int32), axis=1)[:, 0]
  return model.unembed(h).astype(jnp.float32)


def _scores(logits, true_id, false_id):
  logp = jax.nn.log_softmax(logits, axis=-1)
  return logp[:, true_id], logits[:, true_id] - logits[:, false_id]


def grad_x_input(score_fn, embeds: jax.Array):
  """Gradient x input of a scalar score: `(aux, b [..., L])` with `b_t = (dS/de_t) . e_t`.

  `score_fn(embeds) -> (S, aux)` with `S` a scalar (a sum over independent rows gives each
  row's own gradient). Only `embeds` is differentiated (`jax.vjp`): whatever `score_fn`
  closes over (the judge's parameters) is a constant, and no cotangent is built for it.
  """
  _, vjp_fn, aux = jax.vjp(score_fn, embeds, has_aux=True)
  (grads,) = vjp_fn(jnp.ones((), jnp.float32))
  return aux, jnp.sum(grads.astype(jnp.float32) * embeds.astype(jnp.float32), axis=-1)


class JudgeFunctions:
  """The jitted judge passes of one judge graph and one pair of verdict ids.

  `scores(params, tokens, verdict_pos)`: forward only -> `(log p(True) [M], margin [M])`
  with `margin = logit(True) - logit(False)`; the verdict is `margin > 0`. Right padding after
  `verdict_pos` cannot reach it (causal attention).

  `attribute(params, tokens, verdict_pos)`: one forward + one input-only backward ->
  `(value [M], margin [M], b [M, L])`. `value` is `F = log p(True)` (score="logp_true", the
  rubric judge) or `V = p(True)` (score="p_true", the probability read as a discriminative
  ORM value).
  """

  def __init__(self, graphdef, *, true_id: int, false_id: int, score: str = "logp_true"):
    check_choice(score, ("logp_true", "p_true"), "score")
    self.true_id, self.false_id, self.score = int(true_id), int(false_id), score

    def scores(params, tokens, verdict_pos):
      model = nnx.merge(graphdef, params)
      hidden, _ = model.forward(tokens)
      return _scores(_verdict_logits(model, hidden, verdict_pos), self.true_id, self.false_id)

    def attribute(params, tokens, verdict_pos):
      model = nnx.merge(graphdef, params)
      embeds = model.embed_tokens(tokens).astype(jnp.float32)

      def score_fn(e):
        hidden, _ = model.forward(None, inputs_embeds=e)
        logits = _verdict_logits(model, hidden, verdict_pos)
        logp_true, margin = _scores(logits, self.true_id, self.false_id)
        value = logp_true if score == "logp_true" else jnp.exp(logp_true)
        # Rows are independent (causal attention within a row): the gradient of the sum is
        # each row's own gradient.
        return jnp.sum(value), (value, margin)

      (value, margin), b = grad_x_input(score_fn, embeds)
      return value, margin, b

    self.scores = jax.jit(scores)
    self.attribute = jax.jit(attribute)


def attribution_weights(
  b: Any, span: Any, *, tau: float = 1.0, attr_norm: str = "none"
) -> tuple[jax.Array, jax.Array]:
  """`alpha = softmax_{span}(b / tau)` per row -> `(alpha [M, L], entropy [M])`.

  Rows with an empty span get alpha 0 and entropy 0. NaN/inf in `b` inside a span is an
  error naming the rows (never silently zero). `tau = inf` gives the uniform distribution.
  """
  check_scalar(tau, "tau", low=0.0, low_inclusive=False, allow_inf=True)
  check_choice(attr_norm, ATTR_NORMS, "attr_norm")
  b = jnp.asarray(b, jnp.float32)
  span = jnp.asarray(span, bool)
  if b.ndim != 2 or span.shape != b.shape:
    raise ValueError(f"b and span must both be [M, L], got {b.shape} and {span.shape}")
  values = np.asarray(jnp.where(span, b, 0.0))
  if not np.all(np.isfinite(values)):
    rows = np.nonzero(~np.all(np.isfinite(values), axis=1))[0].tolist()
    raise FloatingPointError(
      f"b: judge attributions are NaN/inf in pairs {rows[:8]} (a non-finite judge gradient); "
      "check the judge's dtype and the inputs of those pairs"
    )
  return _weights_core(b, span, float(tau), attr_norm)


@functools.partial(jax.jit, static_argnames=("tau", "attr_norm"))
def _weights_core(b, span, tau, attr_norm):
  count = jnp.sum(span, axis=-1, keepdims=True)
  if attr_norm == "zscore":
    mean = jnp.sum(jnp.where(span, b, 0), -1, keepdims=True) / jnp.maximum(count, 1)
    var = jnp.sum(jnp.where(span, jnp.square(b - mean), 0), -1, keepdims=True) / jnp.maximum(
      count, 1
    )
    b = (b - mean) / (jnp.sqrt(var) + 1e-6)
  if np.isinf(tau):
    alpha = jnp.where(span, 1.0 / jnp.maximum(count, 1), 0.0)
  else:
    logits = jnp.where(span, b / tau, -jnp.inf)
    top = jnp.max(jnp.where(span, logits, -1e30), axis=-1, keepdims=True)
    unnorm = jnp.where(span, jnp.exp(logits - top), 0.0)
    alpha = unnorm / jnp.maximum(jnp.sum(unnorm, -1, keepdims=True), 1e-30)
  entropy = -jnp.sum(jnp.where(alpha > 0, alpha * jnp.log(jnp.where(alpha > 0, alpha, 1)), 0), -1)
  return alpha, entropy
